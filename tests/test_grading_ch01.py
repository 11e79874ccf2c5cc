"""course_lib.grading.ch01_rnn: the reference answers pass, and each known mistake, written as the
function a learner would write, gets the message that names it."""
import math

import pytest
import torch

from course_lib.grading import ch01_rnn as grading
from grading_support import fails_with
from course_lib.rnn import sample



# -- exercise 1: one RNN step ---------------------------------------------------------------------

def rnn_step(x_t, h, W_x, W_h, b):
    return torch.tanh(x_t @ W_x + h @ W_h + b)


@pytest.mark.parametrize("kwargs", [{}, {"square": True}, {"seed": 2, "batch": 1, "input_size": 2, "hidden_size": 6}])
def test_step_reference_passes(kwargs):
    grading.check_rnn_step(rnn_step, **kwargs)


STEP_MISTAKES = [
    ("sigmoid", lambda x, h, Wx, Wh, b: torch.sigmoid(x @ Wx + h @ Wh + b), "used sigmoid instead of tanh", {}),
    ("relu", lambda x, h, Wx, Wh, b: torch.relu(x @ Wx + h @ Wh + b), "used relu instead of tanh", {}),
    ("no activation", lambda x, h, Wx, Wh, b: x @ Wx + h @ Wh + b, "forgot the activation", {}),
    ("bias forgotten", lambda x, h, Wx, Wh, b: torch.tanh(x @ Wx + h @ Wh), "forgot the bias b", {}),
    ("bias outside", lambda x, h, Wx, Wh, b: torch.tanh(x @ Wx + h @ Wh) + b, "added b after the tanh", {}),
    ("h ignored", lambda x, h, Wx, Wh, b: torch.tanh(x @ Wx + b), "ignored the previous hidden state h", {}),
    ("x ignored", lambda x, h, Wx, Wh, b: torch.tanh(h @ Wh + b), "ignored the input x_t", {}),
    ("swapped, square", lambda x, h, Wx, Wh, b: torch.tanh(x @ Wh + h @ Wx + b), "W_x and W_h are swapped",
     {"square": True}),
    ("swapped, not square", lambda x, h, Wx, Wh, b: torch.tanh(x @ Wh + h @ Wx + b),
     r"(?s)raised RuntimeError: mat1 and mat2 shapes cannot be multiplied.*Hint: .*which weight goes with which", {}),
    ("transposed", lambda x, h, Wx, Wh, b: torch.tanh(x @ Wx.T + h @ Wh.T + b), "used transposed weights",
     {"square": True}),
    ("W @ x", lambda x, h, Wx, Wh, b: torch.tanh((Wx @ x.T).T + (Wh @ h.T).T + b), "used transposed weights",
     {"square": True}),
    ("W_h transposed", lambda x, h, Wx, Wh, b: torch.tanh(x @ Wx + h @ Wh.T + b), "used W_h transposed", {}),
    ("W_x transposed", lambda x, h, Wx, Wh, b: torch.tanh(x @ Wx.T + h @ Wh + b), "used W_x transposed",
     {"square": True}),
    ("returns a tuple", lambda x, h, Wx, Wh, b: (rnn_step(x, h, Wx, Wh, b), h),
     r"returned a tuple of 2 items; expected a torch.Tensor of shape \(B, d_hidden\) = \(3, 4\)", {}),
    ("forgot return", lambda x, h, Wx, Wh, b: None, "returned None: did you forget the `return`", {}),
    ("wrong shape", lambda x, h, Wx, Wh, b: rnn_step(x, h, Wx, Wh, b).T, "Its axes look swapped", {}),
    ("numpy", lambda x, h, Wx, Wh, b: rnn_step(x, h, Wx, Wh, b).numpy(), "returned a NumPy ndarray", {}),
    ("in place", lambda x, h, Wx, Wh, b: h.copy_(rnn_step(x, h, Wx, Wh, b)), "changed its input `h` in place", {}),
]


@pytest.mark.parametrize("name, fn, pattern, kwargs", STEP_MISTAKES, ids=[m[0] for m in STEP_MISTAKES])
def test_step_mistakes_are_named(name, fn, pattern, kwargs):
    fails_with(grading.check_rnn_step, fn, pattern, **kwargs)


