"""One training step of chapter 06's Transformer (dropout 0.1, as TransformerConfig's default), per
attention backend, before and after the fast path in training; prints a markdown table.

Before: ``MultiHeadAttention`` fell back to the naive path whenever dropout > 0 in training, so
every backend ran the naive attention in every training step; the "before" time of each backend
is therefore the naive time. After: dropout goes to the backend as ``dropout_p``.

    python benchmarks/train_step.py [--out benchmarks/results/train_step_cpu.md] [--repeats 20]

Times are medians over repeats of forward + backward + Adam step; they are pictures of this
machine at this moment, not claims (the load average is printed with them).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from course_lib import attention  # noqa: E402
from course_lib.transformer import Seq2SeqTransformer, TransformerConfig, transformer_loss  # noqa: E402


def step_ms(backend: str, T: int, batch: int, repeats: int) -> tuple[float, dict]:
    torch.manual_seed(0)
    V = 40
    model = Seq2SeqTransformer(TransformerConfig(V, V, max_len=max(T, 8), backend=backend)).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    src = torch.randint(3, V, (batch, T))
    src_mask = torch.ones(batch, T, dtype=torch.bool)
    tgt = torch.randint(3, V, (batch, T))
    counts: dict = {}
    runs = dict(attention.RUN_BACKEND)

    def counted(name):
        def run(*args):
            counts[name] = counts.get(name, 0) + 1
            return runs[name](*args)
        return run

    attention.RUN_BACKEND.update({name: counted(name) for name in runs})
    try:
        times = []
        for i in range(repeats + 2):  # two warm-up steps
            start = time.perf_counter()
            loss = transformer_loss(model, (src, src_mask, tgt, tgt))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if i >= 2:
                times.append((time.perf_counter() - start) * 1e3)
            if i == 0:
                first_counts = dict(counts)
    finally:
        attention.RUN_BACKEND.update(runs)
    return statistics.median(times), first_counts


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    rows = []
    for T in args.lengths:
        naive, _ = step_ms("naive", T, args.batch, args.repeats)
        for backend in ("naive", "sdpa", "tiled"):
            ms, counts = (naive, {"naive": 6}) if backend == "naive" else step_ms(backend, T, args.batch, args.repeats)
            rows.append(f"| {T} | {backend} | {naive:.1f} (naive) | {ms:.1f} | {naive / ms:.2f}x | "
                        f"{', '.join(f'{k} {v}' for k, v in counts.items())} |")
            print(rows[-1], flush=True)
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    table = "\n".join([
        "# One training step of chapter 06's Transformer, per attention backend (CPU)",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}; "
        f"load average {load} at the end (other jobs were running: read the ratios, not the ms).",
        f"TransformerConfig defaults (2 + 2 layers, d_model 64, 4 heads, dropout 0.1), batch {args.batch}, "
        f"source = target length T; median of {args.repeats} steps (forward + backward + Adam).",
        "",
        "| T | backend | before (ms) | after (ms) | speed-up | attention calls in one step (after) |",
        "|---|---|---|---|---|---|",
        *rows, ""])
    if args.out:
        Path(args.out).write_text(table)
    print(table)


if __name__ == "__main__":
    main()
