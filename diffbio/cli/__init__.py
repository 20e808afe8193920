"""The ``diffbio`` command line (OpenSim-style tools writing OpenSim-compatible files)."""

from diffbio.cli._main import main

__all__ = ["main"]
