"""course_lib.text: vocabularies and the encode/decode round trip."""
import pytest
import torch

from course_lib.text import Vocab


def test_char_round_trip_and_specials_first():
    vocab = Vocab.build(["hello world", "hold"], level="char")
    assert vocab.itos[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"] and vocab.pad_id == 0
    ids = vocab.encode("hello", add_bos=True, add_eos=True)
    assert ids[0] == vocab.bos_id and ids[-1] == vocab.eos_id
    assert vocab.decode(ids) == "hello"
    assert vocab.decode(torch.tensor(ids + [vocab.pad_id])) == "hello"


def test_word_vocab_unknowns_and_order_independence():
    a = Vocab.build(["the cat sat", "the dog"], level="word")
    b = Vocab.build(["the dog", "the cat sat"], level="word")
    assert a.itos == b.itos and a.itos[4] == "the"  # most frequent first
    assert a.decode(a.encode("the bird sat")) == "the <unk> sat"
    assert len(Vocab.build(["a a b"], level="word", min_freq=2)) == 5


def test_pydoc_round_trip_is_exact():
    from course_lib.data import pydoc_text
    text = pydoc_text()[:20_000]
    vocab = Vocab.build(text)
    assert vocab.decode(vocab.encode(text)) == text


@pytest.mark.parametrize("call, match", [
    (lambda: Vocab([], level="byte"), r"level: expected 'char' or 'word', got 'byte'"),
    (lambda: Vocab.build("ab").encode(3), r"text: expected a str, got int"),
    (lambda: Vocab.build("ab").decode([99]), r"ids: expected ids in \[0, 6\), got 99"),
    (lambda: Vocab.build("ab").decode(torch.zeros(2, 2, dtype=torch.long)), r"ids: expected a 1-D tensor"),
    (lambda: Vocab.build("ab", min_freq=0), r"min_freq: expected a positive int, got 0"),
])
def test_text_bad_inputs(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
