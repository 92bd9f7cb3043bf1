"""Parallel corpora: readers, hash splits without leaks, subword tokenisation, bucketed batches."""

import glob

import numpy as np
import pytest
import tensorflow as tf

from rnnzoo.data.parallel_batches import encode_pairs, pair_batches, pairs_within
from rnnzoo.data.parallel_corpus import (
    gettext_pairs,
    load_parallel_corpus,
    normalise,
    read_pairs,
    split_pairs,
)
from rnnzoo.data.subword_tokenizer import BOS_ID, EOS_ID, PAD_ID, SubwordTokenizer, train_sentencepiece

PAIRS = [(f"the {c} file number {i} is open", f"le fichier {c} numéro {i} est ouvert")
         for i in range(40) for c in ("red", "blue", "Été")]


def test_tsv_and_aligned_files_read_the_same_pairs(tmp_path):
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("a b c\tx y z\n\nd e f\tu v w\n", encoding="utf-8")
    (tmp_path / "s.txt").write_text("a b c\nd e f\n", encoding="utf-8")
    (tmp_path / "t.txt").write_text("x y z\nu v w\n", encoding="utf-8")
    assert read_pairs(str(tsv)) == [("a b c", "x y z"), ("d e f", "u v w")]
    assert read_pairs(f"{tmp_path / 's.txt'},{tmp_path / 't.txt'}") == read_pairs(str(tsv))


def test_bad_corpora_name_the_problem(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tb\nno tab here\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.tsv:2 has 0 tabs"):
        read_pairs(str(bad))
    (tmp_path / "t.txt").write_text("x\n", encoding="utf-8")
    with pytest.raises(ValueError, match="has 2 lines but .* has 1"):
        read_pairs(f"{bad},{tmp_path / 't.txt'}")
    with pytest.raises(ValueError, match="no file"):
        read_pairs(str(tmp_path / "missing.tsv"))
    with pytest.raises(ValueError, match=r"language 'zz'.*languages with catalogs here: .*fr"):
        gettext_pairs("zz")


def test_splits_are_deterministic_disjoint_and_deduplicated():
    pairs = PAIRS + [(s.upper(), t) for s, t in PAIRS] + [("  " + s, t + "!") for s, t in PAIRS]
    corpus = split_pairs(pairs, dev_fraction=0.2, test_fraction=0.2)
    assert corpus.train + corpus.dev + corpus.test != []
    assert sum(corpus.sizes().values()) == len(PAIRS)  # case and spacing variants are duplicates
    keys = {name: {normalise(s) for s, _ in split} for name, split in
            (("train", corpus.train), ("dev", corpus.dev), ("test", corpus.test))}
    assert not keys["train"] & keys["test"] and not keys["train"] & keys["dev"] and not keys["dev"] & keys["test"]
    assert all(len(v) > 10 for v in keys.values())
    shuffled = split_pairs(list(reversed(PAIRS)), dev_fraction=0.2, test_fraction=0.2)
    assert sorted(shuffled.test) == sorted(corpus.test)  # the split depends on the source alone


FRENCH_CATALOGS = glob.glob("/usr/share/locale/fr/LC_MESSAGES/*.mo")


@pytest.mark.skipif(len(FRENCH_CATALOGS) < 20, reason="this machine has (almost) no French gettext "
                    "catalogs under /usr/share/locale/fr/LC_MESSAGES")
def test_gettext_french_gives_thousands_of_clean_pairs_without_test_leaks():
    corpus = load_parallel_corpus("gettext:fr")
    sizes = corpus.sizes()
    assert sizes["train"] > 10_000 and 500 < sizes["test"] < 2_000, sizes
    train_sources = {normalise(s) for s, _ in corpus.train}
    assert not any(normalise(s) in train_sources for s, _ in corpus.test)
    for source, target in corpus.train[:2000]:
        assert 3 <= len(source.split()) <= 25 and 3 <= len(target.split()) <= 25
        assert "%" not in source + target and "\n" not in source + target and source != target


@pytest.fixture(scope="module")
def tokenizer():
    return SubwordTokenizer(train_sentencepiece([x for pair in PAIRS for x in pair], vocab_size=60))


def test_sentencepiece_training_is_deterministic_and_detokenisation_lossless(tokenizer):
    again = train_sentencepiece([x for pair in PAIRS for x in pair], vocab_size=60)
    assert again == tokenizer.model_proto
    texts = ["le fichier Été numéro 7 est ouvert", "the red file is open", ""]
    ids = tokenizer.encode(tf.constant(texts))
    assert ids.dtype == tf.int32 and int(tf.reduce_min(ids.flat_values)) > EOS_ID
    assert [t.decode("utf-8") for t in tokenizer.decode(ids).numpy()] == texts  # case and accents survive
    framed = tf.concat([tf.fill([3, 1], BOS_ID), ids.to_tensor(), tf.fill([3, 1], EOS_ID),
                        tf.fill([3, 2], PAD_ID)], axis=1)
    assert [t.decode("utf-8") for t in tokenizer.decode(framed).numpy()] == texts


def test_pairs_within_keeps_the_text_of_the_pairs_encode_pairs_keeps(tokenizer):
    pairs = PAIRS + [("short", "court"), ("a much longer " * 6 + "sentence", "une phrase")]
    pieces = [len(ids) for ids in tokenizer.encode(tf.constant([text for pair in pairs for text in pair])).to_list()]
    lengths = [max(pieces[2 * i], pieces[2 * i + 1]) for i in range(len(pairs))]
    limit = int(np.median(lengths))
    kept = pairs_within(pairs, tokenizer, limit)
    assert kept == [pair for pair, n in zip(pairs, lengths) if n <= limit] and 0 < len(kept) < len(pairs)
    for mine, theirs in zip(encode_pairs(kept, tokenizer), encode_pairs(pairs, tokenizer, max_tokens=limit)):
        assert [list(ids) for ids in mine] == [list(ids) for ids in theirs]
    assert pairs_within([], tokenizer, limit) == []


def test_bucketed_batches_shift_targets_and_mask_padding(tokenizer):
    sources, targets = encode_pairs(PAIRS, tokenizer, max_tokens=24)
    assert 0 < len(sources) <= len(PAIRS) and all(len(s) <= 24 and len(t) <= 24 for s, t in zip(sources, targets))
    batches = pair_batches(sources, targets, batch_size=8, seed=0, buckets=(16, 22))
    lookup = {tuple(s): t for s, t in zip(sources, targets)}
    for (source, target_in), target_out, weight in batches.take(6):
        source, target_in, target_out, weight = (np.asarray(a) for a in (source, target_in, target_out, weight))
        assert source.shape[0] == 8 and target_in.shape == target_out.shape == weight.shape
        np.testing.assert_array_equal(weight, (target_out != PAD_ID).astype(np.float32))
        for row in range(8):
            target = lookup[tuple(source[row][source[row] != PAD_ID])]
            n = len(target)
            np.testing.assert_array_equal(target_in[row, : n + 1], [BOS_ID, *target])
            np.testing.assert_array_equal(target_out[row, : n + 1], [*target, EOS_ID])
            assert not target_out[row, n + 1:].any()
