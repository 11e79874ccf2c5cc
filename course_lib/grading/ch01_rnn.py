"""Check helpers for the exercises of chapter 01 (recurrent networks).

One helper per exercise; each builds its inputs from ``seed``, calls the learner's function
safely, and names the usual mistake when the answer is wrong:

1. ``check_rnn_step``: wrong activation, bias forgotten or outside the tanh, h or x ignored,
   W_x and W_h swapped or transposed;
2. ``check_rnn_forward``: hidden state not carried, steps out of order or the wrong slice of x,
   states stacked on the wrong axis or shifted, the wrong last state;
3. ``check_grad_norms_by_distance``: reversed order, gradients of the inputs instead of the
   states, only the direct path, squared norms, a mean loss, h_0 included;
4. ``check_temperature_probs``: temperature multiplied or ignored or applied after the softmax,
   softmax over the wrong axis or missing, log-probabilities;
5. ``check_generate``: hidden state not carried, temperature multiplied or ignored, argmax
   instead of sampling, the wrong position's logits, the generator not used, prompt dropped;
6. a prediction, the gradient norm d steps back in an RNN at rest: ``check_grad_norm_prediction``
   names the missing sqrt(d_hidden) (or d_hidden instead of it), the distance off by one, a
   gradient of 0 (the states are 0, the slope of tanh is not), a norm that ignores rho, a product
   taken as a sum, the squared norm; ``check_norm_with_inputs`` explains, with the measurement, why
   inputs can only shrink it (the factor 1 - h_t^2).

Glossary (the README's): B batch, T time steps, C channels (input features per step), d_hidden (d) hidden width, V vocabulary.
"""
from __future__ import annotations

import copy
import math
from typing import Callable

import torch

from ..rnn import RNN, CharLM, CharLMConfig, sample
from .core import Feedback, call, checker, describe, expect_close, expect_number, expect_tensor, generator

_STEP = "h_t = tanh(x_t W_x + h_{t-1} W_h + b)"


_gen = generator


# -- exercise 1: one RNN step ---------------------------------------------------------------------

def _step_inputs(seed: int, batch: int, input_size: int, hidden_size: int):
    g = _gen(1000 + seed)
    x_t = torch.randn(batch, input_size, generator=g)
    h = 0.8 * torch.randn(batch, hidden_size, generator=g)   # non-zero, so ignoring h shows
    W_x = 0.6 * torch.randn(input_size, hidden_size, generator=g)
    W_h = 0.6 * torch.randn(hidden_size, hidden_size, generator=g)
    b = 0.5 * torch.randn(hidden_size, generator=g)
    return x_t, h, W_x, W_h, b


