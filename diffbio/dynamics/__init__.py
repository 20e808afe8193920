"""diffbio.dynamics."""
