"""taskflow: durable background tasks for Python."""
