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
