"""course_lib.vit: equal to Hugging Face's ViT with copied weights, patchify = strided convolution,
attention rollout, permutation (in)variance, bad input with named errors, a short training run."""
import pytest
import torch
from torch import nn

from course_lib.vit import ViT, ViTConfig, accuracy, attention_rollout, patchify, train_classifier

transformers = pytest.importorskip("transformers")


def hf_model(**kw):
    config = transformers.ViTConfig(**kw)
    config._attn_implementation = "eager"      # eager attention returns the weights
    torch.manual_seed(0)
    model = transformers.ViTForImageClassification(config).eval()
    with torch.no_grad():                       # LayerNorms start at (1, 0): randomise them
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.normal_(1.0, 0.3)
                m.bias.normal_(0.0, 0.3)
    return model


SIZES = [
    dict(image_size=28, patch_size=7, num_channels=1, hidden_size=32, num_hidden_layers=2,
         num_attention_heads=4, intermediate_size=64, num_labels=10),
    dict(image_size=12, patch_size=4, num_channels=3, hidden_size=24, num_hidden_layers=3,
         num_attention_heads=3, intermediate_size=40, num_labels=5, qkv_bias=False, layer_norm_eps=1e-6),
]


@pytest.mark.parametrize("kw", SIZES, ids=["mnist-like", "rgb-no-qkv-bias"])
def test_from_hf_gives_the_same_logits_and_attention(kw):
    hf = hf_model(**kw)
    ours = ViT.from_hf(hf)
    x = torch.randn(3, kw["num_channels"], kw["image_size"], kw["image_size"])
    with torch.no_grad():
        theirs = hf(pixel_values=x, output_attentions=True)
        logits, weights = ours(x, need_weights=True)
    torch.testing.assert_close(logits, theirs.logits, atol=1e-5, rtol=0)
    assert len(weights) == kw["num_hidden_layers"]
    for w, w_hf in zip(weights, theirs.attentions):
        torch.testing.assert_close(w, w_hf, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours(x), logits)              # the fast path (no weights) agrees


def test_from_hf_refuses_other_models():
    with pytest.raises(TypeError, match="model: expected a transformers.ViTForImageClassification"):
        ViT.from_hf(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="hidden_act 'gelu'"):
        ViT.from_hf(hf_model(**SIZES[0], hidden_act="relu"))


def test_patchify_equals_a_strided_convolution():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 12)                              # not square: the grid order shows
    conv = nn.Conv2d(3, 5, kernel_size=4, stride=4)
    patches = patchify(x, 4)
    assert patches.shape == (2, 6, 48)
    want = conv(x).flatten(2).transpose(1, 2)                 # (B, N, d) row by row over the grid
    torch.testing.assert_close(patches @ conv.weight.flatten(1).T + conv.bias, want)
    torch.testing.assert_close(patches[0, 1], x[0, :, 0:4, 4:8].flatten())   # patch 1: row 0, column 1


def test_vit_embedding_equals_conv_embedding():
    model = ViT(ViTConfig(image_size=12, patch_size=4, in_channels=3, d_model=16, n_layers=1, n_heads=2, d_ff=32))
    conv = nn.Conv2d(3, 16, kernel_size=4, stride=4)
    with torch.no_grad():
        conv.weight.copy_(model.patch_embed.weight.view(16, 3, 4, 4))
        conv.bias.copy_(model.patch_embed.bias)
    x = torch.randn(2, 3, 12, 12)
    tokens = model.embed(x)                                   # (B, 1 + N, d)
    torch.testing.assert_close(tokens[:, 1:] - model.positions.weight[1:],
                               conv(x).flatten(2).transpose(1, 2))
    torch.testing.assert_close(tokens[:, 0], (model.cls_token[0] + model.positions.weight[:1]).expand(2, -1))


