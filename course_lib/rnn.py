"""Recurrent networks written as the step-by-step loop they are (chapter 01), and a character
language model built on them.

Glossary: B batch, T time steps, C input features, d_hidden the width of the hidden state, V vocab.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .utils import check_shape


class RNN(nn.Module):
    """Elman RNN, batch first: ``h_t = tanh(x_t W_x + h_{t-1} W_h + b)``.

    Weights are stored as in ``torch.nn.RNN`` (``W_x`` is ``weight_ih.T``) so that
    :meth:`from_torch` is a plain copy.
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        if not isinstance(input_size, int) or input_size < 1:
            raise ValueError(f"input_size: expected a positive int, got {input_size!r}")
        if not isinstance(hidden_size, int) or hidden_size < 1:
            raise ValueError(f"hidden_size: expected a positive int, got {hidden_size!r}")
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
        if not isinstance(module, nn.RNN):
            raise TypeError(f"module: expected a torch.nn.RNN, got {type(module).__name__}")
        if module.num_layers != 1 or module.bidirectional or module.nonlinearity != "tanh" \
                or not module.batch_first:
            raise ValueError("module: expected a one-layer, unidirectional, tanh, batch_first "
                             f"torch.nn.RNN, got {module}")
        ours = cls(module.input_size, module.hidden_size)
        with torch.no_grad():
            ours.W_x.copy_(module.weight_ih_l0.T)
            ours.W_h.copy_(module.weight_hh_l0.T)
            ours.b.copy_(module.bias_ih_l0 + module.bias_hh_l0)
        return ours


@dataclass
class CharLMConfig:
    vocab_size: int = 100   # V: set from the vocabulary
    d_embed: int = 32       # width of the character embedding
    d_hidden: int = 128     # width of the recurrent state
    cell: str = "rnn"       # "rnn" (course loop) or "torch_rnn" (fused, same maths, faster)


class CharLM(nn.Module):
    """Embedding -> recurrent layer -> linear head over the vocabulary."""

    def __init__(self, config: CharLMConfig):
        super().__init__()
        if config.cell not in ("rnn", "torch_rnn"):
            raise ValueError(f"config.cell: expected 'rnn' or 'torch_rnn', got {config.cell!r}")
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_embed)
        if config.cell == "rnn":
            self.rnn = RNN(config.d_embed, config.d_hidden)
        else:
            self.rnn = nn.RNN(config.d_embed, config.d_hidden, batch_first=True)
        self.head = nn.Linear(config.d_hidden, config.vocab_size)

    def forward(self, ids: torch.Tensor, h0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """ids (B, T) -> logits (B, T, V) and the last hidden state."""
        check_shape(ids, ("B", "T"), "ids")
        x = self.embed(ids)  # (B, T, d_embed)
        if self.config.cell == "rnn":
            states, h = self.rnn(x, h0)
        else:  # torch.nn.RNN keeps a leading layer axis on its state
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
