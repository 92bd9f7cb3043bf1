"""Sequence to sequence (rnn-critical-review §5.3): source order, beam width, layer-wise
pretraining."""

from rnnzoo.experiments.experiment import Experiment, Run
from rnnzoo.training.loop import TrainConfig


TRANSLATION_DECODINGS = ((1, 0.0), (2, 0.0), (4, 0.0), (12, 0.0), (2, 0.6), (4, 0.6), (12, 0.6))
"""Greedy and beams 2/4/12 without and with the GNMT length penalty (alpha 0.6)."""


def _translation_small(scale):
    """Sutskever et al. (2014) as rnn-critical-review §5.3 tells it, on gettext en->fr.

    Every run trains the same 2-layer LSTM seq2seq for the same number of steps; the runs differ
    only in the source order and, for the layer-wise run, in pretraining each LSTM as an autoencoder
    first (layer-wise §3.5, fig. 2), on top of the same steps. The reversed-source run also decodes
    its test sentences with every `TRANSLATION_DECODINGS` entry (one trained model, §5.3's beam
    widths). `small` trains and tests on the pairs of at most 16 pieces a side (about 43% of them)
    with a narrower model (2 x 128 LSTMs, 1,000 pieces) and Adam at 1e-2 on batches of 64, 1,200
    steps, so that its models translate short sentences within a few minutes; `paper` trains the
    default model (2 x 256, 4,000 pieces, every length) 20,000 steps.
    """
    small = scale == "small"
    config = TrainConfig(model="seq2seq", optimizer="adam", learning_rate=1e-2 if small else 1e-3,
                         clip_norm=5.0, batch_size=64 if small else 100,
                         train_steps=1200 if small else 20_000, eval_every=400 if small else 2000,
                         early_stop=False)
    common = {"corpus": "gettext:fr", "eval_sentences": 300 if small else 0}
    if small:
        common.update(units=128, embedding_dim=128, vocab_size=1000, max_tokens=16, test_max_tokens=16)
    decodings = ",".join(f"{width}:{alpha:g}" for width, alpha in TRANSLATION_DECODINGS)
    return [
        Run(label="reversed source", config=config,
            options={**common, "reverse_source": True, "eval_decodings": decodings},
            paper="30.6 BLEU (reversed) vs 25.9 (forward); beam 2 gives most of beam 12's gain",
            metric="bleu"),
        Run(label="forward source", config=config, options={**common, "reverse_source": False},
            paper="25.9 BLEU, test perplexity 5.8 vs 4.7 reversed", metric="bleu"),
        Run(label="reversed source, layer-wise pretraining", config=config,
            options={**common, "reverse_source": True, "pretrain_steps": 100 if small else 1000},
            paper="layer-wise: pretraining lowers the error (tables 1-2; not tested on translation)",
            metric="bleu"),
    ]


EXPERIMENTS = (
    Experiment(
        "translation_small", "Sequence to sequence (rnn-critical-review §5.3): source order, beam width, "
        "layer-wise pretraining",
        "Reversing the source raises BLEU (Sutskever et al. 2014: 25.9 -> 30.6 on WMT'14 en->fr, "
        "perplexity 5.8 -> 4.7); beam search beats greedy decoding and a beam of 2 gives most of "
        "the benefit of 12; layer-wise LSTM-autoencoder pretraining helps deep LSTMs (layer-wise paper).",
        _translation_small,
        metric_name="test BLEU (beam 4, alpha 0.6; higher is better)",
        small_time_budget_s=0.0,
        detail_metrics=("bleu_greedy", "chrf", "token_perplexity", *(
            f"bleu_beam{width}_alpha{alpha:g}" for width, alpha in TRANSLATION_DECODINGS)),
        differences="gettext en->fr (about 19,900 pairs of UI messages from the system's catalogs) "
                    "replaces WMT'14 (12M pairs); 2 x 128 LSTMs over 1,000 shared SentencePiece pieces "
                    "(small; the default model is 2 x 256 over 4,000) replace 4 x 1000 LSTMs over "
                    "160k/80k words. small: only the pairs of at most 16 pieces a side, in training "
                    "(8,638 pairs) and in the test (479 pairs, of which the first 300 are decoded for "
                    "BLEU; the test loss is over all 479): short UI messages, which a small model "
                    "learns to translate in minutes (on every length, 1,200 steps of 32 pairs left it "
                    "under BLEU 1); 1,200 Adam "
                    "steps (learning rate 1e-2) of 64 pairs per run (about 9 epochs of the short "
                    "pairs; the same for every run; no time budget); the table's decoding variants all "
                    "decode the same 300 sentences with the reversed-source run's final model, not "
                    "retrained per variant; the layer-wise run pretrains each of the 4 LSTMs for 100 "
                    "batches before its 1,200 steps. BLEU is sacrebleu's detokenised corpus BLEU, not "
                    "the paper's tokenised BLEU; numbers are not comparable in absolute value.",
    ),
)
