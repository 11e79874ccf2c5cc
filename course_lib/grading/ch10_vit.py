"""Check helpers for the exercises of chapter 10 (the Vision Transformer).

One helper per exercise; each builds its inputs from ``seed``, calls the learner's function
safely, and names the usual mistake when the answer is wrong:

1. ``check_patchify``: a plain reshape without moving the axes (rows of pixels instead of
   patches), the channel put last inside a patch, the grid read column by column, the pixel rows and
   columns of a patch swapped, ``unfold`` reshaped without moving the channel axis, im2col's
   (B, C P², N) layout returned untransposed;
2. ``check_embed_tokens``: [CLS] put last, position embeddings forgotten, added to the patches only
   or with the wrong slice, [CLS] added instead of concatenated, [CLS] not expanded over the batch;
3. ``check_shuffle_patches``: the inverse permutation, the grid or the patches reassembled transposed;
4. ``check_patch_order_prediction``: a wrong prediction about permutation invariance with and
   without position embeddings, explained by the measurement.

Glossary: B batch, C image channels, H x W pixels, P patch size, N patches, d token width.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..vit import ViT, ViTConfig, patchify
from .core import Feedback, call, checker, describe, expect_close, expect_tensor, generator


_gen = generator


def _patchify_order(images: torch.Tensor, P: int, order: tuple) -> torch.Tensor:
    """Patches with the axes of (B, C, rows, P, cols, P) = (0, 1, 2, 3, 4, 5) permuted by ``order``."""
    B, C, H, W = images.shape
    x = images.reshape(B, C, H // P, P, W // P, P).permute(*order)
    return x.reshape(B, (H // P) * (W // P), C * P * P)


# -- exercise 1: patchify -------------------------------------------------------------------------------

@checker
def check_patchify(patchify_fn: Callable, *, seed: int = 0, batch: int = 2, channels: int = 3,
                   height: int = 8, width: int = 12, patch_size: int = 4) -> None:
    """``patchify(images (B, C, H, W), P)`` must return (B, N, C * P * P): patches row by row over the
    grid, each flattened channel first, then pixel row, then pixel column (a Conv2d weight's order)."""
    P = patch_size
    images = torch.randn(batch, channels, height, width, generator=_gen(10100 + seed))
    N, D = (height // P) * (width // P), channels * P * P
    got = call(patchify_fn, images, P, name="patchify", hints={
        "shape '[": "reshape needs the sizes to multiply to the same total: (B, C, H, W) -> "
                    "(B, C, H/P, P, W/P, P) first."})
    if isinstance(got, torch.Tensor) and tuple(got.shape) == (batch, D, N) and D != N:
        raise Feedback(f"`patchify` returned shape {tuple(got.shape)} = (B, C*P*P, N): the layout of "
                       "torch.nn.functional.unfold (im2col). The tokens must be the rows: transpose "
                       "to (B, N, C*P*P) with .transpose(1, 2).")
    got = expect_tensor(got, {"B": batch, "N": N, "C*P*P": D}, "patchify")
    want = patchify(images, P)
    B, C, H, W = images.shape
    expect_close(got, want, "patchify", mistakes={
        "you reshaped (B, C, H, W) straight to (B, N, C*P*P) without moving any axis, so each 'patch' "
        "is a run of consecutive pixels (rows of the image), not a P x P square. Reshape to "
        "(B, C, H/P, P, W/P, P), permute to (B, H/P, W/P, C, P, P), then reshape.":
            lambda: images.reshape(B, N, D),
        "inside each patch the channel comes last (P, P, C); the order must be channel first, then "
        "pixel row, then pixel column (C, P, P), the order of a Conv2d weight (d, C, P, P): permute "
        "to (B, rows, cols, C, P, P).": lambda: _patchify_order(images, P, (0, 2, 4, 3, 5, 1)),
        "the patches run column by column over the grid; they must run row by row (left to right, "
        "then top to bottom): put the grid-row axis (H/P) before the grid-column axis (W/P).":
            lambda: _patchify_order(images, P, (0, 4, 2, 1, 3, 5)),
        "inside each patch the pixel rows and columns are swapped (each patch is transposed): "
        "the order is (C, pixel row, pixel column).": lambda: _patchify_order(images, P, (0, 2, 4, 1, 5, 3)),
        "you used unfold and reshaped without moving the channel axis, so one token mixes several "
        "patches. After images.unfold(2, P, P).unfold(3, P, P) (B, C, rows, cols, P, P), permute to "
        "(B, rows, cols, C, P, P) before reshaping.":
            lambda: images.unfold(2, P, P).unfold(3, P, P).reshape(B, N, D),
        "the channels are not flattened into the patch vector in the right place: each token must "
        "hold all C channels of its patch, (C, P, P) flattened.":
            lambda: _patchify_order(images, P, (0, 1, 2, 4, 3, 5)).reshape(B, C, N, P * P)
            .permute(0, 2, 1, 3).reshape(B, N, D),
    })


# -- exercise 2: [CLS] and position embeddings ----------------------------------------------------------

@checker
def check_embed_tokens(embed_tokens: Callable, *, seed: int = 0, batch: int = 3, n_patches: int = 4,
                       d: int = 6) -> None:
    """``embed_tokens(patch_embeddings (B, N, d), cls_token (1, 1, d), pos_embedding (1, N + 1, d))``
    must return (B, N + 1, d): [CLS] in front of the patches, then every token plus its position."""
    g = _gen(10200 + seed)
    x = torch.randn(batch, n_patches, d, generator=g)
    cls = torch.randn(1, 1, d, generator=g)
    pos = torch.randn(1, n_patches + 1, d, generator=g)
    got = call(embed_tokens, x, cls, pos, name="embed_tokens", hints={
        "Sizes of tensors must match": "cls_token is (1, 1, d) and the patches (B, N, d): expand the "
                                       "[CLS] token to (B, 1, d) with cls_token.expand(B, -1, -1) before torch.cat.",
        "must match the size of tensor b": "check which axis you concatenate on (dim=1, the tokens) and "
                                           "that the [CLS] token is expanded to (B, 1, d)."})
    if isinstance(got, torch.Tensor) and tuple(got.shape) == (batch, n_patches, d):
        raise Feedback(f"`embed_tokens` returned {n_patches} tokens, shape {tuple(got.shape)}: the [CLS] "
                       "token must be an extra token in front of the patches (torch.cat along dim 1), "
                       "not added to them; the result has N + 1 tokens.")
    got = expect_tensor(got, {"B": batch, "N + 1": n_patches + 1, "d": d}, "embed_tokens")
    tokens = torch.cat([cls.expand(batch, 1, d), x], dim=1)
    want = tokens + pos
    expect_close(got, want, "embed_tokens", mistakes={
        "the [CLS] token is at the end; it goes first (position 0), in front of the patches: "
        "torch.cat([cls, patches], dim=1).": lambda: torch.cat([x, cls.expand(batch, 1, d)], 1) + pos,
        "you forgot the position embeddings: add pos_embedding to the N + 1 tokens.": lambda: tokens,
        "the position embeddings went to the patches only; the [CLS] token has a position too "
        "(pos_embedding[:, 0]): concatenate first, then add all N + 1 position vectors.":
            lambda: torch.cat([cls.expand(batch, 1, d), x + pos[:, 1:]], 1),
        "the patches got the wrong position vectors (pos_embedding[:, :N]) and [CLS] none: concatenate "
        "first, then add all N + 1 position vectors.":
            lambda: torch.cat([cls.expand(batch, 1, d), x + pos[:, :-1]], 1),
        "the [CLS] token was added to the positions of the patches as well: put it in front once, then "
        "add pos_embedding.": lambda: torch.cat([cls.expand(batch, 1, d), x + cls], 1) + pos,
    })


# -- exercise 3: shuffling the patches of an image --------------------------------------------------------

def _shuffle(images: torch.Tensor, P: int, perm: torch.Tensor, transpose_patch: bool = False,
             transpose_grid: bool = False) -> torch.Tensor:
    B, C, H, W = images.shape
    rows, cols = H // P, W // P
    grid = images.reshape(B, C, rows, P, cols, P).permute(0, 2, 4, 1, 3, 5).reshape(B, rows * cols, C, P, P)
    grid = grid[:, perm]
    if transpose_patch:
        grid = grid.transpose(-1, -2)
    if transpose_grid:  # patch k of the result placed column by column
        grid = grid.reshape(B, cols, rows, C, P, P).transpose(1, 2)
    grid = grid.reshape(B, rows, cols, C, P, P)
    return grid.permute(0, 3, 1, 4, 2, 5).reshape(B, C, H, W)


@checker
def check_shuffle_patches(shuffle_patches: Callable, *, seed: int = 0, batch: int = 2, channels: int = 2,
                          height: int = 8, width: int = 12, patch_size: int = 4) -> None:
    """``shuffle_patches(images (B, C, H, W), P, perm (N,))`` must return the images (B, C, H, W) whose
    patch i (row by row) is patch perm[i] of the input."""
    P = patch_size
    g = _gen(10300 + seed)
    images = torch.randn(batch, channels, height, width, generator=g)
    N = (height // P) * (width // P)
    perm = torch.randperm(N, generator=g)
    while torch.equal(perm[perm], torch.arange(N)):  # the inverse must differ from perm itself
        perm = torch.randperm(N, generator=g)
    got = call(shuffle_patches, images, P, perm, name="shuffle_patches")
    got = expect_tensor(got, {"B": batch, "C": channels, "H": height, "W": width}, "shuffle_patches")
    want = _shuffle(images, P, perm)
    mistakes = {
        "you applied the inverse permutation: patch perm[i] of your result is patch i of the input. "
        "Patch i of the result must be patch perm[i] of the input: patches[:, perm].":
            lambda: _shuffle(images, P, torch.argsort(perm)),
        "every patch comes out transposed: when you put the patches back, the pixel-row axis must "
        "go with H and the pixel-column axis with W.": lambda: _shuffle(images, P, perm, transpose_patch=True),
        "the shuffled patches are put back column by column; the grid runs row by row, as in patchify.":
            lambda: _shuffle(images, P, perm, transpose_grid=True),
        "you returned the images unchanged: the patches are not moved.": lambda: images,
    }
    if not torch.equal(torch.sort(got.flatten()).values, torch.sort(images.flatten()).values):
        raise Feedback("`shuffle_patches` returned pixel values that are not those of the input: "
                       "shuffling patches only moves pixels, it never changes or mixes them. Check "
                       "your reshapes (B, C, H/P, P, W/P, P) on the way in and out.")
    expect_close(got, want, "shuffle_patches", mistakes=mistakes, atol=0.0, rtol=0.0)


# -- exercise 4: a prediction about patch order -------------------------------------------------------------

@checker
def check_patch_order_prediction(predict: Callable, *, seed: int = 0) -> None:
    """``predict()`` must return {"with_positions": bool, "without_positions": bool}: True where the
    logits stay the same (to 1e-5) when the patches of the images are shuffled. The check measures it."""
    got = call(predict, name="predict_patch_order")
    keys = {"with_positions", "without_positions"}
    if not isinstance(got, dict) or set(got) != keys:
        raise Feedback(f"`predict_patch_order` returned {describe(got)}; expected a dict with the keys "
                       "'with_positions' and 'without_positions', each True or False.")
    for key, value in got.items():
        if not isinstance(value, bool):
            raise Feedback(f"`predict_patch_order`: {key!r} should be True or False, got {describe(value)}.")
    g = _gen(10400 + seed)
    images = torch.rand(4, 1, 28, 28, generator=g)
    perm = torch.randperm(16, generator=g)
    gaps = {}
    for key, positions in (("with_positions", True), ("without_positions", False)):
        torch.manual_seed(10400 + seed)
        model = ViT(ViTConfig(positions=positions, n_layers=2, d_model=32, d_ff=64)).eval()
        with torch.no_grad():
            if positions:
                model.positions.weight.normal_()      # trained position vectors are not tiny
            gaps[key] = (model(_shuffle(images, 7, perm)) - model(images)).abs().max().item()
    measured = {key: gap < 1e-5 for key, gap in gaps.items()}
    if got["without_positions"] != measured["without_positions"]:
        raise Feedback(
            f"without position embeddings you predicted the logits {'stay' if got['without_positions'] else 'change'}"
            f"; measured, they move by {gaps['without_positions']:.1e}, i.e. not at all. Self-attention "
            "treats its tokens as a set: shuffling the patches shuffles the keys and values, and the [CLS] "
            "query's weighted sum over them is the same in any order.")
    if got["with_positions"] != measured["with_positions"]:
        raise Feedback(
            f"with learned position embeddings you predicted the logits {'stay' if got['with_positions'] else 'change'}"
            f"; measured, they move by up to {gaps['with_positions']:.2f}. Each token is patch + position "
            "vector; shuffling the patches pairs each one with another position, so the tokens themselves "
            "change, not just their order.")
