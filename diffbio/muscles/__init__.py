"""diffbio.muscles."""
