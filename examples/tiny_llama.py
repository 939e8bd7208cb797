"""A small Llama-style decoder for the examples and the recorded traces.

RMSNorm, rotary position embeddings, grouped-query attention and a SwiGLU MLP,
with random weights (nothing is downloaded). The KV cache is a static tensor
per layer and the decode position lives on the device, so one decode step has
fixed shapes and can be captured as a CUDA graph.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Config:
    vocab: int = 32000
    dim: int = 1024
    layers: int = 8
    heads: int = 16
    kv_heads: int = 4
    ffn: int = 2816
    max_seq: int = 1024
    rope_base: float = 10000.0

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.float().pow(2).mean(-1, keepdim=True)
        return (x.float() * torch.rsqrt(variance + self.eps)).to(x.dtype) * self.weight


def rope_tables(cfg: Config, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    inv_freq = 1.0 / (cfg.rope_base ** (torch.arange(0, cfg.head_dim, 2, device=device).float() / cfg.head_dim))
    angles = torch.outer(torch.arange(cfg.max_seq, device=device).float(), inv_freq)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: [batch, heads, seq, head_dim]; cos/sin: [seq, head_dim/2]
    x1, x2 = x.float().chunk(2, dim=-1)
    rotated = torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return rotated.to(x.dtype)


class KVCache(Protocol):
    def attend(
        self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        """Store this step's keys and values of ``layer`` and attend ``q`` over the sequence so far."""
        ...


