"""Build a CSV report, reporting progress as it goes."""
