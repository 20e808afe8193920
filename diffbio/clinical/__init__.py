"""diffbio.clinical."""
