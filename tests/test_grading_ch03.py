"""The check helpers of chapter 03's exercises: the reference passes, each known mistake gets its
message, and broken answers get the core's clear messages."""
import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.grading import ch03_seq2seq as grading
from grading_support import fails_with


# -- exercise 1: last real state -------------------------------------------------------------------

def last_real_state(states, src_mask):
    last = src_mask.sum(1) - 1
    return states[torch.arange(states.shape[0]), last]


def test_last_real_state_reference_passes():
    grading.check_last_real_state(last_real_state)
    grading.check_last_real_state(last_real_state, seed=1, lengths=(1, 4), d_hidden=3)


@pytest.mark.parametrize("wrong, match", [
    (lambda s, m: s[:, -1], r"states\[:, -1\]; in a padded row that is a padding position"),
    (lambda s, m: s[torch.arange(s.shape[0]), (m.sum(1) - 2).clamp(min=0)], "off by one"),
    (lambda s, m: s[:, 0], "you took the first state"),
    (lambda s, m: (s * m[..., None]).sum(1) / m.sum(1, keepdim=True), "you averaged the real states"),
    (lambda s, m: (s * m[..., None]).sum(1), "you summed the real states"),
    (lambda s, m: s[torch.arange(s.shape[0]), m.sum(1)], "you took index lengths, the first padding"),
    (lambda s, m: s[torch.arange(s.shape[0]), m.sum(1) + 1], "raised IndexError"),
    (lambda s, m: s[:, -1].T, "shape"),
    (lambda s, m: None, "returned None"),
])
def test_last_real_state_mistakes(wrong, match):
    with pytest.raises(AssertionError, match=match):
        grading.check_last_real_state(wrong)


# -- exercise 2: teacher-forcing loss --------------------------------------------------------------

def teacher_forcing_loss(logits, tgt_out, pad_id):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1), ignore_index=pad_id)


def _nll(logits, tgt_out):
    return -torch.log_softmax(logits, -1).gather(2, tgt_out[..., None])[..., 0]


def test_teacher_forcing_loss_reference_passes():
    grading.check_teacher_forcing_loss(teacher_forcing_loss)
    grading.check_teacher_forcing_loss(teacher_forcing_loss, seed=1, batch=2, steps=3, vocab=5, lengths=(3, 1))


@pytest.mark.parametrize("wrong, match", [
    (lambda lg, y, p: F.cross_entropy(lg.reshape(-1, lg.shape[-1]), y.reshape(-1)), "the padding is counted"),
    (lambda lg, y, p: (_nll(lg, y) * (y != p)).sum(), "you summed the losses"),
    (lambda lg, y, p: ((_nll(lg, y) * (y != p)).sum(1) / (y != p).sum(1)).mean(), "averaged each sequence first"),
    (lambda lg, y, p: (-lg.gather(2, y[..., None])[..., 0] * (y != p)).sum() / (y != p).sum(),
     "used the logits as if they were log-probabilities"),
    (lambda lg, y, p: (-torch.softmax(lg, -1).gather(2, y[..., None])[..., 0] * (y != p)).sum() / (y != p).sum(),
     "you used probabilities"),
    (lambda lg, y, p: teacher_forcing_loss(lg, y, p).item(), "returned a Python float"),
    (lambda lg, y, p: teacher_forcing_loss(lg, y, p).detach(), "without a gradient graph"),
    (lambda lg, y, p: F.cross_entropy(lg, y, ignore_index=p), "raised"),
])
def test_teacher_forcing_loss_mistakes(wrong, match):
    with pytest.raises(AssertionError, match=match):
        grading.check_teacher_forcing_loss(wrong)


# -- exercise 3: greedy decoding ---------------------------------------------------------------------

def greedy_decode(step, state, batch_size, bos_id, eos_id, max_len):
    prefix = torch.full((batch_size, 1), bos_id, dtype=torch.long)
    finished = torch.zeros(batch_size, dtype=torch.bool)
    for _ in range(max_len):
        log_probs, state = step(prefix, state)
        token = log_probs.argmax(dim=-1).masked_fill(finished, 0)
        prefix = torch.cat([prefix, token[:, None]], dim=1)
        finished = finished | (token == eos_id)
        if finished.all():
            break
    return prefix[:, 1:]