def test_step_not_answered_and_raising():
    def stub(x_t, h, W_x, W_h, b):
        # YOUR CODE HERE
        raise NotImplementedError()

    def broken(x_t, h, W_x, W_h, b):
        return torch.tanh(x_t @ W_x + h @ W_h + c)  # noqa: F821  (a typo a learner makes)

    fails_with(grading.check_rnn_step, stub, "`rnn_step` is not answered yet")
    fails_with(grading.check_rnn_step, broken, r"raised NameError: name 'c' is not defined at line \d+ of "
                                               r"test_grading_ch01.py \(in broken\)")


def test_step_huge_output_still_graded(capsys):
    def chatty(x_t, h, W_x, W_h, b):
        print("x" * 5_000_000)
        return torch.sigmoid(x_t @ W_x + h @ W_h + b)

    fails_with(grading.check_rnn_step, chatty, "sigmoid")
    assert len(capsys.readouterr().out) < 3_000


# -- exercise 2: the loop over time ----------------------------------------------------------------

def rnn_forward(step, x, h0):
    h, states = h0, []
    for t in range(x.shape[1]):
        h = step(x[:, t], h)
        states.append(h)
    return torch.stack(states, dim=1), h


@pytest.mark.parametrize("kwargs", [{}, {"seed": 1, "batch": 3, "steps": 7}, {"seed": 2, "batch": 1, "steps": 1}])
def test_forward_reference_passes(kwargs):
    grading.check_rnn_forward(rnn_forward, **kwargs)


def no_carry(step, x, h0):
    states = [step(x[:, t], h0) for t in range(x.shape[1])]
    return torch.stack(states, dim=1), states[-1]


def reset_to_zeros(step, x, h0):
    states = []
    for t in range(x.shape[1]):
        h = torch.zeros_like(h0)   # h reset each step
        h = step(x[:, t], h)
        states.append(h)
    return torch.stack(states, dim=1), h


def starts_from_zeros(step, x, h0):
    return rnn_forward(step, x, torch.zeros_like(h0))


def stacked_on_dim0(step, x, h0):
    states, h = rnn_forward(step, x, h0)
    return states.transpose(0, 1), h


def batch_row(step, x, h0):
    h, states = h0, []
    for t in range(x.shape[1]):
        h = step(x[t], h)
        states.append(h)
    return torch.stack(states, dim=1), h


def backwards(step, x, h0):
    h, states = h0, []
    for t in reversed(range(x.shape[1])):
        h = step(x[:, t], h)
        states.append(h)
    return torch.stack(states, dim=1), h


def shifted(step, x, h0):
    h, states = h0, []
    for t in range(x.shape[1]):
        states.append(h)
        h = step(x[:, t], h)
    return torch.stack(states, dim=1), h


def one_step_too_many(step, x, h0):
    states, h = rnn_forward(step, x, h0)
    step(x[:, -1], h)
    return states, h


FORWARD_MISTAKES = [
    (no_carry, r"hidden state not carried: at step 1 you passed h0 \(or zeros\) again"),
    (reset_to_zeros, "the first call of `step` did not get h0. You started from zeros"),
    (starts_from_zeros, "the first call of `step` did not get h0. You started from zeros"),
    (stacked_on_dim0, r"returned a tensor of shape \(5, 2, 4\); expected \(B, T, d_hidden\) = \(2, 5, 4\)\. "
                      r"Its axes look swapped: you have \(T, B, d_hidden\)"),
    (batch_row, r"got x_t of shape \(5, 3\); .* You passed x\[t\], the t-th sequence of the batch"),
    (backwards, "walked through time backwards"),
    (shifted, "yours are the h passed into each step"),
    (one_step_too_many, r"called `step` 6 times for a sequence of T = 5 steps"),
    (lambda step, x, h0: rnn_forward(step, x, h0)[0], r"returned a torch.Tensor .*expected a pair \(states, h_last\)"),
    (lambda step, x, h0: (rnn_forward(step, x, h0)[0], h0), "you returned h0"),
    (lambda step, x, h0: (rnn_forward(step, x, h0)[0], rnn_forward(step, x, h0)[0][:, 0]), "called `step` 10 times"),
    (lambda step, x, h0: (list(rnn_forward(step, x, h0)[0].unbind(1)), h0),
     r"returned a list of 5 items; .*combine them with torch.stack"),
]


