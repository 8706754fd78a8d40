"""Ways into taskflow: the HTTP API, the worker and the command line."""
