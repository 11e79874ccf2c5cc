"""course_lib.grading.ch02_lstm_gru: the reference answers pass, and each known mistake, written as
the function a learner would write, gets the message that names it."""
import math

import pytest
import torch

from course_lib.grading import ch02_lstm_gru as grading
from grading_support import fails_with
from course_lib.rnn import GRU, LSTM



# -- exercise 1: one LSTM step ----------------------------------------------------------------------------

def lstm_step(x_t, h, c, W_x, W_h, b):
    i, f, g, o = (x_t @ W_x + h @ W_h + b).chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def lstm_like(order="ifgo", gate=torch.sigmoid, cand=torch.tanh, carry="forget", h_from="new", bias=True,
              transpose=False, out_gate=torch.sigmoid):
    """A learner's LSTM step with one mistake; ``order`` names the gates of the four blocks as read."""
    def step(x_t, h, c, W_x, W_h, b):
        Wx, Wh = (W_x.T, W_h.T) if transpose else (W_x, W_h)
        blocks = dict(zip(order, (x_t @ Wx + h @ Wh + (b if bias else 0)).chunk(4, dim=-1)))
        i, f, g, o = blocks["i"], blocks["f"], blocks["g"], blocks["o"]
        write = gate(i) * cand(g)
        c_new = {"forget": gate(f) * c + write, "none": write, "plain": c + write}[carry]
        h_new = {"new": out_gate(o) * torch.tanh(c_new), "no_tanh": out_gate(o) * c_new,
                 "old": out_gate(o) * torch.tanh(c)}[h_from]
        return h_new, c_new
    return step


@pytest.mark.parametrize("kwargs", [{}, {"seed": 1, "input_size": 4}, {"seed": 2, "batch": 1, "input_size": 2, "hidden_size": 6}])
def test_lstm_step_reference_passes(kwargs):
    grading.check_lstm_step(lstm_step, **kwargs)


def test_lstm_step_course_library_passes():
    def library(x_t, h, c, W_x, W_h, b):
        cell = LSTM(W_x.shape[0], h.shape[1])
        with torch.no_grad():
            cell.W_x.copy_(W_x), cell.W_h.copy_(W_h), cell.b.copy_(b)
        return tuple(t.detach() for t in cell.step(x_t, (h, c)))
    grading.check_lstm_step(library)


LSTM_MISTAKES = [
    ("order i f o g", lstm_like(order="ifog"), r"wrong order.*you took g from block 3, o from block 2", {}),
    ("order f i g o", lstm_like(order="figo"), r"wrong order.*i from block 1, f from block 0", {}),
    ("tensorflow order i g f o", lstm_like(order="igfo"), r"gate blocks are in the wrong order", {}),
    ("sigmoid/tanh swapped", lstm_like(gate=torch.tanh, cand=torch.sigmoid), "sigmoid and tanh are swapped", {}),
    ("sigmoid everywhere", lstm_like(cand=torch.sigmoid), "used sigmoid everywhere", {}),
    ("tanh everywhere", lstm_like(gate=torch.tanh, out_gate=torch.tanh), "used tanh everywhere", {}),
    ("cell state not carried", lstm_like(carry="none"), "previous cell state is not carried", {}),
    ("forget gate not applied", lstm_like(carry="plain"), "forget gate is not applied", {}),
    ("bias forgotten", lstm_like(bias=False), "forgot the bias b", {}),
    ("transposed, not square", lstm_like(transpose=True),
     r"(?s)raised RuntimeError: .*Hint: x_t \(B, C\) is multiplied by W_x", {}),
    ("h without tanh", lstm_like(h_from="no_tanh"), r"missing the tanh on the cell state", {}),
    ("h from the old c", lstm_like(h_from="old"), r"h_new uses the old cell state", {}),
    ("output gate tanh", lstm_like(out_gate=torch.tanh), r"output gate o goes through sigmoid", {}),
    ("(c, h) returned", lambda *a: lstm_step(*a)[::-1], r"returned \(c_new, h_new\)", {}),
    ("one tensor", lambda *a: lstm_step(*a)[0], r"returned a torch.Tensor.*expected a pair \(h_new, c_new\)", {}),
    ("none", lambda *a: None, r"returned None; expected a pair", {}),
    ("wrong shape", lambda *a: (lstm_step(*a)[0].T, lstm_step(*a)[1]), r"lstm_step \(h_new\).*axes look swapped", {}),
    ("in place", lambda x, h, c, *w: (lambda hn, cn: (hn, c.copy_(cn)))(*lstm_step(x, h, c, *w)),
     r"changed its input `c` in place", {}),
]


