"""FlashAttention-2 in Triton: fused attention, forward and backward, memory linear in T.

The algorithm of ``tiled.py`` as one GPU kernel (Dao et al. 2022, "FlashAttention"; Dao 2023,
"FlashAttention-2"; online softmax: Milakov & Gimelshein 2018). Each program owns BLOCK_M query
rows of one (batch, head); it walks over the keys BLOCK_N at a time keeping the running max,
sum and output in registers, and writes the output and the log-sum-exp (LSE) once. The backward
recomputes the probabilities from the LSE: a small kernel computes delta = rowsum(dO * O), one
kernel accumulates dK and dV per key block, another dQ per query block (no atomics).

Written with plain pointer arithmetic and masks only (no block pointers, no TMA descriptors)
so it runs on Triton 3.6 to 3.9 and on a CPU under ``TRITON_INTERPRET=1``. Inside the kernels the
softmax statistics are always float32. The dot products take the input dtype on a GPU (tensor
cores) and float32 under the interpreter, whose 16-bit arithmetic is not faithful.

Order: helper -> kernels -> autograd.Function -> public function; the benchmark is
``benchmarks/attention.py``.
"""
from typing import Optional

import torch
from torch.autograd.function import once_differentiable

try:
    import triton
    import triton.language as tl

    HAS_TRITON = True
except ImportError:  # macOS, Windows: the definitions below must still parse
    HAS_TRITON = False

    class _NoTriton:
        """Stand-in so that ``@triton.jit`` and ``tl.constexpr`` below parse without Triton."""

        @staticmethod
        def constexpr(value=None):
            return value

        @staticmethod
        def jit(fn):
            return fn

    triton = tl = _NoTriton()

from course_lib.attention import check_qkv, check_sm_scale

# exp2 is the hardware instruction: exp(x) = exp2(x * LOG2E); a constexpr global, as Triton requires
LOG2E = tl.constexpr(1.4426950408889634)
SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
SUPPORTED_HEAD_DIMS = (16, 32, 64, 128)  # tl.arange needs a power of two; tl.dot needs >= 16


# ----------------------------------------------------------------------------------------------
# Helper: one query block against a range of key blocks (the inner loop of the forward)
# ----------------------------------------------------------------------------------------------
@triton.jit
def _attn_fwd_inner(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_kk,
                    offs_m, offs_d, lo, hi, N_KV, qk_scale,
                    BLOCK_N: tl.constexpr, MASKED: tl.constexpr, CAUSAL: tl.constexpr,
                    DOT_DTYPE: tl.constexpr, DOT_PRECISION: tl.constexpr):
    # MASKED=False is the fast path for key blocks that are entirely in range and, with causal,
    # entirely visible; MASKED=True handles the diagonal block and the ragged tail.
    for start_n in range(lo, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        kv_offs = offs_n[:, None] * stride_kn + offs_d[None, :] * stride_kk    # (BLOCK_N, D)
        if MASKED:
            in_range = offs_n[:, None] < N_KV
            k = tl.load(k_base + kv_offs, mask=in_range, other=0.0).to(DOT_DTYPE)
            v = tl.load(v_base + kv_offs, mask=in_range, other=0.0).to(DOT_DTYPE)
        else:
            k = tl.load(k_base + kv_offs).to(DOT_DTYPE)
            v = tl.load(v_base + kv_offs).to(DOT_DTYPE)
        # scores in log2 units: (BLOCK_M, BLOCK_N), float32
        qk = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * qk_scale
        if MASKED:
            keep = offs_n[None, :] < N_KV
            if CAUSAL:
                keep = keep & (offs_m[:, None] >= offs_n[None, :])  # top-left: key j <= query i
            qk = tl.where(keep, qk, float("-inf"))
        # online softmax: raise the running max, rescale what was summed under the old one
        m_new = tl.maximum(m_i, tl.max(qk, 1))
        p = tl.math.exp2(qk - m_new[:, None])
        alpha = tl.math.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(DOT_DTYPE), v, input_precision=DOT_PRECISION)
        m_i = m_new
    return acc, l_i, m_i


