"""diffbio.data: built-in data sets (the synthetic walking trial for the default model)."""

from diffbio.data._walking import WalkingTrial, synthetic_walk

__all__ = ["WalkingTrial", "synthetic_walk"]
