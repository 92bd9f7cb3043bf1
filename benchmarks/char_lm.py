"""Character LMs at equal parameter count and equal training time (thesis §5.2.2), and generation speed.

On the default corpus (the Python standard library's source), trains char_mrnn,
char_rnn and char_lstm with the same number of parameters, each through the
shared training loop (`rnnzoo.training.loop.train`, as `rnnzoo-train`) with the
same wall-clock budget (`max_seconds`: tracing and held-out evaluations
included), and reports:

- training characters/second over the time spent in training steps, and its
  ratio to char_lstm (Keras's LSTM: the anchor);
- held-out bits per character after the equal budget (the thesis: MRNN 1.56 vs
  RNN 1.65 bpc at equal parameters, after days of HF training on 100 MB);
- the bpc learning curves (PNG);
- generation characters/second from each exported SavedModel (batch 1 and
  batch 16), and its ratio to decoding by re-running the Keras model on the
  whole prefix for every character (the anchor).

    .venv/bin/python benchmarks/char_lm.py --seconds=150
"""

import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from rnnzoo.zoo.char_lm import export_char_lm  # noqa: E402
from rnnzoo.zoo import char_lm  # noqa: E402
from rnnzoo.training.loop import TrainConfig, train  # noqa: E402
from rnnzoo.zoo.char_lm import text_evaluation  # noqa: E402
from rnnzoo.data.char_tokenizer import START  # noqa: E402

flags.DEFINE_float("seconds", 150.0, "Wall-clock budget per model (rnnzoo-train's --max_seconds).")
flags.DEFINE_integer("mrnn_units", 128, "char_mrnn units = factors; the others are sized to its parameter count.")
flags.DEFINE_integer("seq_len", 100, "Training sequence length.")
flags.DEFINE_integer("context", 50, "Unweighted leading characters (thesis §5.4.2).")
flags.DEFINE_integer("batch_size", 32, "Sequences per step.")
flags.DEFINE_integer("max_chars", 1_500_000, "Characters of the standard library read.")
flags.DEFINE_integer("holdout_chars", 50_000, "Held-out characters (the corpus tail).")
flags.DEFINE_integer("eval_every", 150, "Steps between held-out evaluations.")
flags.DEFINE_string("output", "benchmarks/results/char_lm", "Output prefix (.json and .png are added).")
FLAGS = flags.FLAGS


def count(model):
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))


def matched_units(name, vocab_size, target, embedding_dim=64):
    """Units of `name` whose parameter count is closest to `target`."""
    best = None
    for units in range(8, 1024):
        config = char_lm.CharLMConfig(units=units, embedding_dim=embedding_dim)
        n = count(char_lm.build_model(name, vocab_size, config)) if best is None or units % 8 == 0 else None
        if n is None:
            continue
        if best is None or abs(n - target) < abs(best[1] - target):
            best = (units, n)
        if n > target:
            break
    # refine around the best multiple of 8
    for units in range(max(8, best[0] - 8), best[0] + 9):
        n = count(char_lm.build_model(name, vocab_size, char_lm.CharLMConfig(units=units, embedding_dim=embedding_dim)))
        if abs(n - target) < abs(best[1] - target):
            best = (units, n)
    return best


def generation_speed(export_dir, batch, length, repeats=2):
    loaded = tf.saved_model.load(export_dir)
    generate = loaded.signatures["generate"]
    args = dict(prompt=tf.constant(["def "] * batch), max_length=tf.fill([batch], length),
                temperature=tf.fill([batch], 0.8), seed=tf.range(batch, dtype=tf.int64))
    generate(**args)  # warm up
    start = time.perf_counter()
    for _ in range(repeats):
        generate(**args)
    return batch * length * repeats / (time.perf_counter() - start)


def rereading_speed(model, vocabulary, length):
    """Anchor: greedy decoding that re-runs the Keras model on the whole prefix for every character."""
    ids = [int(vocabulary.encode(START)[0])] + vocabulary.encode("def ").tolist()
    call = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    call(tf.constant([ids]))
    start = time.perf_counter()
    for _ in range(length):
        logits = call(tf.constant([ids]))
        ids.append(int(tf.argmax(logits[0, -1])))
    return length / (time.perf_counter() - start)


