"""course_lib.seq2seq: encoder, decoders (fixed context and attention), teacher forcing, greedy and
beam search, metrics."""
import itertools
import math
import random

import pytest
import sacrebleu
import torch

from course_lib.attention_rnn import AttentionDecoder, AttentionSeq2Seq
from course_lib.data import date_pairs, encode_pairs, length_grouped_batches
from course_lib.seq2seq import (ContextDecoder, Encoder, Seq2Seq, Seq2SeqConfig, beam_search, bleu, decode,
                                exact_match, exact_match_by_length, greedy_decode, sequence_log_prob,
                                teacher_forcing_loss, train_seq2seq, translate)
from course_lib.text import Vocab

PAD, BOS, EOS = 0, 1, 2


def _mask(lengths, S):
    return torch.arange(S)[None, :] < torch.tensor(lengths)[:, None]


def _batch(B=3, S=7, T=5, V=12, lengths=(7, 4, 1), seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = _mask(list(lengths), S)
    src = torch.randint(4, V, (B, S), generator=g).masked_fill(~mask, 0)
    tgt_in = torch.randint(4, V, (B, T), generator=g)
    tgt_in[:, 0] = BOS
    return src, mask, tgt_in


def _model(attention="none", V=12, seed=0, d_hidden=16):
    torch.manual_seed(seed)
    model = Seq2Seq if attention == "none" else AttentionSeq2Seq
    return model(Seq2SeqConfig(src_vocab_size=V, tgt_vocab_size=V, d_embed=8, d_hidden=d_hidden,
                               attention=attention, d_attention=10))


# --- config and encoder -------------------------------------------------------------------------

def test_config_validation():
    with pytest.raises(ValueError, match="config.attention: expected one of"):
        Seq2SeqConfig(attention="luong")
    with pytest.raises(ValueError, match="config.d_hidden: expected a positive int"):
        Seq2SeqConfig(d_hidden=0)
    with pytest.raises(TypeError, match="config: expected a Seq2SeqConfig"):
        Seq2Seq({"d_hidden": 8})


def test_encoder_skips_padding():
    """The final state of a padded row equals the state after its last real token, run alone."""
    torch.manual_seed(0)
    encoder = Encoder(Seq2SeqConfig(src_vocab_size=12, d_embed=8, d_hidden=16))
    src, mask, _ = _batch()
    states, final = encoder(src, mask)
    assert states.shape == (3, 7, 16) and final.shape == (3, 16)
    assert (states[~mask] == 0).all()
    for b, n in enumerate([7, 4, 1]):
        alone, h = encoder.rnn(encoder.embed(src[b:b + 1, :n]))
        torch.testing.assert_close(final[b], h[0, 0])
        torch.testing.assert_close(states[b, :n], alone[0])


def test_encoder_bad_masks():
    encoder = Encoder(Seq2SeqConfig(src_vocab_size=12, d_embed=8, d_hidden=16))
    src, mask, _ = _batch()
    with pytest.raises(ValueError, match="src_mask: expected right padding"):
        encoder(src, mask.flip(1))
    with pytest.raises(ValueError, match="src_mask: expected at least one real token"):
        encoder(src, mask & torch.tensor([True, True, False])[:, None])
    with pytest.raises(TypeError, match="src_mask: expected a bool tensor"):
        encoder(src, mask.long())
    with pytest.raises(ValueError, match=r"src_mask: expected shape \(3, 7\), got \(3, 6\)"):
        encoder(src, mask[:, :6])


# --- decoders -----------------------------------------------------------------------------------

@pytest.mark.parametrize("attention", ["none", "additive", "dot", "general"])
def test_teacher_forcing_equals_stepping(attention):
    """forward (all steps with the true previous tokens) == step called T times."""
    model = _model(attention)
    src, mask, tgt_in = _batch()
    logits, weights = model.forward_with_weights(src, mask, tgt_in)
    assert logits.shape == (3, 5, 12)
    state = model.start(src, mask)
    for t in range(5):
        step_logits, state, step_weights = model.decoder.step(tgt_in[:, t], state)
        torch.testing.assert_close(step_logits, logits[:, t], rtol=1e-4, atol=1e-5)
        if attention == "none":
            assert weights is None and step_weights is None
        else:
            torch.testing.assert_close(step_weights, weights[:, t], rtol=1e-4, atol=1e-5)
    assert isinstance(model.decoder, ContextDecoder if attention == "none" else AttentionDecoder)


@pytest.mark.parametrize("attention", ["additive", "dot", "general"])
def test_attention_decoder_ignores_source_padding(attention):
    model = _model(attention)
    src, mask, tgt_in = _batch()
    logits, weights = model.forward_with_weights(src, mask, tgt_in)
    assert (weights.masked_select(~mask[:, None, :].expand_as(weights)) == 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 5))
    for b, n in enumerate([7, 4, 1]):
        alone = model(src[b:b + 1, :n], mask[b:b + 1, :n], tgt_in[b:b + 1])
        torch.testing.assert_close(alone[0], logits[b], rtol=1e-4, atol=1e-5)


