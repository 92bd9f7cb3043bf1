"""The `tfds:` corpus reader on a tiny TFDS translation dataset built here (nothing downloaded)."""

import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from rnnzoo.data.parallel_corpus import load_parallel_corpus, read_pairs  # noqa: E402
from rnnzoo.zoo import translation  # noqa: E402

PAIRS = [(f"the {c} file {n} is open", f"le fichier {c} {n} est ouvert")
         for n in ("one", "two", "three", "four", "five") for c in ("red", "blue", "green", "black")]


class RnnzooTinyTranslate(tfds.core.GeneratorBasedBuilder):
    """WMT-style: a `Translation` feature, supervised keys (source, target) = the config's order."""

    # A one-part module name: tfds then skips locating the builder's source files, which needs the
    # `importlib_resources` backport that TFDS 4.9 imports on any Python but does not install.
    __module__ = "rnnzoo_tiny_translate"
    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name="fr-en")]

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.Translation(languages=("en", "fr")),
                                     supervised_keys=("fr", "en"))

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for index, (english, french) in enumerate(PAIRS):
            yield index, {"en": english, "fr": french}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfds")
    RnnzooTinyTranslate(data_dir=str(root), config="fr-en").download_and_prepare()
    return str(root)


def test_tfds_reader_reads_the_supervised_keys_as_source_and_target(data_dir):
    pairs = read_pairs("tfds:rnnzoo_tiny_translate/fr-en", data_dir=data_dir)
    assert sorted(pairs) == sorted((french, english) for english, french in PAIRS)
    corpus = load_parallel_corpus("tfds:rnnzoo_tiny_translate/fr-en", data_dir=data_dir)
    assert sum(corpus.sizes().values()) == len(PAIRS)
    # x->en: the family offers METEOR for this corpus.
    assert translation.meteor_offered(translation.Seq2SeqConfig(corpus="tfds:rnnzoo_tiny_translate/fr-en"))


def test_an_unprepared_tfds_dataset_names_the_fix(tmp_path):
    with pytest.raises(ValueError, match="is not prepared under data_dir.*tfds build"):
        read_pairs("tfds:rnnzoo_tiny_translate/fr-en", data_dir=str(tmp_path))
