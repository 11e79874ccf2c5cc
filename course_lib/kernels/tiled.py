"""Tiled attention with an online softmax, in plain PyTorch: the FlashAttention algorithm on a CPU.

Naive attention builds the whole (T, S) score matrix. Here the queries are cut into blocks of
``block_q`` rows and the keys into blocks of ``block_k``; for one query block we visit the key
blocks one at a time and keep, per query row, a running max m, a running sum l of exp(s - m) and
a running weighted sum acc of the values (the online softmax of Milakov & Gimelshein 2018):

    m_new = max(m, rowmax(s))                 s = q_blk k_blk^T * sm_scale  (block_q, block_k)
    p     = exp(s - m_new)
    l     = exp(m - m_new) * l   + rowsum(p)  the old terms were scaled by exp(-m): rescale them
    acc   = exp(m - m_new) * acc + p v_blk
    out   = acc / l,   lse = m + log(l)       after the last key block

Only one (block_q, block_k) tile of scores exists at a time, so memory is linear in T and S.
The backward pass (``TiledAttention``) saves only out and the log-sum-exp lse, and recomputes
each tile's probabilities p = exp(s - lse) block by block (Dao et al. 2022, "FlashAttention";
Dao 2023, "FlashAttention-2"). With ``causal=True`` key blocks entirely above the diagonal are
skipped. The loops run in Python, so this is slower than a fused kernel: it shows the memory
behaviour and the algorithm, ``flash_triton.py`` shows the speed.

A float ``bias`` (T5's relative positions, ALiBi) is added to each tile's scores; its gradient,
when it needs one, is the (T, S) matrix ds and so quadratic in memory. Dropout on the weights
draws each tile's keep-mask from a generator seeded by (seed, tile), so that the backward pass
regenerates the same mask instead of storing it (as FlashAttention does with its RNG state):

    out = sum_j (p_ij * z_ij) v_j / l_i,     z_ij = keep_ij / (1 - dropout_p),  l_i = sum_j p_ij
"""
from __future__ import annotations

from typing import Optional

import torch
from torch.autograd.function import once_differentiable

from course_lib.attention import check_bias, check_mask, check_qkv, check_sm_scale
from course_lib.utils import check_int, check_probability


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------
def _key_end(q_end: int, S: int, causal: bool) -> int:
    """Keys a query block [., q_end) can see: all S, or with top-left causality only keys < q_end."""
    return min(q_end, S) if causal else S


def _block_scores(q_blk: torch.Tensor, k_blk: torch.Tensor, scale: float, i0: int, j0: int,
                  causal: bool, mask_blk: Optional[torch.Tensor],
                  bias_blk: Optional[torch.Tensor]) -> torch.Tensor:
    """Scores of one tile, -inf where masked: q_blk (B, H, bq, D), k_blk (B, H, bk, D) -> (B, H, bq, bk)."""
    s = (q_blk @ k_blk.transpose(-2, -1)) * scale
    if bias_blk is not None:
        s = s + bias_blk
    bq, bk = q_blk.shape[2], k_blk.shape[2]
    if causal and j0 + bk - 1 > i0:  # the tile reaches above the diagonal: hide keys j > i
        rows = torch.arange(i0, i0 + bq, device=s.device)[:, None]
        cols = torch.arange(j0, j0 + bk, device=s.device)[None, :]
        s = s.masked_fill(cols > rows, float("-inf"))
    if mask_blk is not None:
        s = s.masked_fill(~mask_blk, float("-inf"))
    return s


def _tile(t: Optional[torch.Tensor], i0: int, i1: int, j0: int, j1: int) -> Optional[torch.Tensor]:
    return None if t is None else t[:, :, i0:i1, j0:j1]


