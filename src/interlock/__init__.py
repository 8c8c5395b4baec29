"""Interlock: see, detect, neutralize, drill and prove on industrial control networks."""

__version__ = "0.1.0"
