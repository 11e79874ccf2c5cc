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


def patch_heatmap(values, image=None, ax=None, title: str = "", cmap: str = "inferno",
                  alpha: float = 0.55, colorbar: bool = False):
    """Values over a square grid of patches (chapter 10), e.g. the [CLS] token's attention to the
    N patches of a ViT: ``values`` (N,) in patch order (row by row) or (rows, cols). With ``image``
    (H, W) or (1, H, W), the grey image is drawn and the grid stretched over it."""
    grid = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=float)
    if grid.ndim == 1:
        side = int(round(grid.size ** 0.5))
        if side * side != grid.size:
            raise ValueError(f"values: expected N = a square number of patches or a (rows, cols) grid, "
                             f"got {grid.size} values")
        grid = grid.reshape(side, side)
    if grid.ndim != 2:
        raise ValueError(f"values: expected shape (N,) or (rows, cols), got {grid.shape}")
    ax = _axes(ax, figsize=(3, 3))
    if image is None:
        shown = ax.imshow(grid, cmap=cmap)
    else:
        pixels = np.asarray(image.detach().cpu() if hasattr(image, "detach") else image, dtype=float)
        pixels = pixels[0] if pixels.ndim == 3 else pixels
        if pixels.ndim != 2:
            raise ValueError(f"image: expected shape (H, W) or (1, H, W), got {pixels.shape}")
        height, width = pixels.shape
        ax.imshow(pixels, cmap="gray", extent=(0, width, height, 0))
        shown = ax.imshow(grid, cmap=cmap, alpha=alpha, extent=(0, width, height, 0), interpolation="nearest")
    ax.set(title=title, xticks=[], yticks=[])
    if colorbar:
        ax.figure.colorbar(shown, ax=ax)
    return ax
