"""course_lib.checkpoints: the round trip, the checksum and the manifest; and the shipped BERT
checkpoint: its checksum holds and loading it reproduces its recorded validation loss."""
import json

import pytest
import torch

from course_lib import checkpoints
from course_lib.checkpoints import CheckpointError, load_checkpoint, save_checkpoint


def test_round_trip_checksum_and_manifest(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    entry = save_checkpoint("tiny", model, {"loss": 1.5}, extra={"words": ["a", "b"]}, script="x.py",
                            args=["--n", "1"], directory=tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["tiny"] == entry and entry["bytes"] == (tmp_path / "tiny.pt").stat().st_size
    fresh = torch.nn.Linear(3, 2)
    extra = load_checkpoint("tiny", fresh, directory=tmp_path)
    assert extra["words"] == ["a", "b"] and extra["manifest"]["metrics"] == {"loss": 1.5}
    assert load_checkpoint("tiny", directory=tmp_path)["words"] == ["a", "b"]
    assert torch.equal(fresh.weight, model.weight)
    with pytest.raises(CheckpointError, match="model: does not fit"):
        load_checkpoint("tiny", torch.nn.Linear(4, 2), directory=tmp_path)
    with pytest.raises(CheckpointError, match="'other' is not in"):
        load_checkpoint("other", fresh, directory=tmp_path)
    with pytest.raises(ValueError, match="name: expected a plain name"):
        save_checkpoint("../evil", model, {}, directory=tmp_path)
    with open(tmp_path / "tiny.pt", "ab") as f:
        f.write(b"changed")
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint("tiny", fresh, directory=tmp_path)


def test_shipped_bert_checkpoint_reproduces_its_validation_loss():
    from course_lib.bert import BERT, load_pretrained, mlm_loss, pydoc_pretraining

    entry = checkpoints.read_manifest()["bert_pydoc"]
    assert entry["bytes"] <= 4_000_000 and entry["script"] == "scripts/make_bert_checkpoint.py"
    model, vocab, extra = load_pretrained("bert_pydoc")
    assert extra["manifest"] == entry
    data = pydoc_pretraining(32)
    assert vocab.itos == data.vocab.itos and len(vocab) == model.config.vocab_size
    assert abs(mlm_loss(model, data.val) - entry["metrics"]["val_mlm_loss"]) < 1e-4
    # the comparison can fail: an untrained model is far from it
    assert mlm_loss(BERT(model.config), data.val) > entry["metrics"]["val_mlm_loss"] + 1.0


# --- a chapter's training: trained() and confirm() ----------------------------------------------------

def _train_tiny(calls):
    def train():
        calls.append("trained")
        torch.manual_seed(1)
        model = torch.nn.Linear(3, 2)
        return {"head": model}, {"losses": [2.0, 1.0], "lr": 0.01}
    return train


def _build(kept):
    return {"head": torch.nn.Linear(3, 2)}


def _score(model):
    with torch.no_grad():
        return float(model(torch.ones(1, 3)).sum())


def test_trained_writes_then_loads_and_confirm_checks_the_metrics(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_FAST", raising=False)
    monkeypatch.delenv("COURSE_USE_CHECKPOINTS", raising=False)
    calls = []
    # no switch: trains, writes nothing
    models, kept, loaded = checkpoints.trained("tiny_run", _train_tiny(calls), _build, directory=tmp_path)
    assert calls == ["trained"] and not loaded and not (tmp_path / "tiny_run.pt").exists()
    # writing: trains, saves the models and the kept values; confirm records the metrics
    monkeypatch.setenv("COURSE_WRITE_CHECKPOINTS", "1")
    models, kept, loaded = checkpoints.trained("tiny_run", _train_tiny(calls), _build, directory=tmp_path)
    checkpoints.confirm("tiny_run", {"score": _score(models["head"])}, loaded, directory=tmp_path)
    entry = checkpoints.read_manifest(tmp_path)["tiny_run"]
    assert entry["metrics"] == {"score": _score(models["head"])} and entry["script"] == "scripts/make_checkpoints.py"
    # loading: nothing is trained, the weights and kept values come back, the metrics reproduce
    monkeypatch.delenv("COURSE_WRITE_CHECKPOINTS")
    monkeypatch.setenv("COURSE_USE_CHECKPOINTS", "1")
    again, kept2, loaded = checkpoints.trained("tiny_run", _train_tiny(calls), _build, directory=tmp_path)
    assert loaded and calls == ["trained", "trained"] and kept2 == {"losses": [2.0, 1.0], "lr": 0.01}
    assert torch.equal(again["head"].weight, models["head"].weight)
    checkpoints.confirm("tiny_run", {"score": _score(again["head"])}, loaded, directory=tmp_path)
    # a metric that does not reproduce is named
    with pytest.raises(CheckpointError, match="score"):
        checkpoints.confirm("tiny_run", {"score": _score(again["head"]) + 0.01}, loaded, directory=tmp_path)
    # fast mode never loads (checkpoints hold full-mode models) and never writes
    monkeypatch.setenv("COURSE_FAST", "1")
    _, _, loaded = checkpoints.trained("tiny_run", _train_tiny(calls), _build, directory=tmp_path)
    assert not loaded and calls[-1] == "trained"


def test_trained_without_the_checkpoint_says_how_to_make_it(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_FAST", raising=False)
    monkeypatch.setenv("COURSE_USE_CHECKPOINTS", "1")
    with pytest.raises(CheckpointError, match="'absent' is not in"):
        checkpoints.trained("absent", _train_tiny([]), _build, directory=tmp_path)
    monkeypatch.delenv("COURSE_USE_CHECKPOINTS")
    with pytest.raises(TypeError, match="train: expected"):
        checkpoints.trained("bad", lambda: ([torch.nn.Linear(1, 1)], {}), _build, directory=tmp_path)


def test_every_shipped_checkpoint_is_small_checked_and_has_metrics():
    manifest = checkpoints.read_manifest()
    chapters = {"char_rnn", "adding_problem", "seq2seq_numbers", "seq2seq_controls", "bottleneck_numbers",
                "attention_dates", "transformer_vs_rnn", "gpt_vs_lstm", "gpt_bpe", "vit_cnn_mlp",
                "t5_pretrained_shared", "t5_scratch_shared", "bert_trap", "bert_nsp"}
    chapters |= {f"t5_task_{p}" for p in ("date", "num", "rev", "sort", "add", "addn")}
    chapters |= {f"bert_topics_{w}_{b}" for w in ("pretrained", "scratch") for b in (5, 20, "all")}
    assert chapters | {"bert_pydoc"} <= set(manifest), sorted(manifest)
    for name, entry in manifest.items():
        assert entry["bytes"] <= 4_000_000, (name, entry["bytes"])           # a few MB at most
        assert entry["metrics"], f"{name}: no recorded metrics to reproduce"
        assert (checkpoints.CHECKPOINT_DIR.parent / entry["script"]).exists(), entry["script"]
        load_checkpoint(name)                                               # sha256 checked, weights_only


def test_chapter_02_in_full_mode_loads_its_checkpoint_instead_of_training(tmp_path, monkeypatch):
    # the whole chapter in full mode with COURSE_USE_CHECKPOINTS=1: no training, and the loaded
    # models reproduce the validation MSEs recorded when they were trained (confirm raises otherwise)
    import os
    from pathlib import Path

    import nbformat
    from nbclient import NotebookClient

    repo = Path(__file__).resolve().parent.parent
    monkeypatch.delenv("COURSE_FAST", raising=False)
    monkeypatch.delenv("COURSE_WRITE_CHECKPOINTS", raising=False)
    monkeypatch.setenv("COURSE_USE_CHECKPOINTS", "1")
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    nb = nbformat.read(repo / "notebooks" / "02_lstm_gru.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(repo / "notebooks")}}).execute()
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "checkpoint adding_problem: loaded 3 trained models" in printed
    assert "checkpoint adding_problem: 3 metrics reproduced exactly as recorded" in printed
    assert (tmp_path / "02_full.json").exists()                 # full-mode results, from the loaded models
