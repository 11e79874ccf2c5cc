"""Data parallelism with DistributedDataParallel, small enough to run on two CPU cores (appendix 13).

`train` is the training script: started by torchrun (``torchrun --standalone --nproc_per_node=2
-m course_lib.distributed --out result.pt``) each process joins a gloo process group, takes its
share of every global batch through a DistributedSampler, and DDP all-reduces (averages) the
gradients, so every process makes the same AdamW step. Called without torchrun (no RANK in the
environment) it trains the same model in one process on the whole global batch, which is the
reference the appendix compares against. `launch` starts torchrun as a subprocess.

Glossary: B batch (the global batch is split into world_size per-rank batches of B each).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from course_lib.utils import check_int


@dataclass
class DDPConfig:
    """The toy task and its training; the CPU preset is the default."""
    n_examples: int = 2048    # synthetic classification examples
    d_in: int = 32            # input features
    d_hidden: int = 256       # width of the two hidden layers
    n_classes: int = 10
    steps: int = 30           # AdamW steps
    global_batch: int = 64    # examples per step, summed over all processes
    lr: float = 1e-3
    weight_decay: float = 0.01
    seed: int = 0             # model initialisation and the sampler's shuffle; rank r also seeds seed + r

    def __post_init__(self):
        for name in ("n_examples", "d_in", "d_hidden", "n_classes", "steps", "global_batch"):
            check_int(getattr(self, name), name)


def make_data(config: DDPConfig) -> TensorDataset:
    """Deterministic synthetic data: x (n_examples, d_in), labels from a fixed random linear map."""
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(config.n_examples, config.d_in, generator=g)
    w = torch.randn(config.d_in, config.n_classes, generator=g)
    return TensorDataset(x, (x @ w).argmax(-1))


def make_model(config: DDPConfig) -> torch.nn.Module:
    """A 3-layer MLP (no dropout, so every process computes the same function)."""
    torch.manual_seed(config.seed)  # the same initial weights in every process (DDP also broadcasts rank 0's)
    return torch.nn.Sequential(
        torch.nn.Linear(config.d_in, config.d_hidden), torch.nn.GELU(),
        torch.nn.Linear(config.d_hidden, config.d_hidden), torch.nn.GELU(),
        torch.nn.Linear(config.d_hidden, config.n_classes))


def train(config: DDPConfig) -> dict:
    """Train on this process's share of every global batch; returns the weights, losses and time.

    Under torchrun (RANK, WORLD_SIZE set) the model is wrapped in DDP over a gloo process group;
    otherwise it is one process on the whole global batch.
    """
    distributed = "RANK" in os.environ
    if distributed:
        dist.init_process_group("gloo")  # CPU; on GPUs one would use "nccl"
    rank = dist.get_rank() if distributed else 0
    world_size = dist.get_world_size() if distributed else 1
    if config.global_batch % world_size:
        raise ValueError(f"global_batch: expected a multiple of the {world_size} processes, got {config.global_batch}")
    try:
        model = make_model(config)
        torch.manual_seed(config.seed + rank)  # a seed per rank, for anything random from here on
        if distributed:
            model = DistributedDataParallel(model)  # broadcasts rank 0's weights, all-reduces gradients
        data = make_data(config)
        # rank r gets positions r, r + W, r + 2W, ... of the shuffled order, so the W per-rank batches
        # of one step together hold exactly the global batch a single process would take
        sampler = DistributedSampler(data, num_replicas=world_size, rank=rank, shuffle=True,
                                     seed=config.seed, drop_last=True)
        loader = DataLoader(data, batch_size=config.global_batch // world_size, sampler=sampler, drop_last=True)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        losses, step, epoch = [], 0, 0
        start = time.perf_counter()
        while step < config.steps:
            sampler.set_epoch(epoch)  # a new shuffle per epoch, the same on every rank
            for x, y in loader:       # x (B, d_in), y (B,)
                loss = torch.nn.functional.cross_entropy(model(x), y)
                optimizer.zero_grad()
                loss.backward()       # under DDP: gradients averaged over the processes here
                optimizer.step()
                losses.append(loss.item())
                step += 1
                if step == config.steps:
                    break
            epoch += 1
        seconds = time.perf_counter() - start
        module = model.module if distributed else model
        return {"state_dict": {k: v.detach().clone() for k, v in module.state_dict().items()},
                "losses": losses, "seconds": seconds, "rank": rank, "world_size": world_size,
                "config": asdict(config)}
    finally:
        if distributed:
            dist.destroy_process_group()


def allreduce_bytes_per_step(n_params: int, world_size: int, bytes_per_value: int = 4) -> float:
    """Bytes each process sends (and receives) per step in a ring all-reduce of the gradients:
    2 (N - 1) / N * parameters * bytes per value (fp32: 4)."""
    check_int(n_params, "n_params")
    check_int(world_size, "world_size")
    check_int(bytes_per_value, "bytes_per_value")
    return 2 * (world_size - 1) / world_size * n_params * bytes_per_value


def launch(nproc: int, out: str | Path, config: DDPConfig | None = None, timeout: float = 300) -> dict:
    """Run `train` in ``nproc`` processes with ``torchrun --standalone`` (a subprocess; gloo on
    the CPU, one thread per process) and return rank 0's result, read back from ``out``."""
    check_int(nproc, "nproc")
    config = config or DDPConfig()
    out = Path(out)
    args = [f"--{k.replace('_', '-')}={v}" for k, v in asdict(config).items()]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "course_lib.distributed", f"--out={out}", *args]
    env = dict(os.environ, OMP_NUM_THREADS="1")  # one core per process; torchrun's default, said out loud
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"torchrun exited with {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return torch.load(out, weights_only=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="file where rank 0 saves its result (torch.save)")
    for name, value in asdict(DDPConfig()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    options = vars(parser.parse_args(argv))
    out = options.pop("out")
    result = train(DDPConfig(**options))
    if result["rank"] == 0:
        torch.save(result, out)
        print(json.dumps({k: result[k] for k in ("world_size", "seconds")}))


if __name__ == "__main__":
    main()
