"""course_lib.gpt: equal to Hugging Face's GPT-2, the KV cache, sampling, bad input (chapter 07)."""
import pytest
import torch

from course_lib.gpt import (GPT, GPTConfig, KVCache, cache_bytes, generate, load_gpt2_safetensors,
                            sample_next, top_k_filter, top_p_filter, warmup_cosine)

transformers = pytest.importorskip("transformers")


def _hf_gpt2(seed=0, **sizes):
    torch.manual_seed(seed)
    config = transformers.GPT2Config(bos_token_id=0, eos_token_id=0, **sizes)
    return transformers.GPT2LMHeadModel(config).eval()


@pytest.mark.parametrize("sizes", [
    dict(vocab_size=50, n_positions=16, n_embd=32, n_layer=2, n_head=4),
    dict(vocab_size=97, n_positions=40, n_embd=48, n_layer=3, n_head=6, n_inner=80),
    dict(vocab_size=300, n_positions=24, n_embd=64, n_layer=1, n_head=1, layer_norm_epsilon=1e-3),
])
def test_from_hf_gives_the_same_logits(sizes):
    hf = _hf_gpt2(**sizes)
    ours = GPT.from_hf(hf).eval()
    ids = torch.randint(0, sizes["vocab_size"], (3, sizes["n_positions"]), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids)[0], hf(ids).logits, atol=1e-5, rtol=1e-5)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in hf.parameters())


def test_safetensors_loader_offline(tmp_path):
    hf = _hf_gpt2(seed=3, vocab_size=60, n_positions=20, n_embd=32, n_layer=2, n_head=2)
    hf.save_pretrained(tmp_path)
    ours = load_gpt2_safetensors(tmp_path / "model.safetensors")
    assert ours.config.n_heads == 2 and ours.config.block_size == 20
    ids = torch.randint(0, 60, (2, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids)[0], hf(ids).logits, atol=1e-5, rtol=1e-5)
    with pytest.raises(FileNotFoundError, match="path: expected a safetensors file"):
        load_gpt2_safetensors(tmp_path / "missing.safetensors")


def test_gpt2_small_sizes():
    with torch.device("meta"):  # sizes only: no memory, no time spent initialising 124M numbers
        model = GPT(GPTConfig.gpt2())
    assert sum(p.numel() for p in model.parameters()) == 124_439_808  # GPT-2 small, head tied


@pytest.mark.parametrize("n_kv_heads", [4, 2, 1])  # MHA, GQA, MQA
@pytest.mark.parametrize("lengths", [(1, 1, 1), (5, 3, 1, 1), (17, 1, 6), (2, 30)])
def test_cache_equals_no_cache(n_kv_heads, lengths):
    torch.manual_seed(sum(lengths) + n_kv_heads)
    model = GPT(GPTConfig.small(vocab_size=40, block_size=64, d_model=32, n_kv_heads=n_kv_heads)).eval()
    ids = torch.randint(0, 40, (2, sum(lengths)))
    with torch.no_grad():
        full, _ = model(ids)
        cache, parts, start = model.new_cache(), [], 0
        for n in lengths:
            logits, cache = model(ids[:, start:start + n], cache)
            parts.append(logits)
            start += n
    assert len(cache) == sum(lengths)
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("top_k, top_p, temperature", [(None, None, 1.0), (5, None, 0.8), (None, 0.9, 1.3)])
def test_generate_with_and_without_cache_gives_the_same_tokens(top_k, top_p, temperature):
    torch.manual_seed(0)
    model = GPT(GPTConfig.small(vocab_size=30, block_size=48, d_model=32, n_kv_heads=2))
    prompt = torch.randint(0, 30, (3, 7))
    runs = [generate(model, prompt, 30, temperature, top_k, top_p, use_cache=c,
                     generator=torch.Generator().manual_seed(5)) for c in (True, False)]
    assert runs[0].shape == (3, 37) and torch.equal(runs[0][:, :7], prompt)
    assert torch.equal(runs[0], runs[1])
    assert model.training  # generate restores the mode


def test_positions_processed_and_cache_size():
    config = GPTConfig.small(vocab_size=30, block_size=64, d_model=32)
    model = GPT(config)
    generate(model, [1, 2, 3, 4], 10, use_cache=True)
    with_cache = model.positions_processed
    model.positions_processed = 0
    generate(model, [1, 2, 3, 4], 10, use_cache=False)
    assert with_cache == 4 + 9 and model.positions_processed == sum(range(4, 14))
    for n_kv in (4, 2, 1):
        m = GPT(GPTConfig.small(vocab_size=30, block_size=64, d_model=32, n_kv_heads=n_kv)).eval()
        cache = m.new_cache()
        with torch.no_grad():
            m(torch.zeros(2, 10, dtype=torch.long), cache)
        assert cache.nbytes() == cache_bytes(m.config, batch=2, length=10) == 2 * 2 * 2 * n_kv * 10 * 8 * 4


def test_top_k_never_samples_outside_the_k_most_likely():
    logits = torch.randn(4, 50, generator=torch.Generator().manual_seed(0))
    allowed = logits.topk(5, dim=-1).indices
    g = torch.Generator().manual_seed(1)
    for _ in range(200):
        ids = sample_next(logits, top_k=5, generator=g)
        assert (allowed == ids[:, None]).any(dim=1).all()
    assert torch.isfinite(top_k_filter(logits, 5)).sum(dim=1).tolist() == [5] * 4


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9, 0.99, 1.0])
def test_top_p_keeps_the_minimal_set_with_mass_at_least_p(p):
    logits = torch.randn(6, 40, generator=torch.Generator().manual_seed(2)) * 2
    probs = logits.softmax(-1)
    kept = torch.isfinite(top_p_filter(logits, p))
    for row in range(6):
        mass = probs[row][kept[row]].sum()
        assert mass >= p - 1e-6
        # minimal: dropping the least likely kept token falls below p
        smallest = probs[row][kept[row]].min()
        assert mass - smallest < p or kept[row].sum() == 1
        # the kept tokens are the most likely ones
        dropped = probs[row][~kept[row]]
        assert dropped.numel() == 0 or smallest >= dropped.max()


def test_greedy_is_temperature_to_zero():
    logits = torch.randn(8, 20, generator=torch.Generator().manual_seed(3))
    assert torch.equal(sample_next(logits, temperature=0), logits.argmax(-1))
    cold = sample_next(logits, temperature=1e-4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(cold, logits.argmax(-1))


def test_warmup_cosine_schedule():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_cosine(opt, warmup=10, total=110, min_factor=0.1)
    lrs = []
    for _ in range(120):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[60] == pytest.approx(0.55) and lrs[115] == pytest.approx(0.1)


def _small():
    return GPT(GPTConfig.small(vocab_size=30, block_size=16, d_model=32))


@pytest.mark.parametrize("call, error, match", [
    (lambda: generate(_small(), list(range(17)), 1), ValueError,
     r"prompt_ids: expected 1 to block_size = 16 tokens, got 17"),
    (lambda: generate(_small(), list(range(10)), 7), ValueError,
     r"max_new_tokens: the prompt \(10\) plus 7 new tokens exceed block_size = 16"),
    (lambda: generate(_small(), [1, 2], 3, top_p=0.0), ValueError, r"top_p: expected a probability in \(0, 1\], got 0.0"),
    (lambda: generate(_small(), [1, 2], 3, top_p=1.5), ValueError, r"top_p: expected a probability in \(0, 1\], got 1.5"),
    (lambda: generate(_small(), [1, 2], 3, top_k=0), ValueError, r"top_k: expected a positive int, got 0"),
    (lambda: generate(_small(), [1, 2], 3, temperature=-1), ValueError, r"temperature: expected a float >= 0"),
    (lambda: generate(_small(), torch.tensor([[1.0, 2.0]]), 3), TypeError,
     r"prompt_ids: expected token ids of dtype torch.int64, got torch.float32"),
    (lambda: _small()(torch.zeros(2, 3, dtype=torch.int32)), TypeError, r"ids: expected token ids of dtype torch.int64"),
    (lambda: _small()(torch.zeros(3, dtype=torch.long)), ValueError, r"ids: expected shape \(B, T\), got \(3,\)"),
    (lambda: _small()(torch.zeros(1, 17, dtype=torch.long)), ValueError, r"ids: expected at most block_size = 16"),
    (lambda: GPTConfig(d_model=30, n_heads=4), ValueError, r"n_heads: expected a divisor of d_model = 30, got 4"),
    (lambda: GPTConfig(n_heads=4, n_kv_heads=3), ValueError, r"n_kv_heads: expected a divisor of n_heads = 4, got 3"),
    (lambda: GPTConfig(backend="fast"), ValueError, r"backend: expected one of"),
    (lambda: KVCache(0), ValueError, r"n_layers: expected a positive int, got 0"),
    (lambda: GPT.from_hf(torch.nn.Linear(2, 2)), TypeError, r"model: expected a transformers GPT2LMHeadModel, got Linear"),
])
def test_gpt_bad_inputs(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_cache_grown_past_the_block_is_refused():
    model = _small().eval()
    cache = model.new_cache()
    with torch.no_grad():
        model(torch.zeros(1, 16, dtype=torch.long), cache)
        with pytest.raises(ValueError, match=r"ids: expected at most block_size = 16 positions .* 16 cached \+ 1 new"):
            model(torch.zeros(1, 1, dtype=torch.long), cache)


def test_attention_weights_are_causal_distributions():
    model = GPT(GPTConfig.small(vocab_size=30, block_size=16, d_model=32, n_kv_heads=2)).eval()
    ids = torch.randint(0, 30, (2, 9), generator=torch.Generator().manual_seed(0))
    weights = model.attention_weights(ids)
    assert weights.shape == (2, 2, 4, 9, 9)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, 4, 9))
    assert (weights.triu(diagonal=1) == 0).all()
    assert all(not block.attn.record for block in model.blocks)