@pytest.mark.parametrize("fn, pattern", FORWARD_MISTAKES, ids=range(len(FORWARD_MISTAKES)))
def test_forward_mistakes_are_named(fn, pattern):
    fails_with(grading.check_rnn_forward, fn, pattern)


def test_forward_first_state_returned_as_last():
    def first_as_last(step, x, h0):
        states, _ = rnn_forward(step, x, h0)
        return states, states[:, 0]

    fails_with(grading.check_rnn_forward, first_as_last, "you returned the first")


# -- exercise 3: gradient norm against distance --------------------------------------------------------

def grad_norms_by_distance(rnn, x):
    T = x.shape[1]
    h, states = torch.zeros(x.shape[0], rnn.hidden_size), []
    for t in range(T):
        h = rnn.step(x[:, t], h)
        h.retain_grad()
        states.append(h)
    states[-1].sum().backward()
    return torch.stack([states[T - 1 - d].grad.norm() for d in range(T)])


@pytest.mark.parametrize("kwargs", [{}, {"seed": 1, "steps": 30, "rho": 0.5}, {"seed": 2, "steps": 30, "rho": 3.0},
                                    {"seed": 3, "steps": 1}])
def test_grad_reference_passes(kwargs):
    grading.check_grad_norms_by_distance(grad_norms_by_distance, **kwargs)


def test_grad_numpy_and_list_answers_are_accepted():
    grading.check_grad_norms_by_distance(lambda rnn, x: grad_norms_by_distance(rnn, x).numpy())
    grading.check_grad_norms_by_distance(lambda rnn, x: grad_norms_by_distance(rnn, x).tolist())


def stacked_states(rnn, x):
    states, _ = rnn(x)
    states.retain_grad()
    states[:, -1].sum().backward()
    T = x.shape[1]
    return torch.stack([states.grad[:, T - 1 - d].norm() for d in range(T)])


def input_grads(rnn, x):
    x = x.clone().requires_grad_()
    _, h = rnn(x)
    h.sum().backward()
    T = x.shape[1]
    return torch.stack([x.grad[:, T - 1 - d].norm() for d in range(T)])


def with_h0(rnn, x):
    T = x.shape[1]
    h = torch.zeros(1, rnn.hidden_size, requires_grad=True)
    states = [h]
    for t in range(T):
        h = rnn.step(x[:, t], h)
        h.retain_grad()
        states.append(h)
    h.sum().backward()
    return torch.stack([states[T - d].grad.norm() for d in range(T + 1)])


GRAD_MISTAKES = [
    (lambda rnn, x: grad_norms_by_distance(rnn, x).flip(0), r"in time order \(h_1 first\).*reverse them"),
    (stacked_states, "only the last state gets a gradient: that is the .grad of the stacked `states`"),
    (input_grads, "gradients with respect to the inputs x_t"),
    (lambda rnn, x: input_grads(rnn, x).flip(0), r"inputs x_t \(in time order\)"),
    (lambda rnn, x: grad_norms_by_distance(rnn, x) ** 2, "squared norms"),
    (lambda rnn, x: grad_norms_by_distance(rnn, x) / rnn.hidden_size, r"loss was h_T.mean\(\)"),
    (with_h0, r"returned T \+ 1 = 13 norms; leave out h_0"),
    (lambda rnn, x: None, "returned None"),
    (lambda rnn, x: grad_norms_by_distance(rnn, x)[None], "differs by an axis of size 1"),
]


@pytest.mark.parametrize("fn, pattern", GRAD_MISTAKES, ids=range(len(GRAD_MISTAKES)))
def test_grad_mistakes_are_named(fn, pattern):
    fails_with(grading.check_grad_norms_by_distance, fn, pattern)


def test_grad_checks_in_the_vanishing_case_too():
    fails_with(grading.check_grad_norms_by_distance, lambda r, x: grad_norms_by_distance(r, x).flip(0),
               "reverse them", rho=0.5, steps=30)


# -- exercise 4: temperature ---------------------------------------------------------------------------

def temperature_probs(logits, temperature):
    return torch.softmax(logits / temperature, dim=-1)


