"""METEOR (rnn-critical-review §5.2's other translation metric) with nltk, offline, for English.

METEOR aligns hypothesis and reference words by exact form, Porter stem and WordNet synonym,
and scores the alignment by a recall-weighted harmonic mean F = P R / (alpha P + (1 - alpha) R)
times a fragmentation penalty 1 - gamma (chunks / matches)^beta (nltk's `meteor_score`, alpha
0.9, beta 3, gamma 0.5). The synonym stage makes it meaningful for English targets only, which
is why the seq2seq family offers it only when the target language is English.

WordNet 3.0 comes from Debian's `wordnet-base` and `wordnet-sense-index` packages
(`apt-get install wordnet-base wordnet-sense-index`), which install its database in
`/usr/share/wordnet` but not the `lexnames` file nltk's reader needs; `wordnet_reader` lays the
database out as an nltk data directory (`~/.cache/rnnzoo/nltk_data/corpora/wordnet`, copies: nltk
refuses files outside its data path) with `lexnames` generated from wordnet-base's lexnames(5WN)
manual page. Nothing is downloaded.
"""

import functools
import gzip
import os
import re
import shutil
import warnings

WORDNET_DIR = "/usr/share/wordnet"
LEXNAMES_PAGE = "/usr/share/man/man5/lexnames.5WN.gz"
INSTALL = "apt-get install wordnet-base wordnet-sense-index"
NEEDED = tuple(f"{kind}.{pos}" for kind in ("index", "data") for pos in ("noun", "verb", "adj", "adv")) + tuple(
    f"{pos}.exc" for pos in ("noun", "verb", "adj", "adv")) + ("index.sense",)
_CATEGORIES = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
"""lexnames(5WN): the syntactic category numbers of the lexicographer files."""
_LEXNAME = re.compile(r"^(\d\d)\t((noun|verb|adj|adv)\.\w+)")


def lexnames_from_manual(page_text):
    """The lines of WordNet's `lexnames` file (`NN<TAB>noun.act<TAB>1`) from lexnames(5WN)'s source."""
    lines = []
    for line in page_text.splitlines():
        match = _LEXNAME.match(line)
        if match:
            number, name, category = match.groups()
            if int(number) != len(lines):
                raise ValueError(f"lexnames manual page: file number {number} out of order after "
                                 f"{len(lines)} entries; reinstall wordnet-base ({INSTALL})")
            lines.append(f"{number}\t{name}\t{_CATEGORIES[category]}")
    if len(lines) != 45:
        raise ValueError(f"lexnames manual page lists {len(lines)} lexicographer files, WordNet 3.0 has 45; "
                         f"reinstall wordnet-base ({INSTALL})")
    return lines


@functools.lru_cache(maxsize=None)
def wordnet_reader(wordnet_dir=WORDNET_DIR, lexnames_page=LEXNAMES_PAGE, cache_dir=None):
    """nltk's `WordNetCorpusReader` over Debian's WordNet 3.0 (see the module docstring).

    Raises:
        ValueError: nltk is not installed, or WordNet's files are missing (naming the fix).
    """
    try:
        import nltk.data
        from nltk.corpus.reader.wordnet import WordNetCorpusReader
    except ImportError:
        raise ValueError("METEOR needs nltk: pip install 'rnnzoo[meteor]' (nltk 3.10)") from None
    missing = [name for name in NEEDED if not os.path.exists(os.path.join(wordnet_dir, name))]
    if not os.path.exists(lexnames_page):
        missing.append(lexnames_page)
    if missing:
        raise ValueError(f"METEOR needs WordNet 3.0 in {wordnet_dir} ({', '.join(missing)} missing); "
                         f"install Debian's packages: {INSTALL}")
    data_dir = cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "rnnzoo", "nltk_data")
    root = os.path.join(data_dir, "corpora", "wordnet")
    os.makedirs(root, exist_ok=True)
    for name in os.listdir(wordnet_dir):
        source, copy = os.path.join(wordnet_dir, name), os.path.join(root, name)
        if not os.path.isfile(source):
            continue
        if not os.path.exists(copy) or os.path.getsize(copy) != os.path.getsize(source):
            shutil.copyfile(source, copy + ".partial")
            os.replace(copy + ".partial", copy)
    with gzip.open(lexnames_page, "rt", encoding="utf-8") as f:
        lexnames = "\n".join(lexnames_from_manual(f.read())) + "\n"
    temporary = os.path.join(root, f"lexnames.{os.getpid()}")
    with open(temporary, "w", encoding="utf-8") as f:
        f.write(lexnames)
    os.replace(temporary, os.path.join(root, "lexnames"))
    if data_dir not in nltk.data.path:
        nltk.data.path.append(data_dir)
    with warnings.catch_warnings():  # no Open Multilingual Wordnet: METEOR uses English only
        warnings.simplefilter("ignore")
        return WordNetCorpusReader(root, None)


def meteor(hypotheses, references, wordnet=None):
    """Mean sentence METEOR x 100 of `hypotheses` against one reference each (English).

    Both are tokenised with sacrebleu's `13a` tokeniser (BLEU's) and lowercased by nltk.
    """
    from nltk.translate.meteor_score import meteor_score
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references; give one each")
    if not references:
        raise ValueError("no sentences to score; give at least one hypothesis and reference")
    wordnet = wordnet or wordnet_reader()
    tokenise = Tokenizer13a()
    scores = [meteor_score([tokenise(reference).split()], tokenise(hypothesis).split(), wordnet=wordnet)
              for hypothesis, reference in zip(hypotheses, references)]
    return 100.0 * sum(scores) / len(scores)
