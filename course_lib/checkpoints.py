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
from typing import Callable, Optional, Sequence

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


# --- a chapter's long training, trained or loaded (COURSE_USE_CHECKPOINTS=1) ---------------------------

def _flag(name: str) -> bool:
    return os.environ.get(name, "0").strip().lower() in {"1", "true", "yes", "on"}


def use_checkpoints() -> bool:
    """True when ``COURSE_USE_CHECKPOINTS=1`` in full mode: chapters load their shipped models
    instead of training them. Checkpoints hold full-mode models, so fast mode always trains."""
    from .utils import fast_mode
    return _flag("COURSE_USE_CHECKPOINTS") and not fast_mode()


def trained(name: str, train: Callable[[], tuple[dict, dict]], build: Callable[[dict], dict], *,
            directory: os.PathLike | str | None = None) -> tuple[dict, dict, bool]:
    """A chapter's long training, or its checkpoint.

    ``train()`` trains and returns ``(models, kept)``: a dict name -> nn.Module and a dict of plain
    values the chapter needs later (loss curves, chosen learning rates, training times).
    ``build(kept)`` returns the same models untrained (built from ``kept``, e.g. its configs).
    Returns ``(models, kept, loaded)``:

    - with ``COURSE_USE_CHECKPOINTS=1`` (full mode) the checkpoint ``NAME`` is loaded (sha256
      checked, ``weights_only=True``) into ``build(kept)``; nothing is trained;
    - otherwise ``train()`` runs, and with ``COURSE_WRITE_CHECKPOINTS=1`` (full mode) its models and
      ``kept`` are written to ``checkpoints/NAME.pt``; :func:`confirm` then records the metrics.
    """
    if use_checkpoints():
        kept = load_checkpoint(name, directory=directory)
        kept.pop("manifest")
        models = build(kept)
        load_checkpoint(name, torch.nn.ModuleDict(models), directory=directory)
        print(f"checkpoint {name}: loaded {len(models)} trained models instead of training "
              f"(COURSE_USE_CHECKPOINTS=1); unset it to train them here")
        return models, kept, True
    models, kept = train()
    if not isinstance(models, dict) or not all(isinstance(m, torch.nn.Module) for m in models.values()):
        raise TypeError(f"train: expected to return (dict of name -> nn.Module, dict), got models {type(models).__name__}")
    if _flag("COURSE_WRITE_CHECKPOINTS") and not use_checkpoints():
        from .utils import fast_mode
        if fast_mode():
            print(f"checkpoint {name}: not written in fast mode (checkpoints hold full-mode models)")
        else:
            save_checkpoint(name, torch.nn.ModuleDict(models), {}, extra=kept,
                            script="scripts/make_checkpoints.py", directory=directory)
            print(f"checkpoint {name}: written (COURSE_WRITE_CHECKPOINTS=1); confirm() records its metrics")
    return models, kept, False


def confirm(name: str, metrics: dict, loaded: bool, *, tolerance: float = 1e-6,
            directory: os.PathLike | str | None = None) -> None:
    """After the chapter evaluated the models of :func:`trained`: when they were loaded, check that
    ``metrics`` (name -> number) reproduce the ones recorded when the checkpoint was written, and
    raise CheckpointError naming any that differ; when they were just written, record them."""
    metrics = {str(k): float(v) for k, v in metrics.items()}
    directory = Path(directory or CHECKPOINT_DIR)
    if loaded:
        recorded = read_manifest(directory)[name]["metrics"]
        differ = {k: (v, recorded.get(k)) for k, v in metrics.items()
                  if recorded.get(k) is None or abs(v - recorded[k]) > tolerance}
        if differ:
            raise CheckpointError(f"checkpoint {name}: metrics (reproduced, recorded) differ: {differ}")
        print(f"checkpoint {name}: {len(metrics)} metrics reproduced exactly as recorded")
        return
    manifest = read_manifest(directory)
    if _flag("COURSE_WRITE_CHECKPOINTS") and name in manifest and not manifest[name]["metrics"]:
        manifest[name]["metrics"] = metrics
        (directory / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        print(f"checkpoint {name}: recorded {len(metrics)} metrics")
