"""tuisup: a process manager for Python developers, with a Textual console."""

__version__ = "0.1.0"