def test_context_decoder_sees_the_source_only_through_the_final_state():
    model = _model("none")
    src, mask, tgt_in = _batch()
    states, final = model.encoder(src, mask)
    a, _ = model.decoder(tgt_in, model.decoder.start(states, final, mask))
    b, _ = model.decoder(tgt_in, model.decoder.start(torch.randn_like(states), final, mask))
    torch.testing.assert_close(a, b)  # the other encoder states do not matter at all


def test_teacher_forcing_loss_ignores_padding_and_trains():
    model = _model("additive")
    src, mask, tgt_in = _batch()
    tgt_out = torch.cat([tgt_in[:, 1:], torch.full((3, 1), EOS)], dim=1)
    tgt_out[2, 2:] = PAD
    loss = teacher_forcing_loss(model, (src, mask, tgt_in, tgt_out))
    logits = model(src, mask, tgt_in)
    keep = tgt_out != PAD
    manual = -torch.log_softmax(logits, -1).gather(2, tgt_out[..., None])[..., 0][keep].mean()
    torch.testing.assert_close(loss, manual)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match=r"batch: expected \(src, src_mask, tgt_in, tgt_out\)"):
        teacher_forcing_loss(model, (src, mask, tgt_in))
    with pytest.raises(ValueError, match=r"tgt_out: expected shape \(3, 5\)"):
        teacher_forcing_loss(model, (src, mask, tgt_in, tgt_out[:, :4]))


# --- search on a toy model whose answers we can work out ---------------------------------------

def _chain(seed=0, V=6, sharp=1.0):
    """A Markov chain over tokens: log p(next | last); pad and bos are never produced."""
    g = torch.Generator().manual_seed(seed)
    logits = sharp * torch.randn(V, V, generator=g)
    logits[:, [PAD, BOS]] = float("-inf")
    table = torch.log_softmax(logits, dim=-1)

    def step(prefix, state):
        # the state carries the prefix too: a wrong reordering in beam search would show here
        assert torch.equal(state["history"], prefix[:, :-1]) or state["history"].shape[1] == 0
        history = prefix
        return table[prefix[:, -1]], {"history": history, "fixed": state["fixed"]}

    def start(B):
        return {"history": torch.zeros(B, 0, dtype=torch.long), "fixed": torch.arange(B)}

    return table, step, start


def _brute_force_best(table, max_len, alpha=0.0):
    """Over all sequences that end at eos or stop at max_len, the one with the highest
    log p / length ** alpha (length counts eos; alpha = 0: the most likely): (its score, it)."""
    tokens = [t for t in range(table.shape[0]) if t not in (PAD, BOS)]
    best, best_seq = -math.inf, None
    for L in range(1, max_len + 1):
        for seq in itertools.product(tokens, repeat=L):
            if EOS in seq[:-1] or (L < max_len and seq[-1] != EOS):
                continue
            score = sum(float(table[last, t]) for last, t in zip((BOS,) + seq[:-1], seq)) / L ** alpha
            if score > best:
                best, best_seq = score, list(seq)
    return best, best_seq


def test_greedy_follows_the_argmax_and_stops_at_eos():
    table, step, start = _chain(seed=1)
    ids, scores = greedy_decode(step, start(2), 2, bos_id=BOS, eos_id=EOS, max_len=8)
    assert ids.shape[0] == 2 and ids.shape[1] <= 8
    for row in range(2):
        last, expected, score = BOS, [], 0.0
        for _ in range(8):
            nxt = int(table[last].argmax())
            expected.append(nxt)
            score += float(table[last, nxt])
            last = nxt
            if nxt == EOS:
                break
        got = ids[row].tolist()
        assert got[:len(expected)] == expected and all(t == PAD for t in got[len(expected):])
        assert math.isclose(float(scores[row]), score, rel_tol=1e-5)


