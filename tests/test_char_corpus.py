"""Character corpora: reading files/directories/globs/TFDS, vocabulary, windows and weights (thesis §5.4)."""

import os
import sysconfig

import numpy as np
import pytest

from rnnzoo.data.char_corpus import (
    UNKNOWN,
    Vocabulary,
    load_corpus,
    read_text,
    read_tfds_text,
    sequence_weights,
)


def write(path, content):
    mode = "wb" if isinstance(content, bytes) else "w"
    with open(path, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as f:
        f.write(content)
    return str(path)


def test_vocabulary_keeps_most_frequent_characters_and_maps_the_rest_to_unknown():
    vocabulary = Vocabulary.from_text("aaaabbbcc d", max_size=4)  # unknown + a, b, c
    assert vocabulary.size == 4
    assert vocabulary.characters == ["a", "b", "c"]
    np.testing.assert_array_equal(vocabulary.encode("abcdz"), [1, 2, 3, 0, 0])
    assert vocabulary.decode([1, 0, 3]) == "a" + UNKNOWN + "c"
    assert Vocabulary.from_json(vocabulary.to_json()) == vocabulary
    np.testing.assert_array_equal(vocabulary.code_points(), [0xFFFD, ord("a"), ord("b"), ord("c")])


def test_vocabulary_ties_are_broken_by_code_point_and_unicode_is_one_character_each():
    vocabulary = Vocabulary.from_text("zé€€", max_size=3)
    assert vocabulary.characters == ["z", "€"]  # € most frequent, then z (U+7A) before é (U+E9)
    np.testing.assert_array_equal(vocabulary.encode("€zé"), [2, 1, 0])


def test_read_file_directory_and_glob(tmp_path):
    a = write(tmp_path / "a.txt", "alpha\n")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "b.txt", "beta\n")
    write(tmp_path / "sub" / "blob.bin", b"\x00\x01binary")
    write(tmp_path / "sub" / "latin1.txt", "caf\xe9".encode("latin-1"))
    assert read_text(a) == "alpha\n"
    # A directory: every UTF-8 text file below it in sorted order; binary / non-UTF-8 files skipped.
    assert read_text(str(tmp_path)) == "alpha\nbeta\n"
    assert read_text(str(tmp_path / "**" / "b*.txt")) == "beta\n"
    assert read_text(str(tmp_path), max_chars=3) == "alp"


def test_non_utf8_file_names_the_file_offset_and_fix(tmp_path):
    bad = write(tmp_path / "latin1.txt", "ab caf\xe9".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.txt is not UTF-8: byte 0xe9 at offset 6.*iconv"):
        read_text(bad)
    with pytest.raises(ValueError, match="not UTF-8"):
        read_text(str(tmp_path / "*.txt"))


def test_empty_and_missing_corpora_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="contains no text"):
        read_text(write(tmp_path / "empty.txt", ""))
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ValueError, match="contains no text"):
        read_text(str(tmp_path / "nothing"))
    with pytest.raises(ValueError, match="not a file, a directory or a glob"):
        read_text(str(tmp_path / "missing*.txt"))


def test_corpus_smaller_than_one_sequence_is_a_clear_error(tmp_path):
    corpus = load_corpus(write(tmp_path / "t.txt", "x" * 30), holdout_chars=10)
    with pytest.raises(ValueError, match=r"20 characters, fewer than one sequence of seq_len \+ 1 = 51"):
        corpus.train_dataset(seq_len=50, context=10, batch_size=2)
    with pytest.raises(ValueError, match="not more than holdout_chars=30"):
        load_corpus(write(tmp_path / "u.txt", "x" * 30), holdout_chars=30)
    with pytest.raises(ValueError, match="context < seq_len"):
        corpus.train_dataset(seq_len=10, context=10, batch_size=2)


def test_default_corpus_is_the_standard_library_source():
    text = read_text(max_chars=20_000)
    assert len(text) == 20_000
    assert "import" in text and "def " in text
    stdlib = sysconfig.get_paths()["stdlib"]
    first = sorted(n for n in os.listdir(stdlib) if n.endswith(".py") and os.path.isfile(os.path.join(stdlib, n)))[0]
    with open(os.path.join(stdlib, first), encoding="utf-8") as f:
        head = f.read(1000)
    assert text.startswith(head)  # the top directory's files first, in sorted order


