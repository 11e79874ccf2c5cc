"""Chapter 07: GPT, a decoder-only Transformer language model, with a KV cache and sampling.

    x_0 = E[ids] + P[positions]                              token + learned position embeddings
    x_l = x_{l-1} + Attn(LN(x_{l-1}));  x_l += MLP(LN(x_l))   pre-norm blocks, causal attention
    logits = LN_f(x_L) E^T                                   final LayerNorm, head tied to E

The layout is GPT-2's (Radford et al., 2019), so :meth:`GPT.from_hf` can copy the weights of a
``transformers.GPT2LMHeadModel`` and give the same logits. ``n_kv_heads`` below ``n_heads``
gives grouped-query attention (GQA; Ainslie et al., 2023) and ``n_kv_heads=1`` multi-query
attention (MQA; Shazeer, 2019): several query heads share one key/value head, and the KV cache
shrinks by ``n_heads / n_kv_heads``.

Classes in dependency order: GPTConfig -> KVCache -> CausalSelfAttention -> MLP -> Block -> GPT,
then sampling (filters, :func:`generate`), training helpers and the GPT-2 weight loaders.
Shapes: B batch, T new positions, S all positions (cache + new), C d_model, H heads,
Hkv key/value heads, D head dim, V vocab.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.attention import BACKENDS, naive_attention, scaled_dot_product_attention
from course_lib.utils import check_choice, check_int, check_shape

# The real GPT-2 small weights (124M), only fetched with COURSE_ALLOW_DOWNLOAD=1 (548,105,171 bytes)
GPT2_REVISION = "607a30d783dfa663caf39e06633721c8d4cfcd7e"
GPT2_FILES = {  # file -> sha256, at that revision of huggingface.co/openai-community/gpt2
    "model.safetensors": "248dfc3911869ec493c76e65bf2fcf7f615828b0254c12b473182f0f81d3a707",
    "vocab.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    "merges.txt": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
}
GPT2_URL = "https://huggingface.co/openai-community/gpt2/resolve/" + GPT2_REVISION + "/{}"


@dataclass
class GPTConfig:
    vocab_size: int = 256          # V: set from the tokenizer
    block_size: int = 128          # longest context: the number of learned positions
    n_layers: int = 2              # decoder blocks
    d_model: int = 128             # C: width of the residual stream
    n_heads: int = 4               # H: query heads; head dim D = d_model / n_heads
    n_kv_heads: Optional[int] = None  # key/value heads: None = n_heads (MHA), 1 = MQA, else GQA
    d_ff: Optional[int] = None     # MLP width; None = 4 * d_model as in GPT-2
    dropout: float = 0.0           # on embeddings and residual branches (0 for the small runs)
    layer_norm_eps: float = 1e-5   # GPT-2's LayerNorm epsilon
    tie_embeddings: bool = True    # the output head reuses the token embedding (saves V * C)
    backend: str = "auto"          # attention backend of course_lib.attention

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layers", "d_model", "n_heads"):
            check_int(getattr(self, name), name)
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        check_int(self.n_kv_heads, "n_kv_heads")
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        check_int(self.d_ff, "d_ff")
        if self.d_model % self.n_heads:
            raise ValueError(f"n_heads: expected a divisor of d_model = {self.d_model}, got {self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_kv_heads: expected a divisor of n_heads = {self.n_heads}, got {self.n_kv_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: expected a float in [0, 1), got {self.dropout!r}")
        check_choice(self.backend, "backend", BACKENDS)

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    @classmethod
    def small(cls, vocab_size: int = 256, **overrides) -> "GPTConfig":
        """The CPU preset: 2 layers, d_model 128, 4 heads, 128 positions (about 0.4M parameters
        plus the embeddings)."""
        return cls(**{**dict(vocab_size=vocab_size, block_size=128, n_layers=2, d_model=128,
                             n_heads=4), **overrides})

    @classmethod
    def gpt2(cls, **overrides) -> "GPTConfig":
        """GPT-2 small's sizes: 12 layers, d_model 768, 12 heads, 1,024 positions, V = 50,257
        (124M parameters)."""
        return cls(**{**dict(vocab_size=50257, block_size=1024, n_layers=12, d_model=768,
                             n_heads=12), **overrides})


class KVCache:
    """The keys and values of every layer for the positions seen so far.

    ``k[l]`` and ``v[l]`` are (B, Hkv, S, D); each forward with the cache appends the new
    positions. Its size is 2 * n_layers * B * Hkv * S * D numbers (:meth:`nbytes`).
    """

    def __init__(self, n_layers: int):
        self.k: list[Optional[torch.Tensor]] = [None] * check_int(n_layers, "n_layers")
        self.v: list[Optional[torch.Tensor]] = [None] * n_layers

    def __len__(self) -> int:
        """S: the number of positions cached (0 when empty)."""
        return 0 if self.k[0] is None else self.k[0].shape[2]

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add the new positions' k, v (B, Hkv, T, D) to layer ``layer``; return all (B, Hkv, S, D)."""
        if self.k[layer] is not None:
            k = torch.cat([self.k[layer], k], dim=2)   # (B, Hkv, S, D)
            v = torch.cat([self.v[layer], v], dim=2)
        self.k[layer], self.v[layer] = k, v
        return k, v

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.k + self.v if t is not None)


