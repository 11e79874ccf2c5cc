"""course_lib.grading.ch08_bert: the reference answers pass, and each known mistake, written as
the function a learner would write, gets the message that names it."""

import pytest
import torch

from course_lib.grading import ch08_bert as grading
from grading_support import fails_with


# -- exercise 1: the 80-10-10 masking -------------------------------------------------------------

def mask_80_10_10(ids, u, v, random_ids, is_special, mask_id, mask_prob=0.15):
    chosen = (u < mask_prob) & ~is_special
    inputs = torch.where(chosen & (v < 0.8), torch.full_like(ids, mask_id), ids)
    inputs = torch.where(chosen & (v >= 0.8) & (v < 0.9), random_ids, inputs)
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    return inputs, labels


def in_place(ids, u, v, random_ids, is_special, mask_id, mask_prob=0.15):
    inputs, labels = mask_80_10_10(ids, u, v, random_ids, is_special, mask_id, mask_prob)
    ids.copy_(inputs)
    return ids, labels


def variant(**kw):
    def fn(ids, u, v, random_ids, is_special, mask_id, mask_prob=0.15):
        chosen = (u < mask_prob) & ~is_special
        rules = dict(kw)
        if rules.pop("specials", False):
            rules["chosen_rule"] = u < mask_prob
        if rules.pop("unchosen", False):
            rules["mask_where"] = ~chosen & (v < 0.8)
        return grading._reference_mask(ids, u, v, random_ids, is_special, mask_id, mask_prob, **rules)
    return fn


def labels_minus_one(*args):
    inputs, labels = mask_80_10_10(*args)
    return inputs, torch.where(labels == -100, torch.full_like(labels, -1), labels)


MASK_MISTAKES = [
    ("specials masked", variant(specials=True), "special tokens"),
    ("mask on unchosen", variant(unchosen=True), "NOT chosen"),
    ("all masked", variant(split=(1.0, 1.0)), "every chosen position became"),
    ("10 percent masked", variant(split=(0.1, 0.2)), "v < 0.1"),
    ("labels everywhere", variant(labels_rule="all"), "labels are set on every position"),
    ("labels on mask only", variant(labels_rule="mask"), "only where \\[MASK\\] was put"),
    ("labels -1", labels_minus_one, "not -1"),
    ("in place", in_place, "in place"),
    ("one value", lambda *a: mask_80_10_10(*a)[0], "expected a pair"),
    ("None", lambda *a: None, "expected a pair"),
    ("raises", lambda *a: 1 / 0, "ZeroDivisionError"),
]


def test_mask_reference_passes():
    grading.check_mask_80_10_10(mask_80_10_10)
    grading.check_mask_80_10_10(mask_80_10_10, seed=1, B=3, T=25, mask_prob=0.3)


@pytest.mark.parametrize("name, fn, pattern", MASK_MISTAKES, ids=[m[0] for m in MASK_MISTAKES])
def test_mask_mistakes_are_named(name, fn, pattern):
    fails_with(grading.check_mask_80_10_10, fn, pattern)


# -- exercise 2: the padding attention mask ---------------------------------------------------------

def attention_mask(ids, pad_id=0):
    return (ids != pad_id)[:, None, None, :]


MASK2_MISTAKES = [
    ("inverted", lambda ids, pad_id=0: (ids == pad_id)[:, None, None, :], "inverted"),
    ("queries", lambda ids, pad_id=0: (ids != pad_id)[:, None, :, None], "queries \\(rows\\)"),
    ("square rows", lambda ids, pad_id=0: (ids != pad_id)[:, None, :, None].expand(-1, 1, -1, ids.shape[1]),
     "hides padded queries"),
    ("flat", lambda ids, pad_id=0: ids != pad_id, "\\(B, 1, 1, T\\)"),
    ("float", lambda ids, pad_id=0: (ids != pad_id)[:, None, None, :].float(), "bool"),
    ("None", lambda ids, pad_id=0: None, "returned None"),
]


def test_attention_mask_reference_passes():
    grading.check_attention_mask(attention_mask)
    grading.check_attention_mask(attention_mask, seed=1, lengths=(3, 5, 5, 1), T=5, pad_id=0)


@pytest.mark.parametrize("name, fn, pattern", MASK2_MISTAKES, ids=[m[0] for m in MASK2_MISTAKES])
def test_attention_mask_mistakes_are_named(name, fn, pattern):
    fails_with(grading.check_attention_mask, fn, pattern)


# -- exercise 3: the changed fraction ---------------------------------------------------------------

def changed_fraction(mask_prob, n_candidates):
    return mask_prob * (0.8 + 0.1 * (1 - 1 / n_candidates))


def test_changed_fraction_reference_passes_and_matches_a_simulation():
    grading.check_changed_fraction(changed_fraction)
    from course_lib.bert import mask_tokens

    ids = torch.randint(7, 17, (300, 300), generator=torch.Generator().manual_seed(0))
    inputs, _ = mask_tokens(ids, 17, 6, list(range(7)), generator=torch.Generator().manual_seed(1))
    share = (inputs != ids).float().mean().item()
    assert abs(share - changed_fraction(0.15, 10)) < 0.004


CHANGED_MISTAKES = [
    ("all chosen", lambda p, n: p, "every chosen position"),
    ("only mask", lambda p, n: 0.8 * p, "only the \\[MASK\\]ed"),
    ("no collision", lambda p, n: 0.9 * p, "draw the original token"),
    ("unchanged", lambda p, n: 1 - changed_fraction(p, n), "unchanged instead"),
    ("other", lambda p, n: 0.5, "expected"),
    ("string", lambda p, n: "0.135", "expected a float"),
]


@pytest.mark.parametrize("name, fn, pattern", CHANGED_MISTAKES, ids=[m[0] for m in CHANGED_MISTAKES])
def test_changed_fraction_mistakes_are_named(name, fn, pattern):
    fails_with(grading.check_changed_fraction, fn, pattern)
