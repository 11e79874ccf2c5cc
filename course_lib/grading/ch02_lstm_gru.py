"""Check helpers for the exercises of chapter 02 (LSTM and GRU).

One helper per exercise; each builds its inputs from ``seed``, calls the learner's function
safely, and names the usual mistake when the answer is wrong:

1. ``check_lstm_step``: gate blocks in the wrong order, sigmoid and tanh swapped or one of them
   used everywhere, the previous cell state dropped or not scaled by the forget gate, h read from
   c without the tanh or from the old c, bias forgotten, (c, h) returned
   instead of (h, c);
2. ``check_gru_step``: the interpolation reversed (z and 1 - z swapped), the reset gate applied
   before the matrix (Cho et al.'s variant) or not to the bias b_hn or not at all, gate blocks in
   the wrong order, sigmoid and tanh swapped, no interpolation, biases forgotten;
3. ``check_lstm_forward``: cell state or hidden state not carried, (h, c) passed in the wrong
   order, steps out of order, cell states stacked instead of hidden states, the wrong last state;
4. ``check_count_params``: one bias per gate instead of two, no biases, the wrong number of
   gate blocks, the recurrent d x d matrix or the input matrix forgotten;
5. a prediction, the forget-gate bias that keeps a given share of the memory over k steps
   (``check_forget_bias``, measured on ``course_lib.rnn.LSTM``): the gate's value returned
   instead of its bias (the sigmoid not inverted), the share kept after one step instead of k
   (no k-th root), the wrong sign, k off by one, a linear decay, log f instead of the logit.

Glossary (the README's): B batch, T time steps, C channels (input features per step), d_hidden (d) hidden width.
"""
from __future__ import annotations

import itertools
import math
from typing import Callable

import torch

from ..rnn import LSTM
from .core import (Feedback, call, checker, describe, expect_close, expect_number, expect_tensor, expect_tuple,
                   generator)

_LSTM = ("c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g), h_t = sigmoid(o) * tanh(c_t), "
         "with the blocks i, f, g, o in that order")
_GRU = "h_t = (1 - z) * n + z * h_{t-1}"
_MATMUL_HINTS = {
    "cannot be multiplied": "x_t (B, C) is multiplied by W_x (C, G*d_hidden) and h (B, d_hidden) by "
                            "W_h (d_hidden, G*d_hidden); check which weight goes with which input, and "
                            "that neither is transposed.",
    "must match the size": "check the shape of each term: every gate block has shape (B, d_hidden); "
                           "split the G*d_hidden columns into G blocks with .chunk(G, dim=-1).",
}


_gen = generator


# -- exercise 1: one LSTM step ------------------------------------------------------------------------

def _lstm_variant(x_t, h, c, W_x, W_h, b, *, order=(0, 1, 2, 3), gate=torch.sigmoid, cand=torch.tanh,
                  carry="forget", h_from="tanh_new", bias=True):
    """What an LSTM step returns with one thing changed; ``order`` says which block is used as i, f, g, o."""
    pre = x_t @ W_x + h @ W_h + (b if bias else 0)
    blocks = pre.chunk(4, dim=-1)
    i, f, g, o = (blocks[k] for k in order)
    write = gate(i) * cand(g)
    c_new = {"forget": gate(f) * c + write, "none": write, "plain": c + write}[carry]
    h_new = {"tanh_new": gate(o) * torch.tanh(c_new), "no_tanh": gate(o) * c_new,
             "tanh_old": gate(o) * torch.tanh(c)}[h_from]
    return h_new, c_new