def _greedy_with(feed_back=True, stop=True, stop_first=False, keep_eos=True, keep_bos=False, argmin=False,
                 run_all=False):
    def greedy(step, state, batch_size, bos_id, eos_id, max_len):
        prefix = torch.full((batch_size, 1), bos_id, dtype=torch.long)
        out, finished = [], torch.zeros(batch_size, dtype=torch.bool)
        for _ in range(max_len):
            seen = prefix if feed_back else prefix[:, :1]
            log_probs, state = step(seen, state)
            token = log_probs.masked_fill(~torch.isfinite(log_probs), 1e9).argmin(-1) if argmin \
                else log_probs.argmax(-1)
            if stop:
                token = token.masked_fill(finished, 0)
            out.append(token)
            prefix = torch.cat([prefix, token[:, None]], dim=1)
            finished = finished | (token == eos_id)
            if stop and not run_all and (finished.all() or (stop_first and finished.any())):
                break
        ids = torch.stack(out, 1)
        if not keep_eos:
            ids = ids.masked_fill(ids == eos_id, 0)
        return prefix if keep_bos else ids
    return greedy


def test_greedy_reference_passes():
    grading.check_greedy_decode(greedy_decode)
    grading.check_greedy_decode(greedy_decode, seed=1, batch=4, vocab=9, max_len=5)
    grading.check_greedy_decode(_greedy_with(run_all=True))  # trailing pad columns are fine


@pytest.mark.parametrize("kwargs, match", [
    (dict(feed_back=False), "did not feed back the predicted token|is not fed back"),
    (dict(stop=False), "rows go on after their eos"),
    (dict(stop_first=True), "stopped the whole batch"),
    (dict(keep_eos=False), "the eos tokens are missing"),
    (dict(argmin=True), "least likely token"),
    (dict(keep_bos=True), "returned the bos column too"),
])
def test_greedy_mistakes(kwargs, match):
    with pytest.raises(AssertionError, match=match):
        grading.check_greedy_decode(_greedy_with(**kwargs))


def test_greedy_broken_answers():
    with pytest.raises(AssertionError, match="prefix of shape"):
        grading.check_greedy_decode(lambda step, state, B, bos, eos, L: step(torch.full((B,), bos), state)[0])
    with pytest.raises(AssertionError, match="returned a list of lists"):
        grading.check_greedy_decode(lambda step, state, B, bos, eos, L: [[1], [2], [3]])
    with pytest.raises(AssertionError, match="not answered yet"):
        def unanswered(step, state, B, bos, eos, L):
            raise NotImplementedError()
        grading.check_greedy_decode(unanswered)


# -- exercise 4: one beam step -----------------------------------------------------------------------

def beam_step(scores, log_probs, beam_size):
    B, K, V = log_probs.shape
    candidates = (scores[:, :, None] + log_probs).reshape(B, K * V)
    new_scores, index = candidates.topk(beam_size, dim=-1)
    return new_scores, index // V, index % V


def test_beam_step_reference_passes():
    grading.check_beam_step(beam_step)
    grading.check_beam_step(beam_step, seed=1, batch=3, beam=2, vocab=5)
    grading.check_beam_step(beam_step, seed=2, first_step=True)
    grading.check_beam_step(beam_step, seed=3, beam=1)


def _multiplied(scores, log_probs, K):
    B, K0, V = log_probs.shape
    top, idx = (scores[:, :, None] * log_probs).reshape(B, -1).topk(K, dim=-1)
    return top, idx // V, idx % V


def _ignores_score(scores, log_probs, K):
    B, K0, V = log_probs.shape
    top, idx = log_probs.reshape(B, -1).topk(K, dim=-1)
    return top, idx // V, idx % V


def _probabilities(scores, log_probs, K):
    s, p, t = beam_step(scores, log_probs, K)
    return s.exp(), p, t


def _own_best(scores, log_probs, K):
    best, token = log_probs.max(-1)
    return scores + best, torch.arange(scores.shape[1]).expand_as(scores), token


def _unsorted(scores, log_probs, K):
    s, p, t = beam_step(scores, log_probs, K)
    return s.flip(-1), p.flip(-1), t.flip(-1)


def _swapped_decode(scores, log_probs, K):
    B, K0, V = log_probs.shape
    top, idx = (scores[:, :, None] + log_probs).reshape(B, -1).topk(K, dim=-1)
    return top, idx % K0, idx // K0


def _float_ids(scores, log_probs, K):
    s, p, t = beam_step(scores, log_probs, K)
    return s, p.float(), t.float()


def _keeps_one_more(scores, log_probs, K):
    return beam_step(scores, log_probs, K + 1)


@pytest.mark.parametrize("wrong, match", [
    (_multiplied, "multiplied the scores by the log-probabilities"),
    (_ignores_score, "the running score is ignored"),
    (_probabilities, "you returned probabilities"),
    (_own_best, "extended each hypothesis by its own best token"),
    (_unsorted, "not best first"),
    (_swapped_decode, "parent/token are decoded wrongly"),
    (_float_ids, "as floats"),
    (_keeps_one_more, "keep exactly beam_size"),
    (lambda s, lp, K: (s, s), "expected three tensors"),
])
def test_beam_step_mistakes(wrong, match):
    with pytest.raises(AssertionError, match=match):
        grading.check_beam_step(wrong)


