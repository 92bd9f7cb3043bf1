"""Sequence-to-sequence translation (rnn-critical-review §5.3; layer-wise §4.4, fig. 2).

`seq2seq` (`rnnzoo-train --model=seq2seq --corpus=gettext:fr`): Sutskever et al. (2014)'s
deep recurrent encoder-decoder on SentencePiece pieces:

- the encoder embeds the source pieces, reverses them (`ReversePadded`, on by default:
  `--reverse_source`) and runs `layers` stacked recurrent layers; each layer's final state
  starts the decoder layer of the same depth;
- the decoder reads BOS then the reference target (teacher forcing) and predicts the next
  piece with a softmax layer; padding is masked out of the loss and every metric;
- `--cell` picks the recurrent cell of both stacks: `lstm` (the paper's), `gru`, `rnn`
  (tanh), or rnnzoo's `mrnn` and `resrnn`;
- training maximises the log-likelihood of the reference translations through the shared
  loop (Adam or NAG, gradients clipped at norm 5 as layer-wise §4.4 does);
- evaluation decodes the test split with `rnnzoo.decoding.Translator` (greedy and beam search,
  §5.3) and scores it with sacrebleu's corpus BLEU and chrF (§5.2: higher is better), beside the
  per-piece test loss and perplexity (lower is better); for an English target (x->en) also
  METEOR (`rnnzoo.zoo.translation.meteor`, §5.2's other metric, needs nltk and WordNet);
- `--pretrain_steps` > 0 (cell `lstm`): greedy layer-wise LSTM-autoencoder pretraining of the
  encoder and decoder stacks (`rnnzoo.training.layerwise_pretraining`, layer-wise §3.5, fig. 2) on the
  embedded source and target sentences before supervised training.

Besides the checkpoints, the run directory (`rnnzoo.training.run_directory.RunDirectory`) keeps
`sentencepiece.model` (trained on the training split, reused on resume), which `rnnzoo-export`
needs beside the model and the `Seq2SeqConfig` that the run's state file records.
"""

import os

from rnnzoo.training import registry
from rnnzoo.zoo.translation.export import export_model_dir, export_translator
from rnnzoo.zoo.translation.model import (
    CELLS,
    EVAL_BATCH,
    METRICS,
    MODELS,
    RECIPE,
    TOKENIZER_FILE,
    build,
    build_model,
    check_config,
    decoding_metric,
    evaluate_model_dir,
    load_tokenizer,
    load_trained,
    loss,
    make_evaluate,
    make_translator,
    meteor_offered,
    parse_decodings,
    Seq2SeqConfig,
    target_language,
    token_loss,
    translate_all,
)


def smallest(directory):
    """The smallest seq2seq run: 16-unit LSTMs on 36 English-French pairs written into `directory`."""
    pairs = os.path.join(directory, "pairs.tsv")
    with open(pairs, "w", encoding="utf-8") as f:
        f.write("\n".join([f"the {c} file {n} is open\tle fichier {c} {n} est ouvert"
                           for n in ("one", "two", "three", "four") for c in ("red", "blue", "green")] * 3))
    return (dict(model="seq2seq", batch_size=8, optimizer="momentum", learning_rate=0.5),
            dict(corpus=pairs, vocab_size=40, units=16, embedding_dim=8, max_decode_length=12))


FAMILY = registry.register(
    registry.Family(
        name="seq2seq",
        models=MODELS,
        config_class=Seq2SeqConfig,
        build=build,
        evaluate=evaluate_model_dir,
        tasks=(),
        default_task=None,
        recipes={"seq2seq": RECIPE},
        export=export_model_dir,
        signatures=("translate",),
        default_signature="translate",
        smallest=smallest,
    )
)
"""The translation family; `recipes`: `RECIPE`."""

__all__ = [
    "build",
    "build_model",
    "CELLS",
    "check_config",
    "decoding_metric",
    "EVAL_BATCH",
    "evaluate_model_dir",
    "export_model_dir",
    "export_translator",
    "FAMILY",
    "load_tokenizer",
    "load_trained",
    "loss",
    "make_evaluate",
    "make_translator",
    "meteor_offered",
    "METRICS",
    "MODELS",
    "parse_decodings",
    "RECIPE",
    "Seq2SeqConfig",
    "smallest",
    "target_language",
    "token_loss",
    "TOKENIZER_FILE",
    "translate_all",
]
