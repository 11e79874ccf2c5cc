"""course_lib.bert: equal to Hugging Face's BertForPreTraining with copied weights, the 80-10-10
masking on a large sample, the input format, padding, the classifier, and bad input."""
import pytest
import torch
import torch.nn.functional as F

from course_lib import bert
from course_lib.bert import BERT, BERTConfig, IGNORE, mask_tokens


def hf_model(seed=0, **kw):
    from transformers import BertConfig, BertForPreTraining

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=kw.get("V", 61), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=40, type_vocab_size=2)
    model = BertForPreTraining(cfg).eval()
    with torch.no_grad():  # LayerNorms start at (1, 0) and biases at 0: randomise so a swap shows
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name:
                p.normal_(1.0, 0.3)
            elif name.endswith("bias"):
                p.normal_(0.0, 0.3)
    return model


def test_from_hf_gives_the_same_masked_lm_and_next_sentence_logits():
    model = hf_model()
    ours = BERT.from_hf(model).eval()
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 61, (3, 11), generator=g)
    ids[1, 7:] = 0                                            # a padded row
    segments = torch.zeros_like(ids)
    segments[:, 5:] = 1
    mask = ids != 0
    with torch.no_grad():
        mlm, nsp = ours(ids, segments, mask)
        theirs = model(input_ids=ids, token_type_ids=segments, attention_mask=mask.long())
    assert mlm.shape == (3, 11, 61) and nsp.shape == (3, 2)
    torch.testing.assert_close(mlm, theirs.prediction_logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(nsp, theirs.seq_relationship_logits, atol=1e-5, rtol=0)
    # the comparison can fail: a model with other weights differs
    other = BERT.from_hf(hf_model(seed=1)).eval()
    with torch.no_grad():
        assert (other(ids, segments, mask)[0] - mlm).abs().max() > 1e-2
    with pytest.raises(TypeError, match="model: expected a transformers.BertForPreTraining"):
        BERT.from_hf(torch.nn.Linear(2, 2))


def test_encoder_is_bidirectional_and_padding_is_ignored():
    torch.manual_seed(0)
    model = BERT(BERTConfig.small(50, dropout=0.0)).eval()
    ids = torch.randint(7, 50, (2, 9))
    changed = ids.clone()
    changed[:, -1] = (ids[:, -1] + 1 - 7) % 43 + 7
    padded = torch.cat([ids, torch.zeros(2, 4, dtype=torch.long)], dim=1)
    with torch.no_grad():
        h, h_changed, h_padded = model.encode(ids), model.encode(changed), model.encode(padded)
    assert (h[:, 0] - h_changed[:, 0]).abs().max() > 1e-4     # the first position sees the last
    torch.testing.assert_close(h_padded[:, :9], h, atol=1e-5, rtol=0)


def test_init_is_bert_normal_002_and_the_decoder_is_tied():
    torch.manual_seed(0)
    model = BERT(BERTConfig(vocab_size=3000, d_model=128))
    w = model.embeddings.token.weight[1:]
    assert abs(w.std().item() - 0.02) < 0.001 and model.embeddings.token.weight[0].abs().max() == 0
    trap = BERT(BERTConfig(vocab_size=3000, d_model=128, embedding_std=1.0))
    assert abs(trap.embeddings.segment.weight.std().item() - 1.0) < 0.1
    hidden = torch.randn(2, 3, 128)
    manual = model.mlm_norm(F.gelu(model.mlm_transform(hidden))) @ model.embeddings.token.weight.T
    torch.testing.assert_close(model.mlm_logits(hidden), manual + model.mlm_bias)


def test_masking_statistics_on_a_large_sample():
    V, mask_id, special = 40, 6, [0, 1, 2, 3, 4, 5, 6]
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(7, V, (400, 250), generator=g)
    ids[:, 0], ids[:, 120], ids[:, -30:] = 4, 5, 0            # [CLS], [SEP], padding
    before = ids.clone()
    inputs, labels = mask_tokens(ids, V, mask_id, special, generator=torch.Generator().manual_seed(1))
    assert torch.equal(ids, before)                            # the input is not modified
    is_special = torch.isin(ids, torch.tensor(special))
    chosen = labels != IGNORE
    n_real = int((~is_special).sum())
    assert not chosen[is_special].any() and torch.equal(inputs[is_special], ids[is_special])
    assert torch.equal(labels[chosen], ids[chosen])            # labels: the original token, only there
    assert torch.equal(inputs[~chosen], ids[~chosen])
    share = chosen.sum().item() / n_real
    assert abs(share - 0.15) < 4 * (0.15 * 0.85 / n_real) ** 0.5
    n = int(chosen.sum())
    to_mask = (inputs[chosen] == mask_id).sum().item() / n
    kept = (inputs[chosen] == ids[chosen]).sum().item() / n
    randomised = 1 - to_mask - kept
    tol = 4 * (0.1 * 0.9 / n) ** 0.5
    assert abs(to_mask - 0.8) < 4 * (0.16 / n) ** 0.5
    assert abs(kept - (0.1 + 0.1 / (V - 7))) < tol             # a random token can equal the original
    assert abs(randomised - (0.1 - 0.1 / (V - 7))) < tol
    assert not torch.isin(inputs[chosen & (inputs != mask_id)], torch.tensor(special)).any()
    again = mask_tokens(ids, V, mask_id, special, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again[0], inputs) and torch.equal(again[1], labels)


def test_input_format_and_pretraining_loss_only_on_chosen_positions():
    vocab = bert.build_vocab(["the list sorts the items .", "a dict maps keys to values ."], min_freq=1)
    assert [vocab.itos[i] for i in (4, 5, 6)] == ["[CLS]", "[SEP]", "[MASK]"]
    ids, segments = bert.encode_pair(vocab, "The list sorts.", "A dict maps keys!")
    words = [vocab.itos[i] for i in ids]
    assert words == ["[CLS]", "the", "list", "sorts", ".", "[SEP]", "a", "dict", "maps", "keys", "<unk>", "[SEP]"]
    assert segments == [0] * 6 + [1] * 6
    assert len(bert.encode_pair(vocab, "the " * 50, "a " * 10, max_len=16)[0]) == 16
    pairs = [("the list sorts the items .", "a dict maps keys to values .", 1)] * 4
    batch = bert.pretraining_batch(vocab, pairs, mask_prob=0.5, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = BERT(BERTConfig.small(len(vocab), dropout=0.0))
    mlm, nsp = model(batch.inputs, batch.segments, batch.attention_mask)
    chosen = batch.labels != IGNORE
    want = F.cross_entropy(mlm[chosen], batch.labels[chosen]) + F.cross_entropy(nsp, 1 - batch.is_next)
    torch.testing.assert_close(bert.pretraining_loss(model, batch), want)
    torch.testing.assert_close(bert.pretraining_loss(model, batch, nsp=False), F.cross_entropy(mlm[chosen], batch.labels[chosen]))


def test_frozen_classifier_trains_only_its_head():
    torch.manual_seed(0)
    encoder = BERT(BERTConfig.small(30))
    clf = bert.BERTClassifier(encoder, n_classes=3, freeze=True, pooling="mean").train()
    assert not encoder.training
    ids = torch.randint(7, 30, (4, 6))
    F.cross_entropy(clf(ids), torch.tensor([0, 1, 2, 0])).backward()
    assert all(p.grad is None for p in encoder.parameters()) and clf.head.weight.grad is not None
    tuned = bert.BERTClassifier(BERT(BERTConfig.small(30)), n_classes=3)
    F.cross_entropy(tuned(ids), torch.tensor([0, 1, 2, 0])).backward()
    assert tuned.bert.embeddings.token.weight.grad is not None


@pytest.mark.parametrize("call, error, pattern", [
    (lambda: mask_tokens(torch.zeros(3, 4), 10, 6, [6]), TypeError, "ids: expected a torch.long"),
    (lambda: mask_tokens(torch.zeros(3, dtype=torch.long), 10, 6, [6]), ValueError, r"ids: expected shape \(B, T\)"),
    (lambda: mask_tokens(torch.zeros(3, 4, dtype=torch.long), 10, 6, [6], mask_prob=1.5), ValueError, "mask_prob"),
    (lambda: mask_tokens(torch.zeros(3, 4, dtype=torch.long), 10, 12, [12]), ValueError, "mask_id"),
    (lambda: mask_tokens(torch.zeros(3, 4, dtype=torch.long), 10, 6, [0, 1]), ValueError, "special"),
    (lambda: BERTConfig(d_model=30, n_heads=4), ValueError, "n_heads"),
    (lambda: BERTConfig(dropout=1.0), ValueError, "dropout"),
    (lambda: BERT(BERTConfig.small(20))(torch.zeros(1, 65, dtype=torch.long)), ValueError, "max_len = 64"),
    (lambda: BERT(BERTConfig.small(20))(torch.full((1, 5), 20)), ValueError, r"ids: expected ids in \[0, vocab_size = 20\)"),
    (lambda: BERT(BERTConfig.small(20))(torch.ones(2, 5, dtype=torch.long), torch.ones(2, 4, dtype=torch.long)), ValueError, "segments"),
    (lambda: BERT(BERTConfig.small(20))(torch.ones(2, 5, dtype=torch.long), None, torch.ones(2, 5)), TypeError, "attention_mask"),
    (lambda: bert.BERTClassifier(BERT(BERTConfig.small(20)), n_classes=1), ValueError, "n_classes"),
    (lambda: bert.BERTClassifier(BERT(BERTConfig.small(20)), n_classes=2, pooling="max"), ValueError, "pooling"),
    (lambda: bert.encode_pair(bert.build_vocab(["a b"], 1), "a", max_len=2), ValueError, "max_len"),
])
def test_bad_input_names_the_argument(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()
