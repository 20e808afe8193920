"""diffbio.io."""
