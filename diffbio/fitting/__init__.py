"""diffbio.fitting."""
