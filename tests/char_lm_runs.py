"""Char LMs trained for tests through the shared training loop (`rnnzoo.training.loop.train`)."""

from rnnzoo.zoo import char_lm
from rnnzoo.training.loop import TrainConfig, train


def train_char_lm(run_dir, corpus_path, model="char_mrnn", steps=100, seq_len=30, context=10,
                  batch_size=16, optimizer="adam", learning_rate=3e-3, eval_every=None,
                  training=None, **config):
    """Trains `model` on the text file `corpus_path` in `run_dir`; returns `(keras model, vocabulary,
    metrics)`. `training`: further `TrainConfig` fields; `config`: `CharLMConfig` fields (e.g.
    `units=24`, `holdout_chars=200`)."""
    metrics = train(
        TrainConfig(model=model, optimizer=optimizer, learning_rate=learning_rate, seq_len=seq_len,
                    batch_size=batch_size, train_steps=steps, eval_every=eval_every or steps,
                    early_stop=False, verbose=0, model_dir=str(run_dir), **(training or {})),
        corpus=str(corpus_path), context=context, **config,
    )
    model, vocabulary, _ = char_lm.load_trained(str(run_dir))
    return model, vocabulary, metrics