# ----------------------------------------------------------------------------------------------
# Kernels. Q, O, dO, dQ share one (B, H, T, D) layout and K, V, dK, dV another (the wrapper
# makes them contiguous), so two sets of strides describe all of them. LSE and delta: (B*H, T).
# ----------------------------------------------------------------------------------------------
@triton.jit
def _attn_fwd(Q, K, V, Out, LSE, sm_scale,
              stride_qz, stride_qh, stride_qm, stride_qk,
              stride_kz, stride_kh, stride_kn, stride_kk,
              H, N_Q, N_KV,
              HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
              CAUSAL: tl.constexpr, DOT_DTYPE: tl.constexpr, DOT_PRECISION: tl.constexpr):
    start_m = tl.program_id(0)                       # which block of BLOCK_M query rows
    off_zh = tl.program_id(1)                        # which (batch, head)
    off_z = (off_zh // H).to(tl.int64)               # int64: offsets of large tensors pass 2^31
    off_h = (off_zh % H).to(tl.int64)
    q_base = Q + off_z * stride_qz + off_h * stride_qh
    k_base = K + off_z * stride_kz + off_h * stride_kh
    v_base = V + off_z * stride_kz + off_h * stride_kh

    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    q_offs = offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qk        # (BLOCK_M, D)
    q = tl.load(q_base + q_offs, mask=offs_m[:, None] < N_Q, other=0.0).to(DOT_DTYPE)

    m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)   # running max (log2 units)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)                 # running sum of exp2(s - m)
    acc = tl.zeros((BLOCK_M, HEAD_DIM), dtype=tl.float32)        # running sum of exp2(s - m) v
    # exp2 is the hardware instruction: exp(x) = exp2(x * log2(e)), so fold log2(e) into the
    # scale once; m_i and the LSE are then in log2 units too
    qk_scale = sm_scale * LOG2E

    # Key blocks [0, full_end) need no mask; [full_end, masked_end) do (diagonal, ragged tail).
    # Causal: every key j < start_m * BLOCK_M is visible to every row of this block, and keys
    # j >= (start_m + 1) * BLOCK_M to none of them: those blocks are skipped altogether.
    if CAUSAL:
        full_end = tl.minimum(start_m * BLOCK_M, N_KV) // BLOCK_N * BLOCK_N
        masked_end = tl.minimum((start_m + 1) * BLOCK_M, N_KV)
    else:
        full_end = N_KV // BLOCK_N * BLOCK_N
        masked_end = N_KV
    acc, l_i, m_i = _attn_fwd_inner(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_kk,
                                    offs_m, offs_d, 0, full_end, N_KV, qk_scale,
                                    BLOCK_N, False, CAUSAL, DOT_DTYPE, DOT_PRECISION)
    acc, l_i, m_i = _attn_fwd_inner(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_kk,
                                    offs_m, offs_d, full_end, masked_end, N_KV, qk_scale,
                                    BLOCK_N, True, CAUSAL, DOT_DTYPE, DOT_PRECISION)
    # every row sees key 0, so l_i > 0: no division by zero, no -inf LSE
    acc = acc / l_i[:, None]
    row_ok = offs_m < N_Q
    tl.store(LSE + off_zh * N_Q + offs_m, m_i + tl.math.log2(l_i), mask=row_ok)  # log2 units
    o_base = Out + off_z * stride_qz + off_h * stride_qh
    tl.store(o_base + q_offs, acc.to(Out.dtype.element_ty), mask=row_ok[:, None])


