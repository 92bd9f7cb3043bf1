"""`rnnzoo-train --model=char_mrnn` trains a char LM through the shared training loop; its run exports."""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from rnnzoo.data.char_corpus import load_corpus
from rnnzoo.zoo import char_lm
from rnnzoo.zoo.char_lm import export_model_dir
from rnnzoo.zoo.char_lm import text_evaluation

TEXT = "the cat sat on the mat. a dog ran to the log. "


def train(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "rnnzoo.cli.train", *args], capture_output=True, text=True,
                          timeout=600, env=env)


@pytest.mark.slow  # two fresh processes (about 40 s); `make test-slow`
def test_rnnzoo_train_char_mrnn_reports_heldout_bpc_and_exports(tmp_path):
    corpus_path = tmp_path / "tiny.txt"
    corpus_path.write_text(TEXT * 40, encoding="utf-8")
    model_dir = tmp_path / "run"
    common = [
        "--model=char_mrnn", f"--corpus={corpus_path}", "--units=16", "--seq_len=30", "--context=10",
        "--batch_size=8", "--eval_every=20", "--holdout_chars=200", f"--model_dir={model_dir}",
        "--learning_rate=0.01", "--verbose=0",
    ]
    result = train(*common, "--train_steps=40")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["step"] == 40 and metrics["model"] == "char_mrnn"
    assert metrics["task"] is None and metrics["task_options"] == {}  # a corpus, not a task
    corpus = load_corpus(str(corpus_path), holdout_chars=200)
    model, vocabulary, _ = char_lm.load_trained(str(model_dir), checkpoint="last")
    assert vocabulary == corpus.vocabulary
    # The loop's metric is the held-out bits per character of the checkpoint, not an error rate.
    heldout = text_evaluation.bits_per_char(model, corpus, 30, 10)["bits_per_char"]
    assert metrics["bits_per_char"] == pytest.approx(heldout, rel=1e-4)
    assert metrics["metric_directions"] == {"bits_per_char": "lower"}
    assert "test_error_rate" not in metrics and metrics["diverged"] is False
    assert heldout < 0.5 * corpus.unigram_bits_per_char()

    evaluation = subprocess.run(
        [sys.executable, "-m", "rnnzoo.cli.evaluate", f"--model_dir={model_dir}"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert evaluation.returncode == 0, evaluation.stderr[-3000:]
    report = json.loads(evaluation.stdout.strip().splitlines()[-1])
    assert report["bits_per_char"] == pytest.approx(heldout, rel=1e-4)
    assert set(report["samples"]) == {"def ", "import "}
    assert report["completions"] and 0.0 <= report["debagging"]["accuracy"] <= 1.0

    export_dir = export_model_dir(str(model_dir), str(tmp_path / "serving"))
    loaded = tf.saved_model.load(export_dir)
    text = loaded.signatures["generate"](prompt=tf.constant(["the cat "]), max_length=tf.constant([6]),
                                         temperature=tf.constant([0.0]), seed=tf.constant([0], tf.int64))["text"]
    assert text.numpy()[0].decode() == text_evaluation.sample(model, corpus.vocabulary, "the cat ", 6, 0.0)[0]
