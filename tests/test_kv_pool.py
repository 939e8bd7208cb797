"""The paged KV-cache pool on the CPU: blocks, sequences, gathering, errors, usage."""

from __future__ import annotations

import pytest
import torch

from pytest_gpuperf.cuda.kv_pool import KVPool, KVPoolError, KVPoolExhausted

LAYERS, HEADS, DIM, BLOCK = 2, 2, 4, 4


def make(blocks: int = 4) -> KVPool:
    return KVPool(
        num_blocks=blocks,
        num_layers=LAYERS,
        num_kv_heads=HEADS,
        block_size=BLOCK,
        head_dim=DIM,
        dtype=torch.float32,
        device="cpu",
    )


def tokens(count: int, start: float) -> torch.Tensor:
    values = torch.arange(start, start + count, dtype=torch.float32)
    return values[None, :, None, None].expand(LAYERS, count, HEADS, DIM).contiguous()


def test_the_pool_is_allocated_once_and_blocks_cycle_in_constant_time() -> None:
    pool = make()
    assert pool.k.shape == (LAYERS, 4, BLOCK, HEADS, DIM) and pool.v.shape == pool.k.shape
    storage = pool.k.data_ptr()
    taken = [pool.allocate() for _ in range(4)]
    assert sorted(taken) == [0, 1, 2, 3]
    pool.free(taken[1])
    assert pool.allocate() == taken[1]  # the block just freed is the next one out
    assert pool.k.data_ptr() == storage


def test_sequences_append_across_blocks_and_gather_in_order() -> None:
    pool = make()
    seq = pool.sequence()
    pool.append(seq, tokens(3, 0), tokens(3, 100))
    pool.append(seq, tokens(3, 3), tokens(3, 103))  # crosses into a second block
    assert seq.length == 6 and len(seq.blocks) == 2
    keys, values = pool.gather(seq, layer=1)
    assert keys.shape == (6, HEADS, DIM)
    assert keys[:, 0, 0].tolist() == [0, 1, 2, 3, 4, 5]
    assert values[:, 1, 3].tolist() == [100, 101, 102, 103, 104, 105]
    stats = pool.stats()
    assert (stats.blocks_used, stats.blocks_free, stats.tokens_stored, stats.waste_tokens) == (2, 2, 6, 2)
    assert stats.waste_pct == 25.0
    assert stats.bytes_per_block == 2 * LAYERS * BLOCK * HEADS * DIM * 4
    assert stats.bytes_total == 4 * stats.bytes_per_block
    pool.release(seq)
    assert pool.stats().blocks_free == 4


def test_exhaustion_says_so_with_the_numbers() -> None:
    pool = make(blocks=2)
    seq = pool.sequence()
    pool.append(seq, tokens(8, 0), tokens(8, 0))
    with pytest.raises(KVPoolExhausted, match=r"KV pool exhausted: all 2 blocks of 4 tokens are in use \(8 tokens"):
        pool.allocate()
    with pytest.raises(KVPoolExhausted, match="1 more tokens need 1 blocks, 0 of 2 are free"):
        pool.append(seq, tokens(1, 8), tokens(1, 8))
    assert seq.length == 8  # nothing half-written


def test_double_free_and_foreign_ids_raise() -> None:
    pool = make()
    block = pool.allocate()
    pool.free(block)
    with pytest.raises(KVPoolError, match="block 0 is already free"):
        pool.free(block)
    with pytest.raises(KVPoolError, match=r"block 99 is not in this pool \(ids 0..3\)"):
        pool.free(99)
    with pytest.raises(ValueError, match="num_blocks must be a whole number, 1 or more"):
        KVPool(num_blocks=0, num_layers=1, num_kv_heads=1, block_size=1, head_dim=1, device="cpu")


def test_the_fixtures_through_pytest(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import torch

        def test_pool(kv_pool):
            pool = kv_pool(num_blocks=8, num_layers=1, num_kv_heads=1, block_size=16, head_dim=8,
                           dtype=torch.float32, device="cpu")
            assert pool.stats().blocks_free == 8

        def test_graph(cuda_graph):
            raise AssertionError("not reached without CUDA")
        """
    )
    result = pytester.runpytest("-rs")
    if torch.cuda.is_available():
        result.assert_outcomes(passed=1, failed=1)
    else:
        result.assert_outcomes(passed=1, skipped=1)
        result.stdout.fnmatch_lines(["*cuda_graph needs a CUDA device; torch * sees none"])


def test_truncate_returns_the_blocks_past_the_kept_tokens() -> None:
    pool = make()
    seq = pool.sequence()
    pool.append(seq, tokens(10, 0), tokens(10, 0))
    assert len(seq.blocks) == 3
    pool.truncate(seq, 5)
    assert (seq.length, len(seq.blocks), pool.stats().blocks_free) == (5, 2, 2)
    with pytest.raises(KVPoolError, match="cannot truncate a sequence of 5 tokens to 6"):
        pool.truncate(seq, 6)
