"""METEOR with nltk over Debian's WordNet 3.0: hand-checked scores, English targets only, and
errors that name the fix when nltk or WordNet is missing."""

import os
import sys

import pytest

from rnnzoo.zoo import translation
from rnnzoo.zoo.translation.meteor import INSTALL, WORDNET_DIR, lexnames_from_manual, meteor, wordnet_reader

needs_wordnet = pytest.mark.skipif(
    not os.path.exists(os.path.join(WORDNET_DIR, "data.noun")),
    reason=f"WordNet 3.0 is not installed ({INSTALL})")


@needs_wordnet
def test_hand_checked_scores_use_wordnet_synonyms_and_the_fragmentation_penalty():
    # 6 of 6 words match (rug ~ carpet through WordNet), one chunk: F = 1,
    # penalty 0.5 (1/6)^3, score 1 - 0.5/216.
    assert meteor(["the cat sat on the rug"], ["the cat sat on the carpet"]) == pytest.approx(100 * (1 - 0.5 / 216))
    # 3 of 3 match in 2 chunks ("sat" | "the cat"): penalty 0.5 (2/3)^3.
    assert meteor(["sat the cat"], ["the cat sat"]) == pytest.approx(100 * (1 - 0.5 * 8 / 27))
    # The corpus score is the mean of the sentences'; no match scores 0.
    assert meteor(["sat the cat", "a dog barked"], ["the cat sat", "the cat sat"]) == pytest.approx(
        50 * (1 - 0.5 * 8 / 27))


@needs_wordnet
def test_the_generated_lexnames_list_wordnets_45_lexicographer_files():
    import gzip

    from rnnzoo.zoo.translation.meteor import LEXNAMES_PAGE

    with gzip.open(LEXNAMES_PAGE, "rt") as f:
        lines = lexnames_from_manual(f.read())
    assert len(lines) == 45
    assert lines[0] == "00\tadj.all\t3" and lines[3] == "03\tnoun.Tops\t1" and lines[-1] == "44\tadj.ppl\t3"


def test_missing_wordnet_names_the_debian_packages(tmp_path):
    with pytest.raises(ValueError, match="apt-get install wordnet-base wordnet-sense-index"):
        wordnet_reader.__wrapped__(wordnet_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"))


def test_missing_nltk_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "nltk", None)
    monkeypatch.setitem(sys.modules, "nltk.data", None)
    with pytest.raises(ValueError, match=r"pip install 'rnnzoo\[meteor\]'"):
        wordnet_reader.__wrapped__(cache_dir="unused")


@pytest.mark.parametrize("corpus, language, offered", [
    ("gettext:fr", "", False), ("tfds:wmt14_translate/fr-en", "", True), ("tfds:wmt14_translate/en-de", "", False),
    ("pairs.tsv", "", False), ("pairs.tsv", "en", True), ("pairs.tsv", "en_GB", True), ("gettext:fr", "de", False)])
def test_meteor_is_offered_for_english_targets_only(corpus, language, offered):
    config = translation.Seq2SeqConfig(corpus=corpus, target_language=language)
    assert translation.meteor_offered(config) == offered
