"""FLOPs from a profiler trace's recorded shapes agree with torch's FlopCounterMode.

The steps run on the CPU here (torch.profiler records the same operators and shapes there);
``tests/test_gpu.py`` checks the CUDA attention backends on the device.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from torch.profiler import ProfilerActivity, profile  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count  # noqa: E402

from pytest_gpuperf import load  # noqa: E402


def traced_flops(step, tmp_path: Path) -> Counter[str]:
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        step()
    prof.export_chrome_trace(str(tmp_path / "trace.json"))
    counts: Counter[str] = Counter()
    for op in load(tmp_path / "trace.json").flop_ops:
        counts[op.name] += op.flops
    return counts


def counted_flops(step) -> dict[str, int]:
    with FlopCounterMode(display=False) as counter:
        step()
    return {f"aten::{op.__name__}": n for op, n in counter.get_flop_counts()["Global"].items()}


def convolutions_and_products() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    torch.nn.functional.conv2d(x, torch.randn(16, 3, 7, 7), stride=2, padding=3)  # a ResNet stem
    torch.nn.functional.conv2d(torch.randn(2, 16, 16, 16), torch.randn(32, 4, 3, 3), padding=1, dilation=2, groups=4)
    torch.nn.functional.conv_transpose2d(torch.randn(2, 32, 8, 8), torch.randn(32, 8, 4, 4), stride=2, padding=1)
    torch.nn.functional.conv_transpose1d(
        torch.randn(2, 4, 10), torch.randn(4, 3, 5), stride=3, padding=2, output_padding=1
    )
    torch.nn.functional.conv1d(torch.randn(3, 6, 40), torch.randn(6, 1, 5), groups=6)  # depthwise
    torch.nn.functional.conv3d(torch.randn(1, 2, 5, 6, 7), torch.randn(4, 2, 3, 3, 3), stride=(1, 2, 1))
    a, b = torch.randn(4, 16, 32), torch.randn(4, 32, 8)
    torch.bmm(a, b)
    torch.einsum("bij,bjk->bik", a, b)  # lowered to bmm
    torch.nn.functional.linear(torch.randn(5, 7, 16), torch.randn(9, 16), torch.randn(9))  # addmm
    torch.nn.functional.linear(torch.randn(5, 7, 16), torch.randn(9, 16))  # mm
    torch.baddbmm(torch.randn(4, 16, 8), a, b)
    torch.randn(64, 64) @ torch.randn(64, 64)


def test_convolutions_and_matrix_products_match_flop_counter_mode(tmp_path: Path) -> None:
    ours, theirs = traced_flops(convolutions_and_products, tmp_path), counted_flops(convolutions_and_products)
    assert set(theirs) == {"aten::convolution", "aten::bmm", "aten::addmm", "aten::mm", "aten::baddbmm"}
    assert {name: ours[name] for name in theirs} == pytest.approx(theirs, rel=1e-12)
    assert sum(ours.values()) == pytest.approx(sum(theirs.values()), rel=1e-12)  # nothing counted twice


def test_a_resnet_block_counts_its_convolutions(tmp_path: Path) -> None:
    block = torch.nn.Sequential(
        torch.nn.Conv2d(64, 64, 1, bias=False), torch.nn.BatchNorm2d(64), torch.nn.ReLU(),
        torch.nn.Conv2d(64, 64, 3, padding=1, bias=False), torch.nn.BatchNorm2d(64), torch.nn.ReLU(),
        torch.nn.Conv2d(64, 256, 1, bias=False),
    ).eval()  # fmt: skip
    x = torch.randn(2, 64, 28, 28)

    def step() -> None:
        with torch.no_grad():
            block(x)

    ours, theirs = traced_flops(step, tmp_path), counted_flops(step)
    assert ours["aten::convolution"] == theirs["aten::convolution"] > 0


@pytest.mark.parametrize(("heads_q", "heads_kv"), [(8, 8), (8, 2)])
def test_attention_counts_both_products(tmp_path: Path, heads_q: int, heads_kv: int) -> None:
    q, k, v = torch.randn(2, heads_q, 64, 32), torch.randn(2, heads_kv, 80, 32), torch.randn(2, heads_kv, 80, 16)

    def step() -> None:
        torch.nn.functional.scaled_dot_product_attention(q, k, v, enable_gqa=heads_q != heads_kv)

    ours = traced_flops(step, tmp_path)
    (b, h, sq, d), sk, dv = q.shape, k.shape[2], v.shape[3]
    expected = 2 * b * h * sq * sk * d + 2 * b * h * sq * sk * dv  # scores, then the weighted values
    if heads_q == heads_kv:  # torch's own formula (2.11's takes equal head counts only)
        assert expected == sdpa_flop_count(list(q.shape), list(k.shape), list(v.shape))
    assert sum(ours.values()) == expected  # whichever CPU path ran (flash_for_cpu, or bmm in the math path)
