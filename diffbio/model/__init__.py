"""diffbio.model."""
