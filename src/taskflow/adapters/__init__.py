"""Implementations of the domain's ports, one module per technology."""
