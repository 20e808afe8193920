"""diffbio.solvers."""