@pytest.mark.parametrize("name, fn, pattern, kwargs", LSTM_MISTAKES, ids=[m[0] for m in LSTM_MISTAKES])
def test_lstm_step_mistakes_are_named(name, fn, pattern, kwargs):
    fails_with(grading.check_lstm_step, fn, pattern, **kwargs)


def test_lstm_step_not_answered():
    def stub(x_t, h, c, W_x, W_h, b):
        raise NotImplementedError()
    fails_with(grading.check_lstm_step, stub, "`lstm_step` is not answered yet")


# -- exercise 2: one GRU step -------------------------------------------------------------------------------

def gru_step(x_t, h, W_x, W_h, b_x, b_h):
    x_r, x_z, x_n = (x_t @ W_x + b_x).chunk(3, dim=-1)
    h_r, h_z, h_n = (h @ W_h + b_h).chunk(3, dim=-1)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h


def gru_like(order="rzn", gate=torch.sigmoid, cand=torch.tanh, reset="after", mix="torch", bias_x=True,
             bias_h=True):
    def step(x_t, h, W_x, W_h, b_x, b_h):
        d = h.shape[1]
        bx = b_x if bias_x else 0 * b_x
        bh = b_h if bias_h else 0 * b_h
        xs = dict(zip(order, (x_t @ W_x + bx).chunk(3, dim=-1)))
        Ws = dict(zip(order, W_h.split(d, dim=1)))
        bs = dict(zip(order, bh.split(d)))
        r = gate(xs["r"] + h @ Ws["r"] + bs["r"])
        z = gate(xs["z"] + h @ Ws["z"] + bs["z"])
        recur = {"after": r * (h @ Ws["n"] + bs["n"]), "before": (r * h) @ Ws["n"] + bs["n"],
                 "not_bias": r * (h @ Ws["n"]) + bs["n"], "none": h @ Ws["n"] + bs["n"]}[reset]
        n = cand(xs["n"] + recur)
        return {"torch": (1 - z) * n + z * h, "reversed": z * n + (1 - z) * h, "none": n,
                "no_keep": (1 - z) * n}[mix]
    return step


@pytest.mark.parametrize("kwargs", [{}, {"seed": 1, "input_size": 4}, {"seed": 2, "batch": 1, "hidden_size": 7}])
def test_gru_step_reference_passes(kwargs):
    grading.check_gru_step(gru_step, **kwargs)
    grading.check_gru_step(gru_like(), **kwargs)


def test_gru_step_course_library_passes():
    def library(x_t, h, W_x, W_h, b_x, b_h):
        cell = GRU(W_x.shape[0], h.shape[1])
        with torch.no_grad():
            for p, v in ((cell.W_x, W_x), (cell.W_h, W_h), (cell.b_x, b_x), (cell.b_h, b_h)):
                p.copy_(v)
        return cell.step(x_t, h).detach()
    grading.check_gru_step(library)


