"""course_lib.grading.ch11_efficient_attention: the reference answers pass, and each known mistake,
written as the function a learner would write, gets the message that names it."""
import math

import pytest
import torch

from course_lib.grading import ch11_efficient_attention as grading
from grading_support import fails_with



LARGE = {"seed": 1, "offset": 1000.0}   # exp(score) overflows even float64 there


# -- exercise 1: the online softmax over a stream -------------------------------------------------------

def online_softmax_stats(blocks):
    m, l = torch.tensor(float("-inf"), dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
    for x in blocks:
        m_new = torch.maximum(m, x.max())
        l = l * torch.exp(m - m_new) + torch.exp(x - m_new).sum()
        m = m_new
    return m, l


def make_stats(rescale=lambda m, m_new: torch.exp(m - m_new), combine=torch.maximum, raw=False, m0=float("-inf")):
    def stats(blocks):
        m, l = torch.tensor(m0, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
        for x in blocks:
            m_new = combine(m, x.max())
            l = l + torch.exp(x).sum() if raw else l * rescale(m, m_new) + torch.exp(x - m_new).sum()
            m = m_new
        return m, l
    return stats


def python_floats(blocks):  # a plain-Python loop returning floats is right too
    m, l = float("-inf"), 0.0
    for x in blocks:
        for xj in x.tolist():
            m_new = max(m, xj)
            l = l * math.exp(m - m_new) + math.exp(xj - m_new)
            m = m_new
    return m, l


@pytest.mark.parametrize("kwargs", [{}, {"seed": 1, "n_blocks": 10, "block": 1}, {"seed": 2, "n_blocks": 1}, LARGE])
def test_stats_reference_passes(kwargs):
    grading.check_online_softmax_stats(online_softmax_stats, **kwargs)
    grading.check_online_softmax_stats(python_floats, **kwargs)


def test_stats_in_float32_is_accepted():
    def float32(blocks):
        m, l = torch.tensor(float("-inf")), torch.tensor(0.0)
        for x in blocks:
            x = x.float()
            m_new = torch.maximum(m, x.max())
            l = l * torch.exp(m - m_new) + torch.exp(x - m_new).sum()
            m = m_new
        return m, l

    for kwargs in ({}, LARGE, {"seed": 1, "n_blocks": 10, "block": 1}):
        grading.check_online_softmax_stats(float32, **kwargs)


def test_stats_reading_everything_first_is_accepted():
    def two_passes_over_a_list(blocks):
        x = torch.cat(list(blocks))
        return x.max(), torch.exp(x - x.max()).sum()

    grading.check_online_softmax_stats(two_passes_over_a_list)


def read_twice(blocks):
    m = max(x.max() for x in blocks)
    return m, sum(torch.exp(x - m).sum() for x in blocks)


STATS_MISTAKES = [
    (make_stats(rescale=lambda m, m_new: 1.0), "forgot to rescale the old sum", {}),
    (make_stats(rescale=lambda m, m_new: torch.exp(m_new - m)), r"NaN or inf even on small values.*exp\(m_old - m_new\)", {}),
    (make_stats(rescale=lambda m, m_new: torch.exp(m_new - m), m0=-50.0), "the rescaling factor has the wrong sign", {}),
    (make_stats(combine=lambda m, b: m + b, m0=0.0), "m is the sum of the blocks' maxima", {}),
    (make_stats(raw=True), r"l is the sum of exp\(x\), not of exp\(x - m\)", {}),
    (make_stats(raw=True), r"an overflow\. With values around 1000, exp\(x\) is inf", LARGE),
    (lambda blocks: (lambda bl: (bl[0].max(), online_softmax_stats(bl)[1]))(list(blocks)),
     "m is the max of the first block only", {}),
    (read_twice, "read `blocks` a second time; a stream can be read only once", {}),
    (lambda blocks: (len(blocks), 0.0), r"raised TypeError.*Hint: `blocks` is a stream", {}),
    (lambda blocks: blocks[0], r"raised TypeError.*cannot be indexed", {}),
    (lambda blocks: online_softmax_stats(blocks)[1], r"returned a torch.Tensor .*expected a pair \(m, l\)", {}),
    (lambda blocks: None, r"returned None; expected a pair \(m, l\)", {}),
    (lambda blocks: (torch.zeros(3), 1.0), r"for m; expected one number", {}),
    (lambda blocks: (next(iter(blocks)).max(), 1.0), "read 1 of the 6 blocks", {}),
]


@pytest.mark.parametrize("fn, pattern, kwargs", STATS_MISTAKES, ids=range(len(STATS_MISTAKES)))
def test_stats_mistakes_are_named(fn, pattern, kwargs):
    fails_with(grading.check_online_softmax_stats, fn, pattern, **kwargs)


def test_stats_log_of_the_sum_is_named():
    fails_with(grading.check_online_softmax_stats, lambda b: (lambda m, l: (m, torch.log(l)))(*online_softmax_stats(b)),
               r"l is log\(sum of exp\(x - m\)\)")


# -- exercise 2: merging two blocks' states -------------------------------------------------------------

def merge_states(m1, l1, o1, m2, l2, o2):
    m = torch.maximum(m1, m2)
    a1, a2 = torch.exp(m1 - m), torch.exp(m2 - m)
    return m, a1 * l1 + a2 * l2, a1[..., None] * o1 + a2[..., None] * o2


def merge_via_lse(m1, l1, o1, m2, l2, o2):  # another right answer, through the log-sum-exps
    lse = torch.logaddexp(m1 + torch.log(l1), m2 + torch.log(l2))
    m = torch.maximum(m1, m2)
    w1, w2 = torch.exp(m1 - m), torch.exp(m2 - m)
    return m, torch.exp(lse - m), w1[..., None] * o1 + w2[..., None] * o2


@pytest.mark.parametrize("kwargs", [{}, {"seed": 1, "batch": 1, "T": 3, "D": 5, "S1": 1, "S2": 7}, LARGE,
                                    {"seed": 2, "empty_row": True}])
def test_merge_reference_passes(kwargs):
    grading.check_merge_states(merge_states, **kwargs)
    grading.check_merge_states(merge_via_lse, **kwargs)


def make_merge(m_rule=torch.maximum, f=lambda mi, m: torch.exp(mi - m), rescale_l=(True, True),
               rescale_o=(True, True), o_rule="plain"):
    def merge(m1, l1, o1, m2, l2, o2):
        m = m_rule(m1, m2) if m_rule is not None else torch.maximum(l1, l2)
        a1, a2 = f(m1, m), f(m2, m)
        l = (a1 if rescale_l[0] else 1) * l1 + (a2 if rescale_l[1] else 1) * l2
        b1 = a1[..., None] if rescale_o[0] else 1
        b2 = a2[..., None] if rescale_o[1] else 1
        if o_rule == "plain":
            o = b1 * o1 + b2 * o2
        elif o_rule == "divided":
            o = (b1 * o1 + b2 * o2) / l[..., None]
        elif o_rule == "normalised rule":
            o = (b1 * l1[..., None] * o1 + b2 * l2[..., None] * o2) / l[..., None]
        else:
            o = b1 * l1[..., None] * o1 + b2 * l2[..., None] * o2
        return m, l, o
    return merge


def exp_of_maxes(m1, l1, o1, m2, l2, o2):  # unstable: exp of the maxima themselves
    e1, e2 = torch.exp(m1), torch.exp(m2)
    m = torch.maximum(m1, m2)
    z = torch.exp(m)
    return m, (e1 * l1 + e2 * l2) / z, ((e1 / z)[..., None] * o1 + (e2 / z)[..., None] * o2)


def where_both(m1, l1, o1, m2, l2, o2):  # computes -inf - (-inf) in a learner's own way
    m = torch.maximum(m1, m2)
    a1, a2 = torch.exp(m1 - m), torch.exp(m2 - m2) * torch.exp(m2 - m) / torch.exp(m2 - m2)
    return m, a1 * l1 + a2 * l2, a1[..., None] * o1 + a2[..., None] * o2


NO_RESCALE = "looks like you forgot to rescale the old sums"
MERGE_MISTAKES = [
    (make_merge(m_rule=lambda a, b: a + b), "m is the sum of the two maxima", {}),
    (make_merge(m_rule=None), r"m is the max of l1 and l2", {}),
    (make_merge(m_rule=torch.minimum), "m is the smaller of m1 and m2", {}),
    (make_merge(rescale_l=(False, False), rescale_o=(False, False)), NO_RESCALE, {}),
    (make_merge(rescale_o=(False, False)), "forgot to rescale the old accumulators", {}),
    (make_merge(f=lambda mi, m: torch.exp(m - mi)), "the rescaling factors have the wrong sign", {}),
    (make_merge(f=lambda mi, m: torch.exp(m - mi)), r"NaN or inf in l, o; on plain inputs it is wrong too: "
                                                     r".*wrong sign", {"seed": 2, "empty_row": True}),
    (make_merge(rescale_l=(True, False)), "only l1 was rescaled", {}),
    (make_merge(rescale_l=(False, True)), "only l2 was rescaled", {}),
    (make_merge(rescale_o=(True, False)), "only o1 was rescaled", {}),
    (make_merge(o_rule="divided"), "you divided o by l: .*normalise twice", {}),
    (make_merge(o_rule="normalised rule"), "merge rule for normalised outputs", {}),
    (make_merge(o_rule="times l"), "you multiplied o1 and o2 by l1 and l2", {}),
    (exp_of_maxes, r"an overflow\. With scores around 1000, exp\(m1\) or exp\(m2\) is inf", LARGE),
    (where_both, "a query that sees no key of block 2", {"seed": 2, "empty_row": True}),
    (lambda *a: merge_states(*a)[1:], r"returned a tuple of 2 items; expected a tuple \(m, l, o\)", {}),
    (lambda *a: merge_states(*a)[2], r"returned a torch.Tensor .*expected a tuple \(m, l, o\)", {}),
    (lambda *a: tuple(t[..., None] if t.ndim == 2 else t for t in merge_states(*a)),
     r"\(m\)` returned a tensor of shape \(2, 6, 1\); expected \(B, T\) = \(2, 6\)\. It differs by an axis of size 1", {}),
    (lambda m1, l1, o1, m2, l2, o2: (torch.maximum(m1, m2), l1 + l2, torch.exp(m1 - torch.maximum(m1, m2)) * o1 + o2),
     r"(?s)raised RuntimeError.*Hint: .*unsqueezed", {}),
]


@pytest.mark.parametrize("fn, pattern, kwargs", MERGE_MISTAKES, ids=range(len(MERGE_MISTAKES)))
def test_merge_mistakes_are_named(fn, pattern, kwargs):
    fails_with(grading.check_merge_states, fn, pattern, **kwargs)


def test_merge_in_place_is_named():
    def in_place(m1, l1, o1, m2, l2, o2):
        m = torch.maximum(m1, m2)
        l1 *= torch.exp(m1 - m)
        return merge_states(m, l1, o1, m2, l2, o2)

    fails_with(grading.check_merge_states, in_place, "changed its input `l1` in place")


def test_merge_states_from_the_library_loop_agree():
    # the merge rule is the update of course_lib.kernels.tiled with the second "block" being the new tile
    s = torch.randn(2, 3, 8, dtype=torch.float64)
    v = torch.randn(2, 8, 4, dtype=torch.float64)
    state = grading.merge_reference(*grading._block_state(s[..., :5], v[:, :5]), *grading._block_state(s[..., 5:], v[:, 5:]))
    torch.testing.assert_close(state[2] / state[1][..., None], torch.softmax(s, -1) @ v)


# -- exercise 3: the log-sum-exp and the probabilities recomputed from it --------------------------------

def lse_from_state(m, l):
    return m + torch.log(l)


def tile_probs(s_tile, lse):
    return torch.exp(s_tile - lse[..., None])


@pytest.mark.parametrize("kwargs", [{}, {"seed": 1, "batch": 1, "T": 2, "S": 30}, LARGE])
def test_lse_reference_passes(kwargs):
    grading.check_lse_from_state(lse_from_state, **kwargs)


@pytest.mark.parametrize("kwargs", [{}, {"seed": 1, "start": 0, "width": 9}, LARGE])
def test_tile_probs_reference_passes(kwargs):
    grading.check_tile_probs(tile_probs, **kwargs)


LSE_MISTAKES = [
    (lambda m, l: torch.log(l), r"returned log\(l\) alone", {}),
    (lambda m, l: m + l, "you added l itself", {}),
    (lambda m, l: m - torch.log(l), "the sign of log", {}),
    (lambda m, l: m + torch.log2(l), "you used log2", {}),
    (lambda m, l: torch.exp(m) * l, r"you returned exp\(m\) \* l", {}),
    (lambda m, l: torch.log(torch.exp(m) * l), r"exp\(m\) overflows", LARGE),
    (lambda m, l: m, "you returned m alone", {}),
    (lambda m, l: (m + torch.log(l))[..., None], "differs by an axis of size 1", {}),
]


@pytest.mark.parametrize("fn, pattern, kwargs", LSE_MISTAKES, ids=range(len(LSE_MISTAKES)))
def test_lse_mistakes_are_named(fn, pattern, kwargs):
    fails_with(grading.check_lse_from_state, fn, pattern, **kwargs)


TILE_MISTAKES = [
    (lambda s, lse: torch.softmax(s, dim=-1), "you normalised within the tile", {}),
    (lambda s, lse: torch.exp(lse[..., None] - s), "the sign is wrong", {}),
    (lambda s, lse: s - lse[..., None], "the log-probabilities", {}),
    (lambda s, lse: torch.exp(s) / lse[..., None], "you divided by lse", {}),
    (lambda s, lse: torch.exp(s), "you forgot the lse", {}),
    (lambda s, lse: torch.exp(s - lse), r"(?s)raised RuntimeError.*Hint: .*lse\[\.\.\., None\]", {}),
    (lambda s, lse: torch.exp(s) / torch.exp(lse)[..., None], r"NaN or inf: with large scores", LARGE),
]


@pytest.mark.parametrize("fn, pattern, kwargs", TILE_MISTAKES, ids=range(len(TILE_MISTAKES)))
def test_tile_mistakes_are_named(fn, pattern, kwargs):
    fails_with(grading.check_tile_probs, fn, pattern, **kwargs)


# -- exercise 4: attention block by block ------------------------------------------------------------------

def blockwise_attention(q, k, v, block_size, merge):
    B, T, D = q.shape
    m = torch.full((B, T), float("-inf"), dtype=q.dtype)
    l = torch.zeros(B, T, dtype=q.dtype)
    o = torch.zeros(B, T, D, dtype=q.dtype)
    for j in range(0, k.shape[1], block_size):
        s = q @ k[:, j:j + block_size].transpose(-2, -1) / math.sqrt(D)
        m_blk = s.amax(dim=-1)
        p = torch.exp(s - m_blk[..., None])
        m, l, o = merge(m, l, o, m_blk, p.sum(dim=-1), p @ v[:, j:j + block_size])
    return o / l[..., None]


def make_blockwise(scale=True, normalise=False, last_only=False, drop_tail=False, divide=True, keepdim=False):
    def attention(q, k, v, block_size, merge):
        D, S = q.shape[-1], k.shape[1]
        state = None
        end = (S // block_size) * block_size if drop_tail else S
        for j in range(0, end, block_size):
            s = q @ k[:, j:j + block_size].transpose(-2, -1)
            if scale:
                s = s / math.sqrt(D)
            m = s.amax(dim=-1, keepdim=keepdim)
            p = torch.exp(s - (m if keepdim else m[..., None]))
            l, o = p.sum(dim=-1, keepdim=keepdim), p @ v[:, j:j + block_size]
            if normalise:
                o = o / l[..., None]
            if state is not None and last_only:
                merge(*state, m, l, o)  # called, but its result thrown away
            state = (m, l, o) if state is None or last_only else merge(*state, m, l, o)
        m, l, o = state
        return o / l[..., None] if divide else o
    return attention


@pytest.mark.parametrize("kwargs", [{}, {"seed": 1, "S": 12, "block_size": 3}, {"seed": 2, "S": 3, "block_size": 8},
                                    {"seed": 3, "q_scale": 300.0}, {"seed": 4, "block_size": 1}])
def test_blockwise_reference_passes(kwargs):
    grading.check_blockwise_attention(blockwise_attention, **kwargs)
    grading.check_blockwise_attention(make_blockwise(), **kwargs)  # starting from the first block's state


BLOCKWISE_MISTAKES = [
    (lambda q, k, v, b, merge: torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), -1) @ v,
     "never called `merge`", {}),
    (make_blockwise(scale=False), r"forgot the 1/sqrt\(D\) scale", {}),
    (make_blockwise(normalise=True), "divided each block's o by its l before merging", {}),
    (make_blockwise(last_only=True), "kept only the last block's state", {}),
    (make_blockwise(drop_tail=True), r"missed the last S % block_size = 3 keys", {}),
    (make_blockwise(divide=False), "returned o without dividing by l", {}),
    (make_blockwise(keepdim=True), r"called merge with m = a torch.Tensor of shape \(2, 5, 1\)", {}),
    (lambda q, k, v, b, merge: merge(q, k, v), "called merge with 3 arguments", {}),
    (lambda q, k, v, b, merge: blockwise_attention(q, k, v, b, merge).transpose(1, 2),
     r"returned a tensor of shape \(2, 4, 5\); expected \(B, T, D\) = \(2, 5, 4\)", {}),
]


@pytest.mark.parametrize("fn, pattern, kwargs", BLOCKWISE_MISTAKES, ids=range(len(BLOCKWISE_MISTAKES)))
def test_blockwise_mistakes_are_named(fn, pattern, kwargs):
    fails_with(grading.check_blockwise_attention, fn, pattern, **kwargs)


def test_blockwise_unstable_block_state_is_named():
    def no_max(q, k, v, block_size, merge):  # exp(s) with no max subtracted: overflows at large scores
        D = q.shape[-1]
        state = None
        for j in range(0, k.shape[1], block_size):
            p = torch.exp(q @ k[:, j:j + block_size].transpose(-2, -1) / math.sqrt(D))
            blk = (torch.zeros(p.shape[:2], dtype=p.dtype), p.sum(-1), p @ v[:, j:j + block_size])
            state = blk if state is None else merge(*state, *blk)
        return state[2] / state[1][..., None]

    grading.check_blockwise_attention(no_max)  # small scores: right
    fails_with(grading.check_blockwise_attention, no_max, r"returned NaN or inf\. With large scores",
               seed=3, q_scale=300.0)
