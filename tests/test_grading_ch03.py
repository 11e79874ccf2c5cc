"""The check helpers of chapter 03's exercises: the reference passes, each known mistake gets its
message, and broken answers get the core's clear messages."""
import pytest
import torch
import torch.nn.functional as F

from course_lib.grading import ch03_seq2seq as grading


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
