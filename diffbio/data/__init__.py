"""diffbio.data."""
