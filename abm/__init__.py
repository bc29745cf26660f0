"""The service layer of the ABM engine: settings, the composition root, and the jobs the entry points call."""

__version__ = "0.1.0"
