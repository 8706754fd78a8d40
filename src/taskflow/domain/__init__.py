"""The pure core of taskflow: the task life cycle, the retry policy and the ports.

Nothing here imports a framework, reads a clock, draws a random number or does I/O.
"""
