"""The FlashAttention-2 Triton kernel, forward and backward, run by Triton's CPU interpreter.

TRITON_INTERPRET=1 is read when the kernels are decorated, i.e. when
``course_lib.kernels.flash_triton`` is first imported. Another test module may already have
imported it without the variable, so the kernel cases run in a fresh subprocess: this file run as
a script with TRITON_INTERPRET=1 computes every case's errors against float64 and prints them as
JSON; the tests below read them. With a CUDA GPU, ``test_compiled_kernel_on_gpu`` also checks the
compiled kernel.
"""
import json
import math
import os
import subprocess
import sys

import pytest
import torch

# name, dtype, D, causal, T, S, (block_m, block_n) or None for the interpreter's default (32, 16)
CASES = [
    ("fp32-D16-full-ragged", "float32", 16, False, 100, 130, None),
    ("fp32-D16-causal-T>S", "float32", 16, True, 130, 100, None),
    ("fp32-D64-causal-T<S", "float32", 64, True, 100, 130, None),
    ("fp32-D64-full-T1", "float32", 64, False, 1, 7, None),
    ("fp32-D16-causal-bm16-bn32", "float32", 16, True, 65, 33, (16, 32)),
    ("fp32-D32-full-bm16-bn32", "float32", 32, False, 65, 90, (16, 32)),
    ("fp16-D16-causal-ragged", "float16", 16, True, 100, 130, None),
    ("fp16-D64-full-T>S", "float16", 64, False, 130, 100, None),
    ("bf16-D16-full-T<S", "bfloat16", 16, False, 7, 100, None),
    ("bf16-D64-causal-ragged", "bfloat16", 64, True, 130, 100, None),
    ("bf16-D128-causal-square", "bfloat16", 128, True, 33, 33, None),
    ("via-scaled_dot_product_attention", "float32", 32, True, 40, 50, None),
]
TOL = {"float32": 1e-5, "float16": 4 * 2.0 ** -10, "bfloat16": 4 * 2.0 ** -7}  # x max(1, |ref|)


def reference(q, k, v, causal):
    """float64 attention with top-left causal masking."""
    q, k, v = q.double(), k.double(), v.double()
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if causal:
        T, S = q.shape[2], k.shape[2]
        i, j = torch.arange(T, device=q.device)[:, None], torch.arange(S, device=q.device)[None, :]
        scores = scores.masked_fill(j > i, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def run_cases() -> dict:
    """Run every case under the interpreter (this process must have TRITON_INTERPRET=1)."""
    from course_lib.attention import scaled_dot_product_attention
    from course_lib.kernels.flash_triton import _interpreted, flash_attention

    assert _interpreted(), "run with TRITON_INTERPRET=1"
    results = {}
    for name, dtype, D, causal, T, S, blocks in CASES:
        g = torch.Generator().manual_seed(0)
        dt = getattr(torch, dtype)
        q, k, v = (torch.randn(2, 2, n, D, generator=g).to(dt).requires_grad_() for n in (T, S, S))
        dout = torch.randn(2, 2, T, D, generator=g).to(dt)
        if name.startswith("via-"):
            out = scaled_dot_product_attention(q, k, v, causal=causal, backend="triton")
        else:
            block_m, block_n = blocks or (None, None)
            out = flash_attention(q, k, v, causal=causal, block_m=block_m, block_n=block_n)
        got = [out, *torch.autograd.grad(out, (q, k, v), dout)]
        q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
        ref_out = reference(q64, k64, v64, causal)
        want = [ref_out, *torch.autograd.grad(ref_out, (q64, k64, v64), dout.double())]
        results[name] = {
            key: {"error": (a.double() - b).abs().max().item(), "scale": max(1.0, b.abs().max().item()),
                  "dtype_ok": a.dtype == dt, "finite": bool(torch.isfinite(a).all())}
            for key, a, b in zip(("out", "dq", "dk", "dv"), got, want)}
    return results


def _run_script(env_update: dict, code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **env_update}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300, cwd=root)