@pytest.mark.parametrize("kwargs", [{}, {"seed": 1, "temperature": 2.0}, {"seed": 2, "temperature": 0.01, "scale": 10.0},
                                    {"seed": 3, "batch": 1, "vocab": 50, "temperature": 1.5}])
def test_temperature_reference_passes(kwargs):
    grading.check_temperature_probs(temperature_probs, **kwargs)


def naive(logits, temperature):
    e = torch.exp(logits / temperature)
    return e / e.sum(dim=-1, keepdim=True)


TEMPERATURE_MISTAKES = [
    (lambda z, t: torch.softmax(z * t, dim=-1), "multiplied the logits by the temperature", {}),
    (lambda z, t: torch.softmax(z * t, dim=-1), "multiplied the logits by the temperature", {"temperature": 2.0}),
    (lambda z, t: torch.softmax(z / t, dim=0), "softmax over the wrong axis", {}),
    (lambda z, t: torch.softmax(z * t, dim=0), "softmax over the wrong axis, and the temperature multiplied", {}),
    (lambda z, t: z / t, "returned the scaled logits", {}),
    (lambda z, t: torch.log_softmax(z / t, dim=-1), "returned log-probabilities", {}),
    (lambda z, t: torch.softmax(z, dim=-1), "ignored the temperature", {}),
    (lambda z, t: torch.softmax(z, dim=-1) / t, "divided the probabilities by the temperature after the softmax", {}),
    (lambda z, t: torch.softmax(torch.softmax(z, dim=-1) / t, dim=-1), "applied the temperature after the softmax", {}),
    (naive, "overflows when the temperature is small", {"seed": 2, "temperature": 0.01, "scale": 10.0}),
    (lambda z, t: torch.softmax(z / t, dim=-1)[0], r"returned a tensor of shape \(7,\); expected \(B, V\) = \(3, 7\)", {}),
]


@pytest.mark.parametrize("fn, pattern, kwargs", TEMPERATURE_MISTAKES, ids=range(len(TEMPERATURE_MISTAKES)))
def test_temperature_mistakes_are_named(fn, pattern, kwargs):
    fails_with(grading.check_temperature_probs, fn, pattern, **kwargs)


def test_naive_softmax_passes_the_public_test_only():
    grading.check_temperature_probs(naive)  # public: fine
    fails_with(grading.check_temperature_probs, naive, "overflows", seed=2, temperature=0.01, scale=10.0)


def test_temperature_one_is_refused_by_the_checker():
    # at temperature 1 multiplying and dividing agree, so the check would not tell them apart:
    # the checker's author gets an error (a Feedback, since nothing else leaves a checker)
    with pytest.raises(AssertionError, match="temperature: use a value other than 1.0"):
        grading.check_temperature_probs(temperature_probs, temperature=1.0)


# -- exercise 5: sampling, carrying the hidden state -------------------------------------------------

def generate(model, prompt_ids, n_new, temperature, generator):
    return sample(model, prompt_ids, n_new, temperature=temperature, generator=generator)


@pytest.mark.parametrize("kwargs", [{}, {"seed": 1, "temperature": 1.5, "n_new": 20},
                                    {"seed": 2, "temperature": 0.3, "prompt": (7,), "n_new": 5}])
def test_generate_reference_passes(kwargs):
    grading.check_generate(generate, **kwargs)


def make_generate(carry=True, scale=lambda z, t: z / t, greedy=False, position=-1, use_generator=True):
    @torch.no_grad()
    def gen(model, prompt_ids, n_new, temperature, generator):
        logits, h = model(torch.tensor([prompt_ids]))
        out = list(prompt_ids)
        for i in range(n_new):
            row = logits[0, position if i == 0 else -1]
            probs = torch.softmax(scale(row, temperature), dim=-1)
            if greedy:
                next_id = int(probs.argmax())
            else:
                next_id = int(torch.multinomial(probs, 1, generator=generator if use_generator else None))
            out.append(next_id)
            logits, h = model(torch.tensor([[next_id]]), h if carry else None)
        return out
    return gen


