"""The translation tasks of chapters 03-06: number words between languages and date normalisation."""
import datetime

import pytest
import torch

from course_lib.data import (DATE_STYLES, EncodedPairs, batches, date_pairs, encode_pairs, format_date,
                             number_words, number_words_pairs)
from course_lib.text import Vocab


def test_number_words_known_values():
    assert number_words(24, "en") == "twenty-four"
    assert number_words(24, "de") == "vierundzwanzig"  # units before tens: the reordering
    assert number_words(24, "num") == "24"
    assert number_words(1999, "de") == "eintausendneunhundertneunundneunzig"


def test_number_words_pairs_deterministic_and_seed_dependent():
    a = number_words_pairs(50, seed=3)
    assert a == number_words_pairs(50, seed=3)
    assert a != number_words_pairs(50, seed=4)
    assert all(isinstance(s, str) and isinstance(t, str) and s and t for s, t in a)


def test_number_words_pairs_are_translations_of_one_number():
    pairs = number_words_pairs(30, seed=0, src_lang="num", tgt_lang="de")
    for digits, german in pairs:
        assert number_words(int(digits), "de") == german
    english = number_words_pairs(30, seed=0, src_lang="en", tgt_lang="num")
    # same seed, same numbers, whatever the languages
    assert [t for _, t in english] == [s for s, _ in pairs]


def test_number_words_pairs_range_and_log_uniform_lengths():
    pairs = number_words_pairs(3000, seed=1, low=0, high=999_999, src_lang="num", tgt_lang="en")
    values = [int(s) for s, _ in pairs]
    assert min(values) >= 0 and max(values) <= 999_999
    digits = [len(s) for s, _ in pairs]
    # the number of digits is uniform over 1..6: each count holds about 1/6 of the draws
    for d in range(1, 7):
        assert 0.12 < digits.count(d) / len(digits) < 0.21
    uniform = number_words_pairs(3000, seed=1, src_lang="num", tgt_lang="en", log_uniform=False)
    assert sum(len(s) <= 2 for s, _ in uniform) < 10  # uniform draws are almost all long
    narrow = number_words_pairs(200, seed=2, low=20, high=99, src_lang="num", tgt_lang="en")
    assert all(20 <= int(s) <= 99 for s, _ in narrow)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n=0), "n: expected a positive int"),
    (dict(n=5, low=10, high=3), "low, high: expected low <= high"),
    (dict(n=5, low=-1), "low: expected a non-negative int"),
    (dict(n=5, src_lang="xx"), "src_lang: expected 'num' or a num2words language"),
    (dict(n=5, tgt_lang="klingon"), "tgt_lang: expected"),
])
def test_number_words_pairs_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        number_words_pairs(**kwargs)
    with pytest.raises(TypeError, match="seed: expected an int"):
        number_words_pairs(5, seed="0")


def test_format_date_styles():
    day = datetime.date(2026, 11, 22)  # a Sunday
    written = {style: format_date(day, style) for style in DATE_STYLES}
    assert written["day month year"] == "22 November 2026"
    assert written["month day, year"] == "November 22, 2026"
    assert written["day mon year"] == "22 Nov 2026"
    assert written["mon day, year"] == "Nov 22, 2026"
    assert written["ordinal"] == "the 22nd of November 2026"
    assert written["weekday"] == "Sunday, 22 November 2026"
    assert written["dotted"] == "22.11.2026"
    assert written["us slashes"] == "11/22/2026"
    assert format_date(datetime.date(2001, 3, 11), "ordinal") == "the 11th of March 2001"
    assert format_date(datetime.date(2001, 3, 3), "ordinal") == "the 3rd of March 2001"
    with pytest.raises(ValueError, match="style: expected one of"):
        format_date(day, "klingon")


def test_date_pairs_targets_are_iso_and_inputs_parse_back():
    pairs = date_pairs(400, seed=0)
    assert pairs == date_pairs(400, seed=0) and pairs != date_pairs(400, seed=1)
    seen_styles = set()
    for source, target in pairs:
        day = datetime.date.fromisoformat(target)
        assert datetime.date(1900, 1, 1) <= day <= datetime.date(2099, 12, 31)
        matching = [style for style in DATE_STYLES if format_date(day, style) == source]
        assert matching, f"{source!r} is not {target} in any style"
        seen_styles.update(matching)
    assert seen_styles == set(DATE_STYLES)  # every style is drawn


def test_date_pairs_options_and_bad_input():
    only = date_pairs(50, seed=0, styles=["dotted"], start=datetime.date(2000, 1, 1),
                      end=datetime.date(2000, 12, 31))
    assert all(s[2] == "." and t.startswith("2000-") for s, t in only)
    with pytest.raises(ValueError, match="styles: expected names from"):
        date_pairs(5, styles=["dotted", "nope"])
    with pytest.raises(ValueError, match="styles: expected a non-empty sequence"):
        date_pairs(5, styles="dotted")
    with pytest.raises(ValueError, match="start, end: expected start <= end"):
        date_pairs(5, start=datetime.date(2001, 1, 1), end=datetime.date(2000, 1, 1))
    with pytest.raises(TypeError, match="start: expected a datetime.date"):
        date_pairs(5, start="2000-01-01")


def test_encode_pairs_shapes_and_round_trip():
    pairs = [("twenty-four", "vierundzwanzig"), ("seven", "sieben")]
    src_vocab = Vocab.build([s for s, _ in pairs])
    tgt_vocab = Vocab.build([t for _, t in pairs])
    enc = encode_pairs(pairs, src_vocab, tgt_vocab)
    assert isinstance(enc, EncodedPairs)
    assert enc.src.shape == enc.src_mask.shape == (2, 11)
    assert enc.tgt_in.shape == enc.tgt_out.shape == (2, 15)   # longest target + 1
    assert enc.src_mask.sum(1).tolist() == [11, 5]
    assert src_vocab.decode(enc.src[1]) == "seven"
    assert (enc.tgt_in[:, 0] == tgt_vocab.bos_id).all()
    # tgt_in is tgt_out shifted right by one: the decoder reads y_<t and predicts y_t
    assert torch.equal(enc.tgt_in[0, 1:], enc.tgt_out[0, :-1])
    assert enc.tgt_out[1].tolist()[:7] == tgt_vocab.encode("sieben") + [tgt_vocab.eos_id]
    assert (enc.tgt_out[1, 7:] == 0).all() and (enc.tgt_in[1, 7:] == 0).all()
    assert tgt_vocab.decode(enc.tgt_out[0]) == "vierundzwanzig"
    assert len(list(batches(*enc, batch_size=1))) == 2


def test_encode_pairs_bad_input():
    vocab = Vocab.build(["abc"])
    with pytest.raises(ValueError, match="pairs: expected at least one"):
        encode_pairs([], vocab, vocab)
    with pytest.raises(TypeError, match=r"pairs\[1\]: expected a \(source str, target str\) pair"):
        encode_pairs([("a", "b"), ("a",)], vocab, vocab)
    with pytest.raises(TypeError, match="tgt_vocab: expected a course_lib.text.Vocab"):
        encode_pairs([("a", "b")], vocab, {"a": 1})