@pytest.fixture(scope="module")
def interpreted_results():
    pytest.importorskip("triton")
    here = os.path.dirname(os.path.abspath(__file__))
    code = (f"import sys, json; sys.path.insert(0, {here!r}); "
            "import test_flash_attention_triton as t; print(json.dumps(t.run_cases()))")
    proc = _run_script({"TRITON_INTERPRET": "1"}, code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_interpreted_kernel_matches_float64(interpreted_results, case):
    name, dtype = case[0], case[1]
    for key, r in interpreted_results[name].items():
        assert r["dtype_ok"] and r["finite"], f"{key}: wrong dtype or non-finite values"
        assert r["error"] <= TOL[dtype] * r["scale"], f"{key}: max error {r['error']:.2e}"


def test_cpu_tensors_without_interpreter_are_refused():
    pytest.importorskip("triton")
    code = ("import torch\n"
            "from course_lib.kernels.flash_triton import flash_attention\n"
            "q = torch.randn(1, 1, 4, 16)\n"
            "try:\n    flash_attention(q, q, q)\n"
            "except RuntimeError as err:\n    print(err)\n")
    proc = _run_script({"TRITON_INTERPRET": "0"}, code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "q: the Triton kernel needs CUDA tensors, got device cpu" in proc.stdout
    assert "TRITON_INTERPRET=1" in proc.stdout


def test_unsupported_head_dim_dtype_and_blocks():
    pytest.importorskip("triton")
    from course_lib.kernels.flash_triton import flash_attention

    q = torch.randn(1, 2, 8, 48)
    with pytest.raises(ValueError, match=r"q: the Triton kernel supports head dims D in \(16, 32, 64, 128\), got D = 48"):
        flash_attention(q, q, q)
    q = torch.randn(1, 2, 8, 256)
    with pytest.raises(ValueError, match="got D = 256"):
        flash_attention(q, q, q)
    q = torch.randn(1, 2, 8, 16, dtype=torch.float64)
    with pytest.raises(TypeError, match="q: the Triton kernel takes float16, bfloat16 or float32, got torch.float64"):
        flash_attention(q, q, q)
    q = torch.randn(1, 2, 8, 16)
    with pytest.raises(ValueError, match="block_m: expected a power of two >= 16 or None, got 24"):
        flash_attention(q, q, q, block_m=24)
    with pytest.raises(ValueError, match=r"k: expected shape \(B, H, S, D\) = \(1, 2, S, 16\) to match q"):
        flash_attention(q, q[:, :1], q)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_compiled_kernel_on_gpu():
    """bf16 on a GPU: error against float32 within 2x that of PyTorch's SDPA, plus a small slack."""
    pytest.importorskip("triton")
    from course_lib.kernels.flash_triton import _interpreted, flash_attention

    if _interpreted():
        pytest.skip("TRITON_INTERPRET=1 in this process")
    for D, causal, T, S in [(64, False, 1000, 1000), (128, True, 777, 1025), (32, True, 1, 300)]:
        g = torch.Generator(device="cuda").manual_seed(0)
        q, k, v = (torch.randn(2, 4, n, D, device="cuda", generator=g, dtype=torch.bfloat16).requires_grad_()
                   for n in (T, S, S))
        dout = torch.randn(2, 4, T, D, device="cuda", generator=g, dtype=torch.bfloat16)

        def run(fn, *xs, dout=dout):
            out = fn(*xs)
            return [out, *torch.autograd.grad(out, xs, dout.to(out.dtype))]

        sdpa_fn = torch.nn.functional.scaled_dot_product_attention
        ours = run(lambda a, b, c, causal=causal: flash_attention(a, b, c, causal=causal), q, k, v)
        sdpa = run(lambda a, b, c, causal=causal, sdpa_fn=sdpa_fn: sdpa_fn(a, b, c, is_causal=causal), q, k, v)
        f32 = [t.detach().float().requires_grad_() for t in (q, k, v)]
        ref = run(lambda a, b, c, causal=causal: reference(a, b, c, causal).float(), *f32)
        for key, a, b, r in zip(("out", "dq", "dk", "dv"), ours, sdpa, ref):
            err_ours = (a.float() - r).abs().max().item()
            err_sdpa = (b.float() - r).abs().max().item()
            assert err_ours <= 2 * err_sdpa + 1e-3, f"D={D} causal={causal} {key}: {err_ours:.2e} vs {err_sdpa:.2e}"