def test_generate_variants_that_are_right():
    # a 2-D multinomial, and re-running the whole sequence without a state, draw the same ids
    @torch.no_grad()
    def rerun(model, prompt_ids, n_new, temperature, generator):
        out = list(prompt_ids)
        for _ in range(n_new):
            logits, _ = model(torch.tensor([out]))
            out.append(int(torch.multinomial(torch.softmax(logits[:, -1] / temperature, -1), 1, generator=generator)))
        return out

    grading.check_generate(make_generate())
    grading.check_generate(rerun)


GENERATE_MISTAKES = [
    (make_generate(carry=False), "hidden state not carried"),
    (make_generate(scale=lambda z, t: z * t), "multiplied the logits by the temperature"),
    (make_generate(scale=lambda z, t: z), "ignored the temperature"),
    (make_generate(greedy=True), r"most likely id \(argmax\) instead of sampling"),
    (make_generate(position=0), "logits of the first prompt position"),
    (make_generate(use_generator=False), "You never drew from `generator`"),
    (lambda m, p, n, t, g: torch.tensor(generate(m, p, n, t, g)), r"return a plain list of ints \(e.g. `ids.tolist\(\)`\)"),
    (lambda m, p, n, t, g: generate(m, p, n, t, g)[len(p):], "returned only the 12 new ids"),
    (lambda m, p, n, t, g: generate(m, p, n - 1, t, g), "returned 14 ids; expected the prompt"),
    (lambda m, p, n, t, g: [0, 0, 0] + generate(m, p, n, t, g)[3:], r"should start with the prompt \[3, 5, 1\]"),
    (lambda m, p, n, t, g: [float(i) for i in generate(m, p, n, t, g)], r"a list containing a float \(3.0\)"),
    (lambda m, p, n, t, g: "".join(map(str, generate(m, p, n, t, g))), "returned a str"),
]


@pytest.mark.parametrize("fn, pattern", GENERATE_MISTAKES, ids=range(len(GENERATE_MISTAKES)))
def test_generate_mistakes_are_named(fn, pattern):
    fails_with(grading.check_generate, fn, pattern)


def test_generate_tensor_items_are_accepted():
    grading.check_generate(lambda m, p, n, t, g: [torch.tensor(i) for i in generate(m, p, n, t, g)])


# -- exercise 6: a prediction, the gradient norm at a distance ----------------------------------------

def predicted_grad_norm(rho, d_hidden, distance):
    return rho ** distance * math.sqrt(d_hidden)


NORM_CASES = [{}, {"seed": 1, "rho": 0.5, "hidden_size": 8, "steps": 30},
              {"seed": 2, "rho": 3.0, "hidden_size": 5, "steps": 30}, {"seed": 3, "rho": 1.0, "hidden_size": 1, "steps": 10}]


@pytest.mark.parametrize("kwargs", NORM_CASES)
def test_grad_norm_prediction_reference_passes(kwargs):
    grading.check_grad_norm_prediction(predicted_grad_norm, **kwargs)
    # in float32 torch, too
    grading.check_grad_norm_prediction(lambda r, n, d: torch.tensor(r) ** d * torch.tensor(float(n)).sqrt(), **kwargs)


def test_grad_norm_prediction_is_what_the_chapter_measures():
    # the measurement behind the check equals exercise 3's reference loop, and the formula holds exactly
    norms = grading._orthogonal_rnn_norms(0.9, 32, 40, 0, at_rest=True)
    want = torch.tensor([predicted_grad_norm(0.9, 32, d) for d in range(40)], dtype=torch.float64)
    torch.testing.assert_close(norms, want, rtol=1e-12, atol=0.0)