GRU_MISTAKES = [
    ("interpolation reversed", gru_like(mix="reversed"), "interpolation is reversed"),
    ("reset before the matrix (Cho)", gru_like(reset="before"), r"reset gate is applied before the matrix"),
    ("reset not on the bias", gru_like(reset="not_bias"), r"including its bias: r \* \(h @ W_hn \+ b_hn\)"),
    ("reset unused", gru_like(reset="none"), r"reset gate r is never used"),
    ("sigmoid/tanh swapped", gru_like(gate=torch.tanh, cand=torch.sigmoid), "sigmoid and tanh are swapped"),
    ("sigmoid candidate", gru_like(cand=torch.sigmoid), "sigmoid for the candidate n"),
    ("returns n", gru_like(mix="none"), "you returned the candidate n"),
    ("old state not kept", gru_like(mix="no_keep"), "old state is not kept"),
    ("biases forgotten", gru_like(bias_x=False, bias_h=False), "forgot the biases b_x and b_h"),
    ("b_h forgotten", gru_like(bias_h=False), "forgot the recurrent bias b_h"),
    ("r and z swapped", gru_like(order="zrn"), r"wrong order: torch stacks them r, z, n.*r from block 1, z from block 0"),
    ("z, r swapped and reversed", gru_like(order="zrn", mix="reversed"),
     r"wrong order \(r, z, n in torch\), and the interpolation is reversed"),
    ("tuple", lambda *a: (gru_step(*a), a[1]), r"returned a tuple of 2 items; expected a torch.Tensor"),
]


@pytest.mark.parametrize("name, fn, pattern", GRU_MISTAKES, ids=[m[0] for m in GRU_MISTAKES])
def test_gru_step_mistakes_are_named(name, fn, pattern):
    fails_with(grading.check_gru_step, fn, pattern)


# -- exercise 3: the LSTM loop over time ------------------------------------------------------------------

def lstm_forward(step, x, state0):
    h, c = state0
    states = []
    for t in range(x.shape[1]):
        h, c = step(x[:, t], (h, c))
        states.append(h)
    return torch.stack(states, dim=1), (h, c)


@pytest.mark.parametrize("kwargs", [{}, {"seed": 1, "steps": 8}, {"seed": 2, "batch": 1, "steps": 1}])
def test_lstm_forward_reference_passes(kwargs):
    grading.check_lstm_forward(lstm_forward, **kwargs)


def test_lstm_forward_course_library_loop_passes():
    def library(step, x, state0):
        cell = LSTM(x.shape[2], state0[0].shape[1])
        cell.step = step  # the library's loop, with the checker's step
        return cell(x, state0)
    grading.check_lstm_forward(library)


def _loop(body):
    def forward(step, x, state0):
        return body(step, x, *state0)
    return forward


def _c_reset(step, x, h0, c0):
    h, states = h0, []
    for t in range(x.shape[1]):
        h, c = step(x[:, t], (h, c0))
        states.append(h)
    return torch.stack(states, 1), (h, c)


def _h_reset(step, x, h0, c0):
    c, states = c0, []
    for t in range(x.shape[1]):
        h, c = step(x[:, t], (h0, c))
        states.append(h)
    return torch.stack(states, 1), (h, c)


def _swapped_unpack(step, x, h0, c0):
    h, c, states = h0, c0, []
    for t in range(x.shape[1]):
        c, h = step(x[:, t], (h, c))
        states.append(h)
    return torch.stack(states, 1), (h, c)


def _stack_c(step, x, h0, c0):
    h, c, states = h0, c0, []
    for t in range(x.shape[1]):
        h, c = step(x[:, t], (h, c))
        states.append(c)
    return torch.stack(states, 1), (h, c)


def _state_in_wrong_order(step, x, h0, c0):
    return lstm_forward(step, x, (c0, h0))


def _zeros_start(step, x, h0, c0):
    return lstm_forward(step, x, (torch.zeros_like(h0), torch.zeros_like(c0)))


def _last_swapped(step, x, h0, c0):
    states, (h, c) = lstm_forward(step, x, (h0, c0))
    return states, (c, h)


def _last_is_c0(step, x, h0, c0):
    states, (h, c) = lstm_forward(step, x, (h0, c0))
    return states, (h, c0)


def _backwards(step, x, h0, c0):
    return lstm_forward(step, x.flip(1), (h0, c0))


def _h_only(step, x, h0, c0):
    h, states = h0, []
    for t in range(x.shape[1]):
        h = step(x[:, t], h)
        states.append(h)
    return torch.stack(states, 1), h