@checker
def check_lstm_step(lstm_step: Callable, *, seed: int = 0, batch: int = 3, input_size: int = 5,
                    hidden_size: int = 4) -> None:
    """``lstm_step(x_t (B, C), h (B, d), c (B, d), W_x (C, 4d), W_h (d, 4d), b (4d,))`` must return
    ``(h_new, c_new)``, each (B, d), with the gate blocks in torch's order i, f, g, o.
    (Transposed weights cannot pass silently here: W_x.T is (4d, C), and the product fails.)
    """
    B, C, d = batch, input_size, hidden_size
    g = _gen(7000 + seed)
    x_t = torch.randn(B, C, generator=g)
    h = 0.8 * torch.randn(B, d, generator=g)
    c = 1.5 * torch.randn(B, d, generator=g)      # a large old memory, so dropping it shows
    W_x = 0.6 * torch.randn(C, 4 * d, generator=g)
    W_h = 0.6 * torch.randn(d, 4 * d, generator=g)
    b = 0.5 * torch.randn(4 * d, generator=g)
    args = (x_t, h, c, W_x, W_h, b)
    result = call(lstm_step, *args, name="lstm_step", hints=_MATMUL_HINTS)
    got_h, got_c = expect_tuple(result, "lstm_step", ("h_new", "c_new"))
    want_h, want_c = _lstm_variant(*args)
    for value, label in ((got_h, "h_new"), (got_c, "c_new")):
        expect_tensor(value, {"B": B, "d_hidden": d}, f"lstm_step ({label})")
    if torch.allclose(got_h, want_c, atol=1e-5, rtol=1e-4) and torch.allclose(got_c, want_h, atol=1e-5, rtol=1e-4):
        raise Feedback("`lstm_step` returned (c_new, h_new); return them in the order (h_new, c_new), "
                       "as torch.nn.LSTM and course_lib.rnn.LSTM.step do.")

    variant = lambda **kw: (lambda: _lstm_variant(*args, **kw)[1])  # noqa: E731  (c_new of a mistake)
    names = "ifgo"
    mistakes = {
        f"sigmoid and tanh are swapped: the three gates i, f, o use sigmoid (values in (0, 1)), the "
        f"candidate g uses tanh: {_LSTM}.": variant(gate=torch.tanh, cand=torch.sigmoid),
        f"looks like you used sigmoid everywhere: the candidate g goes through tanh: {_LSTM}.":
            variant(cand=torch.sigmoid),
        f"looks like you used tanh everywhere: the gates i, f, o go through sigmoid: {_LSTM}.":
            variant(gate=torch.tanh),
        "the previous cell state is not carried: c_new must include the old memory scaled by the forget gate, "
        "c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g); without the first term the LSTM "
        "remembers nothing from one step to the next.": variant(carry="none"),
        "the forget gate is not applied: the old memory is scaled by it, c_t = sigmoid(f) * c_{t-1} + "
        "sigmoid(i) * tanh(g), not c_{t-1} + ...": variant(carry="plain"),
        f"looks like you forgot the bias b: {_LSTM}.": variant(bias=False),
    }
    for order in itertools.permutations(range(4)):
        if order != (0, 1, 2, 3):
            taken = ", ".join(f"{names[k]} from block {order[k]}" for k in range(4) if order[k] != k)
            mistakes[f"the gate blocks are in the wrong order: torch (and this course) stacks the four blocks "
                     f"of x_t W_x + h W_h + b as i, f, g, o (input, forget, candidate, output), but you took "
                     f"{taken}. Split with `i, f, g, o = gates.chunk(4, dim=-1)`."] = variant(order=order)
    expect_close(got_c, want_c, "lstm_step (c_new)", mistakes=mistakes)
    h_variant = lambda **kw: (lambda: _lstm_variant(*args, **kw)[0])  # noqa: E731
    expect_close(got_h, want_h, "lstm_step (h_new)", mistakes={
        "h_new is missing the tanh on the cell state: h_t = sigmoid(o) * tanh(c_t).": h_variant(h_from="no_tanh"),
        "h_new uses the old cell state: compute c_new first, then h_t = sigmoid(o) * tanh(c_t) with the "
        "new one.": h_variant(h_from="tanh_old"),
        "the output gate o goes through sigmoid: h_t = sigmoid(o) * tanh(c_t).":
            lambda: torch.tanh(_pre_blocks(args)[3]) * torch.tanh(want_c),
    })


def _pre_blocks(args):
    x_t, h, _, W_x, W_h, b = args
    return (x_t @ W_x + h @ W_h + b).chunk(4, dim=-1)


# -- exercise 2: one GRU step -------------------------------------------------------------------------

def _gru_variant(x_t, h, W_x, W_h, b_x, b_h, *, order=(0, 1, 2), gate=torch.sigmoid, cand=torch.tanh,
                 reset="after", mix="torch", bias_x=True, bias_h=True):
    d = h.shape[-1]
    bx = b_x if bias_x else torch.zeros_like(b_x)
    bh = b_h if bias_h else torch.zeros_like(b_h)
    xs = (x_t @ W_x + bx).chunk(3, dim=-1)
    W_hs = W_h.split(d, dim=1)
    b_hs = bh.split(d)
    x_r, x_z, x_n = (xs[k] for k in order)
    (W_hr, W_hz, W_hn), (b_hr, b_hz, b_hn) = ([W_hs[k] for k in order], [b_hs[k] for k in order])
    r = gate(x_r + h @ W_hr + b_hr)
    z = gate(x_z + h @ W_hz + b_hz)
    recur = {"after": r * (h @ W_hn + b_hn), "before": (r * h) @ W_hn + b_hn,
             "not_bias": r * (h @ W_hn) + b_hn, "none": h @ W_hn + b_hn}[reset]
    n = cand(x_n + recur)
    return {"torch": (1 - z) * n + z * h, "reversed": z * n + (1 - z) * h, "none": n,
            "no_keep": (1 - z) * n}[mix]


@checker
def check_gru_step(gru_step: Callable, *, seed: int = 0, batch: int = 3, input_size: int = 5,
                   hidden_size: int = 4) -> None:
    """``gru_step(x_t (B, C), h (B, d), W_x (C, 3d), W_h (d, 3d), b_x (3d,), b_h (3d,))`` must return
    the new h (B, d) in torch's convention: blocks r, z, n; n = tanh(x W_xn + b_xn + r * (h W_hn + b_hn));
    h_new = (1 - z) * n + z * h."""
    B, C, d = batch, input_size, hidden_size
    g = _gen(8000 + seed)
    x_t = torch.randn(B, C, generator=g)
    h = torch.randn(B, d, generator=g)
    W_x = 0.7 * torch.randn(C, 3 * d, generator=g)
    W_h = 0.7 * torch.randn(d, 3 * d, generator=g)
    b_x = 0.5 * torch.randn(3 * d, generator=g)
    b_h = 0.8 * torch.randn(3 * d, generator=g)   # a sizeable b_hn, so where r meets it shows
    args = (x_t, h, W_x, W_h, b_x, b_h)
    got = call(gru_step, *args, name="gru_step", hints=_MATMUL_HINTS)
    got = expect_tensor(got, {"B": B, "d_hidden": d}, "gru_step")
    v = lambda **kw: (lambda: _gru_variant(*args, **kw))  # noqa: E731
    mistakes = {
        f"the interpolation is reversed: in torch's convention z is the share of the OLD state kept, "
        f"{_GRU} (some papers swap z and 1 - z; here follow torch).": v(mix="reversed"),
        "the reset gate is applied before the matrix, (r * h) @ W_hn, as in Cho et al. (2014); torch "
        "applies it after, to the whole recurrent term including its bias: "
        "n = tanh(x_t W_xn + b_xn + r * (h W_hn + b_hn)).": v(reset="before"),
        "the reset gate must multiply the recurrent term including its bias: r * (h @ W_hn + b_hn); "
        "you added b_hn outside (or summed the two biases first).": v(reset="not_bias"),
        "the reset gate r is never used: n = tanh(x_t W_xn + b_xn + r * (h W_hn + b_hn)).": v(reset="none"),
        f"sigmoid and tanh are swapped: r and z use sigmoid, the candidate n uses tanh; {_GRU}.":
            v(gate=torch.tanh, cand=torch.sigmoid),
        f"looks like you used sigmoid for the candidate n too: n goes through tanh; {_GRU}.":
            v(cand=torch.sigmoid),
        f"you returned the candidate n: the new state interpolates, {_GRU}.": v(mix="none"),
        f"the old state is not kept: {_GRU}; the term z * h_{{t-1}} is the GRU's memory path.": v(mix="no_keep"),
        "looks like you forgot the biases b_x and b_h.": v(bias_x=False, bias_h=False),
        "looks like you forgot the input bias b_x.": v(bias_x=False),
        "looks like you forgot the recurrent bias b_h.": v(bias_h=False),
    }
    names = "rzn"
    for order in itertools.permutations(range(3)):
        if order != (0, 1, 2):
            taken = ", ".join(f"{names[k]} from block {order[k]}" for k in range(3) if order[k] != k)
            mistakes[f"the gate blocks are in the wrong order: torch stacks them r, z, n (reset, update, "
                     f"candidate), but you took {taken}. Split with `x_r, x_z, x_n = (...).chunk(3, dim=-1)`."
                     ] = v(order=order)
            mistakes[f"the gate blocks are in the wrong order (r, z, n in torch), and the interpolation is "
                     f"reversed; you took {taken}."] = v(order=order, mix="reversed")
    expect_close(got, _gru_variant(*args), "gru_step", mistakes=mistakes)


# -- exercise 3: the LSTM loop over time, carrying (h, c) ----------------------------------------------