GRAD_NORM_MISTAKES = [
    ("one Jacobian too many", lambda r, n, d: r ** (d + 1) * math.sqrt(n), "Off by one: distance 0 is h_T itself"),
    ("one Jacobian too few", lambda r, n, d: r ** (d - 1) * math.sqrt(n), "Off by one: d steps back the gradient"),
    ("no sqrt(d_hidden)", lambda r, n, d: r ** d, r"its norm is sqrt\(d_hidden\), not 1"),
    ("d_hidden", lambda r, n, d: n * r ** d, r"the square root of the sum of squares, not d_hidden"),
    ("squared norm", lambda r, n, d: n * r ** (2 * d), "That is the squared norm"),
    ("zero at rest", lambda r, n, d: 0.0, "the slope of tanh at 0 is 1"),
    ("rho ignored", lambda r, n, d: math.sqrt(n), "The norm does change with the distance"),
    ("linear", lambda r, n, d: math.sqrt(n) * r * d, r"rho \*\* d, not rho \* d"),
    ("unknown", lambda r, n, d: math.sqrt(n) * math.exp(-d), r"returned 2.08104; measured .*: 5.09117\. Start from"),
    ("infinite", lambda r, n, d: math.inf, "Your number is not finite"),
    ("string", lambda r, n, d: "0.9 ** d", r"returned a str .*expected a number"),
    ("None", lambda r, n, d: None, "returned None; expected a number"),
    ("tensor of norms", lambda r, n, d: torch.ones(3), r"returned a torch.Tensor of shape \(3,\)"),
    ("raises", lambda r, n, d: math.sqrt(-n), r"raised ValueError: math domain error"),
]


@pytest.mark.parametrize("name, fn, pattern", GRAD_NORM_MISTAKES, ids=[m[0] for m in GRAD_NORM_MISTAKES])
def test_grad_norm_prediction_mistakes_are_named(name, fn, pattern):
    fails_with(grading.check_grad_norm_prediction, fn, pattern)


def test_grad_norm_prediction_names_the_first_wrong_distance():
    # right for short distances, wrong from distance 5 on: the message is about distance 5
    fails_with(grading.check_grad_norm_prediction, lambda r, n, d: predicted_grad_norm(r, n, min(d, 4)),
               r"`predicted_grad_norm\(0.9, 32, 5\)` returned")


@pytest.mark.parametrize("kwargs", [{}, {"seed": 1, "rho": 3.0, "hidden_size": 8, "steps": 30},
                                    {"seed": 2, "rho": 0.5, "hidden_size": 5, "steps": 60}])
def test_norm_with_inputs_reference_passes(kwargs):
    grading.check_norm_with_inputs(lambda: "smaller", **kwargs)
    grading.check_norm_with_inputs(lambda: " Smaller ", **kwargs)


@pytest.mark.parametrize("fn, pattern", [
    (lambda: "equal", r"returned 'equal'; measured with inputs and a bias, the norm is smaller .*1 - h_t\^2"),
    (lambda: "larger", r"returned 'larger'; .*it can only shrink the gradient"),
    (lambda: "less", r"expected one of the strings 'smaller', 'equal', 'larger'"),
    (lambda: -1, r"returned a int \(-1\); expected one of the strings"),
    (lambda: None, "returned None; expected one of the strings"),
])
def test_norm_with_inputs_mistakes_are_named(fn, pattern):
    fails_with(grading.check_norm_with_inputs, fn, pattern)


def test_untouched_prediction_says_not_answered():
    def predicted_grad_norm(rho, d_hidden, distance):
        raise NotImplementedError()

    def norm_with_inputs():
        raise NotImplementedError()

    fails_with(grading.check_grad_norm_prediction, predicted_grad_norm, "`predicted_grad_norm` is not answered yet")
    fails_with(grading.check_norm_with_inputs, norm_with_inputs, "`norm_with_inputs` is not answered yet")


# -- why graded checks run outside the learner's process -------------------------------------------

def test_a_check_in_the_learners_process_can_be_fooled(monkeypatch):
    """Called in the process of the learner's code, two wrong answers pass: one replaces the check's
    reference, one overwrites what the check measured. Grading therefore runs the checks in the
    grader's process (course_lib.grading.remote), where both score 0 (tests/test_nbgrader_roundtrip.py)."""
    from grading_support import PATCHES_THE_REFERENCE, REWRITES_THE_MEASUREMENT
    monkeypatch.setattr(grading, "sample", grading.sample)   # undone after the test
    ns = {"torch": torch}
    exec(PATCHES_THE_REFERENCE + REWRITES_THE_MEASUREMENT, ns)
    grading.check_generate(ns["generate"])                   # passes: the reference was replaced
    assert ns["generate"](None, [1, 2], 3, 1.0, None) == [1, 2, 0, 0, 0]
    grading.check_grad_norm_prediction(ns["predicted_grad_norm"])   # passes: the measurement was rewritten
    fails_with(grading.check_grad_norm_prediction, lambda rho, d, k: 1.0, "predicted_grad_norm")
