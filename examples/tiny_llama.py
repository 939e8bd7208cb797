"""A small Llama-style decoder for the examples and the recorded traces.

RMSNorm, rotary position embeddings, grouped-query attention and a SwiGLU MLP,
with random weights (nothing is downloaded). The KV cache is a static tensor
per layer and the decode position lives on the device, so one decode step has
fixed shapes and can be captured as a CUDA graph.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

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


class Attention(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.q = nn.Linear(cfg.dim, cfg.heads * cfg.head_dim, bias=False)
        self.kv = nn.Linear(cfg.dim, 2 * cfg.kv_heads * cfg.head_dim, bias=False)
        self.o = nn.Linear(cfg.heads * cfg.head_dim, cfg.dim, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        positions: torch.Tensor,
        cache_k: torch.Tensor,
        cache_v: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
    ) -> torch.Tensor:
        cfg = self.cfg
        batch, seq, _ = x.shape
        q = self.q(x).view(batch, seq, cfg.heads, cfg.head_dim).transpose(1, 2)
        k, v = self.kv(x).view(batch, seq, 2, cfg.kv_heads, cfg.head_dim).unbind(2)
        k, v = k.transpose(1, 2), v.transpose(1, 2)
        q, k = apply_rope(q, cos[positions], sin[positions]), apply_rope(k, cos[positions], sin[positions])
        # Write this step's keys and values at their positions (device indices: graph-safe).
        cache_k.index_copy_(2, positions, k)
        cache_v.index_copy_(2, positions, v)
        # Attend over the whole static cache; positions after the query's are masked.
        visible = torch.arange(cfg.max_seq, device=x.device)[None, :] <= positions[:, None]
        group = cfg.heads // cfg.kv_heads
        keys = cache_k.repeat_interleave(group, dim=1)
        values = cache_v.repeat_interleave(group, dim=1)
        out = F.scaled_dot_product_attention(q, keys, values, attn_mask=visible[None, None])
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
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.dim)
        self.attn = Attention(cfg)
        self.mlp_norm = RMSNorm(cfg.dim)
        self.mlp = MLP(cfg)

    def forward(
        self,
        x: torch.Tensor,
        positions: torch.Tensor,
        cache_k: torch.Tensor,
        cache_v: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
    ) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), positions, cache_k, cache_v, cos, sin)
        return x + self.mlp(self.mlp_norm(x))


class TinyLlama(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab, cfg.dim)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.norm = RMSNorm(cfg.dim)
        self.lm_head = nn.Linear(cfg.dim, cfg.vocab, bias=False)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=1.0 / math.sqrt(p.shape[1]))

    def new_cache(self, batch: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        cfg, ref = self.cfg, self.lm_head.weight
        shape = (batch, cfg.kv_heads, cfg.max_seq, cfg.head_dim)
        ks = [torch.zeros(shape, dtype=ref.dtype, device=ref.device) for _ in range(cfg.layers)]
        vs = [torch.zeros(shape, dtype=ref.dtype, device=ref.device) for _ in range(cfg.layers)]
        return ks, vs

    def forward(
        self, tokens: torch.Tensor, positions: torch.Tensor, cache: tuple[list[torch.Tensor], list[torch.Tensor]]
    ) -> torch.Tensor:
        """Logits of the last position. tokens: [batch, seq]; positions: [seq]."""
        if not hasattr(self, "_rope") or self._rope[0].device != tokens.device:
            self._rope = rope_tables(self.cfg, tokens.device)
        cos, sin = self._rope
        x = self.embed(tokens)
        for block, cache_k, cache_v in zip(self.blocks, cache[0], cache[1], strict=True):
            x = block(x, positions, cache_k, cache_v, cos, sin)
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


def capture_cuda_graph(step: Callable[[], object], warmup_calls: int = 3) -> torch.cuda.CUDAGraph:
    """Capture ``step`` as a CUDA graph after warming it up on a side stream (as capture
    requires); ``graph.replay()`` then reruns it on the buffers it captured."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmup_calls):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph
