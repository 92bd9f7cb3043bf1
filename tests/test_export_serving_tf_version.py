"""Exports load and give the same outputs under the TensorFlow and tensorflow-text that stock TF
Serving links (TF 2.20 / tf-text 2.20 as of TF Serving HEAD), in a separate virtualenv.

The virtualenv is made once (`python -m venv` + pip, about a minute) under
`$RNNZOO_SERVING_TF_VENV` (default `~/.cache/rnnzoo/tf-serving-2.20`) and reused.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rnnzoo.export import export_run
from rnnzoo.zoo.char_lm import export_char_lm
from tests.char_lm_runs import train_char_lm
from rnnzoo.training.loop import TrainConfig, train

pytestmark = pytest.mark.slow

SERVING_TF = "2.20"
"""The TensorFlow (and tensorflow-text) minor version TF Serving HEAD links."""

VENV = os.environ.get("RNNZOO_SERVING_TF_VENV",
                      os.path.join(os.path.expanduser("~"), ".cache", "rnnzoo", f"tf-serving-{SERVING_TF}"))

LOAD_AND_CALL = textwrap.dedent(
    """
    import json, os, sys
    sys.modules["rnnzoo"] = None  # only TensorFlow and tensorflow-text, as TF Serving has
    sys.path = [p for p in sys.path if not os.path.isdir(os.path.join(p or ".", "rnnzoo"))]
    import numpy as np
    import tensorflow as tf
    import tensorflow_text
    char_lm_dir, predict_dir, translate_dir, request = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    char_lm = tf.saved_model.load(char_lm_dir)
    generate = char_lm.signatures["generate"](
        prompt=tf.constant(request["prompt"]), max_length=tf.constant(request["max_length"], tf.int32),
        temperature=tf.constant(request["temperature"], tf.float32), seed=tf.constant(request["seed"], tf.int64))
    score = char_lm.signatures["score"](text=tf.constant(request["text"]))
    predict = tf.saved_model.load(predict_dir).signatures["serving_default"](
        inputs=tf.constant(np.asarray(request["inputs"], np.float32)))
    translate = request["translate"]
    translated = tf.saved_model.load(translate_dir).signatures["translate"](
        source=tf.constant(translate["source"]), beam_width=tf.constant(translate["beam_width"], tf.int32),
        length_penalty=tf.constant(translate["length_penalty"], tf.float32),
        max_length=tf.constant(translate["max_length"], tf.int32))
    print(json.dumps({
        "versions": [tf.__version__, tensorflow_text.__version__],
        "text": [t.decode("utf-8") for t in generate["text"].numpy()],
        "log_prob": score["log_prob"].numpy().tolist(),
        "bits_per_char": score["bits_per_char"].numpy().tolist(),
        "output": predict["output"].numpy().tolist(),
        "n_best": [[t.decode("utf-8") for t in row] for row in translated["n_best"].numpy()],
        "scores": translated["scores"].numpy().tolist(),
    }))
    """
)


def outputs_under_serving_tf_and_ours(script, args, tmp_path):
    """The last stdout line (JSON) of `script` run with `args` under TF `SERVING_TF` and under ours,
    each without rnnzoo on the path; skips when the TF `SERVING_TF` virtualenv was never made."""
    python = os.path.join(VENV, "bin", "python")
    if not os.path.exists(os.path.join(VENV, ".installed")):
        pytest.skip(f"no TF {SERVING_TF} virtualenv at {VENV}; run "
                    "tests/test_export_serving_tf_version.py once to create it")
    path = tmp_path / "load_and_call.py"
    path.write_text(script)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    outputs = []
    for interpreter in (python, sys.executable):
        result = subprocess.run([interpreter, str(path), *args], capture_output=True, text=True,
                                timeout=600, cwd=str(tmp_path), env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        outputs.append(json.loads(result.stdout.strip().splitlines()[-1]))
    return outputs


@pytest.fixture(scope="module")
def serving_tf_python():
    """The python of a virtualenv with TF and tf-text `SERVING_TF`, created on first use."""
    python = os.path.join(VENV, "bin", "python")
    marker = os.path.join(VENV, ".installed")
    if not os.path.exists(marker):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True, timeout=300)
        install = subprocess.run(
            [python, "-m", "pip", "install", "--quiet", f"tensorflow=={SERVING_TF}.*", f"tensorflow-text=={SERVING_TF}.*"],
            capture_output=True, text=True, timeout=1800,
        )
        assert install.returncode == 0, f"installing TF {SERVING_TF} into {VENV} failed:\n{install.stderr[-3000:]}"
        open(marker, "w").close()
    return python


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """A char-LM export, a resrnn addition (pathological) export and a seq2seq translation export."""
    root = tmp_path_factory.mktemp("exports")
    corpus_path = root / "tiny.txt"
    corpus_path.write_text("the cat sat on the mat. a dog ran to the log. " * 40, encoding="utf-8")
    lm, vocabulary, _ = train_char_lm(root / "lm_run", corpus_path, steps=60, units=24, holdout_chars=200)
    char_lm_dir = export_char_lm(lm, vocabulary, str(root / "char_lm"))
    run = root / "resrnn"
    train(TrainConfig(model="resrnn", task="addition", seq_len=20, batch_size=32, train_steps=20, eval_every=10,
                      model_dir=str(run), verbose=0), units=16)
    pairs = root / "pairs.tsv"
    pairs.write_text("\n".join(f"the {c} file {n} is open\tle fichier {c} {n} est ouvert"
                               for n in ("one", "two", "three") for c in ("red", "blue", "green")), encoding="utf-8")
    seq2seq = root / "seq2seq"
    train(TrainConfig(model="seq2seq", batch_size=8, train_steps=20, eval_every=20, model_dir=str(seq2seq),
                      verbose=0), corpus=str(pairs), vocab_size=30, units=16, embedding_dim=8)
    return (char_lm_dir, export_run(str(run), str(root / "addition")),
            export_run(str(seq2seq), str(root / "translation")))


def load_and_call(python, exports, request, cwd):
    script = cwd / "load_and_call.py"
    script.write_text(LOAD_AND_CALL)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    result = subprocess.run([python, str(script), *exports, json.dumps(request)], capture_output=True, text=True,
                            timeout=600, cwd=str(cwd), env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_exports_give_the_same_outputs_under_the_tensorflow_tf_serving_links(serving_tf_python, exports, tmp_path):
    rng = np.random.default_rng(0)
    inputs = np.zeros((4, 20, 2), np.float32)
    inputs[..., 0] = rng.uniform(-1, 1, (4, 20))
    inputs[:, [3, 11], 1] = 1.0
    request = {
        "prompt": ["the cat ", "", "d€g", "a dog "], "max_length": [12, 6, 4, 20],
        "temperature": [0.0, 0.0, 0.8, 1.0], "seed": [1, 2, 3, 4],
        "text": ["the cat sat", "", "ü is unknown"], "inputs": inputs.tolist(),
        "translate": {"source": ["the red file one is open", "", "the blue file"], "beam_width": [4, 1, 3],
                      "length_penalty": [0.6, 0.0, 1.0], "max_length": [0, 2, 6]},
    }
    serving = load_and_call(serving_tf_python, exports, request, tmp_path)
    assert [v.rsplit(".", 1)[0] for v in serving["versions"]] == [SERVING_TF, SERVING_TF]
    ours = load_and_call(sys.executable, exports, request, tmp_path)
    assert ours["versions"] != serving["versions"]  # two TensorFlow releases, compared
    assert serving["text"] == ours["text"]  # greedy and sampled rows alike (stateless, seeded sampling)
    np.testing.assert_allclose(serving["log_prob"], ours["log_prob"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(serving["bits_per_char"], ours["bits_per_char"], rtol=1e-5, atol=1e-6)
    assert np.ptp(ours["output"]) > 1e-5
    np.testing.assert_allclose(serving["output"], ours["output"], rtol=1e-5, atol=1e-6)
    assert serving["n_best"] == ours["n_best"] and any(t for row in ours["n_best"] for t in row)
    np.testing.assert_allclose(serving["scores"], ours["scores"], rtol=1e-5, atol=1e-5)


REFUSE_HUGE_SIZES = textwrap.dedent(
    """
    import json, os, sys, time
    sys.modules["rnnzoo"] = None  # only TensorFlow and tensorflow-text, as TF Serving has
    sys.path = [p for p in sys.path if not os.path.isdir(os.path.join(p or ".", "rnnzoo"))]
    import tensorflow as tf
    import tensorflow_text

    def kilobytes(field):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

    translate = tf.saved_model.load(sys.argv[1]).signatures["translate"]
    def call(beam_width, max_length):
        return translate(source=tf.constant(["File not found"]), beam_width=tf.constant([beam_width]),
                         length_penalty=tf.constant([0.6]), max_length=tf.constant([max_length]))
    call(2, 3)
    refusals = []
    for beam_width, max_length in ((4, 2**31 - 1), (4, 10**9), (2**31 - 1, 0)):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # the peak resident memory restarts from the current one
        before, start = kilobytes("VmRSS"), time.monotonic()
        try:
            call(beam_width, max_length)
            error = None
        except tf.errors.InvalidArgumentError as refused:
            error = refused.message
        refusals.append({"seconds": time.monotonic() - start, "grown_mb": (kilobytes("VmHWM") - before) / 1024,
                         "error": error})
    print(json.dumps({"version": tf.__version__, "refusals": refusals}))
    """
)


def test_translate_refuses_huge_sizes_at_once_under_the_tensorflow_tf_serving_links(serving_tf_python, exports,
                                                                                    tmp_path):
    serving, ours = outputs_under_serving_tf_and_ours(REFUSE_HUGE_SIZES, [exports[2]], tmp_path)
    assert serving["version"].rsplit(".", 1)[0] == SERVING_TF
    for outputs in (serving, ours):
        for refusal in outputs["refusals"]:
            assert refusal["error"] and "must be <=" in refusal["error"], outputs
            assert refusal["seconds"] < 1.0 and refusal["grown_mb"] < 100, outputs