def cache_bytes(config: GPTConfig, batch: int, length: int, bytes_per_number: int = 4) -> int:
    """The KV cache size by the formula 2 * n_layers * B * Hkv * S * D * bytes."""
    return 2 * config.n_layers * batch * config.n_kv_heads * length * config.d_head * bytes_per_number


class CausalSelfAttention(nn.Module):
    """Masked multi-head self-attention with H query heads and Hkv key/value heads.

    One fused projection makes q, k, v (GPT-2's ``c_attn``); with Hkv < H each k/v head is
    shared by H / Hkv query heads. With a cache, the T new queries are the *last* T of S
    positions, so the mask is aligned bottom-right: new query i sees keys j <= S - T + i.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.d_head = config.n_heads, config.n_kv_heads, config.d_head
        self.qkv = nn.Linear(config.d_model, (config.n_heads + 2 * config.n_kv_heads) * config.d_head)
        self.out = nn.Linear(config.d_model, config.d_model)
        self.backend = config.backend
        self.record = False   # when True, forward keeps its attention weights in self.weights
        self.weights: Optional[torch.Tensor] = None   # (B, H, T, S)

    def forward(self, x: torch.Tensor, cache: Optional[KVCache] = None, layer: int = 0) -> torch.Tensor:
        """x (B, T, C) -> (B, T, C); with ``cache``, attends to its S - T earlier positions too."""
        B, T, C = x.shape
        H, Hkv, D = self.n_heads, self.n_kv_heads, self.d_head
        q, k, v = self.qkv(x).split([H * D, Hkv * D, Hkv * D], dim=-1)
        q = q.view(B, T, H, D).transpose(1, 2)        # (B, H, T, D)
        k = k.view(B, T, Hkv, D).transpose(1, 2)      # (B, Hkv, T, D)
        v = v.view(B, T, Hkv, D).transpose(1, 2)      # (B, Hkv, T, D)
        if cache is not None:
            k, v = cache.append(layer, k, v)          # (B, Hkv, S, D)
        S = k.shape[2]
        if Hkv != H:  # each k/v head serves H / Hkv query heads (the cache keeps only Hkv)
            k = k.repeat_interleave(H // Hkv, dim=1)  # (B, H, S, D)
            v = v.repeat_interleave(H // Hkv, dim=1)
        if self.record:  # the reference path, which also returns the weights
            mask = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(diagonal=S - T)
            y, self.weights = naive_attention(q, k, v, mask=mask)
        elif S == T:    # no earlier positions: the usual causal mask
            y = scaled_dot_product_attention(q, k, v, causal=True, backend=self.backend)
        elif T == 1:    # one new position sees every cached one: no mask at all
            y = scaled_dot_product_attention(q, k, v, backend=self.backend)
        else:           # bottom-right aligned: query i is position S - T + i
            mask = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(diagonal=S - T)
            y = scaled_dot_product_attention(q, k, v, mask=mask, backend=self.backend)
        y = y.transpose(1, 2).reshape(B, T, C)        # (B, T, C)
        return self.out(y)


class MLP(nn.Module):
    """Linear C -> d_ff, GELU (tanh approximation, as GPT-2), linear d_ff -> C."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(config.d_model, config.d_ff)
        self.proj = nn.Linear(config.d_ff, config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))  # (B, T, C)


class Block(nn.Module):
    """Pre-norm decoder block: x + Attn(LN(x)), then x + MLP(LN(x)). No cross-attention."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.mlp = MLP(config)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, cache: Optional[KVCache] = None, layer: int = 0) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), cache, layer))   # (B, T, C)
        return x + self.drop(self.mlp(self.ln2(x)))


class GPT(nn.Module):
    """A decoder-only Transformer language model (GPT-2's layout).

    ``model(ids)`` -> (logits (B, T, V), None); ``model(ids, cache)`` also attends to the
    positions already in ``cache`` (a :class:`KVCache`, see :meth:`new_cache`), appends the new
    ones and returns (logits, cache). ``positions_processed`` counts the positions pushed
    through the blocks (B * T per call), a machine-independent measure of the work done.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.tok = nn.Embedding(config.vocab_size, config.d_model)
        self.pos = nn.Embedding(config.block_size, config.d_model)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.head = None if config.tie_embeddings else nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.positions_processed = 0
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2: residual projections scaled by 1/sqrt(2L)
            if name.endswith(("attn.out.weight", "mlp.proj.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * config.n_layers))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    def new_cache(self) -> KVCache:
        return KVCache(self.config.n_layers)

    def forward(self, ids: torch.Tensor, cache: Optional[KVCache] = None
                ) -> tuple[torch.Tensor, Optional[KVCache]]:
        """ids (B, T) int64 -> logits (B, T, V) and the cache (None when not given)."""
        check_shape(ids, ("B", "T"), "ids")
        if ids.dtype != torch.long:
            raise TypeError(f"ids: expected token ids of dtype torch.int64, got {ids.dtype}")
        B, T = ids.shape
        past = 0 if cache is None else len(cache)
        if past + T > self.config.block_size:
            raise ValueError(f"ids: expected at most block_size = {self.config.block_size} positions "
                             f"(learned positions stop there), got {past} cached + {T} new = {past + T}")
        if cache is not None and past and cache.k[0].shape[0] != B:
            raise ValueError(f"cache: holds a batch of {cache.k[0].shape[0]}, ids has {B}")
        positions = torch.arange(past, past + T, device=ids.device)      # (T,)
        x = self.drop(self.tok(ids) + self.pos(positions))               # (B, T, C)
        for layer, block in enumerate(self.blocks):
            x = block(x, cache, layer)                                   # (B, T, C)
        x = self.ln_f(x)
        weight = self.tok.weight if self.head is None else self.head.weight
        self.positions_processed += B * T
        return x @ weight.T, cache                                       # (B, T, V)

    @torch.no_grad()
    def attention_weights(self, ids: torch.Tensor) -> torch.Tensor:
        """The attention weights of every layer and head on ``ids`` (B, T): (L, B, H, T, T)."""
        attns = [block.attn for block in self.blocks]
        for a in attns:
            a.record = True
        try:
            self(ids)
            return torch.stack([a.weights for a in attns])
        finally:
            for a in attns:
                a.record, a.weights = False, None

    # --- Hugging Face GPT-2 -------------------------------------------------------------------
    @classmethod
    def from_hf(cls, model, backend: str = "auto") -> "GPT":
        """A GPT with the weights of a ``transformers.GPT2LMHeadModel`` (same logits).

        GPT-2 stores its linear layers as ``Conv1D`` with weight (in, out), the transpose of
        ``nn.Linear``'s; its GELU is the tanh approximation ("gelu_new"); its head is tied.
        """
        hf = getattr(model, "config", None)
        if getattr(hf, "model_type", None) != "gpt2":
            raise TypeError(f"model: expected a transformers GPT2LMHeadModel, got {type(model).__name__}")
        if hf.activation_function not in ("gelu_new", "gelu_pytorch_tanh"):
            raise ValueError(f"model: expected GELU with the tanh approximation, got {hf.activation_function!r}")
        if getattr(hf, "scale_attn_by_inverse_layer_idx", False) or getattr(hf, "reorder_and_upcast_attn", False):
            raise ValueError("model: scale_attn_by_inverse_layer_idx / reorder_and_upcast_attn are not supported")
        config = GPTConfig(vocab_size=hf.vocab_size, block_size=hf.n_positions, n_layers=hf.n_layer,
                           d_model=hf.n_embd, n_heads=hf.n_head, d_ff=hf.n_inner,
                           layer_norm_eps=hf.layer_norm_epsilon,
                           tie_embeddings=bool(getattr(hf, "tie_word_embeddings", True)), backend=backend)
        ours = cls(config)
        ours.load_gpt2_state(model.state_dict())
        return ours

    @torch.no_grad()
    def load_gpt2_state(self, state: dict) -> None:
        """Copy a GPT-2 state dict (keys with or without the ``transformer.`` prefix)."""
        state = {k.removeprefix("transformer."): v for k, v in state.items()}
        need = lambda key: _need(state, key)  # noqa: E731
        self.tok.weight.copy_(need("wte.weight"))
        self.pos.weight.copy_(need("wpe.weight"))
        for i, block in enumerate(self.blocks):
            p = f"h.{i}."
            for ours, theirs in ((block.ln1, "ln_1"), (block.ln2, "ln_2")):
                ours.weight.copy_(need(p + theirs + ".weight"))
                ours.bias.copy_(need(p + theirs + ".bias"))
            for ours, theirs in ((block.attn.qkv, "attn.c_attn"), (block.attn.out, "attn.c_proj"),
                                 (block.mlp.fc, "mlp.c_fc"), (block.mlp.proj, "mlp.c_proj")):
                ours.weight.copy_(need(p + theirs + ".weight").T)   # Conv1D (in, out) -> Linear (out, in)
                ours.bias.copy_(need(p + theirs + ".bias"))
        self.ln_f.weight.copy_(need("ln_f.weight"))
        self.ln_f.bias.copy_(need("ln_f.bias"))
        if self.head is not None:
            self.head.weight.copy_(state.get("lm_head.weight", need("wte.weight")))


def _need(state: dict, key: str) -> torch.Tensor:
    if key not in state:
        raise KeyError(f"state: expected the GPT-2 weight {key!r}, missing (keys like {sorted(state)[:3]})")
    return state[key]


def load_gpt2_safetensors(path: str | Path, config: Optional[GPTConfig] = None) -> GPT:
    """A GPT from a local GPT-2 ``model.safetensors`` (as written by ``save_pretrained`` or
    downloaded from the Hub). The sizes come from ``config``, else from a ``config.json`` beside
    the file, else GPT-2 small's (:meth:`GPTConfig.gpt2`)."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: expected a safetensors file, got {str(path)!r} (not found)")
    if config is None:
        meta = path.with_name("config.json")
        if meta.is_file():
            hf = json.loads(meta.read_text())
            config = GPTConfig(vocab_size=hf["vocab_size"], block_size=hf["n_positions"],
                               n_layers=hf["n_layer"], d_model=hf["n_embd"], n_heads=hf["n_head"],
                               d_ff=hf.get("n_inner"), layer_norm_eps=hf.get("layer_norm_epsilon", 1e-5))
        else:
            config = GPTConfig.gpt2()
    model = GPT(config)
    model.load_gpt2_state(load_file(str(path)))
    return model.eval()


def gpt2_files(allow_download: Optional[bool] = None) -> dict[str, Path]:
    """Paths of the real GPT-2 small files (weights, vocab.json, merges.txt) in the data cache,
    downloaded (checked against their sha256) only with ``COURSE_ALLOW_DOWNLOAD=1`` or
    ``allow_download=True``; otherwise ``course_lib.data.DataUnavailableError`` says how."""
    from course_lib.data import download

    return {name: download(GPT2_URL.format(name), "gpt2-" + name, sha, allow_download=allow_download)
            for name, sha in GPT2_FILES.items()}


# ----------------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------------
def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """logits (..., V) with every entry outside the k largest set to -inf (ties at the k-th
    value are all kept)."""
    check_int(k, "top_k")
    if k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]             # (..., 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of most likely tokens whose probability sums to at
    least ``p`` (Holtzman et al., 2020); the rest become -inf. logits (..., V)."""
    if not (isinstance(p, (int, float)) and not isinstance(p, bool) and 0.0 < p <= 1.0):
        raise ValueError(f"top_p: expected a probability in (0, 1], got {p!r}")
    probs = torch.softmax(logits.float(), dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)        # (..., V)
    before = sorted_probs.cumsum(dim=-1) - sorted_probs               # mass of the more likely ones
    drop_sorted = before >= p                                         # already reached p without it
    drop_sorted[..., 0] = False                                       # the top token always stays
    drop = drop_sorted.scatter(-1, order, drop_sorted)                # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: Optional[int] = None,
                top_p: Optional[float] = None, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """One id per row from logits (B, V): divide by ``temperature`` (0 = greedy argmax), keep
    the ``top_k`` most likely, then the ``top_p`` nucleus, and sample. Returns (B,) int64."""
    if not (isinstance(temperature, (int, float)) and not isinstance(temperature, bool) and temperature >= 0):
        raise ValueError(f"temperature: expected a float >= 0 (0 = greedy), got {temperature!r}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = torch.softmax(logits.float(), dim=-1)                      # (B, V)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]      # (B,)


@torch.no_grad()
def generate(model: GPT, prompt_ids, max_new_tokens: int, temperature: float = 1.0,
             top_k: Optional[int] = None, top_p: Optional[float] = None, use_cache: bool = True,
             generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Continue ``prompt_ids`` ((B, T) int64 tensor, or a list of ids for B = 1) by
    ``max_new_tokens`` sampled ids; returns (B, T + max_new_tokens).

    With ``use_cache`` the prompt runs once (prefill) and each step feeds only the newest id,
    reusing the cached keys and values; without it every step recomputes the whole prefix.
    Both give the same tokens. Learned positions end at ``block_size``: the prompt and the new
    tokens must fit in it.
    """
    if isinstance(prompt_ids, (list, tuple)):
        prompt_ids = torch.tensor([list(prompt_ids)], dtype=torch.long)
    check_shape(prompt_ids, ("B", "T"), "prompt_ids")
    if prompt_ids.dtype != torch.long:
        raise TypeError(f"prompt_ids: expected token ids of dtype torch.int64, got {prompt_ids.dtype}")
    block = model.config.block_size
    if not 1 <= prompt_ids.shape[1] <= block:
        raise ValueError(f"prompt_ids: expected 1 to block_size = {block} tokens, got {prompt_ids.shape[1]}")
    check_int(max_new_tokens, "max_new_tokens", minimum=0)
    if prompt_ids.shape[1] + max_new_tokens > block:
        raise ValueError(f"max_new_tokens: the prompt ({prompt_ids.shape[1]}) plus {max_new_tokens} new "
                         f"tokens exceed block_size = {block} learned positions")
    if top_k is not None:
        check_int(top_k, "top_k")
    if top_p is not None:
        top_p_filter(torch.zeros(1), top_p)  # validates top_p early with its clear message
    was_training = model.training
    model.eval()
    ids = prompt_ids
    cache = model.new_cache() if use_cache else None
    logits, cache = model(ids, cache)                                    # prefill (B, T, V)
    for step in range(max_new_tokens):
        nxt = sample_next(logits[:, -1], temperature, top_k, top_p, generator)   # (B,)
        ids = torch.cat([ids, nxt[:, None]], dim=1)                      # (B, T + step + 1)
        if step + 1 < max_new_tokens:
            logits, cache = model(nxt[:, None], cache) if use_cache else model(ids)
    model.train(was_training)
    return ids


# ----------------------------------------------------------------------------------------------
# Training helpers
# ----------------------------------------------------------------------------------------------
def lm_loss(model: nn.Module, batch: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean next-token cross-entropy (nats per token) of a batch (x, y), both (B, T)."""
    x, y = batch
    out = model(x)
    logits = out[0] if isinstance(out, tuple) else out                 # (B, T, V)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup: int, total: int,
                  min_factor: float = 0.1) -> torch.optim.lr_scheduler.LambdaLR:
    """Learning rate x step/warmup for ``warmup`` steps, then cosine decay to ``min_factor`` x
    at step ``total`` (and flat after)."""
    check_int(warmup, "warmup", minimum=0)
    check_int(total, "total")

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def configure_adamw(model: nn.Module, lr: float = 3e-3, weight_decay: float = 0.1,
                    betas: tuple[float, float] = (0.9, 0.95)) -> torch.optim.AdamW:
    """AdamW with weight decay on the matrices and embeddings only (every parameter with 2 dims,
    as nanoGPT), not on biases and LayerNorm gains."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=betas)

