"""Greedy layer-wise LSTM pretraining experiments: tables 1 and 2."""

from rnnzoo.experiments.experiment import Experiment, Run, PAPER_TRAIN_SIZE
from rnnzoo.training.loop import TrainConfig


_TABLE_1 = {(1, "deep_lstm"): "6.2%", (1, "layerwise_lstm"): "5.3%",
            (2, "deep_lstm"): "5.6%", (2, "layerwise_lstm"): "4.8%",
            (3, "deep_lstm"): "5.7%", (3, "layerwise_lstm"): "4.8%"}
_TABLE_2 = {(1, "deep_lstm"): "0.89%", (1, "layerwise_lstm"): "0.76%",
            (2, "deep_lstm"): "0.75%", (2, "layerwise_lstm"): "0.62%",
            (3, "deep_lstm"): "0.80%", (3, "layerwise_lstm"): "0.60%"}


def _layerwise_runs(config, options, papers):
    """Random vs layer-wise rows for 1-3 layers, one panel per depth.

    `config(model)` gives the run's `TrainConfig`, `options(layers)` its model
    options, `papers[(layers, model)]` the paper's number.
    """
    runs = []
    for layers in (1, 2, 3):
        depth = f"{layers} layer{'s' if layers > 1 else ''}"
        for model in ("deep_lstm", "layerwise_lstm"):
            runs.append(Run(
                label=f"{depth} {'layer-wise' if model == 'layerwise_lstm' else 'random'}",
                config=config(model), options=options(layers),
                paper=papers[(layers, model)], panel=depth,
            ))
    return runs


def _layerwise_adding(scale):
    small = scale == "small"
    return _layerwise_runs(
        lambda model: TrainConfig(
            model=model, task="addition_layerwise", task_options=PAPER_TRAIN_SIZE,
            seq_len=50 if small else 200,
            optimizer="adam", learning_rate=1e-3, clip_norm=5.0, batch_size=50,
            train_steps=4000 if small else 20_000, eval_every=250 if small else 1000,
            test_size=1000 if small else 10_000, early_stop=False,
        ),
        lambda layers: {"units": 32 if small else 256, "layers": layers, "init_scale": 0.05,
                        "pretrain_steps": 200 if small else 0},
        _TABLE_1,
    )


def _layerwise_digits(scale):
    small = scale == "small"
    return _layerwise_runs(
        lambda model: TrainConfig(
            model=model, task="digits", task_options={"binarize": True},
            optimizer="adam", learning_rate=3e-3,
            clip_norm=5.0, batch_size=50, train_steps=1500 if small else 10_000,
            eval_every=100, early_stop=False,
        ),
        lambda layers: {"units": 64 if small else 256, "layers": layers, "init_scale": 0.003},
        {key: f"{value} (MNIST)" for key, value in _TABLE_2.items()},
    )


EXPERIMENTS = (
    Experiment(
        "layerwise_adding", "Layer-wise table 1: random vs layer-wise LSTMs on adding",
        "Layer-wise pretraining lowers the error (|error| > 0.04) for 1-3 layers at T=200.",
        _layerwise_adding,
        small_time_budget_s=0.0,
        differences="small: T=50, 32 units, 4,000 fine-tuning steps of 50 sequences per run "
                    "(no time budget), 200 pretraining batches per layer, U[-0.05, 0.05] "
                    "(U[-0.003, 0.003] barely moves in so few steps); the paper: T=200. Both "
                    "scales train on the paper's fixed set of 100,000 sequences (§4.1).",
    ),
    Experiment(
        "layerwise_digits", "Layer-wise table 2 protocol on the 8x8 digits",
        "Layer-wise pretraining lowers the test error for 1-3 layers (MNIST, 256 units).",
        _layerwise_digits,
        differences="the 8x8 digits (1,437 train / 360 test images, binarised at half "
                    "intensity as the paper binarises MNIST) replace MNIST, 64 units, 1,500 "
                    "steps; one pretraining epoch is 28 batches.",
    ),
)
