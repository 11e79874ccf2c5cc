"""course_lib.distributed: 2 processes under torchrun (gloo, CPU) equal 1 process with the same
global batch; the per-rank batches tile the global batch; bad input is refused by name."""
import pytest
import torch

from course_lib.distributed import DDPConfig, allreduce_bytes_per_step, launch, make_data, train


def test_two_processes_equal_one_with_the_same_global_batch(tmp_path, monkeypatch):
    config = DDPConfig(steps=20)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    single = train(config)                                   # one process, no process group
    two = launch(2, tmp_path / "two.pt", config)
    assert two["world_size"] == 2 and single["world_size"] == 1
    diff = max((two["state_dict"][k] - v).abs().max().item() for k, v in single["state_dict"].items())
    moved = max((v - train(DDPConfig(steps=1))["state_dict"][k]).abs().max().item()
                for k, v in single["state_dict"].items())
    assert diff < 1e-4, diff
    assert moved > 1e-2                                      # training did move the weights
    # the check can fail: one process on half the global batch ends elsewhere
    half = train(DDPConfig(steps=20, global_batch=config.global_batch // 2))
    wrong = max((half["state_dict"][k] - v).abs().max().item() for k, v in single["state_dict"].items())
    assert wrong > 100 * max(diff, 1e-7)


def test_per_rank_batches_tile_the_global_batch():
    data = make_data(DDPConfig())
    world, per_rank = 2, 32
    single = list(torch.utils.data.DistributedSampler(data, num_replicas=1, rank=0, seed=0, drop_last=True))
    ranks = [list(torch.utils.data.DistributedSampler(data, num_replicas=world, rank=r, seed=0, drop_last=True))
             for r in range(world)]
    for step in range(len(single) // (world * per_rank)):
        together = sorted(i for r in ranks for i in r[step * per_rank:(step + 1) * per_rank])
        assert together == sorted(single[step * world * per_rank:(step + 1) * world * per_rank])


def test_allreduce_bytes_and_bad_input():
    assert allreduce_bytes_per_step(1_000_000, 2) == 4_000_000       # 2 (N-1)/N = 1 for N = 2
    assert allreduce_bytes_per_step(1_000_000, 8) == 7_000_000
    assert allreduce_bytes_per_step(10, 1) == 0
    with pytest.raises(ValueError, match="world_size: expected a positive int, got 0"):
        allreduce_bytes_per_step(10, 0)
    with pytest.raises(ValueError, match="steps: expected a positive int, got 0"):
        DDPConfig(steps=0)
    with pytest.raises(ValueError, match="nproc"):
        launch(0, "unused.pt")