def test_training_windows_are_corpus_slices_with_context_weights(tmp_path):
    text = "".join(chr(ord("a") + i % 26) for i in range(500))
    corpus = load_corpus(write(tmp_path / "t.txt", text), holdout_chars=100)
    x, y, w = next(iter(corpus.train_dataset(seq_len=20, context=5, batch_size=8, seed=3)))
    train = corpus.train_ids
    for row_x, row_y in zip(x.numpy(), y.numpy()):
        starts = [s for s in range(len(train) - 20) if np.array_equal(train[s : s + 20], row_x)]
        assert starts, "every input window is a slice of the training split"
        np.testing.assert_array_equal(row_y, train[starts[0] + 1 : starts[0] + 21])
    np.testing.assert_array_equal(w.numpy()[0], sequence_weights(20, 5))
    assert w.numpy()[0].tolist() == [0.0] * 5 + [1.0] * 15
    again = next(iter(corpus.train_dataset(seq_len=20, context=5, batch_size=8, seed=3)))
    np.testing.assert_array_equal(again[0].numpy(), x.numpy())


def test_heldout_windows_predict_every_heldout_character_once_after_context(tmp_path):
    rng = np.random.default_rng(0)
    text = "".join(rng.choice(list("abcdefgh"), 400))
    corpus = load_corpus(write(tmp_path / "t.txt", text), holdout_chars=77)
    x, y, w = corpus.heldout_windows(seq_len=12, context=4)
    stream = np.concatenate([corpus.train_ids, corpus.heldout_ids])
    targets = y[w > 0]
    np.testing.assert_array_equal(targets, corpus.heldout_ids)  # each once, in order
    # Every weighted prediction sees at least `context` true preceding characters.
    first_heldout = len(corpus.train_ids)
    position = first_heldout
    for k in range(len(x)):
        for t in np.nonzero(w[k])[0]:
            assert t >= 4
            np.testing.assert_array_equal(x[k, : t + 1], stream[position - t - 1 : position])
            position += 1
    assert position == len(stream)


def test_unigram_baseline_is_the_heldout_cross_entropy_of_train_frequencies(tmp_path):
    corpus = load_corpus(write(tmp_path / "t.txt", "aab" * 50 + "ab"), holdout_chars=2)
    counts = np.bincount(corpus.train_ids, minlength=corpus.vocabulary.size) + 1.0
    p = counts / counts.sum()
    expected = -(np.log2(p[corpus.vocabulary.encode("a")[0]]) + np.log2(p[corpus.vocabulary.encode("b")[0]])) / 2
    assert corpus.unigram_bits_per_char() == pytest.approx(expected)


def test_tfds_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="not both"):
        load_corpus(corpus="x.txt", tfds_name="lm1b")
    with pytest.raises(ValueError, match="only used with --tfds_name"):
        load_corpus(data_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"not prepared under --data_dir=.*tfds build lm1b"):
        read_tfds_text("lm1b", data_dir=str(tmp_path))


def test_tfds_text_dataset_built_locally(tmp_path):
    import tensorflow_datasets as tfds

    class RnnzooTinyText(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")
        url_infos = {}  # no downloads, no checksums file

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({"body": tfds.features.Text()}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            for i, text in enumerate(["first line", "zweite Zeile ü"]):
                yield i, {"body": text}

    RnnzooTinyText(data_dir=str(tmp_path)).download_and_prepare()
    text = read_tfds_text("rnnzoo_tiny_text", data_dir=str(tmp_path), text_key="body")
    assert sorted(text.split("\n")) == ["first line", "zweite Zeile ü"]
    with pytest.raises(ValueError, match=r"no feature 'text' \(features: \['body'\]\)"):
        read_tfds_text("rnnzoo_tiny_text", data_dir=str(tmp_path))
    corpus = load_corpus(tfds_name="rnnzoo_tiny_text", data_dir=str(tmp_path), tfds_text_key="body", holdout_chars=5)
    # The vocabulary comes from the training split: "ü" occurs only in the held-out tail.
    assert corpus.vocabulary.decode(corpus.heldout_ids) == text[-5:].replace("ü", UNKNOWN)
