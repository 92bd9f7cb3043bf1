"""Character corpora for language modelling (thesis §5.4.1-5.4.2).

A corpus is one long string read from a text file, a directory (every UTF-8
text file below it), a glob, a TFDS text dataset, or by default the Python
standard library's own source. Its last `holdout_chars` characters are the
held-out split (§5.4.1: "the last 10 million characters of each dataset are
used as a test set"); by default 10% of the corpus, at most 50,000 characters. `Vocabulary` maps characters to ids with id 0 reserved
for the "unknown" symbol (the thesis's 86-character alphabet has one symbol
for every character outside the other 85).

Training draws many sequences of length `seq_len` at random offsets; only the
last `seq_len - context` targets carry weight, so every prediction has at least
`context` characters of context (§5.4.2: the last 200 of 250 steps).

    from rnnzoo.data.char_corpus import load_corpus
    corpus = load_corpus(max_chars=2_000_000, holdout_chars=100_000)
    train = corpus.train_dataset(seq_len=250, context=50, batch_size=32, seed=0)
"""

import collections
import dataclasses
import glob
import json
import math
import os
import sysconfig

import numpy as np
import tensorflow as tf

UNKNOWN = "\ufffd"
"""How the unknown symbol (id 0) is written when ids are decoded to text."""

_SKIPPED_DIRECTORIES = ("__pycache__", "site-packages", "dist-packages", ".git")


def default_corpus_path() -> str:
    """The Python standard library's source directory (real text on every machine)."""
    return sysconfig.get_paths()["stdlib"]


class Vocabulary:
    """Characters <-> ids; id 0 is the unknown symbol, ids 1.. the known characters.

    Args:
        characters: the known characters in id order (ids 1, 2, ...), each a
            single Unicode code point.
    """

    def __init__(self, characters):
        characters = list(characters)
        for c in characters:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"vocabulary entries must be single characters, got {c!r}")
        if len(set(characters)) != len(characters):
            raise ValueError("vocabulary characters must be distinct")
        self.characters = characters
        self._ids = {c: i + 1 for i, c in enumerate(characters)}

    @classmethod
    def from_text(cls, text: str, max_size: int = 96):
        """The `max_size - 1` most frequent characters of `text` (ties by code point) plus unknown."""
        if max_size < 2:
            raise ValueError(f"max_size must be >= 2 (unknown + one character), got {max_size}")
        counts = collections.Counter(text)
        ranked = sorted(counts, key=lambda c: (-counts[c], ord(c)))[: max_size - 1]
        return cls(sorted(ranked, key=ord))

    @property
    def size(self) -> int:
        """Number of ids, including the unknown symbol."""
        return len(self.characters) + 1

    def encode(self, text: str) -> np.ndarray:
        """int32 ids of `text`; characters outside the vocabulary become 0."""
        ids = self._ids
        return np.fromiter((ids.get(c, 0) for c in text), dtype=np.int32, count=len(text))

    def decode(self, ids) -> str:
        """Text of `ids`; id 0 (unknown) is written as U+FFFD."""
        table = [UNKNOWN] + self.characters
        return "".join(table[int(i)] for i in ids)

    def code_points(self) -> np.ndarray:
        """int32 Unicode code point of each id (U+FFFD for id 0)."""
        return np.array([ord(UNKNOWN)] + [ord(c) for c in self.characters], np.int32)

    def to_json(self) -> str:
        return json.dumps({"characters": "".join(self.characters)}, ensure_ascii=False)

    @classmethod
    def from_json(cls, data: str):
        return cls(json.loads(data)["characters"])

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_json())

    @classmethod
    def load(cls, path: str):
        with open(path, encoding="utf-8") as f:
            return cls.from_json(f.read())

    def __eq__(self, other):
        return isinstance(other, Vocabulary) and self.characters == other.characters

    def __repr__(self):
        return f"Vocabulary(size={self.size})"


def _decode_utf8(data: bytes, path: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path} is not UTF-8: byte 0x{data[error.start]:02x} at offset {error.start} cannot be "
            "decoded. Convert the file to UTF-8 (e.g. `iconv -f latin1 -t utf-8`) or leave it out "
            "of --corpus."
        ) from None


def _text_files_below(directory: str, suffixes) -> list:
    """UTF-8 text files below `directory` (sorted), skipping caches and installed packages."""
    paths = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRECTORIES)
        for name in sorted(files):
            if suffixes and not name.endswith(tuple(suffixes)):
                continue
            paths.append(os.path.join(root, name))
    return paths


def _read_text_file(path: str, strict: bool):
    """The file's text; for non-strict reads None when it is binary or not UTF-8."""
    with open(path, "rb") as f:
        data = f.read()
    if not strict:
        if b"\x00" in data:
            return None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return _decode_utf8(data, path)


