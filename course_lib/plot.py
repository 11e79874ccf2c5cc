"""The course's plotting helpers: loss curves, heatmaps (attention, alignments), gradient norms."""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np


def _axes(ax, figsize=(5, 3.5)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def loss_curves(curves: Mapping[str, Sequence[float]], ax=None, xlabel: str = "epoch",
                ylabel: str = "loss", title: str = "", baseline: Optional[float] = None,
                baseline_label: str = "baseline"):
    """One line per named curve, e.g. ``{"train": h.train_loss, "val": h.val_loss}``."""
    if not curves:
        raise ValueError("curves: expected at least one named curve, got none")
    ax = _axes(ax)
    for name, values in curves.items():
        ax.plot(np.arange(1, len(values) + 1), values, marker="o" if len(values) < 30 else None,
                label=name)
    if baseline is not None:
        ax.axhline(baseline, color="grey", linestyle="--", label=baseline_label)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend()
    return ax


def heatmap(matrix, x_labels: Optional[Sequence[str]] = None, y_labels: Optional[Sequence[str]] = None,
            ax=None, title: str = "", xlabel: str = "", ylabel: str = "", cmap: str = "viridis",
            colorbar: bool = True):
    """A (rows, cols) matrix as an image, e.g. attention weights (T queries x S keys)."""
    matrix = np.asarray(matrix.detach().cpu() if hasattr(matrix, "detach") else matrix, dtype=float)
    if matrix.ndim != 2:
        raise ValueError(f"matrix: expected 2 dims (rows, cols), got shape {matrix.shape}")
    for name, labels, size in (("x_labels", x_labels, matrix.shape[1]), ("y_labels", y_labels, matrix.shape[0])):
        if labels is not None and len(labels) != size:
            raise ValueError(f"{name}: expected {size} labels for the matrix, got {len(labels)}")
    ax = _axes(ax, figsize=(max(3, 0.35 * matrix.shape[1] + 1.5), max(3, 0.35 * matrix.shape[0] + 1)))
    image = ax.imshow(matrix, cmap=cmap, aspect="auto")
    if x_labels is not None:
        ax.set_xticks(range(len(x_labels)), x_labels, rotation=90)
    if y_labels is not None:
        ax.set_yticks(range(len(y_labels)), y_labels)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if colorbar:
        ax.figure.colorbar(image, ax=ax)
    return ax


def grad_norm_vs_distance(distances: Sequence[int], norms: Mapping[str, Sequence[float]], ax=None,
                          title: str = "gradient norm against distance"):
    """Gradient norm (log scale) against how many steps back it flows, one line per setting."""
    ax = _axes(ax)
    for name, values in norms.items():
        if len(values) != len(distances):
            raise ValueError(f"norms[{name!r}]: expected {len(distances)} values, got {len(values)}")
        ax.semilogy(distances, np.maximum(np.asarray(values, dtype=float), 1e-30), label=name)
    ax.set(xlabel="distance k = T - t (steps back)", ylabel="||dL/dh_t||", title=title)
    ax.legend()
    return ax