@pytest.mark.parametrize("seed", range(5))
def test_beam_search_with_a_wide_beam_finds_the_best_sequence(seed):
    table, step, start = _chain(seed=seed, V=6, sharp=2.0)
    best, best_seq = _brute_force_best(table, max_len=4)
    ids, scores = beam_search(step, start(1), 1, beam_size=128, bos_id=BOS, eos_id=EOS, max_len=4)
    assert math.isclose(float(scores[0]), best, rel_tol=1e-5)
    assert [t for t in ids[0].tolist() if t != PAD] == best_seq


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_length_normalised_beam_search_finds_the_best_normalised_sequence(seed, alpha):
    table, step, start = _chain(seed=seed, V=6, sharp=2.0)
    best, best_seq = _brute_force_best(table, 4, alpha)
    ids, scores = beam_search(step, start(1), 1, beam_size=256, bos_id=BOS, eos_id=EOS, max_len=4,
                              length_penalty=alpha)
    got = [t for t in ids[0].tolist() if t != PAD]
    assert got == best_seq
    assert math.isclose(float(scores[0]) / len(got) ** alpha, best, rel_tol=1e-5)   # scores stay log p


def test_length_penalty_prefers_the_longer_sequence_the_plain_sum_drops():
    # from bos: eos at once with p 0.3 (log p -1.20), or "a" 0.7 then eos 0.5 (log p -1.05 over 2 tokens)
    # and "a" "a" eos: 0.7 * 0.5 * 1.0 = 0.35 over 3 tokens; plain sum picks "a eos", alpha = 1 "a a eos"
    a = 3
    table = torch.full((6, 6), float("-inf"))
    table[BOS, EOS], table[BOS, a] = math.log(0.3), math.log(0.7)
    table[a, EOS], table[a, a] = math.log(0.5), math.log(0.5)
    table[a, EOS] = math.log(0.5)
    step = lambda prefix, state: (table[prefix[:, -1]] if prefix.shape[1] < 3 else  # noqa: E731
                                  torch.where(prefix[:, -1:] == a, torch.tensor([-math.inf, -math.inf, 0.0,
                                              -math.inf, -math.inf, -math.inf]), table[prefix[:, -1]]), state)
    plain, _ = beam_search(step, None, 1, beam_size=3, bos_id=BOS, eos_id=EOS, max_len=4)
    normed, score = beam_search(step, None, 1, beam_size=3, bos_id=BOS, eos_id=EOS, max_len=4, length_penalty=1.0)
    assert plain[0, :2].tolist() == [a, EOS]
    assert normed[0, :3].tolist() == [a, a, EOS] and math.isclose(float(score[0]), math.log(0.35), rel_tol=1e-6)


def test_beam_beats_greedy_where_greedy_is_short_sighted():
    # from bos: "a" 0.6 or "b" 0.4; after "a" every continuation has p 1/4; after "b" eos has p 0.9
    a, b = 3, 4
    table = torch.full((6, 6), float("-inf"))
    table[BOS, a], table[BOS, b] = math.log(0.6), math.log(0.4)
    table[a, [EOS, a, b, 5]] = math.log(0.25)
    table[b, EOS], table[b, a] = math.log(0.9), math.log(0.1)
    table[5, EOS] = 0.0
    step = lambda prefix, state: (table[prefix[:, -1]], state)  # noqa: E731
    g_ids, g_score = greedy_decode(step, None, 1, bos_id=BOS, eos_id=EOS, max_len=3)
    b_ids, b_score = beam_search(step, None, 1, beam_size=2, bos_id=BOS, eos_id=EOS, max_len=3)
    assert g_ids[0, :2].tolist() == [a, EOS] and math.isclose(float(g_score[0]), math.log(0.6 * 0.25), rel_tol=1e-6)
    assert b_ids[0, :2].tolist() == [b, EOS] and math.isclose(float(b_score[0]), math.log(0.4 * 0.9), rel_tol=1e-6)


@pytest.mark.parametrize("attention", ["none", "additive", "general"])
def test_beam_size_one_equals_greedy_on_a_model(attention):
    model = _model(attention, seed=3).eval()
    src, mask, _ = _batch(B=4, lengths=(7, 3, 5, 2))
    g_ids, g_scores = greedy_decode(model.step, model.start(src, mask), 4, bos_id=BOS, eos_id=EOS, max_len=9)
    b_ids, b_scores = beam_search(model.step, model.start(src, mask), 4, beam_size=1, bos_id=BOS,
                                  eos_id=EOS, max_len=9)
    assert torch.equal(g_ids, b_ids)
    torch.testing.assert_close(g_scores, b_scores)