@triton.jit
def _attn_bwd_preprocess(Out, DO, Delta,
                         stride_qz, stride_qh, stride_qm, stride_qk,
                         H, N_Q,
                         HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr):
    # delta_i = sum_d dO_id * O_id, which equals sum_j P_ij dP_ij: the softmax backward needs it
    start_m = tl.program_id(0)
    off_zh = tl.program_id(1)
    base = (off_zh // H).to(tl.int64) * stride_qz + (off_zh % H).to(tl.int64) * stride_qh
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    offs = base + offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qk
    row_ok = offs_m < N_Q
    o = tl.load(Out + offs, mask=row_ok[:, None], other=0.0).to(tl.float32)
    do = tl.load(DO + offs, mask=row_ok[:, None], other=0.0).to(tl.float32)
    tl.store(Delta + off_zh * N_Q + offs_m, tl.sum(o * do, axis=1), mask=row_ok)


@triton.jit
def _attn_bwd_dkdv(Q, K, V, DO, LSE, Delta, DK, DV, sm_scale,
                   stride_qz, stride_qh, stride_qm, stride_qk,
                   stride_kz, stride_kh, stride_kn, stride_kk,
                   H, N_Q, N_KV,
                   HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                   CAUSAL: tl.constexpr, DOT_DTYPE: tl.constexpr, DOT_PRECISION: tl.constexpr):
    # One program owns BLOCK_N keys and loops over the query blocks that can see them:
    #   dV = P^T dO,   dK = sm_scale * dS^T Q,   dS = P * (dP - delta),   dP = dO V^T
    # computed transposed (keys as rows) so that dK and dV come out as (BLOCK_N, D) directly.
    start_n = tl.program_id(0)
    off_zh = tl.program_id(1)
    off_z = (off_zh // H).to(tl.int64)
    off_h = (off_zh % H).to(tl.int64)
    q_base = off_z * stride_qz + off_h * stride_qh       # shared by Q and dO
    kv_base = off_z * stride_kz + off_h * stride_kh      # shared by K, V, dK, dV

    offs_n = start_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    kv_offs = kv_base + offs_n[:, None] * stride_kn + offs_d[None, :] * stride_kk
    key_ok = offs_n < N_KV
    k = tl.load(K + kv_offs, mask=key_ok[:, None], other=0.0).to(DOT_DTYPE)
    v = tl.load(V + kv_offs, mask=key_ok[:, None], other=0.0).to(DOT_DTYPE)
    dk = tl.zeros((BLOCK_N, HEAD_DIM), dtype=tl.float32)
    dv = tl.zeros((BLOCK_N, HEAD_DIM), dtype=tl.float32)
    qk_scale = sm_scale * LOG2E

    # causal: query rows before this block's first key see none of its keys: start below them
    lo = (start_n * BLOCK_N) // BLOCK_M * BLOCK_M if CAUSAL else 0
    for start_m in range(lo, N_Q, BLOCK_M):
        offs_m = start_m + tl.arange(0, BLOCK_M)
        row_ok = offs_m < N_Q
        q_offs = q_base + offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qk
        q = tl.load(Q + q_offs, mask=row_ok[:, None], other=0.0).to(DOT_DTYPE)
        do = tl.load(DO + q_offs, mask=row_ok[:, None], other=0.0).to(DOT_DTYPE)
        lse = tl.load(LSE + off_zh * N_Q + offs_m, mask=row_ok, other=0.0)
        delta = tl.load(Delta + off_zh * N_Q + offs_m, mask=row_ok, other=0.0)
        # recompute P^T from the saved LSE: (BLOCK_N, BLOCK_M)
        qkT = tl.dot(k, tl.trans(q), input_precision=DOT_PRECISION) * qk_scale
        keep = key_ok[:, None] & row_ok[None, :]
        if CAUSAL:
            keep = keep & (offs_m[None, :] >= offs_n[:, None])
        pT = tl.where(keep, tl.math.exp2(qkT - lse[None, :]), 0.0)
        dv += tl.dot(pT.to(DOT_DTYPE), do, input_precision=DOT_PRECISION)
        dpT = tl.dot(v, tl.trans(do), input_precision=DOT_PRECISION)
        dsT = pT * (dpT - delta[None, :])
        dk += tl.dot(dsT.to(DOT_DTYPE), q, input_precision=DOT_PRECISION)
    tl.store(DK + kv_offs, (dk * sm_scale).to(DK.dtype.element_ty), mask=key_ok[:, None])
    tl.store(DV + kv_offs, dv.to(DV.dtype.element_ty), mask=key_ok[:, None])


@triton.jit
def _attn_bwd_dq(Q, K, V, DO, LSE, Delta, DQ, sm_scale,
                 stride_qz, stride_qh, stride_qm, stride_qk,
                 stride_kz, stride_kh, stride_kn, stride_kk,
                 H, N_Q, N_KV,
                 HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                 CAUSAL: tl.constexpr, DOT_DTYPE: tl.constexpr, DOT_PRECISION: tl.constexpr):
    # One program owns BLOCK_M query rows and loops over the keys they see: dQ = sm_scale * dS K
    start_m = tl.program_id(0)
    off_zh = tl.program_id(1)
    off_z = (off_zh // H).to(tl.int64)
    off_h = (off_zh % H).to(tl.int64)
    kv_base = off_z * stride_kz + off_h * stride_kh

    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    row_ok = offs_m < N_Q
    q_offs = off_z * stride_qz + off_h * stride_qh + offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qk
    q = tl.load(Q + q_offs, mask=row_ok[:, None], other=0.0).to(DOT_DTYPE)
    do = tl.load(DO + q_offs, mask=row_ok[:, None], other=0.0).to(DOT_DTYPE)
    lse = tl.load(LSE + off_zh * N_Q + offs_m, mask=row_ok, other=0.0)
    delta = tl.load(Delta + off_zh * N_Q + offs_m, mask=row_ok, other=0.0)
    dq = tl.zeros((BLOCK_M, HEAD_DIM), dtype=tl.float32)
    qk_scale = sm_scale * LOG2E

    hi = tl.minimum((start_m + 1) * BLOCK_M, N_KV) if CAUSAL else N_KV  # causal: skip keys > rows
    for start_n in range(0, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        key_ok = offs_n < N_KV
        kv_offs = kv_base + offs_n[:, None] * stride_kn + offs_d[None, :] * stride_kk
        k = tl.load(K + kv_offs, mask=key_ok[:, None], other=0.0).to(DOT_DTYPE)
        v = tl.load(V + kv_offs, mask=key_ok[:, None], other=0.0).to(DOT_DTYPE)
        qk = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * qk_scale   # (BLOCK_M, BLOCK_N)
        keep = row_ok[:, None] & key_ok[None, :]
        if CAUSAL:
            keep = keep & (offs_m[:, None] >= offs_n[None, :])
        p = tl.where(keep, tl.math.exp2(qk - lse[:, None]), 0.0)
        dp = tl.dot(do, tl.trans(v), input_precision=DOT_PRECISION)
        ds = p * (dp - delta[:, None])
        dq += tl.dot(ds.to(DOT_DTYPE), k, input_precision=DOT_PRECISION)
    tl.store(DQ + q_offs, (dq * sm_scale).to(DQ.dtype.element_ty), mask=row_ok[:, None])


# ----------------------------------------------------------------------------------------------
# autograd.Function
# ----------------------------------------------------------------------------------------------
def _interpreted() -> bool:
    """True when the kernels were built for the interpreter (TRITON_INTERPRET=1 at import)."""
    return type(_attn_fwd).__name__ == "InterpretedFunction"


def _launch_settings(q: torch.Tensor, block_m: Optional[int], block_n: Optional[int],
                     backward: bool) -> dict:
    """Block sizes, warps, pipeline stages and the dot dtype: heuristics instead of autotuning.

    Untuned guesses for Ampere/Hopper-class GPUs, sized so that the tiles of the pipeline stages
    fit in shared memory (the backward loads two tiles per step, float32 tiles are twice as big).
    """
    D = q.shape[-1]
    if _interpreted():
        # small blocks keep the interpreter fast; 16-bit dots would be computed wrongly there
        settings = dict(BLOCK_M=32, BLOCK_N=16, num_warps=4, num_stages=1, DOT_DTYPE=tl.float32)
    else:
        recent = torch.cuda.get_device_capability(q.device)[0] >= 8
        wide = q.dtype == torch.float32
        if backward:
            settings = dict(BLOCK_M=32 if wide else 64, BLOCK_N=64, num_stages=2)
        else:
            settings = dict(BLOCK_M=128 if recent and not wide else 64, BLOCK_N=32 if wide else 64,
                            num_stages=3 if recent and not wide else 2)
        settings.update(num_warps=4 if D <= 64 else 8,
                        DOT_DTYPE={torch.float16: tl.float16, torch.bfloat16: tl.bfloat16,
                                   torch.float32: tl.float32}[q.dtype])
    settings["BLOCK_M"] = block_m or settings["BLOCK_M"]
    settings["BLOCK_N"] = block_n or settings["BLOCK_N"]
    # float32 dots in full precision (not TF32); 16-bit dots: the default, on tensor cores
    settings["DOT_PRECISION"] = "ieee" if settings["DOT_DTYPE"] == tl.float32 else None
    return settings


class FlashAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, causal, sm_scale, block_m, block_n):
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        B, H, T, D = q.shape
        S = k.shape[2]
        cfg = _launch_settings(q, block_m, block_n, backward=False)
        out = torch.empty_like(q)
        lse = torch.empty((B * H, T), device=q.device, dtype=torch.float32)
        grid = (triton.cdiv(T, cfg["BLOCK_M"]), B * H)
        _attn_fwd[grid](q, k, v, out, lse, sm_scale, *q.stride(), *k.stride(), H, T, S,
                        HEAD_DIM=D, CAUSAL=causal, **cfg)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.causal, ctx.sm_scale, ctx.blocks = causal, sm_scale, (block_m, block_n)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, dout):
        q, k, v, out, lse = ctx.saved_tensors
        dout = dout.contiguous()
        B, H, T, D = q.shape
        S = k.shape[2]
        cfg = _launch_settings(q, *ctx.blocks, backward=True)
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        delta = torch.empty_like(lse)
        _attn_bwd_preprocess[(triton.cdiv(T, cfg["BLOCK_M"]), B * H)](
            out, dout, delta, *q.stride(), H, T, HEAD_DIM=D, BLOCK_M=cfg["BLOCK_M"])
        args = (q, k, v, dout, lse, delta)
        shared = dict(HEAD_DIM=D, CAUSAL=ctx.causal, **cfg)
        _attn_bwd_dkdv[(triton.cdiv(S, cfg["BLOCK_N"]), B * H)](
            *args, dk, dv, ctx.sm_scale, *q.stride(), *k.stride(), H, T, S, **shared)
        _attn_bwd_dq[(triton.cdiv(T, cfg["BLOCK_M"]), B * H)](
            *args, dq, ctx.sm_scale, *q.stride(), *k.stride(), H, T, S, **shared)
        return dq, dk, dv, None, None, None, None


# ----------------------------------------------------------------------------------------------
# Public function
# ----------------------------------------------------------------------------------------------
def flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False,
                    sm_scale: Optional[float] = None, *, block_m: Optional[int] = None,
                    block_n: Optional[int] = None) -> torch.Tensor:
    """softmax(q k^T * sm_scale) v with the FlashAttention-2 Triton kernel; differentiable.

    q (B, H, T, D); k, v (B, H, S, D); T and S may differ and need not be multiples of the blocks.
    causal: query i sees keys j <= i (top-left aligned, like torch SDPA's ``is_causal``).
    dtypes float16, bfloat16, float32; head dim D in 16, 32, 64, 128; no arbitrary mask.
    Tensors must be on a CUDA GPU, or on the CPU when TRITON_INTERPRET=1 was set before this
    module was imported (slow; for tests). ``block_m``/``block_n`` (powers of two >= 16) override
    the query/key block sizes. Returns (B, H, T, D).
    """
    if not HAS_TRITON:
        raise RuntimeError("flash_attention needs Triton (pip install triton, Linux with an NVIDIA "
                           "GPU); use backend='sdpa' or 'tiled' instead")
    B, H, T, S, D = check_qkv(q, k, v)
    if q.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"q: the Triton kernel takes float16, bfloat16 or float32, got {q.dtype}")
    if D not in SUPPORTED_HEAD_DIMS:
        raise ValueError(f"q: the Triton kernel supports head dims D in {SUPPORTED_HEAD_DIMS}, "
                         f"got D = {D} (shape {tuple(q.shape)})")
    if not isinstance(causal, bool):
        raise TypeError(f"causal: expected a bool, got {type(causal).__name__}")
    for name, size in (("block_m", block_m), ("block_n", block_n)):
        if size is not None and (not isinstance(size, int) or size < 16 or size & (size - 1)):
            raise ValueError(f"{name}: expected a power of two >= 16 or None, got {size!r}")
    if q.device.type != "cuda" and not _interpreted():
        raise RuntimeError(f"q: the Triton kernel needs CUDA tensors, got device {q.device}; to run "
                           "it on the CPU (slowly) set TRITON_INTERPRET=1 before importing "
                           "course_lib.kernels.flash_triton")
    scale = check_sm_scale(sm_scale, D)
    return FlashAttention.apply(q, k, v, causal, scale, block_m, block_n)
