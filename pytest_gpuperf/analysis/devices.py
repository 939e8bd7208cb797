"""Peak rates of known GPUs, for the roofline's ridge point.

Figures are NVIDIA datasheet dense (no sparsity) peaks and HBM/GDDR bandwidths.
They only place a workload on one side of the ridge, which is off by orders of
magnitude between a decode step (about 1 FLOP per byte) and a prefill (hundreds),
so datasheet precision is enough. An unknown GPU gets no ridge and the
classifier falls back to its labelled heuristic.
"""

from __future__ import annotations

import re
from typing import NamedTuple


class DevicePeak(NamedTuple):
    name: str
    tflops_16bit: float  # bf16/fp16 tensor cores, dense
    tflops_fp32: float  # plain fp32 (torch's default matmul precision)
    tflops_8bit: float  # fp8/int8 tensor cores, dense
    bandwidth_tbs: float  # device memory, TB/s

    def ridge_flop_per_byte(self, element_size: int) -> float:
        tflops = {1: self.tflops_8bit, 2: self.tflops_16bit}.get(element_size, self.tflops_fp32)
        return tflops / self.bandwidth_tbs


# Searched in the lower-cased device name, most specific first.
_PEAKS: tuple[tuple[str, DevicePeak], ...] = (
    (r"\bh200\b", DevicePeak("H200", 989.0, 67.0, 1979.0, 4.8)),
    (r"\bh100\b.*\bpcie\b", DevicePeak("H100 PCIe", 756.0, 51.0, 1513.0, 2.0)),
    (r"\bh100\b", DevicePeak("H100 SXM", 989.0, 67.0, 1979.0, 3.35)),
    (r"\ba100\b.*\b40gb\b", DevicePeak("A100 40GB", 312.0, 19.5, 624.0, 1.555)),
    (r"\ba100\b", DevicePeak("A100 80GB", 312.0, 19.5, 624.0, 2.039)),
    (r"\bl40s\b", DevicePeak("L40S", 362.0, 91.6, 733.0, 0.864)),
    (r"\bl4\b", DevicePeak("L4", 121.0, 30.3, 242.0, 0.3)),
)


def peak_for(device_name: str | None) -> DevicePeak | None:
    if not device_name:
        return None
    lowered = device_name.lower()
    for pattern, peak in _PEAKS:
        if re.search(pattern, lowered):
            return peak
    return None
