"""course_lib.text.BPE: byte-level byte-pair encoding (chapter 07)."""
import random

import pytest
import torch

from course_lib.text import BPE, bpe_pretokenize


def _random_unicode(rng: random.Random, n: int) -> str:
    """Characters from everywhere in Unicode (no surrogates): ASCII, accents, CJK, emoji, controls."""
    ranges = [(0x20, 0x7E), (0x0, 0x1F), (0xA0, 0x24F), (0x300, 0x36F), (0x400, 0x4FF),
              (0x4E00, 0x9FFF), (0x1F300, 0x1FAFF), (0xE000, 0xF8FF), (0x10000, 0x10FFFF)]
    out = []
    for _ in range(n):
        lo, hi = rng.choice(ranges)
        c = rng.randint(lo, hi)
        out.append(chr(c) if not 0xD800 <= c <= 0xDFFF else "x")
    return "".join(out)


@pytest.fixture(scope="module")
def pydoc_bpe():
    from pydoc_data.topics import topics
    text = "\n\n".join(topics[k].strip() for k in sorted(topics))[:100_000]
    return text, BPE.train(text, vocab_size=256 + 300, specials=["<|endoftext|>"])


def test_pretokenize_covers_the_text():
    text = "Hello, world!  It's 2026\n\n\tdef f(x_1):  return x**2 …ß漢字🙂 "
    pieces = bpe_pretokenize(text)
    assert "".join(pieces) == text and " world" in pieces and "'s" in pieces


def test_round_trip_on_the_corpus_and_compression(pydoc_bpe):
    text, bpe = pydoc_bpe
    assert len(bpe) == 256 + 300 and len(bpe.merges) == 299  # vocab_size counts the special
    ids = bpe.encode(text)
    assert bpe.decode(ids) == text
    assert len(text) / len(ids) > 2.0  # 299 merges already halve the sequence length
    assert max(ids) < 256 + 299  # specials never come out of encode
    assert bpe.merge_counts[0] == max(bpe.merge_counts)  # the most frequent pair goes first


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_round_trip_on_arbitrary_unicode(pydoc_bpe, seed):
    _, bpe = pydoc_bpe
    text = _random_unicode(random.Random(seed), 400)
    assert bpe.decode(bpe.encode(text)) == text
    assert bpe.decode(torch.tensor(bpe.encode(text))) == text


def test_tiny_training_by_hand():
    bpe = BPE.train("aaab aaab aaab", vocab_size=258)
    # ("a", "a") occurs twice in each of the three "aaab" (overlapping), more than any other pair
    assert bpe.merges[0] == (ord("a"), ord("a"))
    assert bpe.token_str(256) == "aa"
    assert bpe.encode("aaab")[:1] == [256]


def test_training_is_deterministic_and_save_load(tmp_path, pydoc_bpe):
    text, bpe = pydoc_bpe
    again = BPE.train(text, vocab_size=256 + 300, specials=["<|endoftext|>"])
    assert again.merges == bpe.merges
    loaded = BPE.load(bpe.save(tmp_path / "bpe.json"))
    assert loaded.merges == bpe.merges and loaded.specials == bpe.specials
    sample = text[:5000]
    assert loaded.encode(sample) == bpe.encode(sample)


def test_specials():
    bpe = BPE.train("hello hello", vocab_size=260, specials=["[PAD]", "[MASK]"])
    mask = bpe.special_id("[MASK]")
    assert mask == len(bpe) - 1
    ids = bpe.encode("hello") + [mask]
    assert bpe.decode(ids) == "hello[MASK]" and bpe.decode(ids, skip_special=True) == "hello"


def test_invalid_utf8_from_sampling_is_replaced_not_raised():
    bpe = BPE()
    assert "\ufffd" in bpe.decode([0xE6, 0xBC])  # the first two of the three bytes of a CJK char


@pytest.mark.parametrize("call, match", [
    (lambda: BPE.train("abc", vocab_size=100), r"vocab_size: expected an int >= 256, got 100"),
    (lambda: BPE.train("abc", vocab_size=257, specials=["x", "y"]), r"vocab_size: expected an int >= 258"),
    (lambda: BPE.train(b"abc", vocab_size=300), r"text: expected a str, got bytes"),
    (lambda: BPE().encode(3), r"text: expected a str, got int"),
    (lambda: BPE().decode([300]), r"ids: expected ids in \[0, 256\), got 300"),
    (lambda: BPE().decode(torch.zeros(2, 2, dtype=torch.long)), r"ids: expected a 1-D tensor"),
    (lambda: BPE([(1, 999)]), r"merges\[0\]: expected ids below 256"),
    (lambda: BPE(specials=["a", "a"]), r"specials: expected distinct"),
    (lambda: BPE().special_id("[CLS]"), r"token: expected one of the specials"),
])
def test_bpe_bad_inputs(call, match):
    with pytest.raises((ValueError, TypeError, KeyError), match=match):
        call()


def test_load_rejects_other_files(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"a": 1}')
    with pytest.raises(ValueError, match="path: expected a file written by BPE.save"):
        BPE.load(path)