def read_text(corpus=None, max_chars=None, suffixes=None) -> str:
    """Text of a corpus: a file, a directory, a glob, or (None) the standard library's source.

    Args:
        corpus: path of a text file, a directory (every UTF-8 text file below
            it, in sorted order; binary and non-UTF-8 files are skipped), or a
            glob pattern (every match must be UTF-8). None: the Python standard
            library's `*.py` files.
        max_chars: stop after this many characters (whole files are read; the
            result is cut to `max_chars`).
        suffixes: for directories, only file names ending in one of these.

    Raises:
        ValueError: the corpus does not exist, holds non-UTF-8 bytes (files and
            globs), or holds no text.
    """
    if max_chars is not None and max_chars <= 0:
        raise ValueError(f"max_chars must be positive or None, got {max_chars}")
    if corpus is None:
        corpus, suffixes = default_corpus_path(), suffixes or (".py",)
    corpus = os.path.expanduser(str(corpus))
    if os.path.isdir(corpus):
        paths, strict = _text_files_below(corpus, suffixes), False
    elif os.path.isfile(corpus):
        paths, strict = [corpus], True
    else:
        paths, strict = sorted(p for p in glob.glob(corpus, recursive=True) if os.path.isfile(p)), True
        if not paths:
            raise ValueError(
                f"--corpus={corpus!r} is not a file, a directory or a glob matching any file. "
                "Pass a UTF-8 text file, a directory of them, or a pattern like 'texts/*.txt'."
            )
    pieces, total = [], 0
    for path in paths:
        text = _read_text_file(path, strict)
        if not text:
            continue
        pieces.append(text)
        total += len(text)
        if max_chars is not None and total >= max_chars:
            break
    text = "".join(pieces)[:max_chars]
    if not text:
        raise ValueError(
            f"corpus {corpus!r} contains no text ({len(paths)} files, none with UTF-8 text). "
            "Pass a non-empty UTF-8 text file or directory."
        )
    return text


def read_tfds_text(name: str, data_dir=None, split="train", text_key="text", max_chars=None) -> str:
    """Text of a TFDS dataset already prepared under `data_dir` (no download here).

    Examples are joined with newlines; `text_key` names the text feature.
    """
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # unknown name, bad version: tfds raises several types
        raise ValueError(f"--tfds_name={name!r}: {error}. Check the dataset name (tfds.list_builders()).") from None
    if not builder.is_prepared():
        raise ValueError(
            f"TFDS dataset {name!r} is not prepared under --data_dir={builder.data_dir_root!r}. "
            f"Build it where you have network (`tfds build {name} --data_dir=DIR`) and pass that "
            "--data_dir."
        )
    features = builder.info.features
    if text_key not in features:
        raise ValueError(
            f"TFDS dataset {name!r} has no feature {text_key!r} (features: {sorted(features)}); "
            "pass --tfds_text_key=<one of them>."
        )
    pieces, total = [], 0
    for example in builder.as_dataset(split=split).as_numpy_iterator():
        piece = _decode_utf8(bytes(example[text_key]), f"{name}[{split}]")
        pieces.append(piece)
        total += len(piece) + 1
        if max_chars is not None and total >= max_chars:
            break
    text = "\n".join(pieces)[:max_chars]
    if not text:
        raise ValueError(f"TFDS dataset {name!r} split {split!r} contains no text")
    return text


