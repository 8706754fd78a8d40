"""Checksum an uploaded file and write a compressed copy of it, atomically."""
