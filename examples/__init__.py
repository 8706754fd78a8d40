"""Example task modules to copy from: see examples/README.md.

Each one is a package with a ``tasks`` Registry, loaded by taskflow with
``TASKFLOW_TASKS=examples.<name>.tasks:tasks`` (the repository root on ``PYTHONPATH``).
"""