def _dropout_scale(drop: tuple, shape: torch.Size, i0: int, j0: int, device) -> Optional[torch.Tensor]:
    """z = keep / (1 - p) for one tile, or None without dropout; the same tile gives the same mask."""
    p, seed = drop
    if p == 0:
        return None
    g = torch.Generator(device=device).manual_seed(seed + 1_000_003 * i0 + j0)
    keep = torch.rand(shape, generator=g, device=device) >= p
    return keep / (1.0 - p)


def _forward(q, k, v, mask, bias, drop, causal: bool, scale: float, block_q: int, block_k: int):
    """out (B, H, T, D) and lse (B, H, T), one query block at a time."""
    B, H, T, D = q.shape
    S = k.shape[2]
    out = torch.empty_like(q)
    lse = q.new_empty(B, H, T)
    for i0 in range(0, T, block_q):
        i1 = min(i0 + block_q, T)
        q_blk = q[:, :, i0:i1]                                        # (B, H, bq, D)
        m = q.new_full((B, H, i1 - i0, 1), float("-inf"))             # running max
        l = q.new_zeros((B, H, i1 - i0, 1))                           # running sum of exp(s - m)
        acc = q.new_zeros((B, H, i1 - i0, D))                         # running sum of exp(s - m) v
        for j0 in range(0, _key_end(i1, S, causal), block_k):
            j1 = min(j0 + block_k, _key_end(i1, S, causal))
            s = _block_scores(q_blk, k[:, :, j0:j1], scale, i0, j0, causal,
                              _tile(mask, i0, i1, j0, j1), _tile(bias, i0, i1, j0, j1))
            m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
            # a row whose keys so far are all masked has m_new = -inf; shift by 0 there so that
            # exp(-inf - (-inf)) = nan never appears and its p and alpha are 0
            shift = m_new.masked_fill(m_new == float("-inf"), 0.0)
            p = torch.exp(s - shift)                                  # (B, H, bq, bk)
            alpha = torch.exp(m - shift)                              # rescales the old terms
            l = alpha * l + p.sum(dim=-1, keepdim=True)                # the softmax sums all p
            z = _dropout_scale(drop, p.shape, i0, j0, p.device)
            acc = alpha * acc + (p if z is None else p * z) @ v[:, :, j0:j1]
            m = m_new
        # rows with no visible key have l = 0 and acc = 0: output 0, as torch SDPA gives
        out[:, :, i0:i1] = acc / torch.where(l > 0, l, torch.ones_like(l))
        lse[:, :, i0:i1] = (m + torch.log(l)).squeeze(-1)            # -inf for such rows
    return out, lse


def _backward(q, k, v, mask, bias, drop, out, lse, dout, causal: bool, scale: float, block_q: int,
              block_k: int, bias_grad: bool):
    """dq, dk, dv (and dbias), recomputing p = exp(s - lse) tile by tile (FlashAttention-2, Algorithm 2)."""
    T, S = q.shape[2], k.shape[2]
    dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
    dbias = q.new_zeros(q.shape[0], q.shape[1], T, S) if bias_grad else None
    # dsoftmax: ds = p * (dp z - delta) with delta_i = sum_j p_ij z_ij dp_ij = rowsum(dout * out)
    delta = (dout * out).sum(dim=-1)                                  # (B, H, T)
    lse = lse.masked_fill(lse == float("-inf"), float("inf"))         # rows with no key: p = 0
    for i0 in range(0, T, block_q):
        i1 = min(i0 + block_q, T)
        q_blk, do_blk = q[:, :, i0:i1], dout[:, :, i0:i1]            # (B, H, bq, D)
        lse_blk, delta_blk = lse[:, :, i0:i1, None], delta[:, :, i0:i1, None]
        for j0 in range(0, _key_end(i1, S, causal), block_k):
            j1 = min(j0 + block_k, _key_end(i1, S, causal))
            k_blk, v_blk = k[:, :, j0:j1], v[:, :, j0:j1]            # (B, H, bk, D)
            s = _block_scores(q_blk, k_blk, scale, i0, j0, causal, _tile(mask, i0, i1, j0, j1),
                              _tile(bias, i0, i1, j0, j1))
            p = torch.exp(s - lse_blk)                                # (B, H, bq, bk)
            z = _dropout_scale(drop, p.shape, i0, j0, p.device)
            dv[:, :, j0:j1] += (p if z is None else p * z).transpose(-2, -1) @ do_blk
            dp = do_blk @ v_blk.transpose(-2, -1)                     # (B, H, bq, bk)
            ds = p * ((dp if z is None else dp * z) - delta_blk)
            dq[:, :, i0:i1] += (ds @ k_blk) * scale
            dk[:, :, j0:j1] += (ds.transpose(-2, -1) @ q_blk) * scale
            if dbias is not None:
                dbias[:, :, i0:i1, j0:j1] = ds
    return dq, dk, dv, dbias