def test_beam_search_returns_sorted_hypotheses_with_their_true_scores():
    model = _model("additive", seed=4).eval()
    src, mask, _ = _batch(B=2, lengths=(7, 3))
    ids, scores = beam_search(model.step, model.start(src, mask), 2, beam_size=4, bos_id=BOS,
                              eos_id=EOS, max_len=6, return_all=True)
    assert ids.shape[:2] == (2, 4) and scores.shape == (2, 4)
    assert (scores[:, :-1] >= scores[:, 1:]).all()
    for k in range(4):
        state = model.start(src, mask)
        rescored = sequence_log_prob(model.step, state, ids[:, k], bos_id=BOS, eos_id=EOS)
        torch.testing.assert_close(rescored, scores[:, k], rtol=1e-4, atol=1e-5)
    best_ids, best_scores = beam_search(model.step, model.start(src, mask), 2, beam_size=4, bos_id=BOS,
                                        eos_id=EOS, max_len=6)
    assert torch.equal(best_ids, ids[:, 0]) and torch.equal(best_scores, scores[:, 0])
    greedy_scores = greedy_decode(model.step, model.start(src, mask), 2, bos_id=BOS, eos_id=EOS, max_len=6)[1]
    assert (best_scores >= greedy_scores - 1e-5).all()


def test_search_bad_input():
    _, step, start = _chain()
    with pytest.raises(ValueError, match="beam_size: expected a positive int"):
        beam_search(step, start(1), 1, beam_size=0, bos_id=BOS, eos_id=EOS, max_len=3)
    with pytest.raises(ValueError, match="length_penalty: expected a number from 0 to 2, got -1"):
        beam_search(step, start(1), 1, beam_size=2, bos_id=BOS, eos_id=EOS, max_len=3, length_penalty=-1)
    with pytest.raises(ValueError, match="max_len: expected a positive int"):
        greedy_decode(step, start(1), 1, bos_id=BOS, eos_id=EOS, max_len=0)
    bad = lambda prefix, state: (torch.zeros(prefix.shape[0] + 1, 6), state)  # noqa: E731
    with pytest.raises(ValueError, match="log_probs returned by step: expected shape"):
        greedy_decode(bad, None, 2, bos_id=BOS, eos_id=EOS, max_len=3)
    with pytest.raises(TypeError, match=r"step: expected step\(prefix, state\) to return"):
        greedy_decode(lambda p, s: torch.zeros(2, 6), None, 2, bos_id=BOS, eos_id=EOS, max_len=3)


# --- metrics ------------------------------------------------------------------------------------

def test_exact_match_and_bleu():
    hyps = ["vierundzwanzig", "sieben", "zweihundert"]
    refs = ["vierundzwanzig", "siebzehn", "zweihundert"]
    assert exact_match(hyps, refs) == pytest.approx(2 / 3)
    assert bleu(refs, refs) == pytest.approx(100.0)
    expected = sacrebleu.corpus_bleu(hyps, [refs], tokenize="char").score
    assert bleu(hyps, refs) == pytest.approx(expected) and 0 < bleu(hyps, refs) < 100
    with pytest.raises(ValueError, match="tokenize: expected one of"):
        bleu(hyps, refs, tokenize="13a")
    with pytest.raises(ValueError, match="the same length"):
        exact_match(hyps, refs[:2])
    with pytest.raises(TypeError, match="hypotheses: expected a list of strings"):
        bleu("abc", "abc")


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("tokenize", ["char", "none"])
def test_our_bleu_equals_sacrebleu_on_random_corpora(seed, tokenize):
    # our own code against the maintained implementation: random words from a small alphabet, so
    # that n-grams repeat (clipping matters) and lengths differ (the brevity penalty matters)
    rng = random.Random(seed)
    word = lambda: "".join(rng.choice("abcde") for _ in range(rng.randint(1, 6)))  # noqa: E731
    refs = [" ".join(word() for _ in range(rng.randint(3, 9))) for _ in range(40)]
    hyps = [" ".join(w if rng.random() < 0.7 else word() for w in r.split()[:rng.randint(2, 10)])
            for r in refs]
    expected = sacrebleu.corpus_bleu(hyps, [refs], tokenize=tokenize, smooth_method="none").score
    assert bleu(hyps, refs, tokenize=tokenize) == pytest.approx(expected, abs=1e-9)
    assert bleu(["zzz"] * 3, ["abc"] * 3, tokenize=tokenize) == 0.0      # no match: 0, no smoothing


