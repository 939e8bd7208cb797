"""pytest-benchmark's ``benchmark`` fixture in a budgeted test under --gpuperf: gpuperf measures
the step first, then pytest-benchmark times it as it would."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class MeasuredBenchmark:
    """pytest-benchmark's ``benchmark`` fixture in a budgeted test under --gpuperf: the step
    given to it is measured by gpuperf first, then handed on to pytest-benchmark."""

    def __init__(self, fixture: Any, measure: Callable[[Callable[[], Any]], Any]) -> None:
        self._fixture = fixture
        self._measure = measure

    def __call__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self._measure(lambda: fn(*args, **kwargs))
        return self._fixture(fn, *args, **kwargs)

    def pedantic(
        self, target: Callable[..., Any], args: Any = (), kwargs: Any = None, setup: Any = None, **options: Any
    ) -> Any:
        if setup is None:  # with a setup, each call's arguments come from it: pytest-benchmark alone times it
            self._measure(lambda: target(*args, **(kwargs or {})))
        return self._fixture.pedantic(target, args=args, kwargs=kwargs, setup=setup, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fixture, name)
