"""course_lib.data, chapter 08's section: the pydoc topic task is deterministic, holds what its
docstring promises, and leaks nothing between its splits; next-sentence pairs are half true."""
import sys

import pytest

from course_lib import data


@pytest.fixture(scope="module")
def topic():
    return data.topic_dataset()


def test_duplicates_across_topics_are_removed_first():
    by_topic = data.pydoc_paragraphs()
    where = {}
    for key, paragraphs in by_topic.items():
        for p in paragraphs:
            where.setdefault(p, set()).add(key)
    shared = sum(len(keys) > 1 for keys in where.values())
    if sys.version_info[:2] == (3, 11):  # the counts quoted by the chapter and the docstring
        assert (shared, len(where)) == (289, 1258)
    assert 0 < shared < len(where)


def test_eight_largest_topics_deterministic_and_balanced(topic):
    again = data.topic_dataset()
    assert again == topic
    other = data.topic_dataset(seed=1)
    assert other.topics == topic.topics and other.test != topic.test
    assert len(topic.topics) == 8
    n = len(topic.train) + len(topic.val) + len(topic.test)
    if sys.version_info[:2] == (3, 11):
        assert n == 623
    for split, fraction in ((topic.test, 0.25), (topic.val, 0.15)):
        for label in range(8):
            total = sum(1 for part in topic[:3] for _, y in part if y == label)
            share = sum(1 for _, y in split if y == label) / total
            assert abs(share - fraction) < 0.06, (label, share)


def test_no_paragraph_and_no_near_duplicate_in_two_splits(topic):
    texts = {name: [p for p, _ in getattr(topic, name)] for name in ("train", "val", "test")}
    every = [p for name in texts for p in texts[name]]
    assert len(every) == len(set(every))
    labels = {}
    for p, y in topic.train + topic.val + topic.test:
        assert labels.setdefault(p, y) == y
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert data.near_duplicate_pairs(texts[a], texts[b]) == [], (a, b)
    # the check can fail: near-duplicates exist inside the task (they sit in one split together)
    within = data.near_duplicate_pairs(every)
    assert len(within) > 10


def test_pretraining_never_reads_held_out_paragraphs(topic):
    held_out = [p for p, _ in topic.val + topic.test]
    docs = data.pretraining_documents(exclude=held_out)
    text = " ".join(s for d in docs for s in d)
    assert not any(p in text for p in held_out)
    full = " ".join(s for d in data.pretraining_documents() for s in d)
    assert sum(p in full for p in held_out) == len(held_out)


def test_sentence_pairs_half_true_and_deterministic():
    docs = data.pretraining_documents()
    pairs = data.sentence_pairs(docs, 1001, seed=3)
    assert pairs == data.sentence_pairs(docs, 1001, seed=3)
    assert sum(y for _, _, y in pairs) == 500
    sentence_doc = {}
    for k, d in enumerate(docs):
        for i, s in enumerate(d):
            sentence_doc.setdefault(s, []).append((k, i))
    for a, b, y in pairs[:200]:
        follows = any((k, i + 1) in sentence_doc.get(b, []) for k, i in sentence_doc[a])
        assert follows if y else not all(ka == kb for ka, _ in sentence_doc[a] for kb, _ in sentence_doc[b])
    assert data.split_sentences("One thing. Two things! Three?") == ["One thing.", "Two things!", "Three?"]


@pytest.mark.parametrize("call, pattern", [
    (lambda: data.topic_dataset(n_topics=0), "n_topics"),
    (lambda: data.topic_dataset(n_topics=500), "n_topics"),
    (lambda: data.topic_dataset(test_fraction=1.5), "test_fraction"),
    (lambda: data.topic_dataset(val_fraction=0.5, test_fraction=0.5), "val_fraction"),
    (lambda: data.near_duplicate_pairs(["a b c"], threshold=0.0), "threshold"),
    (lambda: data.sentence_pairs([["one."]], 4), "documents"),
    (lambda: data.sentence_pairs([["a.", "b."], ["c.", "d."]], 0), "n"),
    (lambda: data.split_sentences(3), "paragraph"),
])
def test_bad_input_names_the_argument(call, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        call()
