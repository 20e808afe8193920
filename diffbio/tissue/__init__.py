"""diffbio.tissue."""