class StaticCache:
    """One static K and V tensor per layer ([batch, kv_heads, max_seq, head_dim]), written at
    device-side positions: fixed shapes, so a step on it captures as a CUDA graph."""

    def __init__(self, cfg: Config, batch: int, dtype: torch.dtype, device: torch.device) -> None:
        shape = (batch, cfg.kv_heads, cfg.max_seq, cfg.head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(cfg.layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(cfg.layers)]
        self.cfg = cfg

    def attend(
        self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        cache_k, cache_v = self.k[layer], self.v[layer]
        cache_k.index_copy_(2, positions, k)
        cache_v.index_copy_(2, positions, v)
        # Attend over the whole static cache; positions after the query's are masked.
        visible = torch.arange(self.cfg.max_seq, device=q.device)[None, :] <= positions[:, None]
        group = self.cfg.heads // self.cfg.kv_heads
        keys = cache_k.repeat_interleave(group, dim=1)
        values = cache_v.repeat_interleave(group, dim=1)
        return F.scaled_dot_product_attention(q, keys, values, attn_mask=visible[None, None])


class Attention(nn.Module):
    def __init__(self, cfg: Config, layer: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.layer = layer
        self.q = nn.Linear(cfg.dim, cfg.heads * cfg.head_dim, bias=False)
        self.kv = nn.Linear(cfg.dim, 2 * cfg.kv_heads * cfg.head_dim, bias=False)
        self.o = nn.Linear(cfg.heads * cfg.head_dim, cfg.dim, bias=False)

    def forward(
        self, x: torch.Tensor, positions: torch.Tensor, cache: KVCache, cos: torch.Tensor, sin: torch.Tensor
    ) -> torch.Tensor:
        cfg = self.cfg
        batch, seq, _ = x.shape
        q = self.q(x).view(batch, seq, cfg.heads, cfg.head_dim).transpose(1, 2)
        k, v = self.kv(x).view(batch, seq, 2, cfg.kv_heads, cfg.head_dim).unbind(2)
        k, v = k.transpose(1, 2), v.transpose(1, 2)
        q, k = apply_rope(q, cos[positions], sin[positions]), apply_rope(k, cos[positions], sin[positions])
        out = cache.attend(self.layer, q, k, v, positions)
        return self.o(out.transpose(1, 2).reshape(batch, seq, cfg.dim))


class MLP(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.gate_up = nn.Linear(cfg.dim, 2 * cfg.ffn, bias=False)
        self.down = nn.Linear(cfg.ffn, cfg.dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, cfg: Config, layer: int) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.dim)
        self.attn = Attention(cfg, layer)
        self.mlp_norm = RMSNorm(cfg.dim)
        self.mlp = MLP(cfg)

    def forward(
        self, x: torch.Tensor, positions: torch.Tensor, cache: KVCache, cos: torch.Tensor, sin: torch.Tensor
    ) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), positions, cache, cos, sin)
        return x + self.mlp(self.mlp_norm(x))


class TinyLlama(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab, cfg.dim)
        self.blocks = nn.ModuleList(Block(cfg, layer) for layer in range(cfg.layers))
        self.norm = RMSNorm(cfg.dim)
        self.lm_head = nn.Linear(cfg.dim, cfg.vocab, bias=False)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=1.0 / math.sqrt(p.shape[1]))

    def new_cache(self, batch: int) -> StaticCache:
        ref = self.lm_head.weight
        return StaticCache(self.cfg, batch, ref.dtype, ref.device)

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Logits of the last position. tokens: [batch, seq]; positions: [seq]."""
        if not hasattr(self, "_rope") or self._rope[0].device != tokens.device:
            self._rope = rope_tables(self.cfg, tokens.device)
        cos, sin = self._rope
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x, positions, cache, cos, sin)
        return self.lm_head(self.norm(x[:, -1:, :])).squeeze(1)


class Decoder:
    """Prefill and decode around one model and one static KV cache."""

    def __init__(self, model: TinyLlama, batch: int) -> None:
        self.model = model
        self.batch = batch
        self.cache = model.new_cache(batch)
        device = model.lm_head.weight.device
        self.position = torch.zeros(1, dtype=torch.long, device=device)
        self.token = torch.zeros(batch, 1, dtype=torch.long, device=device)

    @torch.no_grad()
    def prefill(self, prompt: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(prompt.shape[1], device=prompt.device)
        logits = self.model(prompt, positions, self.cache)
        self.position.fill_(prompt.shape[1])
        self.token.copy_(logits.argmax(-1, keepdim=True))
        return logits

    @torch.no_grad()
    def decode_step(self) -> torch.Tensor:
        """One greedy token; advances the device-side position (no host sync)."""
        logits = self.model(self.token, self.position, self.cache)
        self.token.copy_(logits.argmax(-1, keepdim=True))
        self.position.add_(1).remainder_(self.model.cfg.max_seq)
        return self.token


def build(
    cfg: Config | None = None, device: str = "cuda", dtype: torch.dtype = torch.bfloat16, seed: int = 0
) -> TinyLlama:
    torch.manual_seed(seed)
    return TinyLlama(cfg or Config()).to(device=device, dtype=dtype).eval()


class PagedCache:
    """Keys and values in a paged block pool (pytest_gpuperf's kv_pool), batch 1: each step
    takes slots for its tokens, writes every layer's keys and values there, and attends over
    the blocks gathered from the sequence's block table."""

    def __init__(self, cfg: Config, pool: Any) -> None:
        self.cfg, self.pool = cfg, pool
        self.seq = pool.sequence()
        self.start = 0

    def begin(self, tokens: int) -> torch.Tensor:
        """Reserve slots for a step's tokens; their positions (on the device)."""
        self.start = self.pool.extend(self.seq, tokens)
        device = self.pool.k.device
        return torch.arange(self.start, self.start + tokens, device=device)

    def attend(
        self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        self.pool.write(self.seq, layer, self.start, k[0].transpose(0, 1), v[0].transpose(0, 1))
        keys, values = self.pool.gather(self.seq, layer)  # [length, kv_heads, head_dim]
        group = self.cfg.heads // self.cfg.kv_heads
        keys = keys.transpose(0, 1)[None].repeat_interleave(group, dim=1)
        values = values.transpose(0, 1)[None].repeat_interleave(group, dim=1)
        # A prefill attends causally; a one-token step sees everything stored.
        return F.scaled_dot_product_attention(q, keys, values, is_causal=q.shape[2] > 1)


class PagedDecoder:
    """Batch-1 prefill and eager decode on a paged KV pool. The sequence cycles between
    the prompt and ``max_tokens`` (blocks past the prompt go back to the pool), so a
    decode loop of any length runs in a fixed amount of pool memory."""

    def __init__(self, model: TinyLlama, pool: Any, max_tokens: int) -> None:
        self.model, self.pool, self.max_tokens = model, pool, max_tokens
        self.cache = PagedCache(model.cfg, pool)
        self.prompt = 0
        self.token = torch.zeros(1, 1, dtype=torch.long, device=model.lm_head.weight.device)

    @torch.no_grad()
    def prefill(self, prompt: torch.Tensor) -> torch.Tensor:
        positions = self.cache.begin(prompt.shape[1])
        logits = self.model(prompt, positions, self.cache)
        self.prompt = prompt.shape[1]
        self.token.copy_(logits.argmax(-1, keepdim=True))
        return logits

    @torch.no_grad()
    def decode_step(self) -> torch.Tensor:
        if self.cache.seq.length >= self.max_tokens:
            self.pool.truncate(self.cache.seq, self.prompt)
        positions = self.cache.begin(1)
        logits = self.model(self.token, positions, self.cache)
        self.token.copy_(logits.argmax(-1, keepdim=True))
        return self.token
