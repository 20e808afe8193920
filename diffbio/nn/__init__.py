"""diffbio.nn."""
