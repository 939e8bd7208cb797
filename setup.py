"""The native trace scanner (pytest_gpuperf/analysis/_scan.c) is optional: where it cannot be
built (no C compiler or Python headers), the install goes on without it and gpuperf reads
traces in pure Python, with identical results. Everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("pytest_gpuperf.analysis._scan", ["pytest_gpuperf/analysis/_scan.c"], optional=True),
    ]
)
