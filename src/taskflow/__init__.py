"""taskflow: durable background tasks for Python.

Write handlers with :class:`Registry`; submit with :class:`Client` or over HTTP.
"""

from taskflow.client import ApiError, Client
from taskflow.handlers import Fail, Retry, TaskContext
from taskflow.registry import Registry

__all__ = ["ApiError", "Client", "Fail", "Registry", "Retry", "TaskContext"]
