"""A baseline entry: what a baseline keeps of one measured test, and what a new measurement
is compared as. Its fields are the registry's kept metrics (``judging.registry``): the few
every entry has are attributes, the rest are read by name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pytest_gpuperf.judging.registry import BY_NAME, EXACT, METRICS, PER_NAME, SERIES, TEXT, kept


class Rounds(NamedTuple):
    """The timed rounds as the latency comparison reads them: each round's median, and the SM
    clock after each round (empty where it could not be read)."""

    medians_ms: tuple[float, ...]
    clock_mhz: tuple[float, ...]


# compile_events keys are "<kind>: <what and where>", the kind naming the count it adds to.
COMPILE_EVENT_KINDS = {"graph_breaks": "graph break", "recompiles": "recompile", "cudagraph_skips": "cudagraph skip"}

# Counts compared exactly: what the step does, which noise does not move.
EXACT_COUNTS = tuple(m.name for m in METRICS if m.compared == EXACT)
# Baselines keep counts whole, not to four digits: 14616.67 kernels per step kept as 14620
# read back as a regression in the next process (an H100 example served a request that way).
COUNT_FIELDS = frozenset(m.name for m in METRICS if m.whole)
# The fields every entry has, in the registry's order: Entry's attributes.
REQUIRED = tuple(m.name for m in METRICS if m.required)


@dataclass(frozen=True)
class Entry:
    """What a baseline keeps of one measured test, and what a new measurement is compared as."""

    samples: int
    p50_ms: float
    p99_ms: float
    p99_ci_ms: tuple[float, float]  # order-statistic interval at the comparison's per-side confidence
    round_medians_ms: tuple[float, ...]
    figures: Mapping[str, float] = field(default_factory=dict)  # every other number, by metric name
    named: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # per-name metrics (kernel -> n)
    series: Mapping[str, tuple[float, ...]] = field(default_factory=dict)  # lists: each round's clock, ...
    texts: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, **values: Any) -> Entry:
        """An entry from every kept metric's value by name; None, empty and unknown-to-the-registry
        values raise or are left out (a metric is absent, never None, in an entry)."""
        unknown = [name for name in values if name not in BY_NAME or not kept(BY_NAME[name])]
        if unknown:
            raise TypeError(f"Entry has no metric {', '.join(sorted(unknown))}")
        missing = [name for name in REQUIRED if name not in values]
        if missing:
            raise TypeError(f"Entry needs {', '.join(missing)}")
        parts: dict[str, dict[str, Any]] = {"": {}, PER_NAME: {}, SERIES: {}, TEXT: {}}
        for name, value in values.items():
            if name in REQUIRED or value is None or value == () or value == {}:
                continue
            shape = BY_NAME[name].shape
            parts[shape if shape in parts else ""][name] = value
        return cls(
            values["samples"],
            values["p50_ms"],
            values["p99_ms"],
            values["p99_ci_ms"],
            values["round_medians_ms"],
            figures=parts[""],
            named=parts[PER_NAME],
            series=parts[SERIES],
            texts=parts[TEXT],
        )

    def values(self) -> dict[str, Any]:
        """Every metric the entry has, by name, in the registry's order."""
        held = {name: getattr(self, name) for name in REQUIRED}
        held.update(self.figures)
        held.update(self.named)
        held.update(self.series)
        held.update(self.texts)
        return {m.name: held[m.name] for m in METRICS if m.name in held}

    def updated(self, **values: Any) -> Entry:
        """This entry with ``values`` set (None or empty: left out)."""
        return Entry.of(**{**self.values(), **values})

    def figure(self, name: str) -> float | None:
        return self.figures.get(name)

    def per_name(self, name: str) -> Mapping[str, float]:
        return self.named.get(name, {})

    def text(self, name: str) -> str | None:
        return self.texts.get(name)

    @property
    def rounds(self) -> Rounds:
        return Rounds(self.round_medians_ms, self.series.get("round_clock_mhz", ()))

    def per_call(self, metric: str) -> Rounds:
        """A generation's per-call medians of ``metric`` (ttft_ms or tpot_ms), compared as rounds are
        (no clock series: the calls are not the rounds the clock was read after)."""
        return Rounds(self.series.get(f"{metric.removesuffix('_ms')}_per_call_ms", ()), ())