@checker
def check_rnn_step(rnn_step: Callable, *, seed: int = 0, batch: int = 3, input_size: int = 5,
                   hidden_size: int = 4, square: bool = False) -> None:
    """``rnn_step(x_t (B, C), h (B, d_hidden), W_x (C, d_hidden), W_h (d_hidden, d_hidden), b (d_hidden,))``
    must return ``tanh(x_t @ W_x + h @ W_h + b)`` of shape (B, d_hidden).

    ``square=True`` makes C = d_hidden, where swapped or transposed weights run without an error
    and only the values can tell.
    """
    if square:
        input_size = hidden_size
    x_t, h, W_x, W_h, b = _step_inputs(seed, batch, input_size, hidden_size)
    got = call(rnn_step, x_t, h, W_x, W_h, b, name="rnn_step", hints={
        "cannot be multiplied": "x_t (B, C) is multiplied by W_x (C, d_hidden) and h (B, d_hidden) by "
                                "W_h (d_hidden, d_hidden): check which weight goes with which input, "
                                "and that neither is transposed.",
        "must match the size": "every term inside the tanh has shape (B, d_hidden); check each product's shape.",
    })
    got = expect_tensor(got, {"B": batch, "d_hidden": hidden_size}, "rnn_step")
    pre = x_t @ W_x + h @ W_h + b
    mistakes = {
        f"looks like you used sigmoid instead of tanh: {_STEP}.": lambda: torch.sigmoid(pre),
        f"looks like you used relu instead of tanh: {_STEP}.": lambda: torch.relu(pre),
        "looks like you forgot the activation: apply torch.tanh to x_t W_x + h W_h + b.": lambda: pre,
        f"looks like you forgot the bias b: {_STEP}.": lambda: torch.tanh(x_t @ W_x + h @ W_h),
        "looks like you added b after the tanh; the bias goes inside: tanh(x_t W_x + h W_h + b).":
            lambda: torch.tanh(x_t @ W_x + h @ W_h) + b,
        "looks like you ignored the previous hidden state h: the term h @ W_h is what carries memory "
        "from one step to the next.": lambda: torch.tanh(x_t @ W_x + b),
        "looks like you ignored the input x_t: the term x_t @ W_x brings in the new input.":
            lambda: torch.tanh(h @ W_h + b),
        "looks like W_x and W_h are swapped: the input x_t goes through W_x (input to hidden), the "
        "state h through W_h (hidden to hidden).": lambda: torch.tanh(x_t @ W_h + h @ W_x + b),
        "looks like you used transposed weights: here weights are stored (in_features, out_features), "
        "so the step is x_t @ W_x + h @ W_h, not W @ x or x @ W.T.":
            lambda: torch.tanh(x_t @ W_x.T + h @ W_h.T + b),
        "looks like you used W_h transposed: the recurrent term is h @ W_h (weights stored "
        "(in_features, out_features)), not h @ W_h.T or W_h @ h.": lambda: torch.tanh(x_t @ W_x + h @ W_h.T + b),
        "looks like you used W_x transposed: the input term is x_t @ W_x (weights stored "
        "(in_features, out_features)), not x_t @ W_x.T.": lambda: torch.tanh(x_t @ W_x.T + h @ W_h + b),
    }
    expect_close(got, torch.tanh(pre), "rnn_step", mistakes=mistakes)


# -- exercise 2: the loop over time -----------------------------------------------------------------

@checker
def check_rnn_forward(rnn_forward: Callable, *, seed: int = 0, batch: int = 2, steps: int = 5,
                      input_size: int = 3, hidden_size: int = 4) -> None:
    """``rnn_forward(step, x (B, T, C), h0 (B, d_hidden))`` must call ``step(x[:, t], h)`` for
    t = 0..T-1, carrying h, and return ``(states (B, T, d_hidden), h_last (B, d_hidden))``.

    The helper passes an instrumented ``step`` that records how it is called, so it can tell
    which step went wrong.
    """
    B, T, C, d = batch, steps, input_size, hidden_size
    g = _gen(2000 + seed)
    x = torch.randn(B, T, C, generator=g)
    h0 = 0.5 * torch.randn(B, d, generator=g)
    W_x, W_h = 0.7 * torch.randn(C, d, generator=g), 0.7 * torch.randn(d, d, generator=g)
    b = 0.3 * torch.randn(d, generator=g)
    calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def step(x_t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        n = len(calls)
        if not isinstance(x_t, torch.Tensor) or tuple(x_t.shape) != (B, C):
            shape = tuple(x_t.shape) if isinstance(x_t, torch.Tensor) else describe(x_t)
            msg = (f"call {n + 1} of `step` got x_t of shape {shape}; expected (B, C) = {(B, C)}, "
                   "the t-th time step of every sequence: x[:, t].")
            if isinstance(x_t, torch.Tensor) and tuple(x_t.shape) == (T, C):
                msg += " You passed x[t], the t-th sequence of the batch."
            raise Feedback(msg)
        if not isinstance(h, torch.Tensor) or tuple(h.shape) != (B, d):
            shape = tuple(h.shape) if isinstance(h, torch.Tensor) else describe(h)
            raise Feedback(f"call {n + 1} of `step` got h of shape {shape}; expected (B, d_hidden) = {(B, d)}.")
        if n >= 4 * T + 8:
            raise Feedback(f"`step` was called more than {4 * T + 8} times for T = {T} steps; call it once per step.")
        out = torch.tanh(x_t @ W_x + h @ W_h + b)
        calls.append((x_t.detach().clone(), h.detach().clone(), out.detach().clone()))
        return out

    result = call(rnn_forward, step, x, h0, name="rnn_forward")
    if isinstance(result, torch.Tensor) or not isinstance(result, (tuple, list)) or len(result) != 2:
        raise Feedback(f"`rnn_forward` returned {describe(result)}; expected a pair (states, h_last): "
                       "`return states, h_last`.")
    if len(calls) != T:
        raise Feedback(f"`rnn_forward` called `step` {len(calls)} times for a sequence of T = {T} steps; "
                       "call it exactly once per time step: for t in range(T).")

    def same(a: torch.Tensor, b_: torch.Tensor) -> bool:
        return a.shape == b_.shape and bool(torch.allclose(a, b_, atol=1e-6))

    for t, (x_seen, _, _) in enumerate(calls):
        if not same(x_seen, x[:, t]):
            if same(x_seen, x[:, T - 1 - t]):
                raise Feedback("`rnn_forward` walked through time backwards: step t must get x[:, t], "
                               "t = 0, 1, ..., T-1.")
            raise Feedback(f"call {t + 1} of `step` did not get x[:, {t}]: step t must get the t-th time "
                           "step of every sequence, x[:, t].")
    if not same(calls[0][1], h0):
        extra = " You started from zeros: start from the h0 you are given." if same(calls[0][1], torch.zeros(B, d)) else ""
        raise Feedback(f"the first call of `step` did not get h0.{extra}")
    for t in range(1, T):
        if not same(calls[t][1], calls[t - 1][2]):
            if same(calls[t][1], h0) or same(calls[t][1], torch.zeros(B, d)):
                raise Feedback(f"hidden state not carried: at step {t} you passed h0 (or zeros) again. Each "
                               "step must get the h returned by the step before: h = step(x[:, t], h).")
            raise Feedback(f"at step {t}, `step` did not get the h returned by step {t - 1}; "
                           "carry it: h = step(x[:, t], h).")

    states, h_last = result
    want = torch.stack([c[2] for c in calls], dim=1)  # (B, T, d_hidden)
    states = expect_tensor(states, {"B": B, "T": T, "d_hidden": d}, "rnn_forward (states)")
    expect_close(states, want, "rnn_forward (states)", mistakes={
        "states[:, t] should be the h returned by step t; yours are the h passed into each step "
        "(shifted by one).": lambda: torch.stack([c[1] for c in calls], dim=1),
    })
    h_last = expect_tensor(h_last, {"B": B, "d_hidden": d}, "rnn_forward (h_last)")
    expect_close(h_last, want[:, -1], "rnn_forward (h_last)", mistakes={
        "h_last should be the state after the last step, states[:, -1]; you returned h0.": h0,
        "h_last should be the state after the last step, states[:, -1]; you returned the first.": want[:, 0],
    })


# -- exercise 3: gradient norm against distance ----------------------------------------------------

def _grad_problem(seed: int, steps: int, input_size: int, hidden_size: int, rho: float | None):
    torch.manual_seed(3000 + seed)  # RNN's init draws from the global generator
    rnn = RNN(input_size, hidden_size)
    g = _gen(3000 + seed)
    if rho is not None:
        with torch.no_grad():
            q, _ = torch.linalg.qr(torch.randn(hidden_size, hidden_size, generator=g))
            rnn.W_h.copy_(rho * q)
            rnn.W_x.mul_(0.1)
    return rnn, torch.randn(1, steps, input_size, generator=g)


def _reference_grads(rnn: RNN, x: torch.Tensor, of: str = "states", loss: str = "sum"):
    """Norms of dL/dh_k (or dL/dx_k) for k = T, T-1, ..., 1, with L = h_T.sum()."""
    rnn = copy.deepcopy(rnn)
    x = x.clone().requires_grad_(of == "inputs")
    T = x.shape[1]
    h, states = x.new_zeros(x.shape[0], rnn.hidden_size), []
    for t in range(T):
        h = rnn.step(x[:, t], h)
        h.retain_grad()
        states.append(h)
    L = states[-1].sum() if loss == "sum" else states[-1].mean()
    L.backward()
    if of == "inputs":
        return torch.stack([x.grad[:, T - 1 - k].norm() for k in range(T)])
    return torch.stack([states[T - 1 - k].grad.norm() for k in range(T)]).detach()


@checker
def check_grad_norms_by_distance(grad_norms_by_distance: Callable, *, seed: int = 0, steps: int = 12,
                                 input_size: int = 3, hidden_size: int = 5, rho: float | None = None) -> None:
    """``grad_norms_by_distance(rnn, x (1, T, C))`` must return the T norms ||dL/dh_k|| for
    k = T, T-1, ..., 1 (entry d is d steps back from the loss), with L = h_T.sum().

    ``rho`` sets W_h to rho times an orthogonal matrix (vanishing below 1, exploding above).
    """
    rnn, x = _grad_problem(seed, steps, input_size, hidden_size, rho)
    T = steps
    got = call(grad_norms_by_distance, copy.deepcopy(rnn), x.clone(), name="grad_norms_by_distance")
    if isinstance(got, (list, tuple)) and got and all(isinstance(v, (int, float)) for v in got):
        got = torch.tensor(got)
    if isinstance(got, torch.Tensor) and tuple(got.shape) == (T + 1,):
        raise Feedback(f"`grad_norms_by_distance` returned T + 1 = {T + 1} norms; leave out h_0, the initial "
                       "state that no step computed: one norm per step, h_T back to h_1.")
    got = expect_tensor(got, {"T": T}, "grad_norms_by_distance", allow_numpy=True)
    got = got.detach().to(torch.float64)
    rnn64, x64 = copy.deepcopy(rnn).double(), x.double()  # the reference in float64: float32 and float64 answers pass
    want = _reference_grads(rnn64, x64)
    inputs = lambda: _reference_grads(rnn64, x64, of="inputs")  # noqa: E731
    direct = torch.zeros_like(want)
    direct[0] = want[0]
    # float32 rounding, measured here: the same reference in float32 drifts from float64 along an
    # exploding chain (2e-4 relative at rho = 3 on one CPU, 41.772 vs 41.764), so a right float32
    # answer is allowed 10 times the reference's own drift, never less than 1e-4 nor more than 1e-2
    drift = ((_reference_grads(rnn, x).double() - want).abs() / want.abs().clamp_min(1e-30)).max().item()
    rtol = min(1e-2, max(1e-4, 10 * drift))
    expect_close(got, want, "grad_norms_by_distance", atol=1e-7, rtol=rtol, mistakes={
        "your norms are in time order (h_1 first); entry d should be d steps back from the loss, so "
        "entry 0 is h_T: reverse them.": want.flip(0),
        "only the last state gets a gradient: that is the .grad of the stacked `states` (or of a copy), "
        "which sees only the direct path from the loss. Keep every h of the loop, call h.retain_grad() "
        "on each, and read their .grad after backward().": direct,
        "only the last state gets a gradient (and in time order): keep every h of the loop, call "
        "h.retain_grad() on each, and read their .grad after backward().": direct.flip(0),
        "these look like the gradients with respect to the inputs x_t; the exercise asks for the "
        "hidden states h_t (retain_grad() on each h of the loop).": inputs,
        "these look like the gradients with respect to the inputs x_t (in time order); the exercise "
        "asks for the hidden states h_t, entry 0 being h_T.": lambda: inputs().flip(0),
        "these are squared norms: use .norm(), the square root of the sum of squares.": want ** 2,
        "looks like your loss was h_T.mean(); the exercise uses L = h_T.sum().":
            lambda: _reference_grads(rnn, x, loss="mean").double(),
    })


# -- exercise 4: temperature ---------------------------------------------------------------------------

@checker
def check_temperature_probs(temperature_probs: Callable, *, seed: int = 0, batch: int = 3, vocab: int = 7,
                            temperature: float = 0.5, scale: float = 2.0) -> None:
    """``temperature_probs(logits (B, V), temperature)`` must return softmax(logits / temperature)
    over the vocabulary axis, shape (B, V)."""
    if temperature == 1.0:
        raise ValueError("temperature: use a value other than 1.0, where dividing and multiplying agree")
    logits = scale * torch.randn(batch, vocab, generator=_gen(4000 + seed))
    got = call(temperature_probs, logits, temperature, name="temperature_probs")
    got = expect_tensor(got, {"B": batch, "V": vocab}, "temperature_probs", finite=False)
    if got.is_floating_point() and not bool(torch.isfinite(got).all()):
        raise Feedback("`temperature_probs` returned NaN or inf: exp(logits / temperature) overflows when "
                       "the temperature is small. Use torch.softmax, which subtracts the row maximum first "
                       "(softmax is unchanged by a constant shift).")
    want = torch.softmax(logits / temperature, dim=-1)
    expect_close(got, want, "temperature_probs", atol=1e-6, rtol=1e-4, mistakes={
        "looks like you multiplied the logits by the temperature; divide them: "
        "softmax(logits / temperature). A low temperature must sharpen the distribution.":
            lambda: torch.softmax(logits * temperature, dim=-1),
        "softmax over the wrong axis: each row is one distribution over the V vocabulary entries "
        "and must sum to 1, so take the softmax over the last axis (dim=-1).":
            lambda: torch.softmax(logits / temperature, dim=0),
        "softmax over the wrong axis, and the temperature multiplied: use softmax(logits / temperature, dim=-1).":
            lambda: torch.softmax(logits * temperature, dim=0),
        "you returned the scaled logits: turn them into probabilities with torch.softmax(..., dim=-1).":
            lambda: logits / temperature,
        "you returned log-probabilities (log_softmax); return probabilities (softmax).":
            lambda: torch.log_softmax(logits / temperature, dim=-1),
        "looks like you ignored the temperature: divide the logits by it before the softmax.":
            lambda: torch.softmax(logits, dim=-1),
        "you divided the probabilities by the temperature after the softmax; divide the logits "
        "before it: softmax(logits / temperature).": lambda: torch.softmax(logits, dim=-1) / temperature,
        "you applied the temperature after the softmax; divide the logits before it: "
        "softmax(logits / temperature).": lambda: torch.softmax(torch.softmax(logits, dim=-1) / temperature, dim=-1),
    })


# -- exercise 5: sampling with temperature, carrying the state ----------------------------------------

def _lm(seed: int, vocab: int) -> CharLM:
    torch.manual_seed(5000 + seed)
    model = CharLM(CharLMConfig(vocab_size=vocab, d_embed=8, d_hidden=16, cell="rnn"))
    with torch.no_grad():  # sharper next-id distributions than the init gives, so mistakes show
        model.head.weight.mul_(4.0)
    return model.eval()


@torch.no_grad()
def _sample_variant(model: CharLM, prompt: list[int], n_new: int, temperature: float, seed: int, *,
                    carry: bool = True, temp: str = "divide", greedy: bool = False,
                    first_position: bool = False) -> list[int]:
    """What the usual mistakes return: same draws from the same generator, one thing wrong."""
    g = _gen(seed)
    logits, h = model(torch.tensor([prompt]))
    out = list(prompt)
    for i in range(n_new):
        row = logits[0, 0] if (first_position and i == 0) else logits[0, -1]
        scaled = {"divide": row / temperature, "multiply": row * temperature, "ignore": row}[temp]
        if greedy:
            next_id = int(scaled.argmax())
        else:
            next_id = int(torch.multinomial(torch.softmax(scaled, dim=-1), 1, generator=g))
        out.append(next_id)
        logits, h = model(torch.tensor([[next_id]]), h if carry else None)
    return out


@checker
def check_generate(generate: Callable, *, seed: int = 0, n_new: int = 12, temperature: float = 0.7,
                   prompt: tuple[int, ...] = (3, 5, 1), vocab: int = 11) -> None:
    """``generate(model, prompt_ids, n_new, temperature, generator)`` must return the prompt
    followed by ``n_new`` ids, each drawn with ``torch.multinomial(probs, 1, generator=generator)``
    from softmax(last logits / temperature), feeding each id back with the carried hidden state.
    It must equal ``course_lib.rnn.sample``."""
    model = _lm(seed, vocab)
    prompt_ids = list(prompt)
    gen_seed = 6000 + seed
    generator = _gen(gen_seed)
    state_before = generator.get_state()
    got = call(generate, model, list(prompt_ids), n_new, temperature, generator, name="generate")
    drew = not torch.equal(generator.get_state(), state_before)
    if isinstance(got, torch.Tensor):
        raise Feedback(f"`generate` returned {describe(got)}; return a plain list of ints "
                       "(e.g. `ids.tolist()`).")
    if not isinstance(got, (list, tuple)):
        raise Feedback(f"`generate` returned {describe(got)}; expected a list of "
                       f"len(prompt_ids) + n_new = {len(prompt_ids) + n_new} ints.")
    got = [int(v) if isinstance(v, torch.Tensor) and v.numel() == 1 else v for v in got]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in got):
        bad = next(v for v in got if not (isinstance(v, int) and not isinstance(v, bool)))
        raise Feedback(f"`generate` returned a list containing {describe(bad)}; every id must be an int "
                       "(use int(...) on a one-element tensor).")
    if len(got) == n_new and got[:len(prompt_ids)] != prompt_ids:
        raise Feedback(f"`generate` returned only the {n_new} new ids; return the prompt followed by them "
                       f"({len(prompt_ids)} + {n_new} ids).")
    if len(got) != len(prompt_ids) + n_new:
        raise Feedback(f"`generate` returned {len(got)} ids; expected the prompt ({len(prompt_ids)} ids) "
                       f"followed by n_new = {n_new} new ones, {len(prompt_ids) + n_new} in all.")
    if got[:len(prompt_ids)] != prompt_ids:
        raise Feedback(f"`generate` should start with the prompt {prompt_ids}; it starts with "
                       f"{got[:len(prompt_ids)]}.")
    want = sample(model, prompt_ids, n_new, temperature=temperature, generator=_gen(gen_seed))
    if got == want:
        return
    variant = lambda **kw: _sample_variant(model, prompt_ids, n_new, temperature, gen_seed, **kw)  # noqa: E731
    known = [
        ("hidden state not carried: after the prompt, feed each new id together with the h returned "
         "by the previous call, `logits, h = model(torch.tensor([[next_id]]), h)`; without h the model "
         "forgets everything before that id.", dict(carry=False)),
        ("looks like you multiplied the logits by the temperature; divide them: "
         "softmax(logits / temperature).", dict(temp="multiply")),
        ("looks like you ignored the temperature: divide the logits by it before the softmax.",
         dict(temp="ignore")),
        ("you picked the most likely id (argmax) instead of sampling: draw with "
         "torch.multinomial(probs, 1, generator=generator).", dict(greedy=True)),
        ("you picked the most likely id (argmax) instead of sampling, and without the temperature: "
         "draw with torch.multinomial(probs, 1, generator=generator).", dict(greedy=True, temp="ignore")),
        ("the first new id came from the logits of the first prompt position; the next id always comes "
         "from the last position, logits[0, -1].", dict(first_position=True)),
    ]
    for message, kwargs in known:
        if got == variant(**kwargs):
            raise Feedback(f"`generate`: {message}")
    first = next(i for i, (a, b) in enumerate(zip(got, want)) if a != b)
    message = (f"`generate` differs from the reference from position {first} on (new id "
               f"{first - len(prompt_ids) + 1} of {n_new}): got {got[first]}, expected {want[first]}.")
    if not drew:
        message += (" You never drew from `generator`: pass generator=generator to torch.multinomial, "
                    "so that the draws can be compared.")
    else:
        message += (" Draw exactly one id per step with torch.multinomial(probs, 1, generator=generator), "
                    "probs = softmax(logits[0, -1] / temperature), and feed it back with the carried h.")
    raise Feedback(message)


# -- exercise 6: a prediction, the gradient norm at a distance -----------------------------------------

def _orthogonal_rnn_norms(rho: float, hidden_size: int, steps: int, seed: int, *, at_rest: bool) -> torch.Tensor:
    """Measured ||dL/dh_{T-d}||, d = 0 .. T-1, with L = h_T.sum(), of a course RNN whose W_h is rho
    times an orthogonal matrix, in float64. At rest: zero inputs and zero bias (h_0 = 0); otherwise
    random inputs and the RNN's own random bias."""
    torch.manual_seed(6100 + seed)  # RNN's init draws from the global generator
    rnn = RNN(3, hidden_size).double()
    g = _gen(6100 + seed)
    with torch.no_grad():
        q, _ = torch.linalg.qr(torch.randn(hidden_size, hidden_size, generator=g, dtype=torch.float64))
        rnn.W_h.copy_(rho * q)
        if at_rest:
            rnn.b.zero_()
    x = torch.randn(1, steps, 3, generator=g, dtype=torch.float64)
    return _reference_grads(rnn, torch.zeros_like(x) if at_rest else x)


@checker
def check_grad_norm_prediction(predicted_grad_norm: Callable, *, rho: float = 0.9, hidden_size: int = 32,
                               steps: int = 40, seed: int = 0) -> None:
    """``predicted_grad_norm(rho, d_hidden, distance)`` must predict ||dL/dh_{T-d}|| (L = h_T.sum())
    of an RNN at rest (zero inputs and bias, h_0 = 0) with W_h = rho * an orthogonal matrix, for
    every distance 0 .. steps - 1; the check measures it on ``course_lib.rnn.RNN``."""
    measured = [v.item() for v in _orthogonal_rnn_norms(rho, hidden_size, steps, seed, at_rest=True)]
    n, root = hidden_size, math.sqrt(hidden_size)
    name = "predicted_grad_norm"
    got = [expect_number(call(predicted_grad_norm, rho, n, d, name=name), name) for d in range(steps)]

    def close(a: float, b: float) -> bool:   # float32 answers drift by about 1e-7 per step of the power
        return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-300)

    wrong = [d for d in range(steps) if not close(got[d], measured[d])]
    if not wrong:
        return
    d = wrong[0]
    said = (f"`predicted_grad_norm({rho}, {n}, {d})` returned {got[d]:.6g}; measured on a course RNN at rest: "
            f"{measured[d]:.6g}.")
    if not math.isfinite(got[d]):
        raise Feedback(f"{said} Your number is not finite: look for a division by zero or an overflow.")
    # each known mistake as the whole curve it predicts, distance by distance
    mistakes = [
        (lambda k: root * rho ** (k + 1), "Off by one: distance 0 is h_T itself, where no Jacobian has been "
                                          "applied yet; d steps back the gradient has crossed d Jacobians: rho ** d."),
        (lambda k: root * rho ** (k - 1), "Off by one: d steps back the gradient has crossed d Jacobians, one per "
                                          "step: rho ** d."),
        (lambda k: rho ** k, "At distance 0 the gradient of L = h_T.sum() with respect to h_T is a vector of "
                             "d_hidden ones; its norm is sqrt(d_hidden), not 1."),
        (lambda k: n * rho ** k, "The norm of a vector of d_hidden ones is sqrt(d_hidden), the square root of the "
                                 "sum of squares, not d_hidden."),
        (lambda k: n * rho ** (2 * k), "That is the squared norm; take its square root."),
        (lambda k: 0.0, "The states are all 0 at rest, but their gradient is not: the slope of tanh at 0 is 1, "
                        "its largest, so each step's Jacobian diag(1 - h_t^2) W_h^T is just W_h^T."),
        (lambda k: root, "The norm does change with the distance: each step back multiplies the gradient by "
                         "W_h^T = rho Q^T, and an orthogonal Q keeps a vector's norm, so each step scales it by rho."),
        (lambda k: root * rho * k, "The Jacobians multiply, one per step: the gradient is scaled by rho d times, "
                                   "rho ** d, not rho * d."),
    ]
    hint = next((text for curve, text in mistakes if all(close(got[k], curve(k)) for k in range(steps))),
                "Start from the gradient at distance 0 (of L = h_T.sum() with respect to h_T), then follow it "
                "one step back: the Jacobian is diag(1 - h_t^2) W_h^T. What are h_t at rest, and what does "
                "rho Q^T do to a vector's norm?")
    raise Feedback(f"{said} {hint}")


@checker
def check_norm_with_inputs(norm_with_inputs: Callable, *, rho: float = 0.9, hidden_size: int = 32,
                           steps: int = 40, seed: int = 0) -> None:
    """``norm_with_inputs()`` must say how the gradient norm at every distance d >= 1 compares with the
    prediction at rest once the RNN gets random inputs and its bias: "smaller", "equal" or "larger".
    The check measures both on ``course_lib.rnn.RNN`` and compares them."""
    words = ("smaller", "equal", "larger")
    got = call(norm_with_inputs, name="norm_with_inputs")
    if not isinstance(got, str) or got.strip().lower() not in words:
        raise Feedback(f"`norm_with_inputs()` returned {describe(got)}; expected one of the strings "
                       f"{', '.join(repr(w) for w in words)}.")
    got = got.strip().lower()
    rest = _orthogonal_rnn_norms(rho, hidden_size, steps, seed, at_rest=True)[1:]
    moving = _orthogonal_rnn_norms(rho, hidden_size, steps, seed, at_rest=False)[1:]
    ratio = moving / rest
    if bool((ratio < 1 - 1e-9).all()):
        measured = "smaller"
    elif bool((ratio > 1 + 1e-9).all()):
        measured = "larger"
    elif bool(((ratio - 1).abs() <= 1e-9).all()):
        measured = "equal"
    else:
        raise Feedback("norm_with_inputs: the measurement is mixed on this RNN, so there is no single answer "
                       "to check; please report this to the course's authors.")
    if got == measured:
        return
    d = min(10, steps - 1)
    raise Feedback(
        f"`norm_with_inputs()` returned {got!r}; measured with inputs and a bias, the norm is {measured} at "
        f"every distance d >= 1 (at d = {d}: {moving[d - 1].item():.4g} with inputs against "
        f"{rest[d - 1].item():.4g} at rest). With inputs the states are no longer 0, and each step's Jacobian "
        "diag(1 - h_t^2) W_h^T carries the factor 1 - h_t^2, the slope of tanh, which is 1 only at 0 and "
        "below 1 everywhere else: it can only shrink the gradient. So rho = 1 is not the edge between "
        "vanishing and exploding in a working RNN.")