@checker
def check_lstm_forward(lstm_forward: Callable, *, seed: int = 0, batch: int = 2, steps: int = 5,
                       input_size: int = 3, hidden_size: int = 4) -> None:
    """``lstm_forward(step, x (B, T, C), state0 = (h0, c0))`` must call ``step(x[:, t], (h, c))`` for
    t = 0..T-1, carrying both h and c, and return ``(states (B, T, d), (h_T, c_T))``.

    The helper passes an instrumented ``step`` that records how it is called.
    """
    B, T, C, d = batch, steps, input_size, hidden_size
    g = _gen(9000 + seed)
    x = torch.randn(B, T, C, generator=g)
    h0, c0 = 0.5 * torch.randn(B, d, generator=g), torch.randn(B, d, generator=g)
    W_x, W_h = 0.6 * torch.randn(C, 4 * d, generator=g), 0.6 * torch.randn(d, 4 * d, generator=g)
    b = 0.3 * torch.randn(4 * d, generator=g)
    calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def step(x_t, state):
        n = len(calls)
        if not isinstance(x_t, torch.Tensor) or tuple(x_t.shape) != (B, C):
            shape = tuple(x_t.shape) if isinstance(x_t, torch.Tensor) else describe(x_t)
            raise Feedback(f"call {n + 1} of `step` got x_t of shape {shape}; expected (B, C) = {(B, C)}, "
                           "the t-th time step of every sequence: x[:, t].")
        if isinstance(state, torch.Tensor) or not isinstance(state, (tuple, list)) or len(state) != 2:
            raise Feedback(f"call {n + 1} of `step` got {describe(state)} as its state; an LSTM step takes "
                           "the pair (h, c): `h, c = step(x[:, t], (h, c))`.")
        h, c = state
        for value, label in ((h, "h"), (c, "c")):
            if not isinstance(value, torch.Tensor) or tuple(value.shape) != (B, d):
                shape = tuple(value.shape) if isinstance(value, torch.Tensor) else describe(value)
                raise Feedback(f"call {n + 1} of `step` got {label} of shape {shape}; expected (B, d_hidden) "
                               f"= {(B, d)}.")
        if n >= 4 * T + 8:
            raise Feedback(f"`step` was called more than {4 * T + 8} times for T = {T} steps; call it once per step.")
        i, f, gg, o = (x_t @ W_x + h @ W_h + b).chunk(4, dim=-1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
        h_new = torch.sigmoid(o) * torch.tanh(c_new)
        calls.append((x_t.detach().clone(), h.detach().clone(), c.detach().clone(),
                      h_new.detach().clone(), c_new.detach().clone()))
        return h_new, c_new

    result = call(lstm_forward, step, x, (h0, c0), name="lstm_forward")
    states, last = expect_tuple(result, "lstm_forward", ("states", "(h_T, c_T)"))
    if len(calls) != T:
        raise Feedback(f"`lstm_forward` called `step` {len(calls)} times for a sequence of T = {T} steps; "
                       "call it exactly once per time step: for t in range(T).")

    def same(a, b_):
        return a.shape == b_.shape and bool(torch.allclose(a, b_, atol=1e-6))

    for t, call_ in enumerate(calls):
        if not same(call_[0], x[:, t]):
            if same(call_[0], x[:, T - 1 - t]):
                raise Feedback("`lstm_forward` walked through time backwards: step t must get x[:, t].")
            raise Feedback(f"call {t + 1} of `step` did not get x[:, {t}]: step t must get x[:, t].")
    if same(calls[0][1], c0) and same(calls[0][2], h0):
        raise Feedback("the first call of `step` got (c0, h0): the state is the pair (h, c), hidden state first.")
    if not same(calls[0][1], h0) or not same(calls[0][2], c0):
        raise Feedback("the first call of `step` did not get the state0 = (h0, c0) you were given; start "
                       "from it, not from zeros.")
    for t in range(1, T):
        _, h_in, c_in, _, _ = calls[t]
        h_prev, c_prev = calls[t - 1][3], calls[t - 1][4]
        if same(h_in, c_prev) and same(c_in, h_prev):
            raise Feedback(f"at step {t} `step` got (c, h) instead of (h, c): unpack what it returns as "
                           "`h, c = step(x[:, t], (h, c))`.")
        if not same(c_in, c_prev):
            if same(c_in, c0) or same(c_in, torch.zeros(B, d)):
                raise Feedback(f"cell state not carried: at step {t} you passed c0 (or zeros) again. The cell "
                               "state is the LSTM's memory; each step must get the c returned by the step "
                               "before: `h, c = step(x[:, t], (h, c))`.")
            raise Feedback(f"at step {t}, `step` did not get the c returned by step {t - 1}; carry it.")
        if not same(h_in, h_prev):
            if same(h_in, h0) or same(h_in, torch.zeros(B, d)):
                raise Feedback(f"hidden state not carried: at step {t} you passed h0 (or zeros) again; each "
                               "step must get the h returned by the step before.")
            raise Feedback(f"at step {t}, `step` did not get the h returned by step {t - 1}; carry it.")

    want_states = torch.stack([cl[3] for cl in calls], dim=1)       # (B, T, d)
    states = expect_tensor(states, {"B": B, "T": T, "d_hidden": d}, "lstm_forward (states)")
    expect_close(states, want_states, "lstm_forward (states)", mistakes={
        "you stacked the cell states c; `states` holds the hidden states h of every step "
        "(what torch.nn.LSTM returns as its output).": lambda: torch.stack([cl[4] for cl in calls], dim=1),
        "states[:, t] should be the h returned by step t; yours are the h passed into each step "
        "(shifted by one).": lambda: torch.stack([cl[1] for cl in calls], dim=1),
    })
    h_T, c_T = expect_tuple(last, "lstm_forward (last state)", ("h_T", "c_T"))
    h_T = expect_tensor(h_T, {"B": B, "d_hidden": d}, "lstm_forward (h_T)")
    c_T = expect_tensor(c_T, {"B": B, "d_hidden": d}, "lstm_forward (c_T)")
    if same(h_T, calls[-1][4]) and same(c_T, calls[-1][3]):
        raise Feedback("the last state should be (h_T, c_T); you returned (c_T, h_T).")
    expect_close(h_T, calls[-1][3], "lstm_forward (h_T)", mistakes={
        "h_T should be the hidden state after the last step; you returned h0.": h0})
    expect_close(c_T, calls[-1][4], "lstm_forward (c_T)", mistakes={
        "c_T should be the cell state after the last step; you returned c0.": c0})


# -- exercise 4: counting parameters ----------------------------------------------------------------------

_GATES = {"rnn": 1, "gru": 3, "lstm": 4}


@checker
def check_count_params(count_params: Callable, *, sizes: tuple = ((3, 16), (5, 6), (32, 64))) -> None:
    """``count_params(kind, input_size, hidden_size)`` for kind "rnn", "gru" or "lstm" must return the
    number of parameters of the one-layer ``torch.nn.RNN`` / ``GRU`` / ``LSTM`` of that size, by
    formula: G * (C*d + d*d + 2*d) with G = 1, 3, 4 gate blocks."""
    modules = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}
    for kind in ("rnn", "gru", "lstm"):
        for C, d in sizes:
            got = call(count_params, kind, C, d, name="count_params")
            if isinstance(got, torch.Tensor) and got.numel() == 1:
                got = got.item()
            if type(got).__module__ == "numpy" and getattr(got, "shape", None) == ():
                got = got.item()
            if isinstance(got, float) and got.is_integer():
                got = int(got)
            if not isinstance(got, int) or isinstance(got, bool):
                raise Feedback(f"`count_params({kind!r}, {C}, {d})` returned {describe(got)}; expected an int.")
            want = sum(p.numel() for p in modules[kind](C, d).parameters())
            if got == want:
                continue
            G = _GATES[kind]
            known = {
                G * (C * d + d * d + d): "one bias vector per gate block; torch keeps two (bias_ih and bias_hh), "
                                         "so each block has 2*d bias entries: G * (C*d + d*d + 2*d).",
                G * (C * d + d * d): "you left out the biases: each gate block has two bias vectors of d "
                                     "entries (bias_ih and bias_hh).",
                G * (C * d + 2 * d): "you left out the recurrent matrix: each gate block has a d x d matrix "
                                     "for the previous hidden state.",
                G * (d * d + 2 * d): "you left out the input matrix: each gate block has a C x d matrix for the input.",
            }
            for wrong_G, label in ((3, "3"), (4, "4"), (1, "1"), (2, "2")):
                if wrong_G != G:
                    known.setdefault(wrong_G * (C * d + d * d + 2 * d),
                                     f"you counted {label} gate block(s) for {kind!r}; an RNN has 1, a GRU 3 "
                                     "(r, z, n), an LSTM 4 (i, f, g, o).")
            hint = known.get(got, "compare your formula with G * (C*d + d*d + 2*d), G the number of gate "
                                  "blocks (1 for an RNN, 3 for a GRU, 4 for an LSTM).")
            raise Feedback(f"`count_params({kind!r}, {C}, {d})` returned {got}, but torch.nn.{kind.upper()}"
                           f"({C}, {d}) has {want} parameters: {hint}")