def test_beam_step_first_step_multiplying_is_caught():
    with pytest.raises(AssertionError, match="multiplied|inf or nan|wrong scores"):
        grading.check_beam_step(_multiplied, first_step=True)


# -- exercise 5: a diagnosis, why beam search answers nothing -----------------------------------------

def longest_full_answer(p_token, p_eos):
    return math.floor(math.log(p_eos) / math.log(p_token))


LENGTH_CASES = [((0.9, 0.06), (0.6, 0.3)), ((0.8, 0.15), (0.7, 0.2), (0.5, 0.45), (0.95, 0.04))]


@pytest.mark.parametrize("cases", LENGTH_CASES)
def test_longest_full_answer_reference_passes(cases):
    grading.check_longest_full_answer(longest_full_answer, cases=cases)
    grading.check_longest_full_answer(lambda p, e: float(longest_full_answer(p, e)), cases=cases)  # 26.0 is 26


def test_toy_decoder_and_the_measurement():
    from course_lib.seq2seq import beam_search, greedy_decode
    # greedy writes the full answer whatever n; beam search (K = 2) loses it past log e / log p
    step = grading.toy_decoder(0.6, 0.3, 5)
    ids, score = greedy_decode(step, None, 1, bos_id=1, eos_id=2, max_len=7)
    assert ids[0].tolist() == [3] * 5 + [2] and abs(score.item() - 5 * math.log(0.6)) < 1e-5
    ids, score = beam_search(step, None, 1, beam_size=2, bos_id=1, eos_id=2, max_len=7)
    assert ids[0].tolist()[0] == 2 and abs(score.item() - math.log(0.3)) < 1e-5
    assert grading._beam_output(0.6, 0.3, 2) == [3, 3, 2] and grading._beam_output(0.6, 0.3, 3) == [2]
    for cases in LENGTH_CASES:
        for p, e in cases:
            ratio = math.log(e) / math.log(p)
            assert 0.1 < ratio - math.floor(ratio) < 0.9, "a graded case must be far from a tie"
            assert grading._longest_full(p, e) == longest_full_answer(p, e)
    with pytest.raises(ValueError, match="p_eos < p_token"):
        grading.toy_decoder(0.3, 0.6, 3)


LENGTH_MISTAKES = [
    ("rounded up", lambda p, e: math.ceil(math.log(e) / math.log(p)), r"returned 27; .*Off by one: .*round down"),
    ("final eos counted", lambda p, e: longest_full_answer(p, e) - 1, r"final eos has probability 1 and costs nothing"),
    ("ratio inverted", lambda p, e: math.floor(math.log(p) / math.log(e)), r"the ratio is inverted"),
    ("probabilities compared", lambda p, e: math.floor(p / e), r"Compare p \*\* n with e, not p with e"),
    ("never lost", lambda p, e: 10 ** 6, r"returns the full answer for n <= 26 and the empty output \(eos at once\) "
                                         r"from n = 27 on\. Which hypotheses"),
    ("the ratio itself", lambda p, e: math.log(e) / math.log(p), r"returned 26.7; expected a whole number of tokens"),
    ("string", lambda p, e: "26", r"returned a str .*expected an int"),
    ("None", lambda p, e: None, "returned None; expected an int"),
    ("nan", lambda p, e: math.nan, "returned a float .*expected an int"),
    ("raises", lambda p, e: math.log(-p), "raised ValueError: math domain error"),
]


@pytest.mark.parametrize("name, fn, pattern", LENGTH_MISTAKES, ids=[m[0] for m in LENGTH_MISTAKES])
def test_longest_full_answer_mistakes_are_named(name, fn, pattern):
    fails_with(grading.check_longest_full_answer, fn, pattern)


def test_longest_full_answer_hidden_cases_catch_a_hard_coded_answer():
    fails_with(grading.check_longest_full_answer, lambda p, e: {(0.9, 0.06): 26, (0.6, 0.3): 2}.get((p, e), 0),
               r"longest_full_answer\(0.8, 0.15\)` returned 0", cases=LENGTH_CASES[1])


def test_untouched_diagnosis_says_not_answered():
    def longest_full_answer(p_token, p_eos):
        raise NotImplementedError()

    fails_with(grading.check_longest_full_answer, longest_full_answer, "`longest_full_answer` is not answered yet")
