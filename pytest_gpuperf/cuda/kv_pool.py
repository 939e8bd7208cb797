"""A preallocated paged KV-cache block pool (the ``kv_pool`` fixture).

The K and V tensors of every block are allocated once, when the pool is made:
``[num_layers, num_blocks, block_size, num_kv_heads, head_dim]`` each. Taking and
returning a block is O(1) on a free list and never touches device memory, so a
decode loop on the pool makes no new device allocations. A sequence owns a block
table; appending tokens fills its last block and takes new ones as needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from pytest_gpuperf.errors import GpuperfError


class KVPoolError(GpuperfError, RuntimeError):
    """A block id that is not this pool's, or one freed twice."""


class KVPoolExhausted(KVPoolError):
    """Every block is in use."""


@dataclass
class KVSequence:
    """One sequence's block table and length (tokens stored)."""

    blocks: list[int] = field(default_factory=list)
    length: int = 0


@dataclass(frozen=True)
class KVPoolStats:
    blocks_total: int
    blocks_used: int
    blocks_free: int
    device: str  # where the blocks live
    bytes_total: int  # K and V together
    bytes_per_block: int
    tokens_stored: int
    waste_tokens: int  # slots held in partly filled blocks
    waste_pct: float  # of the slots in used blocks


class KVPool:
    def __init__(
        self,
        *,
        num_blocks: int,
        num_layers: int,
        num_kv_heads: int,
        block_size: int,
        head_dim: int,
        dtype: torch.dtype = torch.float16,
        device: str | torch.device | None = None,
    ) -> None:
        for name, value in (
            ("num_blocks", num_blocks),
            ("num_layers", num_layers),
            ("num_kv_heads", num_kv_heads),
            ("block_size", block_size),
            ("head_dim", head_dim),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"kv_pool: {name} must be a whole number, 1 or more, not {value!r}")
        if device is None:  # the machine's accelerator where there is one
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.num_blocks, self.block_size = num_blocks, block_size
        shape = (num_layers, num_blocks, block_size, num_kv_heads, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self._free = list(range(num_blocks - 1, -1, -1))  # a stack: pop and push are O(1)
        self._is_free = bytearray(b"\x01") * num_blocks
        self._sequences: list[KVSequence] = []

    # --- blocks -------------------------------------------------------------------------------------

    def allocate(self) -> int:
        if not self._free:
            s = self.stats()
            raise KVPoolExhausted(
                f"KV pool exhausted: all {self.num_blocks} blocks of {self.block_size} tokens are in use "
                f"({s.tokens_stored} tokens stored, {s.waste_tokens} slots unfilled in partly filled blocks); "
                "free finished sequences or make the pool with more blocks"
            )
        block = self._free.pop()
        self._is_free[block] = 0
        return block

    def free(self, block: int) -> None:
        if isinstance(block, bool) or not isinstance(block, int) or not 0 <= block < self.num_blocks:
            raise KVPoolError(f"block {block!r} is not in this pool (ids 0..{self.num_blocks - 1})")
        if self._is_free[block]:
            raise KVPoolError(f"block {block} is already free (freed twice?)")
        self._is_free[block] = 1
        self._free.append(block)

    # --- sequences ----------------------------------------------------------------------------------

    def sequence(self) -> KVSequence:
        seq = KVSequence()
        self._sequences.append(seq)
        return seq

    def release(self, seq: KVSequence) -> None:
        """Return a finished sequence's blocks to the pool."""
        for block in seq.blocks:
            self.free(block)
        seq.blocks.clear()
        seq.length = 0
        self._sequences = [s for s in self._sequences if s is not seq]

    def append(self, seq: KVSequence, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store new tokens of every layer: ``k`` and ``v`` are [num_layers, tokens, num_kv_heads, head_dim]."""
        start = self.extend(seq, k.shape[1])
        for layer in range(k.shape[0]):
            self.write(seq, layer, start, k[layer], v[layer])

    def extend(self, seq: KVSequence, tokens: int) -> int:
        """Make room for ``tokens`` more (taking blocks as needed); the position of the first."""
        needed = -(-(seq.length + tokens) // self.block_size) - len(seq.blocks)
        if needed > len(self._free):
            raise KVPoolExhausted(
                f"KV pool exhausted: {tokens} more tokens need {needed} blocks, {len(self._free)} of "
                f"{self.num_blocks} are free; free finished sequences or make the pool with more blocks"
            )
        for _ in range(needed):
            seq.blocks.append(self.allocate())
        start = seq.length
        seq.length += tokens
        return start

    def write(self, seq: KVSequence, layer: int, start: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store one layer's keys and values ([tokens, num_kv_heads, head_dim]) from position ``start``."""
        written, tokens = 0, k.shape[0]
        while written < tokens:
            position = start + written
            block, offset = seq.blocks[position // self.block_size], position % self.block_size
            count = min(self.block_size - offset, tokens - written)
            self.k[layer, block, offset : offset + count] = k[written : written + count]
            self.v[layer, block, offset : offset + count] = v[written : written + count]
            written += count

    def truncate(self, seq: KVSequence, length: int) -> None:
        """Keep the first ``length`` tokens; blocks past them go back to the pool."""
        if not 0 <= length <= seq.length:
            raise KVPoolError(f"cannot truncate a sequence of {seq.length} tokens to {length}")
        keep = -(-length // self.block_size)
        for block in seq.blocks[keep:]:
            self.free(block)
        del seq.blocks[keep:]
        seq.length = length

    def gather(self, seq: KVSequence, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The sequence's keys and values of one layer: [length, num_kv_heads, head_dim] each."""
        blocks = torch.tensor(seq.blocks, dtype=torch.long).to(self.k.device, non_blocking=True)
        shape = (-1, *self.k.shape[3:])
        keys = self.k[layer].index_select(0, blocks).reshape(shape)[: seq.length]
        values = self.v[layer].index_select(0, blocks).reshape(shape)[: seq.length]
        return keys, values

    def __repr__(self) -> str:
        s = self.stats()
        return (
            f"KVPool({s.blocks_used}/{s.blocks_total} blocks of {self.block_size} tokens in use, "
            f"{self.k.dtype}, {s.bytes_total / 2**20:.1f} MiB on {s.device})"
        )

    def stats(self) -> KVPoolStats:
        used = self.num_blocks - len(self._free)
        per_block = 2 * self.k[:, 0].numel() * self.k.element_size()
        stored = sum(s.length for s in self._sequences)
        slots = used * self.block_size
        waste = slots - stored
        return KVPoolStats(
            blocks_total=self.num_blocks,
            blocks_used=used,
            blocks_free=len(self._free),
            device=str(self.k.device),
            bytes_total=per_block * self.num_blocks,
            bytes_per_block=per_block,
            tokens_stored=stored,
            waste_tokens=waste,
            waste_pct=100.0 * waste / slots if slots else 0.0,
        )
