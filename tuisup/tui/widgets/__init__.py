"""Provides the console's widgets."""
