"""course_lib.data: determinism under a seed, task semantics, batching, and the download helper
(tested against a local file and a server on loopback, never the internet)."""
import hashlib
import http.server
import threading
from functools import partial

import pytest
import torch

from course_lib import data


@pytest.mark.parametrize("make", [
    lambda seed: data.copy_task(8, 12, seed=seed),
    lambda seed: data.reverse_task(8, 12, seed=seed),
    lambda seed: data.adding_problem(8, 20, seed=seed),
    lambda seed: data.copy_memory_task(8, lag=50, seed=seed),
])
def test_generated_tasks_are_deterministic_under_a_seed(make):
    a, b, c = make(0), make(0), make(1)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])


def test_task_semantics():
    x, y = data.reverse_task(4, 6, seed=0)
    assert torch.equal(y, x.flip(1))
    x, y = data.adding_problem(64, 30, seed=0)
    assert x.shape == (64, 30, 2) and torch.all(x[..., 1].sum(1) == 2)
    marked = (x[..., 0] * x[..., 1]).sum(1)
    torch.testing.assert_close(marked, y)
    x, y = data.copy_memory_task(5, lag=50, n_remember=10, seed=0)
    assert x.shape == y.shape == (5, 70)
    assert torch.equal(y[:, -10:], x[:, :10]) and torch.all(y[:, :-10] == 0)
    assert torch.all(x[:, 59] == data.COPY_MEMORY_GO)


def test_corpus_split_is_fixed():
    text = data.pydoc_text()
    assert text == data.pydoc_text() and len(text) >= 100_000
    train, val = data.train_val_split(text, 0.1)
    assert train + val == text and abs(len(val) - len(text) // 10) <= 1


def test_padding_masks_and_batches():
    ids, mask = data.pad_sequences([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert mask.tolist() == [[True, True, True], [True, False, False]]
    x = torch.arange(10)
    seen = torch.cat([b[0] for b in data.batches(x, batch_size=3, seed=0)])
    assert sorted(seen.tolist()) == list(range(10))
    windows = data.lm_windows(torch.arange(100), context_len=8, batch_size=4, n_batches=2, seed=0)
    assert torch.equal(windows[0][1], windows[0][0] + 1)


@pytest.mark.parametrize("call, match", [
    (lambda: data.copy_task(0, 5), r"n: expected a positive int, got 0"),
    (lambda: data.copy_task(2, 5, vocab_size=1), r"vocab_size: expected an int >= 2"),
    (lambda: data.adding_problem(2, 1), r"length: expected an int >= 2, got 1"),
    (lambda: data.copy_memory_task(2, lag=0), r"lag: expected a positive int, got 0"),
    (lambda: data.copy_memory_task(2, lag=5, n_symbols=9), r"n_symbols: expected an int in 1..8"),
    (lambda: data.copy_task(2, 3, seed="a"), r"seed: expected an int, got str"),
    (lambda: data.train_val_split("abc", 1.5), r"val_fraction: expected a float in \(0, 1\), got 1.5"),
    (lambda: data.pad_sequences([]), r"sequences: expected at least one sequence"),
    (lambda: list(data.batches(torch.zeros(3), torch.zeros(4), batch_size=2)),
     r"tensors\[1\]: expected 3 rows like tensors\[0\], got 4"),
    (lambda: data.lm_windows(torch.zeros(2, 5), 3, 2, 1), r"ids: expected a 1-D tensor"),
    (lambda: data.lm_windows(torch.arange(5), 8, 2, 1), r"ids: expected more than context_len \+ 1 = 9 tokens, got 5"),
])
def test_data_bad_inputs(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


PAYLOAD = b"a small public data set\n" * 100
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


def test_download_from_local_file_caches_and_checks(tmp_path):
    source = tmp_path / "source.txt"
    source.write_bytes(PAYLOAD)
    cache = tmp_path / "cache"
    with pytest.raises(data.DataUnavailableError, match=r"COURSE_ALLOW_DOWNLOAD=1"):
        data.download(source.as_uri(), "set.txt", DIGEST, cache_dir=cache, allow_download=False)
    path = data.download(source.as_uri(), "set.txt", DIGEST, cache_dir=cache, allow_download=True)
    assert path.read_bytes() == PAYLOAD
    source.unlink()  # now served from the cache, no download needed
    assert data.download(source.as_uri(), "set.txt", DIGEST, cache_dir=cache, allow_download=False) == path
    with pytest.raises(data.DataUnavailableError, match=r"has sha256 .* expected 0{64}; the file was not kept"):
        (tmp_path / "other.txt").write_bytes(b"changed")
        data.download((tmp_path / "other.txt").as_uri(), "x.txt", "0" * 64, cache_dir=cache, allow_download=True)
    assert not (cache / "x.txt").exists()


def test_download_over_loopback_and_offline_message(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    (served / "set.txt").write_bytes(PAYLOAD)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/set.txt"
        path = data.download(url, "set.txt", DIGEST, cache_dir=tmp_path / "c", allow_download=True)
        assert path.read_bytes() == PAYLOAD
        missing = f"http://127.0.0.1:{server.server_address[1]}/missing.txt"
        with pytest.raises(data.DataUnavailableError, match=r"could not download m.txt .* Are you offline\?"):
            data.download(missing, "m.txt", DIGEST, cache_dir=tmp_path / "c", allow_download=True)
    finally:
        server.shutdown()
    port = server.server_address[1]  # nothing listens there any more: the offline case
    with pytest.raises(data.DataUnavailableError, match=r"Are you offline\?"):
        data.download(f"http://127.0.0.1:{port}/set.txt", "n.txt", DIGEST, cache_dir=tmp_path / "c",
                      allow_download=True, timeout=5)


def test_download_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"sha256: expected a 64-character hex digest"):
        data.download("file:///x", "x.txt", "abc", cache_dir=tmp_path)
    with pytest.raises(ValueError, match=r"filename: expected a plain file name, got '../x'"):
        data.download("file:///x", "../x", DIGEST, cache_dir=tmp_path)
