"""Measuring: the protocol (warmup, timed rounds, one profiled pass), what a backend is, the host
clock, decisions taken with the other ranks, the time limit. Never imports pytest or torch."""
