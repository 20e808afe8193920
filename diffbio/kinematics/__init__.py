"""diffbio.kinematics."""
