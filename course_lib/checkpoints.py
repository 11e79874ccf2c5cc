"""Checkpoints that ship with the course: ``checkpoints/NAME.pt`` plus one entry per file in
``checkpoints/manifest.json`` (sha256, size, the metrics measured when it was written, the script
and arguments that remake it). Loading checks the checksum and uses ``weights_only=True``, so a
checkpoint can hold tensors and plain values (numbers, strings, lists, dicts) but never code.

    save_checkpoint("bert_pydoc", model, {"val_mlm_loss": 4.1}, extra={"vocab": itos},
                    script="scripts/make_bert_checkpoint.py", args=["--steps", "2000"])
    extra = load_checkpoint("bert_pydoc", model)      # model now holds the saved weights
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Optional, Sequence

import torch

CHECKPOINT_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
_NAME_RE = re.compile(r"^[A-Za-z0-9_\-]+$")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, not in the manifest, or does not match its checksum."""


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"name: expected a plain name of letters, digits, '_' or '-' (the file is "
                         f"NAME.pt), got {name!r}")
    return name


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(directory: os.PathLike | str | None = None) -> dict:
    """The manifest as a dict name -> entry ({} when there is none yet)."""
    path = Path(directory or CHECKPOINT_DIR) / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else {}


def save_checkpoint(name: str, model: torch.nn.Module, metrics: dict, *, extra: Optional[dict] = None,
                    script: Optional[str] = None, args: Sequence[str] = (),
                    directory: os.PathLike | str | None = None) -> dict:
    """Write ``model.state_dict()`` (and ``extra``, plain values only) to ``NAME.pt`` and its
    manifest entry; returns the entry. ``metrics`` are the numbers a loader should reproduce."""
    _check_name(name)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(metrics, dict):
        raise TypeError(f"metrics: expected a dict of name -> number, got {type(metrics).__name__}")
    directory = Path(directory or CHECKPOINT_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.pt"
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "extra": extra or {}}, path)
    entry = {"file": path.name, "sha256": _sha256(path), "bytes": path.stat().st_size,
             "metrics": metrics, "script": script, "args": list(args), "torch": torch.__version__,
             "written": datetime.date.today().isoformat()}
    manifest = read_manifest(directory)
    manifest[name] = entry
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return entry


def load_checkpoint(name: str, model: Optional[torch.nn.Module] = None, *,
                    directory: os.PathLike | str | None = None) -> dict:
    """Load ``NAME.pt`` into ``model`` (every key must match) after checking its sha256 against
    the manifest; returns the checkpoint's ``extra`` dict with the manifest entry under "manifest".
    With ``model=None`` only the checked ``extra`` is returned (e.g. the config to build the model)."""
    _check_name(name)
    if model is not None and not isinstance(model, torch.nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    directory = Path(directory or CHECKPOINT_DIR)
    manifest = read_manifest(directory)
    if name not in manifest:
        raise CheckpointError(f"name: {name!r} is not in {directory / 'manifest.json'} "
                              f"(known: {sorted(manifest)}); run the script that makes it")
    entry = manifest[name]
    path = directory / entry["file"]
    if not path.exists():
        raise CheckpointError(f"{path} is missing; remake it with {entry.get('script')} {' '.join(entry.get('args', []))}")
    got = _sha256(path)
    if got != entry["sha256"]:
        raise CheckpointError(f"{path} has sha256 {got}, the manifest expects {entry['sha256']}: the "
                              "file is corrupt or was changed; remake it with its script")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if model is None:
        return {**saved["extra"], "manifest": entry}
    try:
        model.load_state_dict(saved["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(f"model: does not fit checkpoint {name!r}: {err}") from None
    return {**saved["extra"], "manifest": entry}