def test_attention_rollout_rows_sum_to_one_and_follow_the_definition():
    torch.manual_seed(0)
    model = ViT(ViTConfig(n_layers=3)).eval()
    with torch.no_grad():
        _, weights = model(torch.rand(4, 1, 28, 28), need_weights=True)
    assert [tuple(w.shape) for w in weights] == [(4, 4, 17, 17)] * 3
    rollout = attention_rollout(weights)
    assert rollout.shape == (4, 17, 17) and (rollout >= 0).all()
    torch.testing.assert_close(rollout.sum(-1), torch.ones(4, 17))
    eye = torch.eye(17)
    step = [0.5 * w.mean(1) + 0.5 * eye for w in weights]     # rows already sum to 1
    torch.testing.assert_close(rollout, step[2] @ step[1] @ step[0])
    torch.testing.assert_close(attention_rollout(weights, residual=False),
                               weights[2].mean(1) @ weights[1].mean(1) @ weights[0].mean(1))
    with pytest.raises(ValueError, match="weights: expected a non-empty list"):
        attention_rollout([])
    with pytest.raises(ValueError, match=r"weights\[1\]"):
        attention_rollout([weights[0], weights[1][:, :, :5, :5]])


def shuffle_patches(x, P, perm):
    rows, cols = x.shape[2] // P, x.shape[3] // P
    patches = x.unfold(2, P, P).unfold(3, P, P).reshape(x.shape[0], x.shape[1], rows * cols, P, P)
    patches = patches[:, :, perm].reshape(x.shape[0], x.shape[1], rows, cols, P, P)
    return patches.permute(0, 1, 2, 4, 3, 5).reshape(x.shape)


def test_without_positions_the_model_ignores_patch_order():
    torch.manual_seed(0)
    x = torch.rand(3, 1, 28, 28)
    perm = torch.randperm(16)
    assert torch.equal(patchify(shuffle_patches(x, 7, perm), 7), patchify(x, 7)[:, perm])
    for positions in (False, True):
        model = ViT(ViTConfig(positions=positions, n_layers=2)).eval()
        if positions:
            with torch.no_grad():
                model.positions.weight.normal_()              # trained positions are not tiny
        with torch.no_grad():
            gap = (model(shuffle_patches(x, 7, perm)) - model(x)).abs().max().item()
        assert (gap < 1e-5) if not positions else (gap > 1e-2), (positions, gap)


def test_bad_input_gets_named_errors():
    model = ViT(ViTConfig())
    with pytest.raises(ValueError, match="images: expected height and width divisible by patch_size = 7"):
        patchify(torch.rand(1, 1, 30, 28), 7)
    with pytest.raises(ValueError, match=r"images: expected 1 channel\(s\) \(config.in_channels\).*got 3"):
        model(torch.rand(2, 3, 28, 28))
    with pytest.raises(ValueError, match="images: expected 28 x 28 pixels"):
        model(torch.rand(2, 1, 21, 21))
    with pytest.raises(ValueError, match=r"images: expected shape \(B, C, H, W\)"):
        model(torch.rand(1, 28, 28))
    with pytest.raises(TypeError, match="images: expected a floating-point tensor"):
        model(torch.zeros(1, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match="config.patch_size: expected a divisor of image_size = 28, got 5"):
        ViTConfig(patch_size=5)
    with pytest.raises(ValueError, match="config.n_heads: expected a divisor of d_model = 64"):
        ViTConfig(n_heads=5)
    with pytest.raises(ValueError, match="patch_size: expected a positive int"):
        patchify(torch.rand(1, 1, 28, 28), 0)
    with pytest.raises(TypeError, match="config: expected a ViTConfig"):
        ViT({"d_model": 64})


def test_preset_size_and_a_short_training_run_learns():
    config = ViTConfig.small()
    assert (config.d_model, config.n_layers, config.n_heads, config.patch_size, config.n_patches) == (64, 4, 4, 7, 16)
    torch.manual_seed(0)
    # two easy classes: a bright left half or a bright right half
    x = torch.zeros(64, 1, 28, 28)
    y = torch.arange(64) % 2
    x[y == 0, :, :, :14] = 1.0
    x[y == 1, :, :, 14:] = 1.0
    model = ViT(ViTConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, n_classes=2))
    history = train_classifier(model, x, y, epochs=3, batch_size=16, lr=3e-3, max_shift=1, seed=0)
    assert history.train_loss[-1] < history.train_loss[0]
    assert accuracy(model, x, y) == 1.0
