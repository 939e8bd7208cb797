"""The measured metrics as JUnit XML properties (``--junitxml`` carries each test's)."""

from __future__ import annotations

from pytest_gpuperf.judging.testids import base_test
from pytest_gpuperf.result import Result


def user_properties(r: Result) -> list[tuple[str, object]]:
    """The measured metrics, as JUnit XML properties: ``gpuperf_p50_ms`` for a test's first
    measurement, ``gpuperf#2_p50_ms`` for its second, so no two properties share a name."""
    m = r.measurement
    suffix = m.test_id[len(base_test(m.test_id)) :]  # "#2" for a test's second measurement
    prefix = f"gpuperf{suffix}_"
    return [(prefix + name, value) for name, value in _properties(r)]


def _properties(r: Result) -> list[tuple[str, object]]:
    m = r.measurement
    props: list[tuple[str, object]] = [
        ("backend", m.env.backend),
        ("device", m.env.device),
        ("p50_ms", round(m.p50.value, 6)),
        ("p99_ms", round(m.p99.value, 6)),
        ("verdict", r.verdict.label),
    ]
    if m.comparison is not None:
        props.append(("baseline", m.comparison.summary()))
    if m.rounds_info.peak_mem_mb is not None:
        props.append(("peak_mem_mb", round(m.rounds_info.peak_mem_mb, 3)))
    device = m.device
    if device is not None:
        props.append(("gpu_active_pct", round(device.gpu_active_pct, 4)))
        if device.dispatch_ratio is not None:
            props.append(("dispatch_ratio", round(device.dispatch_ratio, 4)))
        props.append(("bottleneck", device.classification.kind if device.classification else ""))
    g = m.generation
    if g is not None:
        props.append(("ttft_ms", round(g.ttft_ms.at(0.5).value, 6)))
        if g.tpot_ms is not None:
            props.append(("tpot_ms", round(g.tpot_ms.at(0.5).value, 6)))
        if g.tokens_per_s is not None:
            props.append(("tokens_per_s", round(g.tokens_per_s.value, 3)))
    return props
