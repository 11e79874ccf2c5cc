"""The thread policy of ./course, measured: milliseconds per training step of two of the course's
models under three OpenMP settings, on a quiet machine and with one busy process beside it.

    python benchmarks/threads.py [--steps 30] [--out benchmarks/results/threads_cpu.md]

Each setting runs in a fresh Python process (OpenMP reads its environment once, at start-up):
- 1 thread                  OMP_NUM_THREADS=1 (what ./course sets)
- 2 threads, spinning       OMP_NUM_THREADS=2, OpenMP's default wait policy
- 2 threads, sleeping       OMP_NUM_THREADS=2, OMP_WAIT_POLICY=PASSIVE
"Loaded" starts a pure-Python busy loop (one core's worth of work) beside each measurement.
The table is a picture of this machine on this day; no test depends on it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

SETTINGS = {
    "1 thread": {"OMP_NUM_THREADS": "1"},
    "2 threads, spinning": {"OMP_NUM_THREADS": "2"},
    "2 threads, sleeping (PASSIVE)": {"OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"},
}

# one process measures both models with the threads its environment gives it
WORKER = r"""
import json, sys, time
import torch
from torch import nn
from course_lib.data import adding_problem
from course_lib.transformer import Seq2SeqTransformer, TransformerConfig

steps = int(sys.argv[1])
torch.manual_seed(0)
torch.set_flush_denormal(True)

def lstm():                     # chapter 02's adding problem: T = 100, batch 64, d = 64
    rnn, head = nn.LSTM(2, 64, batch_first=True), nn.Linear(64, 1)
    opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], 1e-2)
    batches = [adding_problem(64, 100, seed=i) for i in range(steps)]
    def step(i):
        x, y = batches[i]
        loss = nn.functional.mse_loss(head(rnn(x)[0][:, -1]).squeeze(-1), y)
        opt.zero_grad(); loss.backward(); opt.step()
    return step

def transformer():              # chapter 06's size: d_model 64, 2 + 2 layers, batch 64, T = 30
    cfg = TransformerConfig(src_vocab_size=40, tgt_vocab_size=40, d_model=64, n_heads=4, d_ff=256,
                            n_encoder_layers=2, n_decoder_layers=2, dropout=0.1, max_len=64)
    model = Seq2SeqTransformer(cfg)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    src, tgt = torch.randint(3, 40, (64, 30)), torch.randint(3, 40, (64, 31))
    mask = torch.ones_like(src, dtype=torch.bool)
    def step(i):
        logits = model(src, mask, tgt[:, :-1])
        loss = nn.functional.cross_entropy(logits.reshape(-1, 40), tgt[:, 1:].reshape(-1))
        opt.zero_grad(); loss.backward(); opt.step()
    return step

out = {"threads": torch.get_num_threads()}
for name, make in (("LSTM", lstm), ("Transformer", transformer)):
    step = make()
    step(0)                                          # warm-up
    start = time.perf_counter()
    for i in range(steps):
        step(i)
    out[name] = (time.perf_counter() - start) / steps * 1000
print(json.dumps(out))
"""


def measure(env: dict, steps: int, loaded: bool) -> dict:
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if loaded else None
    try:
        base = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
        run = subprocess.run([sys.executable, "-c", WORKER, str(steps)], env={**base, **env},
                             capture_output=True, text=True, check=True)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    return json.loads(run.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per model (default 30)")
    parser.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps: expected a positive integer, got {args.steps}")

    rows = []
    for loaded in (False, True):
        for name, env in SETTINGS.items():
            result = measure(env, args.steps, loaded)
            rows.append((("loaded" if loaded else "quiet"), name, result["LSTM"], result["Transformer"]))
            print(f"{rows[-1][0]:>6}  {name:<30} LSTM {result['LSTM']:6.1f} ms/step   "
                  f"Transformer {result['Transformer']:6.1f} ms/step", flush=True)

    lines = [
        "# Thread policy: milliseconds per training step",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{args.steps} timed steps each; load average at the end {os.getloadavg()[0]:.2f}; "
        f"{time.strftime('%Y-%m-%d')}. Produced by `python benchmarks/threads.py`.",
        "",
        "| machine | setting | LSTM step (ch. 02) | Transformer step (ch. 06) |",
        "|---|---|---|---|",
        *[f"| {m} | {s} | {a:.1f} ms | {b:.1f} ms |" for m, s, a, b in rows],
        "",
    ]
    table = "\n".join(lines)
    print("\n" + table)
    if args.out:
        args.out.write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