# -- exercise 5: a prediction, the forget-gate bias for a memory of k steps ---------------------------------

def _kept_share(bias: float, steps: int, hidden_size: int = 3, seed: int = 0) -> float:
    """The share of its cell state a ``course_lib.rnn.LSTM`` keeps over ``steps`` steps when every
    weight and bias is 0 except the forget gate's bias (so the input gate writes tanh(0) = 0),
    measured in float64."""
    torch.manual_seed(5200 + seed)
    lstm = LSTM(2, hidden_size).double()
    d = hidden_size
    with torch.no_grad():
        for p in (lstm.W_x, lstm.W_h, lstm.b):
            p.zero_()
        lstm.b[d:2 * d] = bias                      # blocks i, f, g, o: the second is the forget gate
    g = _gen(5200 + seed)
    x = torch.randn(1, steps, 2, generator=g, dtype=torch.float64)
    c0 = 1.0 + torch.rand(1, d, generator=g, dtype=torch.float64)
    h, c = torch.zeros_like(c0), c0
    with torch.no_grad():
        for t in range(steps):
            h, c = lstm.step(x[:, t], (h, c))
    return (c / c0).mean().item()


def _logit(p: float) -> float:
    return math.log(p / (1 - p)) if 0 < p < 1 else math.nan


@checker
def check_forget_bias(forget_bias: Callable, *, cases: tuple = ((0.5, 50), (0.9, 10))) -> None:
    """``forget_bias(keep, steps)`` must return the bias b of the forget gate for which an LSTM cell
    that writes nothing new keeps the share ``keep`` of its cell state after ``steps`` steps,
    sigmoid(b) ** steps = keep. The check sets that bias in ``course_lib.rnn.LSTM`` and measures."""
    name = "forget_bias"
    for keep, k in cases:
        got = expect_number(call(forget_bias, keep, k, name=name), f"forget_bias({keep}, {k})", "the bias, a float")
        if not math.isfinite(got):
            raise Feedback(f"`forget_bias({keep}, {k})` returned {got}; a bias that keeps a share between 0 and 1 "
                           "is a finite number: look for a log of 0 or a division by zero.")
        kept = _kept_share(got, k)
        if math.isclose(kept, keep, rel_tol=1e-4, abs_tol=1e-9):
            continue
        f = keep ** (1 / k)          # the gate value that does it; the bias is its logit
        mistakes = [
            (f, "That is the value the forget gate must have, f = keep ** (1 / k). The bias is what goes "
                "*into* the sigmoid: b = log(f / (1 - f)), the inverse of the sigmoid (torch.logit)."),
            (_logit(keep), f"That bias keeps {keep} after ONE step. Over {k} steps the cell state is multiplied "
                           f"by the gate {k} times: sigmoid(b) ** {k} = {keep}."),
            (-_logit(f), "Wrong sign: a negative bias closes the gate (sigmoid(b) < 1/2) and the memory is "
                         "gone in a few steps. sigmoid(-b) = 1 - sigmoid(b)."),
            (_logit(keep ** (1 / (k + 1))), f"Off by one: from c_0 to c_{k} the gate is applied {k} times, once "
                                            "per step, not k + 1."),
            (_logit(keep ** (1 / (k - 1))) if k > 1 else math.nan,
             f"Off by one: from c_0 to c_{k} the gate is applied {k} times, once per step, not k - 1."),
            (_logit(1 - (1 - keep) / k), f"That loses the same amount, (1 - keep) / k, at every step; the gate "
                                         f"multiplies: the memory decays geometrically, sigmoid(b) ** {k} = {keep}."),
            (math.log(f), "That is log f; the inverse of the sigmoid is the logit, log(f / (1 - f))."),
        ]
        hint = next((text for value, text in mistakes if math.isfinite(value)
                     and math.isclose(got, value, rel_tol=1e-4, abs_tol=1e-6)),
                    f"With the gate's bias b the cell state is multiplied by sigmoid(b) at every step, so after "
                    f"{k} steps by sigmoid(b) ** {k}.")
        raise Feedback(f"`forget_bias({keep}, {k})` returned {got:.5g}: with that forget-gate bias the LSTM cell "
                       f"kept {kept:.4g} of its memory over {k} steps, not {keep}. {hint}")
