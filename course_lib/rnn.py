"""Recurrent networks written as the step-by-step loop they are: the plain RNN (chapter 01), the
gated LSTM and GRU (chapter 02), and a character language model built on any of them.

Glossary: B batch, T time steps, C channels (the size of each input vector), d_hidden the width of the hidden state, V vocab.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from .utils import check_shape


def _check_sizes(input_size: int, hidden_size: int) -> None:
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")


def _check_torch_module(module: nn.Module, kind: type) -> None:
    if not isinstance(module, kind):
        raise TypeError(f"module: expected a torch.nn.{kind.__name__}, got {type(module).__name__}")
    if module.num_layers != 1 or module.bidirectional or not module.batch_first or not module.bias \
            or getattr(module, "proj_size", 0):
        raise ValueError(f"module: expected a one-layer, unidirectional, batch_first torch.nn.{kind.__name__} "
                         f"with biases and no projection, got {module}")


class RNN(nn.Module):
    """Elman RNN, batch first: ``h_t = tanh(x_t W_x + h_{t-1} W_h + b)``.

    Weights are stored as in ``torch.nn.RNN`` (``W_x`` is ``weight_ih.T``) so that
    :meth:`from_torch` is a plain copy.
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        _check_sizes(input_size, hidden_size)
        self.input_size, self.hidden_size = input_size, hidden_size
        bound = hidden_size ** -0.5  # the same uniform init as torch.nn.RNN
        self.W_x = nn.Parameter(torch.empty(input_size, hidden_size).uniform_(-bound, bound))
        self.W_h = nn.Parameter(torch.empty(hidden_size, hidden_size).uniform_(-bound, bound))
        self.b = nn.Parameter(torch.empty(hidden_size).uniform_(-bound, bound))

    def step(self, x_t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """One time step: x_t (B, C), h (B, d_hidden) -> new h (B, d_hidden)."""
        return torch.tanh(x_t @ self.W_x + h @ self.W_h + self.b)

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, C) -> all hidden states (B, T, d_hidden) and the last one (B, d_hidden).

        The loop is the point: step t needs h_{t-1}, so the T steps run one after another.
        """
        dims = check_shape(x, ("B", "T", self.input_size), "x")
        h = x.new_zeros(dims["B"], self.hidden_size) if h0 is None else h0
        check_shape(h, (dims["B"], self.hidden_size), "h0")
        outputs = []
        for t in range(dims["T"]):
            h = self.step(x[:, t], h)
            outputs.append(h)
        return torch.stack(outputs, dim=1), h

    @classmethod
    def from_torch(cls, module: nn.RNN) -> "RNN":
        """A course RNN with the weights of a one-layer, batch-first, tanh ``torch.nn.RNN``."""
        _check_torch_module(module, nn.RNN)
        if module.nonlinearity != "tanh":
            raise ValueError(f"module: expected nonlinearity 'tanh', got {module.nonlinearity!r}")
        ours = cls(module.input_size, module.hidden_size)
        with torch.no_grad():
            ours.W_x.copy_(module.weight_ih_l0.T)
            ours.W_h.copy_(module.weight_hh_l0.T)
            ours.b.copy_(module.bias_ih_l0 + module.bias_hh_l0)
        return ours


# --- chapter 02: gated cells (LSTM, GRU) -------------------------------------------------------

class LSTM(nn.Module):
    """Long short-term memory (Hochreiter & Schmidhuber, 1997, with the forget gate of Gers et al.,
    2000), batch first. Per step, with the four gates stacked in torch's order i, f, g, o::

        i, f, g, o = split(x_t W_x + h_{t-1} W_h + b)
        c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
        h_t = sigmoid(o) * tanh(c_t)

    ``W_x`` (C, 4 d_hidden) is ``weight_ih.T`` of ``torch.nn.LSTM`` and ``b`` the sum of its two
    biases, so :meth:`from_torch` is a plain copy.
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        _check_sizes(input_size, hidden_size)
        self.input_size, self.hidden_size = input_size, hidden_size
        bound = hidden_size ** -0.5  # torch.nn.LSTM's uniform init
        self.W_x = nn.Parameter(torch.empty(input_size, 4 * hidden_size).uniform_(-bound, bound))
        self.W_h = nn.Parameter(torch.empty(hidden_size, 4 * hidden_size).uniform_(-bound, bound))
        self.b = nn.Parameter(torch.empty(4 * hidden_size).uniform_(-bound, bound))

    def step(self, x_t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step: x_t (B, C), state (h, c) each (B, d_hidden) -> new (h, c)."""
        h, c = state
        i, f, g, o = (x_t @ self.W_x + h @ self.W_h + self.b).chunk(4, dim=-1)  # each (B, d_hidden)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)  # additive update: the gradient path
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c

    def forward(self, x: torch.Tensor, state0: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x (B, T, C) -> hidden states (B, T, d_hidden) and the last (h, c), each (B, d_hidden).

        ``state0`` is an optional (h0, c0) pair, each (B, d_hidden); zeros by default.
        """
        dims = check_shape(x, ("B", "T", self.input_size), "x")
        if state0 is None:
            h = c = x.new_zeros(dims["B"], self.hidden_size)
        else:
            if not isinstance(state0, (tuple, list)) or len(state0) != 2:
                raise TypeError(f"state0: expected a pair (h0, c0), got {type(state0).__name__}")
            h, c = state0
            check_shape(h, (dims["B"], self.hidden_size), "h0")
            check_shape(c, (dims["B"], self.hidden_size), "c0")
        outputs = []
        for t in range(dims["T"]):
            h, c = self.step(x[:, t], (h, c))
            outputs.append(h)
        return torch.stack(outputs, dim=1), (h, c)

    @classmethod
    def from_torch(cls, module: nn.LSTM) -> "LSTM":
        """A course LSTM with the weights of a one-layer, batch-first ``torch.nn.LSTM``."""
        _check_torch_module(module, nn.LSTM)
        ours = cls(module.input_size, module.hidden_size)
        with torch.no_grad():
            ours.W_x.copy_(module.weight_ih_l0.T)
            ours.W_h.copy_(module.weight_hh_l0.T)
            ours.b.copy_(module.bias_ih_l0 + module.bias_hh_l0)
        return ours


class GRU(nn.Module):
    """Gated recurrent unit (Cho et al., 2014), batch first, in torch's convention. Per step, with
    the three gates stacked in torch's order r, z, n::

        r = sigmoid(x_t W_xr + b_xr + h W_hr + b_hr)           reset gate
        z = sigmoid(x_t W_xz + b_xz + h W_hz + b_hz)           update gate
        n = tanh(x_t W_xn + b_xn + r * (h W_hn + b_hn))        candidate
        h_t = (1 - z) * n + z * h_{t-1}

    The reset gate multiplies ``h W_hn + b_hn`` *including* its bias, so the two biases are kept
    apart (``b_x``, ``b_h``) rather than summed as in :class:`LSTM`.
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        _check_sizes(input_size, hidden_size)
        self.input_size, self.hidden_size = input_size, hidden_size
        bound = hidden_size ** -0.5  # torch.nn.GRU's uniform init
        self.W_x = nn.Parameter(torch.empty(input_size, 3 * hidden_size).uniform_(-bound, bound))
        self.W_h = nn.Parameter(torch.empty(hidden_size, 3 * hidden_size).uniform_(-bound, bound))
        self.b_x = nn.Parameter(torch.empty(3 * hidden_size).uniform_(-bound, bound))
        self.b_h = nn.Parameter(torch.empty(3 * hidden_size).uniform_(-bound, bound))

    def step(self, x_t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """One time step: x_t (B, C), h (B, d_hidden) -> new h (B, d_hidden)."""
        x_r, x_z, x_n = (x_t @ self.W_x + self.b_x).chunk(3, dim=-1)  # each (B, d_hidden)
        h_r, h_z, h_n = (h @ self.W_h + self.b_h).chunk(3, dim=-1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        return (1 - z) * n + z * h  # z near 1 keeps the old state: the gradient path

    # the loop over time is the RNN's: one state h, the same step signature
    forward = RNN.forward

    @classmethod
    def from_torch(cls, module: nn.GRU) -> "GRU":
        """A course GRU with the weights of a one-layer, batch-first ``torch.nn.GRU``."""
        _check_torch_module(module, nn.GRU)
        ours = cls(module.input_size, module.hidden_size)
        with torch.no_grad():
            ours.W_x.copy_(module.weight_ih_l0.T)
            ours.W_h.copy_(module.weight_hh_l0.T)
            ours.b_x.copy_(module.bias_ih_l0)
            ours.b_h.copy_(module.bias_hh_l0)
        return ours


@dataclass
class CharLMConfig:
    vocab_size: int = 100   # V: set from the vocabulary
    d_embed: int = 32       # width of the character embedding
    d_hidden: int = 128     # width of the recurrent state
    cell: str = "rnn"       # "rnn" (course loop) or "torch_rnn" (fused, same maths, faster);
                            # also "lstm"/"torch_lstm" and "gru"/"torch_gru" (chapter 02)


# config.cell -> the recurrent layer, called as layer(d_embed, d_hidden); "torch_*" are the fused
# built-ins with the same maths (tested equal), faster for training
CELLS = {"rnn": RNN, "torch_rnn": partial(nn.RNN, batch_first=True),
         "lstm": LSTM, "torch_lstm": partial(nn.LSTM, batch_first=True),
         "gru": GRU, "torch_gru": partial(nn.GRU, batch_first=True)}


class CharLM(nn.Module):
    """Embedding -> recurrent layer -> linear head over the vocabulary."""

    def __init__(self, config: CharLMConfig):
        super().__init__()
        if config.cell not in CELLS:
            raise ValueError(f"config.cell: expected one of {', '.join(map(repr, CELLS))}, got {config.cell!r}")
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_embed)
        self.rnn = CELLS[config.cell](config.d_embed, config.d_hidden)
        self.head = nn.Linear(config.d_hidden, config.vocab_size)

    def forward(self, ids: torch.Tensor, h0=None) -> tuple[torch.Tensor, object]:
        """ids (B, T) -> logits (B, T, V) and the last state: h (B, d_hidden), or the pair (h, c)
        for an LSTM. Pass that state back as ``h0`` to continue a sequence."""
        check_shape(ids, ("B", "T"), "ids")
        x = self.embed(ids)  # (B, T, d_embed)
        if not self.config.cell.startswith("torch_"):
            states, h = self.rnn(x, h0)
        elif self.config.cell == "torch_lstm":  # torch keeps a leading layer axis on its state
            states, (h, c) = self.rnn(x, None if h0 is None else (h0[0][None], h0[1][None]))
            h = (h[0], c[0])
        else:
            states, h = self.rnn(x, None if h0 is None else h0[None])
            h = h[0]
        return self.head(states), h


@torch.no_grad()
def sample(model: CharLM, prompt_ids: list[int], n_new: int, temperature: float = 1.0,
           generator: torch.Generator | None = None) -> list[int]:
    """Continue ``prompt_ids`` by ``n_new`` sampled ids, carrying the hidden state.

    Lower ``temperature`` sharpens the distribution (towards greedy), higher flattens it.
    """
    if not prompt_ids:
        raise ValueError("prompt_ids: expected at least one id, got an empty list")
    if not temperature > 0:
        raise ValueError(f"temperature: expected a positive float, got {temperature!r}")
    model.eval()
    logits, h = model(torch.tensor([prompt_ids]))
    out = list(prompt_ids)
    for _ in range(n_new):
        probs = torch.softmax(logits[0, -1] / temperature, dim=-1)
        next_id = int(torch.multinomial(probs, 1, generator=generator))
        out.append(next_id)
        logits, h = model(torch.tensor([[next_id]]), h)
    return out
