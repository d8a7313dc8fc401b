"""Provides the Textual console."""