def main(argv):
    del argv
    config = char_lm.CharLMConfig(max_chars=FLAGS.max_chars, holdout_chars=FLAGS.holdout_chars)
    corpus = char_lm.corpus_from_config(config)
    vocab = corpus.vocabulary.size
    target = count(char_lm.build_model("char_mrnn", vocab, char_lm.CharLMConfig(units=FLAGS.mrnn_units)))
    sizes = {"char_mrnn": (FLAGS.mrnn_units, target)}
    for name in ("char_rnn", "char_lstm"):
        sizes[name] = matched_units(name, vocab, target)
    results = {
        "corpus": f"Python standard library source ({len(corpus.train_ids):,} training characters, "
                  f"{len(corpus.heldout_ids):,} held out, {vocab} symbols)",
        "unigram_bits_per_char": corpus.unigram_bits_per_char(),
        "wall_seconds_per_model": FLAGS.seconds,
        "seq_len": FLAGS.seq_len, "context": FLAGS.context, "batch_size": FLAGS.batch_size,
        "optimizer": "adam (lr 3e-3, clipnorm 1)",
        "thesis_reference": "MRNN 1.56 vs RNN 1.65 bits/char at equal parameters (thesis §5.2.2)",
        "models": {},
    }
    export_base = tempfile.mkdtemp(prefix="char_lm_bench_")
    for name, (units, params) in sizes.items():
        print(f"{name}: {units} units, {params} parameters", file=sys.stderr, flush=True)
        run_dir = os.path.join(export_base, "runs", name)
        run = train(TrainConfig(model=name, optimizer="adam", learning_rate=3e-3, seq_len=FLAGS.seq_len,
                                batch_size=FLAGS.batch_size, train_steps=10**9, eval_every=FLAGS.eval_every,
                                max_seconds=FLAGS.seconds, early_stop=False, verbose=0, model_dir=run_dir),
                    units=units, context=FLAGS.context, max_chars=FLAGS.max_chars,
                    holdout_chars=FLAGS.holdout_chars)
        model, _, _ = char_lm.load_trained(run_dir)
        final = text_evaluation.bits_per_char(model, corpus, FLAGS.seq_len, FLAGS.context)
        curve = [{"seconds": h["train_seconds"], "steps": h["step"], "bits_per_char": h["bits_per_char"]}
                 for h in run["history"]]
        chars_per_second = (run["step"] - 1) * FLAGS.batch_size * FLAGS.seq_len / max(run["train_seconds"], 1e-9)
        export_dir = export_char_lm(model, corpus.vocabulary, os.path.join(export_base, name))
        gen_1 = generation_speed(export_dir, 1, 300)
        gen_16 = generation_speed(export_dir, 16, 200)
        anchor = rereading_speed(model, corpus.vocabulary, 150)
        results["models"][name] = {
            "units": units, "parameters": params, "steps": run["step"],
            "training_seconds": round(run["train_seconds"], 1), "wall_seconds": round(run["wall_time_s"], 1),
            "training_chars_per_second": round(chars_per_second),
            "heldout_bits_per_char": round(final["bits_per_char"], 4),
            "heldout_perplexity": round(final["perplexity"], 3),
            "curve": curve,
            "generation_chars_per_second_batch1": round(gen_1, 1),
            "generation_chars_per_second_batch16": round(gen_16, 1),
            "rereading_decoder_chars_per_second": round(anchor, 1),
            "generation_speedup_vs_rereading_batch1": round(gen_1 / anchor, 2),
            "sample": text_evaluation.sample(model, corpus.vocabulary, "def ", 120, 0.8, seed=0)[0],
        }
        print(json.dumps({name: {k: v for k, v in results["models"][name].items() if k != "curve"}}), file=sys.stderr,
              flush=True)
    lstm = results["models"]["char_lstm"]["training_chars_per_second"]
    for entry in results["models"].values():
        entry["training_speed_ratio_vs_lstm"] = round(entry["training_chars_per_second"] / lstm, 3)
    m, r = (results["models"][k]["heldout_bits_per_char"] for k in ("char_mrnn", "char_rnn"))
    results["mrnn_minus_rnn_bits_per_char"] = round(m - r, 4)
    results["mrnn_advantage_holds"] = bool(m < r)
    os.makedirs(os.path.dirname(FLAGS.output) or ".", exist_ok=True)
    with open(FLAGS.output + ".json", "w") as f:
        json.dump(results, f, indent=2, ensure_ascii=False)
    plot(results, FLAGS.output + ".png")
    print(json.dumps({k: v for k, v in results.items() if k != "models"} | {
        n: {k: v for k, v in e.items() if k not in ("curve", "sample")} for n, e in results["models"].items()}, indent=2))


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, entry in results["models"].items():
        curve = entry["curve"]
        ax.plot([c["seconds"] for c in curve], [c["bits_per_char"] for c in curve], marker="o", markersize=3,
                label=f"{name} ({entry['units']} units, {entry['parameters']:,} params)")
    ax.axhline(results["unigram_bits_per_char"], color="grey", linestyle=":", label="unigram baseline")
    ax.set_xlabel("training seconds")
    ax.set_ylabel("held-out bits per character")
    ax.set_title("Char LMs at equal parameters on the Python standard library")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    app.run(main)
