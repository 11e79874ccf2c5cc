"""course_lib.grading.ch10_vit: the reference answers pass, and each known mistake, written as the
function a learner would write, gets the message that names it."""

import pytest
import torch
import torch.nn.functional as F

from course_lib.grading import ch10_vit as grading
from grading_support import fails_with


# -- exercise 1: patchify ------------------------------------------------------------------------------

def patchify(images, P):
    B, C, H, W = images.shape
    x = images.reshape(B, C, H // P, P, W // P, P).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(B, (H // P) * (W // P), C * P * P)


def test_patchify_reference_passes():
    grading.check_patchify(patchify)
    grading.check_patchify(patchify, seed=1, channels=1, height=28, width=28, patch_size=7)
    grading.check_patchify(lambda x, P: F.unfold(x, P, stride=P).transpose(1, 2))   # im2col, transposed


def order(o):
    return lambda x, P: grading._patchify_order(x, P, o)


PATCHIFY_MISTAKES = [
    ("plain reshape", lambda x, P: x.reshape(x.shape[0], -1, x.shape[1] * P * P), "without moving any axis"),
    ("channel last", order((0, 2, 4, 3, 5, 1)), "channel comes last"),
    ("column order", order((0, 4, 2, 1, 3, 5)), "column by column"),
    ("patch transposed", order((0, 2, 4, 1, 5, 3)), "rows and columns are swapped"),
    ("unfold no permute", lambda x, P: x.unfold(2, P, P).unfold(3, P, P).reshape(x.shape[0], -1, x.shape[1] * P * P),
     "unfold and reshaped without moving the channel"),
    ("im2col untransposed", lambda x, P: F.unfold(x, P, stride=P), "im2col"),
    ("None", lambda x, P: None, "returned None"),
    ("raises", lambda x, P: x.reshape(5, 7), "raised RuntimeError"),
]


@pytest.mark.parametrize("name, fn, pattern", PATCHIFY_MISTAKES, ids=[m[0] for m in PATCHIFY_MISTAKES])
def test_patchify_mistakes_are_named(name, fn, pattern):
    fails_with(grading.check_patchify, fn, pattern)


# -- exercise 2: [CLS] and positions ---------------------------------------------------------------------

def embed_tokens(x, cls, pos):
    return torch.cat([cls.expand(x.shape[0], -1, -1), x], dim=1) + pos


def test_embed_tokens_reference_passes():
    grading.check_embed_tokens(embed_tokens)
    grading.check_embed_tokens(embed_tokens, seed=1, batch=1, n_patches=9, d=4)


EMBED_MISTAKES = [
    ("cls last", lambda x, c, p: torch.cat([x, c.expand(x.shape[0], -1, -1)], 1) + p, "at the end"),
    ("no positions", lambda x, c, p: torch.cat([c.expand(x.shape[0], -1, -1), x], 1), "forgot the position"),
    ("positions on patches only", lambda x, c, p: torch.cat([c.expand(x.shape[0], -1, -1), x + p[:, 1:]], 1),
     "patches only"),
    ("wrong slice", lambda x, c, p: torch.cat([c.expand(x.shape[0], -1, -1), x + p[:, :-1]], 1),
     "wrong position vectors"),
    ("cls added", lambda x, c, p: x + c, "not added to them"),
    ("cls not expanded", lambda x, c, p: torch.cat([c, x], 1) + p, "expand the \\[CLS\\] token"),
    ("in place", lambda x, c, p: torch.cat([c.expand(x.shape[0], -1, -1), x.add_(0.5)], 1) + p, "in place"),
    ("list", lambda x, c, p: [c, x], "expected a torch.Tensor"),
]


@pytest.mark.parametrize("name, fn, pattern", EMBED_MISTAKES, ids=[m[0] for m in EMBED_MISTAKES])
def test_embed_tokens_mistakes_are_named(name, fn, pattern):
    fails_with(grading.check_embed_tokens, fn, pattern)


# -- exercise 3: shuffle_patches ------------------------------------------------------------------------

def shuffle_patches(images, P, perm):
    B, C, H, W = images.shape
    patches = images.reshape(B, C, H // P, P, W // P, P).permute(0, 2, 4, 1, 3, 5).reshape(B, -1, C, P, P)
    patches = patches[:, perm].reshape(B, H // P, W // P, C, P, P)
    return patches.permute(0, 3, 1, 4, 2, 5).reshape(B, C, H, W)


def test_shuffle_patches_reference_passes():
    grading.check_shuffle_patches(shuffle_patches)
    grading.check_shuffle_patches(shuffle_patches, seed=1, channels=1, height=28, width=28, patch_size=7)


SHUFFLE_MISTAKES = [
    ("inverse", lambda x, P, perm: shuffle_patches(x, P, torch.argsort(perm)), "inverse permutation"),
    ("transposed patches", lambda x, P, perm: grading._shuffle(x, P, perm, transpose_patch=True), "comes out transposed"),
    ("column grid", lambda x, P, perm: grading._shuffle(x, P, perm, transpose_grid=True), "column by column"),
    ("unchanged", lambda x, P, perm: x.clone(), "unchanged"),
    ("pixels changed", lambda x, P, perm: shuffle_patches(x, P, perm) * 2, "not those of the input"),
]


@pytest.mark.parametrize("name, fn, pattern", SHUFFLE_MISTAKES, ids=[m[0] for m in SHUFFLE_MISTAKES])
def test_shuffle_patches_mistakes_are_named(name, fn, pattern):
    fails_with(grading.check_shuffle_patches, fn, pattern)


# -- exercise 4: the prediction ---------------------------------------------------------------------------

def test_the_right_prediction_passes():
    grading.check_patch_order_prediction(lambda: {"with_positions": False, "without_positions": True})


PREDICTION_MISTAKES = [
    ("both invariant", lambda: {"with_positions": True, "without_positions": True}, "pairs each one with another position"),
    ("neither", lambda: {"with_positions": False, "without_positions": False}, "as a set"),
    ("strings", lambda: {"with_positions": "no", "without_positions": "yes"}, "True or False"),
    ("wrong keys", lambda: {"positions": False}, "expected a dict with the keys"),
    ("not answered", lambda: (_ for _ in ()).throw(NotImplementedError()), "not answered yet"),
]


@pytest.mark.parametrize("name, fn, pattern", PREDICTION_MISTAKES, ids=[m[0] for m in PREDICTION_MISTAKES])
def test_prediction_mistakes_are_named(name, fn, pattern):
    fails_with(grading.check_patch_order_prediction, fn, pattern)
