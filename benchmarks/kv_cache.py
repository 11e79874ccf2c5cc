"""Benchmark generation with and without the KV cache, for MHA, GQA and MQA.

    python benchmarks/kv_cache.py --out benchmarks/results/kv_cache_cpu.md

For each attention variant (n_kv_heads = n_heads: MHA; a divisor: GQA; 1: MQA) and each number
of new tokens, ``course_lib.gpt.generate`` runs greedy from an 8-token prompt with and without
the cache (random weights: the speed does not depend on them); time is the fastest of
``--repeats`` runs of ``time.perf_counter``. The rows also give the positions processed (counted,
deterministic) and the cache memory at the end (measured from the cache's tensors and equal to
2 * n_layers * B * n_kv_heads * S * D * 4 bytes), and check that both runs give the same tokens.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not
from course_lib.gpt import GPT, GPTConfig, cache_bytes, generate  # noqa: E402


def run(model: GPT, prompt: torch.Tensor, n: int, use_cache: bool, repeats: int) -> tuple[float, torch.Tensor, int]:
    best, out = math.inf, None
    for _ in range(repeats):
        model.positions_processed = 0
        start = time.perf_counter()
        out = generate(model, prompt, n, temperature=0, use_cache=use_cache)
        best = min(best, time.perf_counter() - start)
    return best, out, model.positions_processed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[100, 200, 500])
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--kv-heads", type=int, nargs="+", default=[4, 2, 1])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    started, load = time.perf_counter(), os.getloadavg()[0]
    prompt = torch.randint(0, 256, (1, 8), generator=torch.Generator().manual_seed(0))
    rows, ratios = [], {}
    for n_kv in args.kv_heads:
        name = "MHA" if n_kv == args.heads else ("MQA" if n_kv == 1 else f"GQA ({args.heads // n_kv} per group)")
        torch.manual_seed(0)
        config = GPTConfig(vocab_size=256, block_size=1024, n_layers=args.layers, d_model=args.d_model,
                           n_heads=args.heads, n_kv_heads=n_kv)
        model = GPT(config).eval()
        for n in args.tokens:
            t_cache, out_cache, pos_cache = run(model, prompt, n, True, args.repeats)
            t_full, out_full, pos_full = run(model, prompt, n, False, args.repeats)
            cache = model.new_cache()
            with torch.no_grad():
                model(out_cache[:, :-1], cache)  # the cache as it stands after the last step
            assert cache.nbytes() == cache_bytes(config, 1, out_cache.shape[1] - 1)
            ratios[(name, n)] = t_full / t_cache
            rows.append(f"| {name} | {n_kv} | {n} | {n / t_cache:.0f} | {n / t_full:.0f} | {t_full / t_cache:.1f}x "
                        f"| {pos_cache} | {pos_full} | {cache.nbytes() / 1e6:.3f} "
                        f"| {'yes' if torch.equal(out_cache, out_full) else 'NO'} |")
            print(rows[-1], flush=True)
    gpt2 = [(name, cache_bytes(GPTConfig.gpt2(n_kv_heads=kv), 1, 1024) / 1e6) for name, kv in
            (("MHA", 12), ("GQA (4 groups)", 4), ("MQA", 1))]
    lines = [
        "# KV cache benchmark (CPU)", "",
        f"Measured {date.today()} on {platform.machine()}, {os.cpu_count()} CPU cores, torch threads "
        f"{torch.get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; torch "
        f"{torch.__version__}, python {platform.python_version()}; {time.perf_counter() - started:.0f} s; load "
        f"average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (other programs share the "
        "cores and slow the timings, not the counts or the memory).",
        f"Command: `python benchmarks/kv_cache.py {' '.join(sys.argv[1:])}`", "",
        f"Model: GPT, {args.layers} layers, d_model {args.d_model}, {args.heads} query heads, random weights, "
        "float32, batch 1, an 8-token prompt, greedy. tokens/s: new tokens / the fastest of "
        f"{args.repeats} runs. positions: positions pushed through the model (counted). cache MB: the "
        "cache after the last step (measured from its tensors, equal to the formula).", "",
        "| attention | kv heads | new tokens | tokens/s with cache | tokens/s without | speed-up "
        "| positions with cache | positions without | cache MB | same tokens |",
        "|---|---|---|---|---|---|---|---|---|---|", *rows, "",
        "GPT-2 small's cache for one 1,024-token sequence, by the formula 2 * 12 layers * n_kv_heads * "
        "1024 * 64 * 4 bytes: " + ", ".join(f"{name} {mb:.1f} MB" for name, mb in gpt2) + ".", "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