@dataclasses.dataclass
class CharCorpus:
    """A corpus as ids: `train_ids` then `heldout_ids` (the last characters, §5.4.1)."""

    vocabulary: Vocabulary
    train_ids: np.ndarray
    heldout_ids: np.ndarray

    def unigram_bits_per_char(self) -> float:
        """Entropy (bits/char) of the held-out characters under the training unigram frequencies.

        The baseline a character model must beat: a model ignoring all context.
        Add-one smoothing keeps unseen ids finite.
        """
        counts = np.bincount(self.train_ids, minlength=self.vocabulary.size) + 1.0
        log_p = np.log2(counts / counts.sum())
        return float(-log_p[self.heldout_ids].mean())

    def train_dataset(self, seq_len: int, context: int, batch_size: int, seed: int = 0) -> tf.data.Dataset:
        """Endless `(x, y, weight)` batches of `seq_len` steps from random offsets (§5.4.2).

        `x` int32[b, seq_len] are ids, `y` the next ids, `weight` float32 is 0
        for the first `context` steps and 1 for the rest.
        """
        _check_sequence(seq_len, context)
        ids = self.train_ids
        if len(ids) < seq_len + 1:
            raise ValueError(
                f"the training split has {len(ids)} characters, fewer than one sequence of "
                f"seq_len + 1 = {seq_len + 1}. Use a larger corpus, a smaller --holdout_chars, or "
                f"--seq_len <= {len(ids) - 1}."
            )
        table = tf.constant(ids)
        weight = tf.constant(sequence_weights(seq_len, context))
        positions = len(ids) - seq_len

        def window(offset):
            start = tf.cast(offset % positions, tf.int32)
            chunk = table[start : start + seq_len + 1]
            return chunk[:-1], chunk[1:], weight

        return (
            tf.data.Dataset.random(seed=seed)
            .map(window, num_parallel_calls=tf.data.AUTOTUNE)
            .batch(batch_size, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE)
        )

    def heldout_windows(self, seq_len: int, context: int):
        """Windows covering every held-out character once, each after `context` characters.

        Returns `(x, y, weight)` numpy arrays: window k predicts held-out
        characters `[k*(seq_len-context), (k+1)*(seq_len-context))` with weight 1,
        preceded by `context` unweighted steps (taken from the end of the
        training split for the first window). The last window is zero-padded
        with weight 0.
        """
        _check_sequence(seq_len, context)
        if len(self.heldout_ids) == 0:
            raise ValueError("the held-out split is empty; pass holdout_chars > 0")
        stream = np.concatenate([self.train_ids[-(context + 1) :], self.heldout_ids])
        lead = len(stream) - len(self.heldout_ids)  # index of the first held-out character
        stride = seq_len - context
        windows = math.ceil(len(self.heldout_ids) / stride)
        x = np.zeros((windows, seq_len), np.int32)
        y = np.zeros((windows, seq_len), np.int32)
        w = np.zeros((windows, seq_len), np.float32)
        for k in range(windows):
            first_target = lead + k * stride  # stream index of the first weighted target
            start = first_target - context - 1  # stream index of the first input
            for t in range(seq_len):
                i = start + t
                if i < 0 or i + 1 >= len(stream):
                    continue
                x[k, t], y[k, t] = stream[i], stream[i + 1]
                w[k, t] = 1.0 if i + 1 >= first_target else 0.0
        return x, y, w


def sequence_weights(seq_len: int, context: int) -> np.ndarray:
    """float32[seq_len]: 0 for the first `context` predictions, 1 after (§5.4.2)."""
    weight = np.ones(seq_len, np.float32)
    weight[:context] = 0.0
    return weight


def _check_sequence(seq_len, context):
    if seq_len <= 0 or context < 0 or context >= seq_len:
        raise ValueError(
            f"need 0 <= context < seq_len, got context={context}, seq_len={seq_len}. The thesis "
            "predicts the last 200 characters of 250 (context=50, seq_len=250)."
        )


HOLDOUT_FRACTION = 0.1
MAX_HOLDOUT_CHARS = 50_000


def default_holdout_chars(corpus_chars):
    """The default held-out split of a corpus of `corpus_chars` characters: 10%, at most 50,000."""
    return min(MAX_HOLDOUT_CHARS, int(corpus_chars * HOLDOUT_FRACTION))


def load_corpus(
    corpus=None,
    tfds_name=None,
    data_dir=None,
    tfds_split="train",
    tfds_text_key="text",
    max_chars=None,
    holdout_chars=None,
    vocab_size=96,
    vocabulary=None,
) -> CharCorpus:
    """Read a corpus, build its vocabulary from the training split, and split off the held-out tail.

    Args:
        corpus: file, directory or glob (see `read_text`); None with no
            `tfds_name`: the standard library's source.
        tfds_name, data_dir, tfds_split, tfds_text_key: read a prepared TFDS
            text dataset instead (`read_tfds_text`).
        max_chars: read at most this many characters.
        holdout_chars: the last this many characters are the held-out split;
            `None`: `default_holdout_chars` of the corpus (10%, at most 50,000).
        vocab_size: ids including unknown (the thesis: 86).
        vocabulary: reuse this vocabulary (e.g. a trained model's) instead.
    """
    if corpus is not None and tfds_name is not None:
        raise ValueError(
            f"pass --corpus={corpus!r} or --tfds_name={tfds_name!r}, not both"
        )
    if data_dir is not None and tfds_name is None:
        raise ValueError(f"--data_dir={data_dir!r} is only used with --tfds_name; pass --tfds_name too")
    if holdout_chars is not None and holdout_chars < 0:
        raise ValueError(f"holdout_chars must be >= 0, got {holdout_chars}")
    if tfds_name is not None:
        text = read_tfds_text(tfds_name, data_dir, tfds_split, tfds_text_key, max_chars)
    else:
        text = read_text(corpus, max_chars)
    if holdout_chars is None:
        holdout_chars = default_holdout_chars(len(text))
    if holdout_chars >= len(text):
        raise ValueError(
            f"the corpus has {len(text)} characters, not more than holdout_chars={holdout_chars}; "
            "pass a smaller --holdout_chars or a larger corpus"
        )
    train_text = text[: len(text) - holdout_chars]
    if vocabulary is None:
        vocabulary = Vocabulary.from_text(train_text, vocab_size)
    return CharCorpus(
        vocabulary=vocabulary,
        train_ids=vocabulary.encode(train_text),
        heldout_ids=vocabulary.encode(text[len(text) - holdout_chars :]),
    )