# ----------------------------------------------------------------------------------------------
# autograd.Function: saves out and lse (linear in T), never the (T, S) probabilities
# ----------------------------------------------------------------------------------------------
class TiledAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, mask, bias, drop, causal, scale, block_q, block_k):
        out, lse = _forward(q, k, v, mask, bias, drop, causal, scale, block_q, block_k)
        ctx.save_for_backward(q, k, v, mask, bias, out, lse)
        ctx.drop, ctx.settings = drop, (causal, scale, block_q, block_k)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, dout):
        q, k, v, mask, bias, out, lse = ctx.saved_tensors
        bias_grad = bias is not None and ctx.needs_input_grad[4]
        dq, dk, dv, dbias = _backward(q, k, v, mask, bias, ctx.drop, out, lse, dout.contiguous(),
                                      *ctx.settings, bias_grad=bias_grad)
        return dq, dk, dv, None, dbias, None, None, None, None, None


# ----------------------------------------------------------------------------------------------
# Public function
# ----------------------------------------------------------------------------------------------
def tiled_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    mask: Optional[torch.Tensor] = None, causal: bool = False,
                    sm_scale: Optional[float] = None, block_q: int = 256,
                    block_k: int = 256, bias: Optional[torch.Tensor] = None,
                    dropout_p: float = 0.0) -> torch.Tensor:
    """Attention by blocks with an online softmax; memory O((T + S) * D + block_q * block_k).

    q (B, H, T, D); k, v (B, H, S, D); mask bool broadcastable to (B, H, T, S), True = attend;
    causal: query i sees keys j <= i (top-left); bias float broadcastable to (B, H, T, S), added
    to the scaled scores; dropout_p drops attention weights (seeded from torch's global RNG).
    Returns (B, H, T, D). Differentiable in q, k, v and bias; the backward recomputes the tiles,
    so it also needs memory linear in T and S (except for the bias's own gradient).
    float16 and bfloat16 inputs are computed in float32 and the result cast back.
    """
    B, H, T, S, D = check_qkv(q, k, v)
    mask = check_mask(mask, B, H, T, S, q.device)
    bias = check_bias(bias, q, S)
    scale = check_sm_scale(sm_scale, D)
    check_int(block_q, "block_q")
    check_int(block_k, "block_k")
    dropout_p = check_probability(dropout_p, "dropout_p")
    if mask is not None:
        mask = mask.expand(B, H, T, S)  # a view, so that tiles can be sliced out of it
    # one seed per call, drawn from torch's RNG, so torch.manual_seed makes dropout repeatable
    drop = (dropout_p, int(torch.randint(0, 2**62, (1,))) if dropout_p > 0 else 0)
    # accumulate half-precision inputs in float32: the running sums lose too much in 16 bits
    work = torch.float32 if q.dtype in (torch.float16, torch.bfloat16) else q.dtype
    if bias is not None:
        bias = bias.to(work).expand(B, H, T, S)  # autograd sums the expanded gradient back
    out = TiledAttention.apply(q.to(work), k.to(work), v.to(work), mask, bias, drop, causal, scale,
                               block_q, block_k)
    return out.to(q.dtype)
