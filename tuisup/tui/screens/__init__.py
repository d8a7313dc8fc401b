"""Provides the console's screens."""
