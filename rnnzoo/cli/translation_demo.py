"""The translation demo of `rnnzoo-demo --demo=translation`: train, export, serve and query a seq2seq.

A function without flags, so that tests and notebooks can call it: `rnnzoo-demo` (the binary in
`rnnzoo/cli/demo.py`) maps its flags onto it.
"""

import sys
import tempfile

DEMO_SENTENCES = ("Open the file", "Save the document as a new file", "The connection was closed",
                  "Show hidden files")


def translation_demo(steps=300, corpus="gettext:fr", units=128, vocab_size=2000, batch_size=64,
                     learning_rate=2e-3, eval_sentences=100, sentences=DEMO_SENTENCES, beam_width=4,
                     export_base=None, seed=0, out=sys.stdout):
    """Trains a small reversed-source LSTM seq2seq (rnn-critical-review §5.3) for `steps` steps,
    exports its `translate` signature, serves it and translates `sentences` with beam search.

    The run goes through the shared training loop (`rnnzoo-train --model=seq2seq`, English ->
    French from the system's gettext catalogs by default), `rnnzoo.export.export_run` writes the
    SavedModel, the in-process `rnnzoo.serving.ModelServer` serves it, and
    `rnnzoo.serving.Client.translate` returns each sentence's n-best list (length-penalised
    log-probabilities). Returns `{"translations": [[(text, score)]], "bleu", "bleu_greedy",
    "export_dir"}`.
    """
    from rnnzoo.export import export_run
    from rnnzoo.serving import Client, ModelServer, ServerOptions
    from rnnzoo.training.loop import TrainConfig, train

    run_dir = tempfile.mkdtemp(prefix="seq2seq_run_")
    config = TrainConfig(model="seq2seq", optimizer="adam", learning_rate=learning_rate, batch_size=batch_size,
                         train_steps=steps, eval_every=steps, seed=seed, early_stop=False, verbose=1,
                         model_dir=run_dir)
    print(f"training a 2 x {units} LSTM seq2seq ({vocab_size} SentencePiece pieces) on {corpus} for "
          f"{steps} steps of {batch_size} pairs", file=out, flush=True)
    metrics = train(config, corpus=corpus, units=units, embedding_dim=units, vocab_size=vocab_size,
                    eval_sentences=eval_sentences)
    print(f"trained {metrics['step']} steps in {metrics['wall_time_s']:.0f} s; test BLEU on "
          f"{eval_sentences or 'all'} sentences: {metrics['bleu']:.2f} (beam), {metrics['bleu_greedy']:.2f} "
          "(greedy)", file=out, flush=True)
    base = export_base or tempfile.mkdtemp(prefix="seq2seq_")
    export_dir = export_run(run_dir, base)
    server = ModelServer(ServerOptions(port=0, rest_api_port=0, host="127.0.0.1", model_name="translator",
                                       model_base_path=base, file_system_poll_wait_seconds=0)).start()
    try:
        with Client(f"127.0.0.1:{server.grpc_port}") as client:
            client.wait_until_available("translator")
            translations = client.translate("translator", list(sentences), beam_width=beam_width)
    finally:
        server.stop()
    print(f"--- served translations (beam {beam_width}; score = log P / length penalty) ---", file=out)
    for source, n_best in zip(sentences, translations):
        best, score = n_best[0]
        print(f"{source}\n  -> {best}   ({score:.2f})", file=out, flush=True)
    return {"translations": translations, "bleu": metrics["bleu"], "bleu_greedy": metrics["bleu_greedy"],
            "export_dir": export_dir}
