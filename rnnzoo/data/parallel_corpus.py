"""Parallel corpora for translation (rnn-critical-review §5.3): sentence pairs, split by hash.

    from rnnzoo.data.parallel_corpus import load_parallel_corpus
    corpus = load_parallel_corpus("gettext:fr")      # en -> fr, from the system's catalogs
    corpus = load_parallel_corpus("pairs.tsv")        # source<TAB>target per line
    corpus = load_parallel_corpus("train.en,train.fr")  # two aligned files, one sentence a line
    corpus = load_parallel_corpus("tfds:wmt14_translate/fr-en", data_dir=...)  # a prepared TFDS set

`--corpus=gettext:LANG` reads every `/usr/share/locale/LANG/LC_MESSAGES/*.mo` with the
standard library's `gettext` module and keeps the English msgid -> translated msgstr pairs a
translator could learn from: single-line messages without placeholders (printf `%s`, `{name}`,
`$VAR`, markup, escapes), mnemonic markers (`_File`, `&Open`) removed, untranslated ones
dropped, 3-25 words on both sides.

Every pair lands in `train`, `dev` or `test` by a hash of its normalised source (case folded,
whitespace collapsed), so the split is the same on every machine and in every run, and a source
(or one differing only in case or spacing) never appears in two splits: no test source is seen
in training. Pairs are deduplicated by that normalised source (the first one read is kept).
"""

import dataclasses
import glob
import gettext
import hashlib
import os
import re

GETTEXT_PREFIX = "gettext:"
TFDS_PREFIX = "tfds:"
LOCALE_DIR = "/usr/share/locale"

_PLACEHOLDER = re.compile(r"%|\{|\}|\$|<|>|\\|\t|@|https?:")
_MNEMONIC = re.compile(r"(?<!\w)[_&](?=\w)")


@dataclasses.dataclass(frozen=True)
class ParallelCorpus:
    """Sentence pairs `(source, target)` in three disjoint splits.

    Attributes:
        train, dev, test: lists of `(source, target)` strings.
        name: what was read (the `--corpus` value).
    """

    train: list
    dev: list
    test: list
    name: str = ""

    def sizes(self):
        return {"train": len(self.train), "dev": len(self.dev), "test": len(self.test)}


def normalise(text):
    """The key pairs are deduplicated and split by: case folded, whitespace collapsed."""
    return " ".join(text.casefold().split())


def split_of(source, dev_fraction, test_fraction):
    """`"train"`, `"dev"` or `"test"`: decided by the SHA-1 of the normalised source alone."""
    digest = hashlib.sha1(normalise(source).encode("utf-8")).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    if position < test_fraction:
        return "test"
    if position < test_fraction + dev_fraction:
        return "dev"
    return "train"


def split_pairs(pairs, dev_fraction=0.025, test_fraction=0.05, name=""):
    """A `ParallelCorpus` of `pairs`, deduplicated by normalised source and split by its hash."""
    for label, fraction in (("dev_fraction", dev_fraction), ("test_fraction", test_fraction)):
        if not 0 <= fraction < 1:
            raise ValueError(f"{label} must be in [0, 1), got {fraction!r}")
    if dev_fraction + test_fraction >= 1:
        raise ValueError(
            f"dev_fraction + test_fraction = {dev_fraction + test_fraction} leaves no training pairs; "
            "make them sum to less than 1"
        )
    splits = {"train": [], "dev": [], "test": []}
    seen = set()
    for source, target in pairs:
        key = normalise(source)
        if not key or not target.strip() or key in seen:
            continue
        seen.add(key)
        splits[split_of(source, dev_fraction, test_fraction)].append((source, target))
    return ParallelCorpus(name=name, **splits)


def gettext_pairs(language, locale_dir=LOCALE_DIR, min_words=3, max_words=25):
    """English -> `language` message pairs of the system's gettext catalogs (see the module docstring).

    Raises:
        ValueError: no catalogs for `language`, naming the languages that have some.
    """
    paths = sorted(glob.glob(os.path.join(locale_dir, language, "LC_MESSAGES", "*.mo")))
    if not paths:
        available = sorted(
            name for name in os.listdir(locale_dir)
            if glob.glob(os.path.join(locale_dir, name, "LC_MESSAGES", "*.mo"))
        ) if os.path.isdir(locale_dir) else []
        raise ValueError(
            f"no gettext catalogs for language {language!r} under {locale_dir}/{language}/LC_MESSAGES; "
            f"languages with catalogs here: {', '.join(available) or 'none'} (install a package with "
            f"translations, e.g. `apt-get install coreutils`, or pass --corpus=pairs.tsv)"
        )
    pairs = []
    for path in paths:
        with open(path, "rb") as f:
            try:
                catalog = gettext.GNUTranslations(f)._catalog
            except (OSError, UnicodeDecodeError):
                continue  # a damaged or non-UTF-8 catalog: skip it, the others still count
        for msgid, msgstr in catalog.items():
            pair = _message_pair(msgid, msgstr, min_words, max_words)
            if pair is not None:
                pairs.append(pair)
    return pairs


