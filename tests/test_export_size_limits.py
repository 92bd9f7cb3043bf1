"""Every exported signature's size arguments are refused before anything is allocated from them.

For each size argument of each signature (`translate`: beam_width, max_length; `generate`:
max_length; `generate_frames`: num_frames) the exported SavedModel is called with the largest
value int32 allows, with 10^9 and with the export's cap + 1: each must be an INVALID_ARGUMENT within a
second, and the process's peak resident memory (VmHWM, reset before the call) must grow by less
than 100 MB. The hostile `translate` request is also sent to `rnnzoo-serve` over REST.
"""

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import requests
import tensorflow as tf

from rnnzoo.data.char_corpus import Vocabulary
from rnnzoo.data.subword_tokenizer import SubwordTokenizer, train_sentencepiece
from rnnzoo.zoo.char_lm.export import export_char_lm
from rnnzoo.zoo.rtrbm.export import export_video_model
from rnnzoo.zoo.translation.export import export_translator
from rnnzoo.layers import RTRBM
from rnnzoo.zoo import char_lm, translation
from tests.serving.conftest import free_port, wait_for

INT32_MAX = np.iinfo(np.int32).max
HUGE = 1_000_000_000  # a size whose arithmetic (+ 1 for the EOS, + the prompt) does not overflow int32
MAX_BEAM_WIDTH, MAX_DECODE_LENGTH, MAX_GENERATE, MAX_FRAMES = 4, 20, 50, 10
SECONDS = 1.0
MEGABYTES = 100
SENTENCES = [f"the {c} file {n} is open" for c in ("red", "blue", "green") for n in ("one", "two", "three")]


def _status_kb(field, pid="self"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"/proc/{pid}/status has no {field}")


def _reset_peak(pid="self"):
    """Resets the process's peak resident set size (VmHWM) to its current one (Linux clear_refs 5)."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def measured(call, pid="self"):
    """Runs `call()`; returns (seconds, growth of process `pid`'s peak resident memory in MB, what
    `call` returned or raised)."""
    _reset_peak(pid)
    before = _status_kb("VmRSS", pid)
    start = time.monotonic()
    try:
        outcome = call()
    except Exception as error:  # noqa: BLE001 (the caller asserts the kind)
        outcome = error
    seconds = time.monotonic() - start
    return seconds, (_status_kb("VmHWM", pid) - before) / 1024, outcome


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """{signature name: (loaded signature, good inputs)} of three tiny untrained exports."""
    root = tmp_path_factory.mktemp("size_limits")
    tokenizer = SubwordTokenizer(train_sentencepiece(SENTENCES * 4, vocab_size=30))
    config = translation.Seq2SeqConfig(units=8, embedding_dim=4)
    seq2seq = translation.build_model(tokenizer.vocab_size, config, seed=0)
    translate_dir = export_translator(seq2seq, tokenizer, str(root / "translate"), max_beam_width=MAX_BEAM_WIDTH,
                                      max_decode_length=MAX_DECODE_LENGTH)
    vocabulary = Vocabulary.from_text("def f(x):\n    return x\n")
    lm = char_lm.build_model("char_mrnn", vocabulary.size, char_lm.CharLMConfig(units=8), seed=0)
    generate_dir = export_char_lm(lm, vocabulary, str(root / "char_lm"), max_generate=MAX_GENERATE)
    rbm = RTRBM(4)
    rbm.build((None, None, 900))
    video_dir = export_video_model(rbm, str(root / "video"), gibbs_steps=1, max_frames=MAX_FRAMES)
    return {"translate": translate_dir, "generate": generate_dir, "generate_frames": video_dir}


def _inputs(signature, **sizes):
    if signature == "translate":
        values = {"source": tf.constant(["the red file"]), "beam_width": tf.constant([2]),
                  "length_penalty": tf.constant([0.6]), "max_length": tf.constant([3])}
    elif signature == "generate":
        values = {"prompt": tf.constant(["def "]), "max_length": tf.constant([3]),
                  "temperature": tf.constant([0.5]), "seed": tf.constant([1], tf.int64)}
    else:
        values = {"seed": tf.constant([1], tf.int64), "num_frames": tf.constant([2]),
                  "prefix": tf.zeros([1, 1, 900])}
    values.update({name: tf.constant([value], tf.int32) for name, value in sizes.items()})
    return values


CASES = [
    ("translate", "max_length", MAX_DECODE_LENGTH),
    ("translate", "beam_width", MAX_BEAM_WIDTH),
    ("generate", "max_length", MAX_GENERATE),
    ("generate_frames", "num_frames", MAX_FRAMES),
]


@pytest.mark.parametrize("signature,argument,cap", CASES, ids=[f"{s}-{a}" for s, a, _ in CASES])
def test_size_arguments_are_refused_before_allocation(exports, signature, argument, cap):
    function = tf.saved_model.load(exports[signature]).signatures[signature]
    function(**_inputs(signature))  # the accepted request runs (and warms the function up)
    for value in (INT32_MAX, HUGE, cap + 1):
        seconds, grown_mb, error = measured(lambda: function(**_inputs(signature, **{argument: value})))
        assert isinstance(error, tf.errors.InvalidArgumentError), (argument, value, error)
        assert f"{argument} must be <= {cap}" in str(error)
        assert seconds < SECONDS, f"{signature}({argument}={value}) took {seconds:.2f} s to be refused"
        assert grown_mb < MEGABYTES, f"{signature}({argument}={value}) grew the peak memory by {grown_mb:.0f} MB"
    function(**_inputs(signature, **{argument: cap}))  # the cap itself is accepted


def test_served_translate_refuses_a_huge_max_length_at_once(exports, tmp_path):
    base = os.path.dirname(exports["translate"])
    grpc_port, rest_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "rnnzoo.cli.serve", f"--port={grpc_port}", f"--rest_api_port={rest_port}",
         "--model_name=translator", f"--model_base_path={base}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    url = f"http://127.0.0.1:{rest_port}/v1/models/translator:predict"
    body = {"signature_name": "translate", "inputs": {"source": ["File not found"], "beam_width": [4],
                                                      "length_penalty": [0.6], "max_length": [INT32_MAX]}}

    def available():
        assert process.poll() is None, process.stdout.read().decode()
        try:
            return requests.get(f"http://127.0.0.1:{rest_port}/v1/models/translator", timeout=5).json()[
                "model_version_status"][0]["state"] == "AVAILABLE"
        except requests.RequestException:
            return False

    try:
        wait_for(available, timeout=120, what="rnnzoo-serve to load the translator")
        good = {**body, "inputs": {**body["inputs"], "max_length": [3]}}
        assert requests.post(url, json=good, timeout=60).status_code == 200
        for value in (INT32_MAX, HUGE, MAX_DECODE_LENGTH + 1):
            hostile = {**body, "inputs": {**body["inputs"], "max_length": [value]}}
            seconds, grown_mb, response = measured(lambda: requests.post(url, json=hostile, timeout=60),
                                                   pid=process.pid)
            assert response.status_code == 400 and f"max_length must be <= {MAX_DECODE_LENGTH}" in response.text
            assert seconds < SECONDS and grown_mb < MEGABYTES, (value, seconds, grown_mb)
        assert requests.post(url, json=good, timeout=60).status_code == 200  # still serving
    finally:
        process.terminate()
        process.wait(timeout=60)

