"""The char-LM demo: train on the stdlib source, export, serve in-process, generate and score over gRPC."""

import io
import math
import os

import pytest
import tensorflow as tf

from rnnzoo.cli.char_lm_demo import char_lm_demo


@pytest.mark.slow
def test_demo_trains_exports_serves_and_scores(tmp_path):
    out = io.StringIO()
    result = char_lm_demo(minutes=0.1, units=32, max_chars=150_000, export_base=str(tmp_path / "serving"),
                          prompt="import ", out=out)
    assert result["export_dir"] == str(tmp_path / "serving" / "1")
    assert result["sample"].startswith("import ") and len(result["sample"]) > len("import ")
    assert 0.0 < result["bits_per_char"] < 8.0 and math.isfinite(result["heldout_bits_per_char"])
    # The served score is the exported model's own score of the sample.
    loaded = tf.saved_model.load(result["export_dir"])
    bits = loaded.signatures["score"](text=tf.constant([result["sample"]]))["bits_per_char"].numpy()[0]
    assert bits == pytest.approx(result["bits_per_char"], rel=1e-5)
    printed = out.getvalue()
    assert "held-out" in printed and "bits/char" in printed and result["sample"] in printed
    assert f"served the best checkpoint (step {result['best_step']} of {result['steps']})" in printed
    best = min(result["history"], key=lambda entry: entry["bits_per_char"])
    assert result["heldout_bits_per_char"] == best["bits_per_char"]
    assert os.path.exists(os.path.join(result["export_dir"], "assets.extra", "tf_serving_warmup_requests"))
