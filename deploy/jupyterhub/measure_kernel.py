"""Measure what one learner's kernel costs: run a chapter in a fresh kernel (as JupyterHub starts
it: OMP_NUM_THREADS=1, OMP_WAIT_POLICY=PASSIVE) and sample the kernel's memory and CPU time.

    .venv/bin/python deploy/jupyterhub/measure_kernel.py notebooks/05_self_attention.ipynb --mode fast

Prints one Markdown table row: chapter, mode, wall time, CPU time, mean cores busy, peak memory
(resident set of the kernel and its children). README.md's sizing table is made of these rows.
"""
import argparse
import os
import threading
import time
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient


def tree_stats(process: psutil.Process) -> tuple[float, float]:
    """(resident MB, CPU seconds) of a process and its children."""
    rss, cpu = 0.0, 0.0
    for p in [process, *process.children(recursive=True)]:
        try:
            rss += p.memory_info().rss / 2**20
            times = p.cpu_times()
            cpu += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return rss, cpu


def measure(notebook: Path, fast: bool, threads: int = 1) -> dict:
    os.environ.update(COURSE_FAST="1" if fast else "0", OMP_NUM_THREADS=str(threads),
                      OMP_WAIT_POLICY="PASSIVE", MPLBACKEND="Agg")
    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(notebook.parent)}})
    peak, last_cpu, done = [0.0], [0.0], threading.Event()
    with client.setup_kernel():
        kernel = psutil.Process(client.km.provisioner.process.pid)

        def sample():
            while not done.is_set():
                rss, cpu = tree_stats(kernel)
                peak[0], last_cpu[0] = max(peak[0], rss), max(last_cpu[0], cpu)
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        start = time.perf_counter()
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        wall = time.perf_counter() - start
        rss, cpu = tree_stats(kernel)
        done.set()
        sampler.join()
    cpu = max(cpu, last_cpu[0])
    return {"chapter": notebook.stem, "mode": "fast" if fast else "full", "wall_s": wall,
            "cpu_s": cpu, "cores": cpu / wall, "peak_mb": max(peak[0], rss)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--mode", choices=("fast", "full"), default="fast")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the kernel (the hub sets 1)")
    args = parser.parse_args()
    r = measure(args.notebook, args.mode == "fast", args.threads)
    print("| chapter | mode | wall s | CPU s | mean cores busy | peak memory MB |")
    print(f"| {r['chapter']} | {r['mode']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['cores']:.2f} | {r['peak_mb']:.0f} |")


if __name__ == "__main__":
    main()
