"""The translation demo: train a tiny seq2seq, export, serve in-process, translate over gRPC."""

import io
import os

import pytest
import tensorflow as tf

from rnnzoo.cli.translation_demo import translation_demo


@pytest.mark.slow
def test_demo_trains_exports_serves_and_translates(tmp_path):
    corpus = tmp_path / "pairs.tsv"
    pairs = [(f"the {c} file {n} is open", f"le fichier {c} {n} est ouvert")
             for n in ("one", "two", "three", "four") for c in ("red", "blue", "green")]
    corpus.write_text("\n".join(f"{s}\t{t}" for s, t in pairs * 4), encoding="utf-8")
    out = io.StringIO()
    sentences = ["the red file two is open", "the green file four is open"]
    result = translation_demo(steps=40, corpus=str(corpus), units=24, vocab_size=40, batch_size=16,
                              learning_rate=0.02, eval_sentences=0, sentences=sentences, beam_width=3,
                              export_base=str(tmp_path / "serving"), out=out)
    assert result["export_dir"] == str(tmp_path / "serving" / "1")
    assert 0 <= result["bleu_greedy"] <= 100 and 0 <= result["bleu"] <= 100
    # The served n-best lists are the exported signature's own, best first.
    loaded = tf.saved_model.load(result["export_dir"])
    direct = loaded.signatures["translate"](source=tf.constant(sentences), beam_width=tf.constant([3, 3]),
                                            length_penalty=tf.constant([0.6, 0.6]), max_length=tf.constant([0, 0]))
    for row, n_best in enumerate(result["translations"]):
        assert 1 <= len(n_best) <= 3
        assert [t for t, _ in n_best] == [t.decode("utf-8") for t in direct["n_best"].numpy()[row] if t]
        scores = [s for _, s in n_best]
        assert scores == sorted(scores, reverse=True)
        assert scores == pytest.approx(direct["scores"].numpy()[row][: len(n_best)], rel=1e-5)
    printed = out.getvalue()
    assert "test BLEU" in printed and all(f"{s}\n  -> {n[0][0]}" in printed
                                          for s, n in zip(sentences, result["translations"]))
    assert os.path.exists(os.path.join(result["export_dir"], "assets.extra", "tf_serving_warmup_requests"))
