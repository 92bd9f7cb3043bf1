"""Beam-search decoding speed: rnnzoo's beam search vs keras-hub's `BeamSampler`, same decoder.

Both decode the same sentences (the first `--batch` test sentences of the run's corpus) with the
same trained seq2seq decoder step (`rnnzoo.decoding.Translator.step`: embedding, LSTM cells,
softmax layer) from the same encoder states, at the same beam widths, each compiled as one
`tf.function` graph:

- rnnzoo: `Translator.translate` (rnn-critical-review §5.3's left-to-right beam search) with the
  GNMT length penalty (alpha 0.6), an n-best list of `width` finished hypotheses per sentence,
  per-sentence early stopping, the decoder step on alive hypotheses only, SentencePiece in the
  graph;
- keras-hub: `keras_hub.samplers.BeamSampler(num_beams=width, return_all_beams=True)` driving
  `Translator.step` through its `next(prompt, cache, index)` interface, with the LSTM states as
  the cache and EOS as the stop token: log-probabilities only (no length penalty), beams that
  emitted EOS keep being extended, and the loop stops when every beam of every sentence holds
  an EOS or at the length limit (the same limit rnnzoo uses for the batch).

Each path is timed in process and through the served signature (`rnnzoo-serve` in process,
gRPC: `Client.translate` and `Client.predict`): rnnzoo's export `translate`, and a SavedModel whose `translate` signature
is the keras-hub graph above (tokenisation in the graph too). The two sides are called alternately
(`--repeats` calls each after a warm-up call); the JSON gives the median wall and process-CPU
seconds per batch (the in-process server's threads included), the median of the per-repeat wall
ratios keras-hub / rnnzoo and the ratio of the CPU medians (> 1: rnnzoo faster), and the load. keras-hub is not an rnnzoo dependency: install it where you run this
(`pip install keras-hub`).

    .venv/bin/python benchmarks/translation.py --model_dir=RUN --output benchmarks/results/translation.json
"""

import json
import os
import resource
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from rnnzoo.data.parallel_corpus import load_parallel_corpus  # noqa: E402
from rnnzoo.data.subword_tokenizer import BOS_ID, EOS_ID, PAD_ID  # noqa: E402
from rnnzoo.machine import machine_summary  # noqa: E402
from rnnzoo.zoo import translation  # noqa: E402

flags.DEFINE_string("model_dir", None, "A trained seq2seq run (rnnzoo-train --model=seq2seq).")
flags.DEFINE_list("widths", ["4", "12"], "Beam widths.")
flags.DEFINE_integer("batch", 32, "Sentences per call.")
flags.DEFINE_integer("repeats", 15, "Timed calls per side, path and width (after one warm-up call).")
flags.DEFINE_string("output", None, "Write the JSON here too.")
FLAGS = flags.FLAGS


def keras_hub_module(translator, width):
    """A tf.Module whose `translate(source)` runs keras-hub's BeamSampler over `translator.step`."""
    import keras_hub
    from keras import tree

    sampler = keras_hub.samplers.BeamSampler(num_beams=width, return_all_beams=True)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def translate(source):
        pieces = translator.tokenizer.encode(source)
        source_ids = pieces.to_tensor(default_value=PAD_ID)
        states = translator.encode(source_ids)
        limit = tf.reduce_max(translator.limits(pieces.row_lengths(), tf.zeros_like(pieces.row_lengths(),
                                                                                     tf.int32))) + 1
        batch = tf.shape(source)[0]
        prompt = tf.concat([tf.fill([batch, 1], BOS_ID), tf.fill([batch, limit], PAD_ID)], axis=1)
        mask = tf.concat([tf.ones([batch, 1], tf.bool), tf.zeros([batch, limit], tf.bool)], axis=1)

        def next_token(prompt, cache, index):
            logits, new_states = translator.step(prompt[:, index - 1], cache)
            return logits, None, new_states

        ids, log_probs = sampler(next_token, prompt, cache=tree.map_structure(tf.identity, states), index=1,
                                 mask=mask, stop_token_ids=[EOS_ID])
        # Each beam's pieces up to its first EOS, as text.
        flat = tf.reshape(ids[:, :, 1:], [-1, limit])
        ended = tf.cumsum(tf.cast(tf.equal(flat, EOS_ID), tf.int32), axis=1, exclusive=True) > 0
        flat = tf.where(ended | tf.equal(flat, EOS_ID), PAD_ID, flat)
        texts = tf.reshape(translator.tokenizer.decode(flat), [batch, width])
        return {"translation": texts[:, 0], "n_best": texts, "scores": log_probs}

    module = tf.Module()
    module.translator = translator
    module.translate = translate
    return module


def _cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)  # the in-process servers' threads included
    return usage.ru_utime + usage.ru_stime