def test_exact_match_by_length():
    out = exact_match_by_length(["a", "b", "c", "d"], ["a", "x", "c", "d"], [1, 5, 6, 12], [0, 5, 10, 20, 30])
    assert out[0] == (0, 5, 1, 1.0) and out[1] == (5, 10, 2, 0.5) and out[2] == (10, 20, 1, 1.0)
    assert out[3][2] == 0 and math.isnan(out[3][3])
    with pytest.raises(ValueError, match="edges: expected at least two increasing"):
        exact_match_by_length(["a"], ["a"], [1], [5, 0])


# --- batching, training and translating, end to end on dates ------------------------------------

def test_length_grouped_batches_cover_every_row_once():
    pairs = date_pairs(300, seed=0)
    enc = encode_pairs(pairs, Vocab.build([s for s, _ in pairs]), Vocab.build([t for _, t in pairs]))
    out = length_grouped_batches(*enc, batch_size=32, seed=1, group=4)
    assert sum(b[0].shape[0] for b in out) == 300
    seen = sorted(tuple(row.tolist()) for b in out for row in b[2])
    assert len(seen) == 300
    for src, mask, _, tgt_out in out:
        assert mask[:, -1].any() and mask.shape == src.shape    # trimmed to the longest row
        assert (tgt_out[:, -1] != 0).any()


@pytest.fixture(scope="module")
def trained_dates():
    """A small attention model trained for a few seconds on one date style."""
    torch.manual_seed(0)
    pairs = date_pairs(1500, seed=0, styles=["dotted"])
    src_vocab, tgt_vocab = Vocab.build([s for s, _ in pairs]), Vocab.build([t for _, t in pairs])
    train = encode_pairs(pairs[:1400], src_vocab, tgt_vocab)
    model = AttentionSeq2Seq(Seq2SeqConfig(len(src_vocab), len(tgt_vocab), d_embed=16, d_hidden=48,
                                           attention="dot"))
    history = train_seq2seq(model, train, epochs=4, batch_size=50, lr=1e-2, progress=False)
    return model, history, pairs[1400:], src_vocab, tgt_vocab


def test_train_seq2seq_lowers_the_loss(trained_dates):
    _, history, *_ = trained_dates
    assert len(history.train_loss) == 4 and history.train_loss[-1] < 0.5 * history.train_loss[0]


def test_translate_after_training_gets_dates_right(trained_dates):
    model, _, test, src_vocab, tgt_vocab = trained_dates
    hyps = translate(model, [s for s, _ in test], src_vocab, tgt_vocab, max_len=12)
    assert len(hyps) == 100 and exact_match(hyps, [t for _, t in test]) > 0.3


def test_decode_in_batches_equals_one_batch(trained_dates):
    model, _, test, src_vocab, tgt_vocab = trained_dates
    src, src_mask = encode_pairs(test, src_vocab, tgt_vocab)[:2]
    ids, scores = decode(model, src, src_mask, bos_id=1, eos_id=2, max_len=12, batch_size=30)
    whole_ids, whole_scores = decode(model, src, src_mask, bos_id=1, eos_id=2, max_len=12)
    assert ids.shape[0] == 100 and scores.shape == (100,) and (scores <= 0).all()
    torch.testing.assert_close(scores, whole_scores, rtol=1e-5, atol=1e-5)
    assert torch.equal(ids[:, :whole_ids.shape[1]], whole_ids)


def test_train_seq2seq_bad_input():
    model = _model()
    with pytest.raises(TypeError, match="train: expected EncodedPairs"):
        train_seq2seq(model, [1, 2], epochs=1)
    with pytest.raises(ValueError, match="epochs: expected a positive int"):
        train_seq2seq(model, encode_pairs(*_tiny_pairs()), epochs=0)


def _tiny_pairs():
    pairs = date_pairs(20, seed=0)
    return pairs, Vocab.build([s for s, _ in pairs]), Vocab.build([t for _, t in pairs])


def test_seq2seq_refuses_an_attention_config():
    with pytest.raises(ValueError, match="config.attention: Seq2Seq has chapter 03's fixed-context decoder"):
        Seq2Seq(Seq2SeqConfig(attention="dot"))
    with pytest.raises(ValueError, match="config.attention: expected one of"):
        AttentionSeq2Seq(Seq2SeqConfig(attention="none"))
