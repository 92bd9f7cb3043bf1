"""Character-level language models (thesis ch. 5): MRNN, tanh RNN and LSTM.

Models (`--model`), each one recurrent layer on character ids and a linear
softmax output layer `o_t = W_oh h_t + b_o` (eq. 5.7), trained to maximise
`sum_t log P(v_{t+1} | v_<=t)` (§5.3):

- `char_mrnn`: multiplicative RNN (eq. 5.4-5.7) reading ids directly
  (`MRNN(input_dim=vocabulary)` gathers the rows of W_hv and W_fv).
- `char_rnn`: tanh RNN (`keras.layers.SimpleRNN`) after an `Embedding`.
- `char_lstm`: `keras.layers.LSTM` after an `Embedding`.

Recurrent weights start sparse (15 nonzero incoming weights per unit,
§5.4.2 and ch. 4) with variance 1/15. Training sequences have length
`seq_len` and only their last `seq_len - context` characters are predicted
(§5.4.2). The test metric is bits per character on the last `holdout_chars`
characters of the corpus (§5.4.1; by default 10%, at most 50,000).

The family trains through the shared loop (`rnnzoo.training.loop.train`,
`rnnzoo-train --model=char_mrnn`); its metric is the held-out bits per
character. `rnnzoo.decoding.TextModel` gives a trained model its text
interface in TensorFlow ops (what `rnnzoo.zoo.char_lm.export` serves), and
`rnnzoo.zoo.char_lm.text_evaluation` its chapter-5 evaluations;
`evaluate_model_dir` runs all of them for a trained `model_dir`.

Besides the checkpoints, the run directory (`rnnzoo.training.run_directory.RunDirectory`) keeps
`vocabulary.json` (the corpus's characters, reused on resume), which export and evaluation need
beside the model and the `CharLMConfig` that the run's state file records.
"""

import os

from rnnzoo.training import registry
from rnnzoo.zoo.char_lm.export import export_char_lm, export_model_dir
from rnnzoo.zoo.char_lm.model import (
    MODELS,
    MRNN_RECIPE,
    VOCABULARY_FILE,
    build,
    build_model,
    CharLMConfig,
    config_of_run,
    corpus_from_config,
    evaluate_model_dir,
    load_trained,
    load_vocabulary,
    loss,
)


def smallest(directory):
    """The smallest char-LM run: a 16-unit LSTM on a short program text written into `directory`."""
    corpus = os.path.join(directory, "text.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        f.write("def f(x):\n    return x + 1\n" * 200)
    return (dict(model="char_lstm", seq_len=20, batch_size=8, early_stop=False),
            dict(corpus=corpus, context=5, units=16))


FAMILY = registry.register(
    registry.Family(
        name="char_lm",
        models=MODELS,
        config_class=CharLMConfig,
        build=build,
        tasks=(),
        default_task=None,
        recipes={**{model: {"clip_norm": 1.0} for model in MODELS}, "char_mrnn": MRNN_RECIPE},
        evaluate=evaluate_model_dir,
        export=export_model_dir,
        signatures=("generate", "score"),
        default_signature="generate",
        smallest=smallest,
    )
)
"""The char-LM family; `recipes`: gradients clipped at norm 1 unless a run says otherwise, and
`MRNN_RECIPE` for `char_mrnn`."""

__all__ = [
    "build",
    "build_model",
    "CharLMConfig",
    "config_of_run",
    "corpus_from_config",
    "evaluate_model_dir",
    "export_char_lm",
    "export_model_dir",
    "FAMILY",
    "load_trained",
    "load_vocabulary",
    "loss",
    "MODELS",
    "MRNN_RECIPE",
    "smallest",
    "VOCABULARY_FILE",
]
