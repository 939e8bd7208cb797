"""Trace analysis: the normalized trace, one loader per format (``load`` picks by content),
intervals, metrics, the bottleneck class, ranks. Imports stdlib, msgspec and sqlite3 only."""