def timed_pair(ours, theirs, repeats):
    """Medians over `repeats` alternating calls of `ours` and `theirs` (after a warm-up call of each):
    wall seconds, process CPU seconds, and the median of the per-repeat wall ratios theirs / ours.
    Alternating keeps a change of the machine's load from favouring one side."""
    ours()  # warm-up: tracing
    theirs()
    wall = {"ours": [], "theirs": []}
    cpu = {"ours": [], "theirs": []}
    for _ in range(repeats):
        for name, call in (("ours", ours), ("theirs", theirs)):
            start, start_cpu = time.perf_counter(), _cpu_seconds()
            call()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(_cpu_seconds() - start_cpu)
    ratios = [t / o for o, t in zip(wall["ours"], wall["theirs"])]
    return {"rnnzoo_s": round(statistics.median(wall["ours"]), 4),
            "keras_hub_s": round(statistics.median(wall["theirs"]), 4),
            "rnnzoo_cpu_s": round(statistics.median(cpu["ours"]), 4),
            "keras_hub_cpu_s": round(statistics.median(cpu["theirs"]), 4),
            "keras_hub_over_rnnzoo": round(statistics.median(ratios), 3),
            "keras_hub_over_rnnzoo_cpu": round(statistics.median(cpu["theirs"]) / statistics.median(cpu["ours"]), 3),
            "load": open("/proc/loadavg").read().split()[0]}


def main(argv):
    del argv
    try:
        import keras_hub  # noqa: F401
    except ImportError:
        sys.exit("benchmarks/translation.py compares against keras-hub, which rnnzoo does not depend on: "
                 "pip install keras-hub (into the environment that runs this benchmark)")
    if not FLAGS.model_dir:
        sys.exit("--model_dir is required: a trained seq2seq run (rnnzoo-train --model=seq2seq --model_dir=DIR)")
    from rnnzoo.export import export_run
    from rnnzoo.serving import Client, ModelServer, ServerOptions

    model, tokenizer, config = translation.load_trained(FLAGS.model_dir)
    translator = translation.make_translator(model, tokenizer, config)
    corpus = load_parallel_corpus(config.corpus, data_dir=config.data_dir or None)
    sources = [s for s, _ in corpus.test[:FLAGS.batch]]
    n = len(sources)
    ours = tf.function(translator.translate, input_signature=[
        tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.float32),
        tf.TensorSpec([None], tf.int32)])
    root = tempfile.mkdtemp(prefix="translation_bench_")
    export_run(FLAGS.model_dir, os.path.join(root, "rnnzoo"))
    rows = []
    for width in map(int, FLAGS.widths):
        hub = keras_hub_module(translator, width)
        tf.saved_model.save(hub, os.path.join(root, f"keras_hub_{width}", "1"),
                            signatures={"translate": hub.translate})
        args = (tf.constant(sources), tf.fill([n], width), tf.fill([n], 0.6), tf.zeros([n], tf.int32))
        times = timed_pair(lambda: ours(*args), lambda: hub.translate(tf.constant(sources)), FLAGS.repeats)
        ours_out, hub_out = ours(*args), hub.translate(tf.constant(sources))
        same = sum(a == b for a, b in zip(ours_out["translation"].numpy(), hub_out["translation"].numpy()))
        rows.append({"width": width, "path": "in-process", **times, "same_best_translation": f"{same}/{n}"})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    servers = {"rnnzoo": ModelServer(ServerOptions(port=0, rest_api_port=0, host="127.0.0.1", model_name="rnnzoo",
                                                   model_base_path=os.path.join(root, "rnnzoo"),
                                                   file_system_poll_wait_seconds=0)).start()}
    for width in map(int, FLAGS.widths):
        servers[width] = ModelServer(ServerOptions(
            port=0, rest_api_port=0, host="127.0.0.1", model_name="keras_hub",
            model_base_path=os.path.join(root, f"keras_hub_{width}"), file_system_poll_wait_seconds=0)).start()
    try:
        for width in map(int, FLAGS.widths):
            with Client(f"127.0.0.1:{servers['rnnzoo'].grpc_port}") as ours_client, \
                    Client(f"127.0.0.1:{servers[width].grpc_port}") as hub_client:
                ours_client.wait_until_available("rnnzoo")
                hub_client.wait_until_available("keras_hub")
                times = timed_pair(
                    lambda: ours_client.translate("rnnzoo", sources, beam_width=[width] * n, length_penalty=[0.6] * n),
                    lambda: hub_client.predict("keras_hub", {"source": sources}, "translate"), FLAGS.repeats)
            rows.append({"width": width, "path": "served (rnnzoo-serve, gRPC)", **times})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    finally:
        for server in servers.values():
            server.stop()
    import keras_hub

    results = {"benchmark": "beam search decoding, seconds per batch (median)", "batch": n,
               "model": f"{config.layers} x {config.units} {config.cell}, {tokenizer.vocab_size} pieces, "
                        f"{config.corpus}", "model_dir": FLAGS.model_dir, "repeats": FLAGS.repeats,
               "keras_hub_version": keras_hub.__version__, "tensorflow_version": tf.__version__,
               "machine": machine_summary(), "rows": rows}
    text = json.dumps(results, indent=2)
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    app.run(main)
