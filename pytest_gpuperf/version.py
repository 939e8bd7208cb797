"""The release: one number, read by the package, the baseline files it writes and the reports."""

__version__ = "0.1.0"
