"""The only package that imports torch: CUDA timing, profiling, graphs and the KV pool.

Imported lazily, only when a measurement on a GPU is asked for.
"""