def _message_pair(msgid, msgstr, min_words, max_words):
    if not isinstance(msgid, str) or not msgid or not msgstr:
        return None  # plural forms are keyed by (msgid, n); the header by ""
    source, target = msgid.split("\x04")[-1].strip(), msgstr.strip()  # drop the msgctxt
    if "\n" in source or "\n" in target or _PLACEHOLDER.search(source) or _PLACEHOLDER.search(target):
        return None
    source, target = _MNEMONIC.sub("", source), _MNEMONIC.sub("", target)
    if source == target:
        return None
    if not all(min_words <= len(text.split()) <= max_words for text in (source, target)):
        return None
    return source, target


def tsv_pairs(path):
    """`source<TAB>target` lines of `path` (UTF-8); blank lines are skipped.

    Raises:
        ValueError: a non-blank line without exactly one tab, naming the line.
    """
    pairs = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) != 2:
                raise ValueError(
                    f"{path}:{number} has {len(fields) - 1} tabs; each line must be source<TAB>target"
                )
            pairs.append((fields[0].strip(), fields[1].strip()))
    return pairs


def aligned_pairs(source_path, target_path):
    """Line i of `source_path` with line i of `target_path`.

    Raises:
        ValueError: the files have different numbers of lines.
    """
    with open(source_path, encoding="utf-8") as f:
        sources = f.read().splitlines()
    with open(target_path, encoding="utf-8") as f:
        targets = f.read().splitlines()
    if len(sources) != len(targets):
        raise ValueError(
            f"{source_path} has {len(sources)} lines but {target_path} has {len(targets)}; aligned "
            "files need one target line per source line"
        )
    return [(s.strip(), t.strip()) for s, t in zip(sources, targets) if s.strip() and t.strip()]


def tfds_pairs(name, data_dir=None, split="train", source_language=None, target_language=None):
    """Pairs of a prepared TFDS translation dataset (e.g. `wmt14_translate/fr-en`), never downloaded.

    `source_language` / `target_language` default to the builder's `supervised_keys`.

    Raises:
        ValueError: the dataset is not prepared under `data_dir`.
    """
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
        dataset = builder.as_dataset(split=split)
    except (AssertionError, FileNotFoundError, tfds.core.registered.DatasetNotFoundError) as error:
        raise ValueError(
            f"TFDS dataset {name!r} is not prepared under data_dir={data_dir!r} ({error}); prepare it "
            "with `tfds build` where there is network, then pass --data_dir"
        ) from None
    keys = builder.info.supervised_keys or (None, None)
    source_language, target_language = source_language or keys[0], target_language or keys[1]
    return [(example[source_language].decode("utf-8"), example[target_language].decode("utf-8"))
            for example in tfds.as_numpy(dataset)]


def read_pairs(corpus, data_dir=None):
    """The pairs `--corpus` names (see the module docstring).

    Raises:
        ValueError: an empty value, a missing file, a language without catalogs.
    """
    if not corpus:
        raise ValueError("corpus is empty; pass --corpus=gettext:fr, --corpus=pairs.tsv or "
                         "--corpus=source.txt,target.txt")
    if corpus.startswith(GETTEXT_PREFIX):
        return gettext_pairs(corpus[len(GETTEXT_PREFIX):])
    if corpus.startswith(TFDS_PREFIX):
        return tfds_pairs(corpus[len(TFDS_PREFIX):], data_dir)
    paths = corpus.split(",")
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing or len(paths) > 2:
        raise ValueError(
            f"corpus={corpus!r}: {'no file ' + ', '.join(missing) if missing else 'more than two files'}; "
            "pass a TSV file, two aligned files `source,target`, gettext:LANG or tfds:NAME"
        )
    return tsv_pairs(paths[0]) if len(paths) == 1 else aligned_pairs(*paths)


def load_parallel_corpus(corpus, data_dir=None, dev_fraction=0.025, test_fraction=0.05):
    """`split_pairs(read_pairs(corpus))`: the corpus's deduplicated, hash-split pairs.

    Raises:
        ValueError: as `read_pairs`, or no pair at all.
    """
    result = split_pairs(read_pairs(corpus, data_dir), dev_fraction, test_fraction, name=corpus)
    if not result.train:
        raise ValueError(f"corpus {corpus!r} gave no training pairs; check its format (source<TAB>target)")
    return result