FORWARD_MISTAKES = [
    ("cell state not carried", _loop(_c_reset), r"cell state not carried: at step 1 you passed c0"),
    ("hidden state not carried", _loop(_h_reset), r"hidden state not carried: at step 1 you passed h0"),
    ("(c, h) unpacked", _loop(_swapped_unpack), r"at step 1 `step` got \(c, h\) instead of \(h, c\)"),
    ("cell states stacked", _loop(_stack_c), r"you stacked the cell states c"),
    ("state0 in the wrong order", _loop(_state_in_wrong_order), r"first call of `step` got \(c0, h0\)"),
    ("zeros instead of state0", _loop(_zeros_start), r"did not get the state0 = \(h0, c0\)"),
    ("last state swapped", _loop(_last_swapped), r"you returned \(c_T, h_T\)"),
    ("last c is c0", _loop(_last_is_c0), r"c_T should be the cell state after the last step; you returned c0"),
    ("backwards", _loop(_backwards), r"walked through time backwards"),
    ("step given h only", _loop(_h_only), r"got a torch.Tensor .* as its state; an LSTM step takes the pair"),
    ("returns states only", lambda step, x, s: lstm_forward(step, x, s)[0],
     r"returned a torch.Tensor.*expected a pair \(states, \(h_T, c_T\)\)"),
]


@pytest.mark.parametrize("name, fn, pattern", FORWARD_MISTAKES, ids=[m[0] for m in FORWARD_MISTAKES])
def test_lstm_forward_mistakes_are_named(name, fn, pattern):
    fails_with(grading.check_lstm_forward, fn, pattern)


# -- exercise 4: counting parameters -------------------------------------------------------------------

GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def count_params(kind, input_size, hidden_size):
    return GATES[kind] * (input_size * hidden_size + hidden_size ** 2 + 2 * hidden_size)


def test_count_params_reference_and_numeric_types_pass():
    import numpy as np
    grading.check_count_params(count_params)
    grading.check_count_params(lambda *a: float(count_params(*a)))
    grading.check_count_params(lambda *a: np.int64(count_params(*a)))
    grading.check_count_params(lambda *a: torch.tensor(count_params(*a)))
    grading.check_count_params(count_params, sizes=((1, 1), (7, 129)))


COUNT_MISTAKES = [
    ("one bias", lambda k, C, d: GATES[k] * (C * d + d * d + d), r"one bias vector per gate block"),
    ("no bias", lambda k, C, d: GATES[k] * (C * d + d * d), r"left out the biases"),
    ("no recurrent matrix", lambda k, C, d: GATES[k] * (C * d + 2 * d), r"left out the recurrent matrix"),
    ("no input matrix", lambda k, C, d: GATES[k] * (d * d + 2 * d), r"left out the input matrix"),
    ("LSTM with 3 gates", lambda k, C, d: {"rnn": 1, "gru": 3, "lstm": 3}[k] * (C * d + d * d + 2 * d),
     r"count_params\('lstm', 3, 16\)` returned 1008.*you counted 3 gate block\(s\) for 'lstm'"),
    ("GRU with 2 gates", lambda k, C, d: {"rnn": 1, "gru": 2, "lstm": 4}[k] * (C * d + d * d + 2 * d),
     r"you counted 2 gate block\(s\) for 'gru'; an RNN has 1, a GRU 3"),
    ("unknown formula", lambda k, C, d: 7, r"returned 7, but torch.nn.RNN\(3, 16\) has 336 parameters: compare"),
    ("string", lambda k, C, d: str(count_params(k, C, d)), r"returned a str .*expected an int"),
    ("non-integer float", lambda k, C, d: count_params(k, C, d) + 0.5, r"returned a float .*expected an int"),
    ("raises on kind", lambda k, C, d: {"gru": 3, "lstm": 4}[k], r"raised KeyError: 'rnn'"),
]


def test_count_params_mistakes_differ_on_the_default_sizes():
    # two mistakes giving the same count for a size would make the message a guess
    for C, d in ((3, 16), (5, 6), (32, 64)):
        for kind, G in GATES.items():
            counts = [G * (C * d + d * d + d), G * (C * d + d * d), G * (C * d + 2 * d), G * (d * d + 2 * d)]
            counts += [g * (C * d + d * d + 2 * d) for g in (1, 2, 3, 4)]
            assert len(set(counts)) == len(counts), (kind, C, d)


