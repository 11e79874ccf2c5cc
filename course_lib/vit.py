"""The Vision Transformer (Dosovitskiy et al., 2021, "An image is worth 16x16 words"), chapter 10.

An image (B, C, H, W) is cut into N = (H / P) * (W / P) patches of P x P pixels, each flattened
to C * P * P numbers and linearly embedded; a learned [CLS] vector is put in front, learned
position embeddings are added, and a pre-norm Transformer encoder (chapter 06's pieces, GELU)
mixes the N + 1 tokens. The [CLS] token's final vector, after a LayerNorm, goes to a linear head.

In dependency order: :func:`patchify`, the encoder :class:`Block`, :class:`ViTConfig`,
:class:`ViT` (with ``from_hf`` for ``transformers.ViTForImageClassification``), and
:func:`attention_rollout` (Abnar & Zuidema, 2020).

Glossary: B batch, C channels of the image, P patch size, N patches, T = N + 1 tokens,
d_model model width, H heads.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from .attention import BACKENDS, LearnedPositions, MultiHeadAttention
from .transformer import FeedForward
from .utils import check_choice, check_int, check_probability, check_shape


def _check_images(images: torch.Tensor, patch_size: int, channels: Optional[int] = None,
                  image_size: Optional[int] = None) -> Tuple[int, int, int, int]:
    """The shape (B, C, H, W) of ``images`` after the checks every entry point needs."""
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise TypeError(f"images: expected a floating-point tensor (B, C, H, W), got "
                        f"{images.dtype if isinstance(images, torch.Tensor) else type(images).__name__}")
    check_shape(images, ("B", "C", "H", "W"), "images")
    B, C, H, W = images.shape
    if channels is not None and C != channels:
        raise ValueError(f"images: expected {channels} channel(s) (config.in_channels) in dim 1 of "
                         f"(B, C, H, W), got {C} in shape {tuple(images.shape)}")
    if image_size is not None and (H, W) != (image_size, image_size):
        raise ValueError(f"images: expected {image_size} x {image_size} pixels (config.image_size), "
                         f"got {H} x {W}")
    if H % patch_size or W % patch_size:
        raise ValueError(f"images: expected height and width divisible by patch_size = {patch_size}, "
                         f"got {H} x {W}")
    return B, C, H, W


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images into non-overlapping P x P patches and flatten each one.

    images (B, C, H, W) -> patches (B, N, C * P * P), N = (H / P) * (W / P). Patches run row by
    row over the grid (left to right, then top to bottom); inside a patch the numbers are ordered
    channel first, then pixel row, then pixel column, the order of a ``Conv2d`` weight
    (d_model, C, P, P) flattened, so ``patchify(x, P) @ conv.weight.flatten(1).T + conv.bias``
    equals ``conv(x)`` with kernel and stride P.
    """
    check_int(patch_size, "patch_size")
    B, C, H, W = _check_images(images, patch_size)
    P = patch_size
    x = images.reshape(B, C, H // P, P, W // P, P)                 # (B, C, rows, P, cols, P)
    x = x.permute(0, 2, 4, 1, 3, 5)                               # (B, rows, cols, C, P, P)
    return x.reshape(B, (H // P) * (W // P), C * P * P)            # (B, N, C * P * P)


class Block(nn.Module):
    """One pre-norm encoder layer of the ViT, as in the paper (eq. 2-3)::

        x = x + MSA(LN(x))
        x = x + MLP(LN(x))        MLP = Linear -> GELU -> Linear

    ``forward(x, need_weights=True)`` also returns the attention weights (B, H, T, T).
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0,
                 layer_norm_eps: float = 1e-6, backend: str = "auto"):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.attn = MultiHeadAttention(d_model=d_model, n_heads=n_heads, dropout=dropout, backend=backend)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.ff = FeedForward(d_model=d_model, d_ff=d_ff, dropout=dropout, activation="gelu")
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, need_weights: bool = False) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """x (B, T, d_model) -> (x (B, T, d_model), weights (B, H, T, T) or None)."""
        attended, weights = self.attn(self.norm1(x), need_weights=need_weights)
        x = x + self.dropout(attended)                             # (B, T, d_model)
        x = x + self.dropout(self.ff(self.norm2(x)))               # (B, T, d_model)
        return x, weights


@dataclass
class ViTConfig:
    """The defaults are the course's CPU preset for 28 x 28 MNIST digits (about 0.1 M parameters);
    the paper's ViT-B/16 is image_size 224, patch_size 16, in_channels 3, d_model 768,
    n_layers 12, n_heads 12, d_ff 3072, dropout 0.1 (Dosovitskiy et al., 2021, table 1)."""
    image_size: int = 28          # H = W in pixels; must be divisible by patch_size
    patch_size: int = 7           # P: 28 / 7 = 4 x 4 = 16 patches, 17 tokens with [CLS]
    in_channels: int = 1          # C of the image: 1 for grey levels, 3 for RGB
    n_classes: int = 10           # outputs of the head
    d_model: int = 64             # width of every token vector
    n_layers: int = 4             # encoder blocks
    n_heads: int = 4              # H; each head has d_model / n_heads = 16 channels
    d_ff: int = 128               # hidden width of the MLP (the paper uses 4 * d_model)
    dropout: float = 0.0          # on attention weights, MLP hidden units and residual branches
    positions: bool = True        # learned position embeddings; False: none (a bag of patches)
    layer_norm_eps: float = 1e-6  # the paper's implementation; Hugging Face's default is 1e-12
    backend: str = "auto"         # attention backend when no weights are asked for (chapter 05/11)

    def __post_init__(self):
        for name in ("image_size", "patch_size", "in_channels", "n_classes", "d_model", "n_layers",
                     "n_heads", "d_ff"):
            check_int(getattr(self, name), f"config.{name}")
        if self.image_size % self.patch_size:
            raise ValueError(f"config.patch_size: expected a divisor of image_size = {self.image_size}, "
                             f"got {self.patch_size}")
        if self.d_model % self.n_heads:
            raise ValueError(f"config.n_heads: expected a divisor of d_model = {self.d_model}, got {self.n_heads}")
        check_probability(self.dropout, "config.dropout")
        check_choice(self.positions, "config.positions", (True, False))
        check_choice(self.backend, "config.backend", BACKENDS)
        if not (isinstance(self.layer_norm_eps, float) and self.layer_norm_eps > 0):
            raise ValueError(f"config.layer_norm_eps: expected a positive float, got {self.layer_norm_eps!r}")

    @property
    def n_patches(self) -> int:
        """N = (image_size / patch_size) ** 2."""
        return (self.image_size // self.patch_size) ** 2

    @classmethod
    def small(cls, **overrides) -> "ViTConfig":
        """The CPU preset: d_model 64, 4 layers, 4 heads, patch 7 on 28 x 28 images (the defaults);
        any field can be overridden, e.g. ``patch_size=4``."""
        return cls(**overrides)


class ViT(nn.Module):
    """The Vision Transformer: patches -> linear embedding -> [CLS] + positions -> encoder -> head.

    ``forward(images (B, C, H, W))`` -> logits (B, n_classes); with ``need_weights=True`` it returns
    ``(logits, weights)``, weights a list of one (B, H, T, T) tensor per layer, T = N + 1, token 0
    being [CLS] and token 1 + i patch i of :func:`patchify`'s order.
    """

    def __init__(self, config: ViTConfig):
        super().__init__()
        if not isinstance(config, ViTConfig):
            raise TypeError(f"config: expected a ViTConfig, got {type(config).__name__}")
        self.config = c = config
        # a linear layer on flattened patches: the same numbers as a Conv2d with kernel = stride = P
        self.patch_embed = nn.Linear(c.in_channels * c.patch_size ** 2, c.d_model)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.d_model))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.positions = LearnedPositions(c.n_patches + 1, c.d_model) if c.positions else None
        self.dropout = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            Block(c.d_model, c.n_heads, c.d_ff, c.dropout, c.layer_norm_eps, c.backend) for _ in range(c.n_layers))
        self.norm = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
        self.head = nn.Linear(c.d_model, c.n_classes)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, C, H, W) -> tokens (B, T = N + 1, d_model): [CLS] then the patches, plus positions."""
        c = self.config
        _check_images(images, c.patch_size, c.in_channels, c.image_size)
        x = self.patch_embed(patchify(images, c.patch_size))             # (B, N, d_model)
        cls = self.cls_token.expand(x.shape[0], -1, -1)                   # (B, 1, d_model)
        x = torch.cat([cls, x], dim=1)                                    # (B, T, d_model)
        if self.positions is not None:
            x = self.positions(x)                                         # + P[:T]
        return self.dropout(x)

    def forward(self, images: torch.Tensor, need_weights: bool = False):
        """images (B, C, H, W) -> logits (B, n_classes), or (logits, [weights (B, H, T, T)] per layer)."""
        x = self.embed(images)                                            # (B, T, d_model)
        weights: List[torch.Tensor] = []
        for block in self.blocks:
            x, w = block(x, need_weights=need_weights)
            if need_weights:
                weights.append(w)
        logits = self.head(self.norm(x)[:, 0])                            # [CLS]: (B, n_classes)
        return (logits, weights) if need_weights else logits

    @classmethod
    def from_hf(cls, model) -> "ViT":
        """A course ViT with the weights of a ``transformers.ViTForImageClassification``.

        The patch embedding's Conv2d weight (d_model, C, P, P) becomes our linear layer's
        (d_model, C * P * P) (see :func:`patchify`); Hugging Face's [CLS] position is our position 0.
        Works on models built from a small ``transformers.ViTConfig`` with random weights (offline).
        """
        try:
            from transformers import ViTForImageClassification
        except ImportError as err:  # pragma: no cover - transformers is pinned
            raise ImportError("ViT.from_hf needs the transformers package") from err
        if not isinstance(model, ViTForImageClassification):
            raise TypeError(f"model: expected a transformers.ViTForImageClassification, got {type(model).__name__}")
        h = model.config
        if h.hidden_act != "gelu":
            raise ValueError(f"model: expected hidden_act 'gelu' (exact GELU), got {h.hidden_act!r}")
        if getattr(h, "head_dim", None) not in (None, h.hidden_size // h.num_attention_heads):
            raise ValueError(f"model: expected head_dim = hidden_size / num_attention_heads, got {h.head_dim}")
        image_size, patch_size = h.image_size, h.patch_size
        if not isinstance(image_size, int) or not isinstance(patch_size, int):
            raise ValueError(f"model: expected square images and patches (ints), got image_size "
                             f"{image_size!r}, patch_size {patch_size!r}")
        config = ViTConfig(image_size=image_size, patch_size=patch_size, in_channels=h.num_channels,
                           n_classes=h.num_labels, d_model=h.hidden_size, n_layers=h.num_hidden_layers,
                           n_heads=h.num_attention_heads, d_ff=h.intermediate_size,
                           layer_norm_eps=float(h.layer_norm_eps))
        ours = cls(config)
        vit = model.vit
        with torch.no_grad():
            conv = vit.embeddings.patch_embeddings.projection
            ours.patch_embed.weight.copy_(conv.weight.flatten(1))          # (d_model, C * P * P)
            ours.patch_embed.bias.copy_(conv.bias)
            ours.cls_token.copy_(vit.embeddings.cls_token)
            ours.positions.weight.copy_(vit.embeddings.position_embeddings[0])  # (T, d_model)
            layers = vit.layers if hasattr(vit, "layers") else vit.encoder.layer  # transformers 5 / 4
            for block, layer in zip(ours.blocks, layers):
                attn = layer.attention
                for mine, theirs in ((block.attn.q_proj, attn.q_proj), (block.attn.k_proj, attn.k_proj),
                                     (block.attn.v_proj, attn.v_proj), (block.attn.out_proj, attn.o_proj),
                                     (block.ff.linear1, layer.mlp.fc1), (block.ff.linear2, layer.mlp.fc2),
                                     (block.norm1, layer.layernorm_before), (block.norm2, layer.layernorm_after)):
                    mine.weight.copy_(theirs.weight)
                    if theirs.bias is not None:
                        mine.bias.copy_(theirs.bias)
                    else:                                                 # qkv_bias=False
                        mine.bias.zero_()
            ours.norm.weight.copy_(vit.layernorm.weight)
            ours.norm.bias.copy_(vit.layernorm.bias)
            ours.head.weight.copy_(model.classifier.weight)
            ours.head.bias.copy_(model.classifier.bias)
        return ours.to(conv.weight.device).eval()


def attention_rollout(weights: Sequence[torch.Tensor], residual: bool = True) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, 2020): how much each token's final vector draws on each
    input token, following attention through all layers.

    Per layer, average the heads and account for the residual connection, then re-normalise::

        A_l = normalise_rows(0.5 * mean_h(W_l) + 0.5 * I)          (residual=True)
        rollout = A_L @ ... @ A_2 @ A_1

    weights: one (B, H, T, T) tensor per layer, first layer first (``ViT(..., need_weights=True)``).
    Returns (B, T, T); every row sums to 1. Row 0, columns 1: are the [CLS] token's map over patches.
    """
    if isinstance(weights, torch.Tensor) or len(weights) == 0:
        raise ValueError("weights: expected a non-empty list of (B, H, T, T) tensors, one per layer, got "
                         f"{type(weights).__name__ if isinstance(weights, torch.Tensor) else 'an empty list'}")
    dims = check_shape(weights[0], ("B", "H", "T", "T"), "weights[0]")
    eye = torch.eye(dims["T"], dtype=weights[0].dtype, device=weights[0].device)
    rollout = None
    for i, w in enumerate(weights):
        check_shape(w, (dims["B"], None, dims["T"], dims["T"]), f"weights[{i}]")
        a = w.mean(dim=1)                                                  # (B, T, T)
        if residual:
            a = 0.5 * a + 0.5 * eye
        a = a / a.sum(dim=-1, keepdim=True)
        rollout = a if rollout is None else a @ rollout                    # (B, T, T)
    return rollout


# --- training and evaluation (any image classifier: the chapter's ViT, CNN and MLP alike) -------

def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    """Share of ``images`` (N, C, H, W) whose arg-max logit is the label (N,), in eval mode."""
    check_int(batch_size, "batch_size")
    check_shape(labels, (images.shape[0],), "labels")
    was_training = model.training
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(images[i:i + batch_size]).argmax(-1) == labels[i:i + batch_size]).sum())
                      for i in range(0, images.shape[0], batch_size))
    model.train(was_training)
    return correct / images.shape[0]


def train_classifier(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, epochs: int,
                     batch_size: int = 128, lr: float = 2e-3, weight_decay: float = 0.05,
                     max_shift: int = 2, warmup_epochs: int = 1, seed: int = 0, progress: bool = False):
    """Train an image classifier with cross-entropy, AdamW, a linear warm-up then a cosine decay of
    the learning rate (per step), and random shifts of up to ``max_shift`` pixels as augmentation
    (``course_lib.data.random_shift``), through ``course_lib.train.fit``. images (N, C, H, W),
    labels (N,). The batches and shifts are drawn from ``seed``; returns fit's History."""
    import math

    import torch.nn.functional as F

    from .data import random_shift
    from .train import fit

    check_int(epochs, "epochs")
    check_int(batch_size, "batch_size")
    check_int(warmup_epochs, "warmup_epochs", minimum=0)
    check_shape(labels, (images.shape[0],), "labels")
    g = torch.Generator().manual_seed(seed)
    n = images.shape[0]
    steps_per_epoch = math.ceil(n / batch_size)

    def epoch_batches(epoch: int = 0):  # fit may pass the epoch; the generator carries on
        order = torch.randperm(n, generator=g)
        for start in range(0, n, batch_size):
            rows = order[start:start + batch_size]
            yield random_shift(images[rows], max_shift, generator=g), labels[rows]

    def loss_fn(m, batch):
        x, y = batch
        return F.cross_entropy(m(x), y)

    total, warmup = epochs * steps_per_epoch, warmup_epochs * steps_per_epoch

    def schedule(step: int) -> float:  # step counts from 0; LambdaLR multiplies lr by this
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    return fit(model, epoch_batches, loss_fn, epochs=epochs, optimizer=optimizer, scheduler=scheduler,
               lr=lr, progress=progress, desc="train")
