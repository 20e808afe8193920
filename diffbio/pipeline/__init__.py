"""The end-to-end chain: the demo that runs every stage on the built-in data."""

from diffbio.pipeline._demo import DemoReport, run_demo

__all__ = ["DemoReport", "run_demo"]