@pytest.mark.parametrize("name, fn, pattern", COUNT_MISTAKES, ids=[m[0] for m in COUNT_MISTAKES])
def test_count_params_mistakes_are_named(name, fn, pattern):
    fails_with(grading.check_count_params, fn, pattern)


# -- exercise 5: a prediction, the forget-gate bias for a memory -----------------------------------------

def forget_bias(keep, steps):
    f = keep ** (1 / steps)
    return math.log(f / (1 - f))


BIAS_CASES = [((0.5, 50),), ((0.9, 10), (0.01, 5), (0.5, 1), (0.99, 100))]


@pytest.mark.parametrize("cases", BIAS_CASES)
def test_forget_bias_reference_passes(cases):
    grading.check_forget_bias(forget_bias, cases=cases)
    grading.check_forget_bias(lambda keep, k: torch.logit(torch.tensor(keep ** (1 / k))), cases=cases)  # float32


def test_forget_bias_is_measured_on_the_course_lstm():
    # the measurement behind the check: sigmoid(b) ** k of the cell state is kept, and more bias keeps more
    assert abs(grading._kept_share(forget_bias(0.5, 50), 50) - 0.5) < 1e-9
    assert abs(grading._kept_share(0.0, 3) - 0.5 ** 3) < 1e-12
    shares = [grading._kept_share(b, 50) for b in (1.0, 3.0, 5.0)]
    assert shares[0] < shares[1] < shares[2] < 1


BIAS_MISTAKES = [
    ("the gate's value", lambda keep, k: keep ** (1 / k), r"That is the value the forget gate must have"),
    ("one step", lambda keep, k: math.log(keep / (1 - keep)), r"That bias keeps 0.5 after ONE step"),
    ("wrong sign", lambda keep, k: -forget_bias(keep, k), "Wrong sign: a negative bias closes the gate"),
    ("k + 1 steps", lambda keep, k: forget_bias(keep, k + 1),
     r"Off by one: from c_0 to c_50 the gate is applied 50 times, once per step, not k \+ 1"),
    ("k - 1 steps", lambda keep, k: forget_bias(keep, k - 1), r"not k - 1"),
    ("linear decay", lambda keep, k: math.log((1 - (1 - keep) / k) / ((1 - keep) / k)), "decays geometrically"),
    ("log f", lambda keep, k: math.log(keep ** (1 / k)), r"That is log f; the inverse of the sigmoid is the logit"),
    ("a guess", lambda keep, k: 3.0, r"returned 3: with that forget-gate bias the LSTM cell kept 0.08809 of its "
                                     r"memory over 50 steps, not 0.5\. With the gate's bias b"),
    ("infinite", lambda keep, k: math.inf, "is a finite number"),
    ("string", lambda keep, k: "4.3", r"returned a str .*expected a number \(the bias"),
    ("None", lambda keep, k: None, "returned None; expected a number"),
    ("bool", lambda keep, k: True, "returned a bool"),
    ("raises", lambda keep, k: math.log(-keep), "raised ValueError: math domain error"),
]


@pytest.mark.parametrize("name, fn, pattern", BIAS_MISTAKES, ids=[m[0] for m in BIAS_MISTAKES])
def test_forget_bias_mistakes_are_named(name, fn, pattern):
    fails_with(grading.check_forget_bias, fn, pattern, cases=((0.5, 50),))


def test_forget_bias_hidden_cases_catch_a_hard_coded_answer():
    fails_with(grading.check_forget_bias, lambda keep, k: forget_bias(0.5, 50), r"forget_bias\(0.9, 10\)",
               cases=BIAS_CASES[1])


def test_untouched_forget_bias_says_not_answered():
    def forget_bias(keep, steps):
        raise NotImplementedError()

    fails_with(grading.check_forget_bias, forget_bias, "`forget_bias` is not answered yet")
