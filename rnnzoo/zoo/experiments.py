"""The papers' experiments as lists of training runs, at a small or the paper's scale.

Each `Experiment` expands, for a scale, into `Run`s (a `TrainConfig` plus
model options and the paper's number for that row); `run_experiment`
trains them one after another with `rnnzoo.zoo.training.train` and writes a
markdown report (ours vs the paper, seeds, wall time) with PNG curves. With
`resume` it continues the runs an earlier invocation left in progress, so an
experiment can take longer than a process lives.

`small` runs fit in about 15 minutes on an otherwise idle 2-core CPU: fewer
steps, shorter sequences or smaller networks where the paper's would not
fit; it shows whether the paper's direction holds, not the paper's numbers.
Most small experiments cap each run by its step count only, so their numbers
do not depend on what else the machine runs; the others (`time_budget_s`)
share a wall-clock budget. `medium` (thesis fig. 4.1 only) runs the paper's
network at one of its lengths with smaller batches, each run with its own
budget (hours on a CPU). `paper` uses the paper's sizes and step
counts (days on a CPU).
"""

import dataclasses
import gc
import glob
import json
import os
import time

import keras

from rnnzoo.zoo.checkpoint import STATE_FILE, Checkpointer
from rnnzoo.zoo.training import TrainConfig, resolve_config, train

SCALES = ("small", "medium", "paper")
PAPER_TRAIN_SIZE = {"train_size": 100_000}
"""Longer-rnns §5 and layer-wise §4.1: 100,000 training sequences generated beforehand."""
SMALL_BUDGET_S = 900.0
"""Time budget of a time-budgeted small-scale experiment, shared by its runs (see `run_experiment`)."""
MEDIUM_RUN_BUDGET_S = 600.0
"""Time budget per run (and seed) of a medium-scale experiment."""


@dataclasses.dataclass
class Run:
    """One training run of an experiment."""

    label: str
    config: TrainConfig
    options: dict = dataclasses.field(default_factory=dict)
    paper: str = ""
    """The paper's number (or claim) for this row."""
    metric: str = "test_error_rate"
    panel: str = ""
    """The figure panel the run is drawn in (e.g. its problem and length), with
    the runs it is compared with; the label's remainder names its curve."""


@dataclasses.dataclass
class Experiment:
    name: str
    title: str
    claim: str
    runs: callable
    """`runs(scale) -> [Run]`."""
    metric_name: str = "test error rate (paper's criterion)"
    differences: str = ""
    small_time_budget_s: float = SMALL_BUDGET_S
    """Wall-clock budget the small scale shares among the runs; 0: none, every run stops at its
    step count (or on success), so the numbers do not depend on the machine's load."""
    scales: tuple = ("small", "paper")
    """The scales `runs` accepts (of `SCALES`)."""
    illustrate: callable = None
    """Optional `illustrate(results, out_dir) -> [markdown lines]`: pictures the report shows
    (e.g. videos), written into `out_dir`."""
    detail_metrics: tuple = ()
    """Further metrics the report tabulates for every run that has them (final evaluation)."""


def _thesis_schedule(total_steps):
    """Thesis §7.4.2 learning-rate schedule, boundaries scaled to `total_steps` of 50,000."""
    boundaries = [1500, 3000, 6000, 30000]
    scale = total_steps / 50_000
    return (
        tuple(max(1, round(b * scale)) for b in boundaries),
        (3e-5, 3e-4, 3e-3, 1e-3, 1e-4),
    )


def _memorization_schedule(total_steps):
    """Thesis §7.4.2 for the memorisation problems, boundary scaled to `total_steps` of 50,000.

    The thesis gives only the requirement that the learning rate "be reduced
    to around 0.00001 fairly early on (after 1500 iterations)": the addition
    schedule's first phase (3e-5 for 1,500 iterations), then 1e-5 instead of
    the addition schedule's rise.
    """
    return (max(1, round(1500 * total_steps / 50_000)),), (3e-5, 1e-5)


def _table_7_3(scale):
    small = scale == "small"
    steps = 2000 if small else 50_000
    mu_boundary = max(1, round(4000 * steps / 50_000))
    # The last field: whether XLA makes the problem's step cheaper on a CPU
    # (benchmarks/results/campaign_steps.json: 1.7x cheaper on add and mul, 2x dearer on the
    # memorisation problems, whose softmax output at every step XLA compiles poorly).
    problems = [
        ("add T=80", "addition_thesis", 80, 100, {"nag": "0.011", "momentum": "0.250"}, True),
        ("mul T=80", "multiplication", 80, 100, {"nag": "0.270", "momentum": "0.340"}, True),
        ("mem-5 T=200", "memorization_5bit", 200, 32, {"nag": "0.025", "momentum": "0.180"},
         False),
        ("mem-20 T=50", "memorization_20bit", 50, 100, {"nag": "0.032", "momentum": "0.00006"},
         False),
    ]
    runs = []
    for label, task, seq_len, batch, paper, jit_compile in problems:
        schedule = _memorization_schedule if task.startswith("memorization") else _thesis_schedule
        lr_boundaries, lr_values = schedule(steps)
        for optimizer in ("nag", "momentum"):
            runs.append(Run(
                label=f"{label} {optimizer}",
                config=TrainConfig(
                    model="rnn", task=task, seq_len=seq_len, optimizer=optimizer,
                    lr_boundaries=lr_boundaries, lr_values=lr_values,
                    momentum_schedule="piecewise", momentum_boundaries=(mu_boundary,),
                    momentum_values=(0.9, 0.98), batch_size=batch, train_steps=steps,
                    eval_every=250 if small else 1000, test_size=1000 if small else 10_000,
                    early_stop=False, jit_compile=jit_compile,
                ),
                options={"units": 100},
                paper=paper[optimizer],
                panel=label,
            ))
    return runs


PATHOLOGICAL_PROBLEMS = (
    ("add", "addition_thesis"), ("mul", "multiplication"), ("xor", "xor"),
    ("temporal order", "temporal_order"), ("3-bit temporal order", "temporal_order_3bit"),
    ("random permutation", "random_permutation"), ("5-bit memorization", "memorization_5bit"),
    ("20-bit memorization", "memorization_20bit"),
)
"""Thesis §4.4's pathological problems 1-7 (the temporal order problem in its two variants)."""


_FIG_4_1_SCALES = {  # lengths, units, gradient batch, CG cap, HF iterations, test sequences
    "small": ((30, 50), 50, 1000, 60, 100, 1000),
    "medium": ((100,), 100, 1000, 300, 2000, 2000),
    "paper": ((30, 50, 100, 200), 100, 10_000, 300, 5000, 10_000),
}


def _fig_4_1(scale):
    lengths, units, batch, cg, steps, test = _FIG_4_1_SCALES[scale]
    runs = []
    for seq_len in lengths:
        for label, task in PATHOLOGICAL_PROBLEMS:
            # Thesis §4.4: lambda_0 = 0.1 with structural damping mu = 1/30, else 0.3;
            # x T for the random permutation problem's per-step targets (medium, paper).
            scaled = seq_len if task == "random_permutation" and scale != "small" else 1
            for structural, damping in ((0.0, 0.3), (1.0 / 30, 0.1)):
                runs.append(Run(
                    label=f"{label} T={seq_len} {'structural' if structural else 'Tikhonov only'}",
                    config=TrainConfig(
                        model="rnn", task=task, seq_len=seq_len, optimizer="hf",
                        hf_damping=damping * scaled, hf_structural_damping=structural,
                        hf_curvature_fraction=0.1, hf_max_cg_iterations=cg,
                        batch_size=batch, train_steps=steps, eval_every=10, test_size=test,
                    ),
                    options={"units": units},
                    paper=("fewer minibatches, fewer failures" if structural
                           else "more failures as T grows"),
                    panel=f"{label} T={seq_len}",
                    # Fig. 4.1 is about success, decided on whole sequences (thesis §4.4).
                    metric=("test_sequence_error_rate" if task.startswith("memorization")
                            else "test_error_rate"),
                ))
    return runs


def _longer_rnns_resrnn(scale):
    small = scale == "small"
    problems = (
        [("add T=100", "addition", 100), ("mul T=100", "multiplication_longer_rnns", 100)]
        if small else
        [("add T=400", "addition", 400), ("mul T=100", "multiplication_longer_rnns", 100),
         ("mul T=200", "multiplication_longer_rnns", 200)]
    )
    runs = []
    for label, task, seq_len in problems:
        for model in ("resrnn", "irnn"):
            runs.append(Run(
                label=f"{label} {model}",
                config=TrainConfig(
                    model=model, task=task, task_options=PAPER_TRAIN_SIZE, seq_len=seq_len,
                    optimizer="momentum",
                    learning_rate=1e-3, momentum=0.9, clip_norm=0.1, batch_size=16,
                    train_steps=8000 if small else 1_000_000, eval_every=500 if small else 5000,
                    test_size=1000 if small else 10_000, early_stop=False,
                    gradient_steps=((0, 1000, 5000) if small else (0, 25_000, 225_000))
                    if task == "addition" else (),
                ),
                options={"units": 100},
                paper="learns faster" if model == "resrnn" else "slower (long plateau)",
                metric="test_loss",
                panel=label,
            ))
    return runs


def _longer_rnns_vlirnn(scale):
    small = scale == "small"
    seq_len = 100 if small else 400
    base = dict(task="addition", task_options=PAPER_TRAIN_SIZE, seq_len=seq_len,
                learning_rate=1e-3, clip_norm=0.1,
                batch_size=16, train_steps=2500 if small else 1_800_000,
                eval_every=250 if small else 5000, test_size=1000 if small else 10_000,
                early_stop=False)
    return [
        Run(label="VL-iRNN SGD (no penalty)",
            config=TrainConfig(model="vlirnn", optimizer="sgd", **base),
            options={"units": 100, "num_scopes": 10, "penalty": 0.0},
            paper="learns first, then saturates high", metric="test_loss"),
        Run(label="VL-iRNN momentum + penalty",
            config=TrainConfig(model="vlirnn", optimizer="momentum", momentum=0.9, **base),
            options={"units": 100, "num_scopes": 10, "penalty": -1.0},
            paper="learns well (fig. 5)", metric="test_loss"),
        Run(label="iRNN SGD",
            config=TrainConfig(model="irnn", optimizer="sgd", **base),
            options={"units": 100}, paper="slow start, lower final loss", metric="test_loss"),
        Run(label="iRNN momentum",
            config=TrainConfig(model="irnn", optimizer="momentum", momentum=0.9, **base),
            options={"units": 100}, paper="best: faster, lower (fig. 5)", metric="test_loss"),
    ]


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


def _table_7_2_small(scale):
    small = scale == "small"
    steps = 40_000 if small else 600_000
    base = dict(model="deep_autoencoder", task="digits", batch_size=200, train_steps=steps,
                eval_every=2000 if small else 10_000, learning_rate=0.005, final_phase=0.1,
                early_stop=False)
    period = max(1, round(3125 * steps / 600_000))
    return [
        Run(label="NAG", config=TrainConfig(optimizer="nag", momentum_schedule="progression",
                                            momentum_period=period, **base),
            paper="0.730 (MNIST)", metric="reconstruction_error"),
        Run(label="momentum (0.99)",
            config=TrainConfig(optimizer="momentum", momentum_schedule="piecewise",
                               momentum_boundaries=tuple(period * 2**i for i in range(4)),
                               momentum_values=(0.8, 0.9, 0.95, 0.97, 0.99), **base),
            paper="0.770 (MNIST)", metric="reconstruction_error"),
        Run(label="momentum (0.9)",
            config=TrainConfig(optimizer="momentum", momentum_schedule="piecewise",
                               momentum_boundaries=(period,), momentum_values=(0.8, 0.9), **base),
            paper="0.990 (MNIST)", metric="reconstruction_error"),
        Run(label="HF",
            config=TrainConfig(**{**base, "optimizer": "hf", "batch_size": 1437 if small else 6000,
                                  "train_steps": 300 if small else 2000, "eval_every": 20,
                                  "final_phase": 0.0}),
            paper="0.780 (MNIST)", metric="reconstruction_error"),
    ]


def _fig_3_balls(scale):
    small = scale == "small"
    steps = 3000 if small else 100_000
    options = {"units": 100 if small else 400, "initial_cd_updates": 500 if small else 1000,
               "pretrain_steps": 300 if small else 1000}
    return [
        Run(label=model,
            config=TrainConfig(model=model, task="bouncing_balls", seq_len=100, optimizer="momentum",
                               momentum=0.9, learning_rate=0.01, batch_size=1, train_steps=steps,
                               eval_every=500 if small else 5000, test_size=10 if small else 100,
                               early_stop=False),
            options=options, paper=paper, metric="next_frame_mse", panel="bouncing balls")
        for model, paper in (("rtrbm", "0.007"), ("trbm", "0.04"))
    ]


def _illustrate_balls(results, out_dir):
    from rnnzoo.zoo.rtrbm import illustrate

    return illustrate(results, out_dir)


_FIG_6_2_SCALES = {  # units, (AHF/HF iterations, L-BFGS iterations) per task, DDN batch, horizons
    "small": (32, {"center_out": (40, 400), "postural": (25, 250), "ddn": (25, 250)}, 100,
              {"postural": 50}),
    "paper": (100, {"center_out": (2000, 20_000), "postural": (2000, 15_000),
                    "ddn": (2000, 25_000)}, 400, {}),
}
FIG_6_2_PAPER = {
    ("center_out", "ahf"): "8.96e-5", ("center_out", "hf"): "not reported",
    ("center_out", "lbfgs"): "9.29e-5",
    ("postural", "ahf"): "2.2e-2 (75k function calls)",
    ("postural", "lbfgs"): "2.3e-2 (15k function calls)",
    ("ddn", "ahf"): "9e-3 (100k function calls)", ("ddn", "lbfgs"): "2e-2 (25k function calls)",
}
"""Thesis fig. 6.2 and §6.7.1: mean final loss per reach (units not given)."""


def _fig_6_2(scale):
    """Centre-out with AHF, HF and L-BFGS, postural and DDN with AHF and L-BFGS (thesis §6.7).

    AHF and HF take at most 20 directions / CG steps per iteration; their Gauss-Newton products
    use every reach of the fixed centre-out and postural sets (the first tenth would be a few
    neighbouring targets) and a quarter of each fresh DDN batch. Iterations are capped per
    optimizer, L-BFGS getting 10x AHF's (its iterations cost about a tenth of AHF's at 5 directions,
    `benchmarks/results/arm_optimizers.json`).
    """
    units, iterations, ddn_batch, horizons = _FIG_6_2_SCALES[scale]
    small = scale == "small"
    runs = []
    for task, optimizers in (("center_out", ("ahf", "hf", "lbfgs")),
                             ("postural", ("ahf", "lbfgs")), ("ddn", ("ahf", "lbfgs"))):
        second_order, lbfgs = iterations[task]
        for optimizer in optimizers:
            steps = lbfgs if optimizer == "lbfgs" else second_order
            runs.append(Run(
                label=f"{task} {optimizer}",
                config=TrainConfig(
                    model="arm_controller", task=task, optimizer=optimizer,
                    seq_len=horizons.get(task), hf_max_cg_iterations=20 if small else 250,
                    hf_curvature_fraction=0.25 if task == "ddn" else 1.0,
                    batch_size=ddn_batch, test_size=200 if small else 400, train_steps=steps,
                    eval_every=max(1, steps // 10), early_stop=False,
                ),
                options={"units": units},
                paper=FIG_6_2_PAPER[(task, optimizer)],
                metric="test_loss",
                panel=task,
            ))
    return runs


def _illustrate_arm(results, out_dir):
    from rnnzoo.zoo.arm_figures import illustrate

    return illustrate(results, out_dir)


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


EXPERIMENTS = {e.name: e for e in [
    Experiment(
        "thesis_table_7_3", "Thesis table 7.3: NAG vs momentum on the pathological problems",
        "NAG reaches lower zero-one error than momentum on add/mul T=80 and mem-5 T=200; "
        "momentum is better on mem-20 T=50 (100 tanh units, ESN init radius 1.2, §7.4.2 "
        "schedules, 50,000 updates, mean of 10 seeds).",
        _table_7_3,
        small_time_budget_s=0.0,
        differences="small: 2,000 updates instead of 50,000 (the §7.4.2 schedules' "
                    "boundaries scaled by the same factor), 1 seed instead of 10, 1,000 test "
                    "sequences instead of 10,000. Both scales: the memorisation problems' "
                    "learning rate, for which the thesis states only that it was reduced to "
                    "about 1e-5 after 1,500 iterations, is 3e-5 (the addition schedule's first "
                    "phase) and then 1e-5. The error column is the thesis's: wrong test "
                    "sequences, and for the memorisation problems wrongly recalled symbols; "
                    "`solved` is decided on sequences (thesis §4.4: under 1% wrong).",
    ),
    Experiment(
        "thesis_fig_4_1", "Thesis fig. 4.1: HF with and without structural damping",
        "Structural damping lets HF solve the pathological problems with fewer minibatches and "
        "far fewer failures as T grows (fig. 4.1; no table).",
        _fig_4_1,
        small_time_budget_s=0.0,
        scales=SCALES,
        differences="small: T=30/50, 50 tanh units, HF iterations on 1,000 sequences "
                    "(curvature on 100), CG capped at 60 steps, at most 100 iterations "
                    "per run (no time budget), 1 seed, 1,000 test sequences; medium: T=100, the paper's 100 "
                    "units and CG cap of 300, HF iterations on 1,000 sequences (curvature on "
                    "100), at most 2,000 iterations and 600 s per run (on average: a run that solves early leaves its time to the later ones), 2,000 test sequences, "
                    "lambda_0 x T for the random permutation problem as in §4.4; the paper: 100 "
                    "units, T = 30 to 200, gradients on 10,000 sequences (curvature on 1,000), "
                    "CG capped at 300, up to 50,000 minibatches, several seeds. The 5-bit "
                    "memorisation problem samples its 32 sequences like the others instead of "
                    "using all of them per iteration. Variable-length problems are fed "
                    "padded to 11T/10 steps and masked (rnnzoo.data's padded datasets). "
                    "Success is the thesis's: under 1% of the test sequences wrong (for the "
                    "memorisation problems: sequences with any wrongly recalled symbol).",
    ),
    Experiment(
        "longer_rnns_resrnn", "Longer-rnns fig. 7-8: resRNN vs iRNN",
        "resRNN learns addition (T=400) and multiplication (T=100/200) faster than iRNN "
        "(SGD + momentum, clip 0.1, lr 1e-3, batch 16, 100 units); §6.9: the iRNN's "
        "per-time-step gradients soon vanish for early steps, the resRNN's stay balanced.",
        _longer_rnns_resrnn, metric_name="test MSE", small_time_budget_s=0.0,
        differences="small: T=100 for both problems and 8,000 steps per run, no time budget "
                    "(the paper: T=400 addition, hundreds of thousands of steps). Both "
                    "scales train on the paper's fixed set of 100,000 sequences (§5).",
    ),
    Experiment(
        "longer_rnns_vlirnn", "Longer-rnns fig. 2-5: VL-iRNN (10 scopes, §6.3 penalty) vs iRNN",
        "VL-iRNN with SGD learns first but saturates; with momentum (and the growing penalty) "
        "it learns well; iRNN with momentum is best (addition T=400).",
        _longer_rnns_vlirnn, metric_name="test MSE", small_time_budget_s=0.0,
        differences="small: T=100, 2,500 steps per run, no time budget (the paper: T=400, "
                    "1.8 million); the §6.3 penalty multiplier is still tiny there "
                    "(2e-6 x 1.001^67 = 2.1e-6). Both scales train on the paper's fixed "
                    "set of 100,000 sequences (§5).",
    ),
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
    Experiment(
        "thesis_table_7_2_small", "Thesis table 7.2 (small): deep autoencoder, NAG vs momentum vs HF",
        "NAG reaches the lowest training reconstruction error, then momentum capped at 0.99, "
        "HF close, momentum capped at 0.9 worst (MNIST: 0.73 / 0.77 / 0.78 / 0.99).",
        _table_7_2_small, metric_name="training squared error per image",
        differences="the 8x8 digits with a 64-100-50-25-6 autoencoder replace MNIST's "
                    "784-1000-500-250-30; small: 40,000 updates (schedules scaled from "
                    "600,000), 300 HF iterations; numbers are not comparable in absolute value.",
    ),
    Experiment(
        "thesis_fig_3_balls", "Thesis §3.11.1: RTRBM vs TRBM next-frame prediction on bouncing balls",
        "The RTRBM predicts the next frame of 3-ball 30 x 30 videos far better than the TRBM: mean "
        "squared error per pixel per frame 0.007 vs 0.04 (400 hidden units, 100,000 updates of one "
        "fresh 100-frame video each, CD-10 then CD-25, lr 0.01 decaying linearly to 0, momentum 0.9, "
        "W pretrained by static CD-5).",
        _fig_3_balls, metric_name="next-frame MSE per pixel", small_time_budget_s=0.0,
        illustrate=_illustrate_balls,
        differences="small: 100 hidden units instead of 400, 3,000 updates instead of 100,000 "
                    "(CD-10 for the first 500, then CD-25; the learning rate decays linearly to 0 "
                    "over the 3,000), 300 static CD-5 pretraining updates of 100 frames each on 30 "
                    "videos, 10 test videos; no time budget. Both scales: the thesis does not say "
                    "how its prediction's expectation is taken; ours (docs/rtrbm.md): r_{t-1} from "
                    "the true frames 1..t-1, 25 Gibbs steps in frame t's RBM started at frame "
                    "t-1, the prediction E[v_t | h] of the last step (one chain). The TRBM predicts "
                    "with the same mean-field history as the RTRBM; it differs in training "
                    "(sampled history, no backpropagation through time).",
    ),
]}


EXPERIMENTS["thesis_fig_6_2"] = Experiment(
    "thesis_fig_6_2",
    "Thesis fig. 6.2: learning to control a two-joint arm (AHF, HF, L-BFGS vs iLQR)",
    "On centre-out reaching (64 targets, T = 40) the recurrent controller trained by augmented "
    "Hessian-free reaches a mean final loss per reach of 8.96e-5, as low as iLQR optimising each "
    "reach's torques (8.95e-5), and lower than L-BFGS (9.29e-5); on the postural task AHF 2.2e-2 "
    "vs L-BFGS 2.3e-2 and on DDN 9e-3 vs 2e-2 (thesis §6.7, two tanh layers of 100 units).",
    _fig_6_2, metric_name="mean test loss per reach (thesis's loss)", small_time_budget_s=0.0,
    illustrate=_illustrate_arm,
    differences="small: 32 + 32 tanh units instead of 100 + 100; 40 AHF / HF iterations and 400 "
                "L-BFGS iterations on centre-out, 25 and 250 on postural and DDN (the thesis "
                "runs to convergence, tens of thousands of function calls); at most 20 AHF "
                "directions / HF CG steps per iteration; postural with T = 50 instead of 100 "
                "(delay 10, velocity cost after step 25, its 72 cases); DDN on fresh batches of "
                "100 reaches instead of 400 (curvature on 25), tested on 200 fixed reaches; no "
                "time budget, every run stops at its step count. Both scales: the arm's "
                "constants are Li & Todorov's (2004; the thesis does not list its monkey-limb "
                "ones), the centre-out targets lie 0.10 m from the start hand position, the "
                "postural forces are 2 N, DDN's disturbances N(0, 0.2^2) N m and torque noise "
                "10% (docs/arm_control.md): absolute losses are not comparable with the "
                "thesis's, the ordering is. HF is Martens's with Tikhonov damping only "
                "(lambda_0 = 1; structural damping does not apply to the closed loop). iLQR "
                "runs per reach on the same test reaches, at most 100 iterations.",
)


EXPERIMENTS["translation_small"] = Experiment(
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
)


def experiment_names():
    return sorted(EXPERIMENTS)


def get_experiment(name):
    if name not in EXPERIMENTS:
        raise ValueError(
            f"Unknown experiment {name!r}; choose one of: {', '.join(experiment_names())}."
        )
    return EXPERIMENTS[name]


def run_experiment(name, scale="small", output_dir="reproduce", work_dir=None, seeds=(0,),
                   verbose=2, time_budget_s=None, jobs=1, resume=False):
    """Trains every run of experiment `name` once per seed and writes `report.md`,
    `curves.png` and `results.json` (see `rnnzoo.zoo.report`).

    The report is rewritten whenever a run finishes and when the invocation
    ends, with each run's steps done of planned and its CPU time, so a
    campaign longer than one process shows where it stands at any time.

    Args:
        seeds: the seeds of every run (data and weights); the report gives each
            row's mean, range and success count over them.
        time_budget_s: training seconds of this invocation shared by the runs it
            trains (default: `SMALL_BUDGET_S` for `small`, `MEDIUM_RUN_BUDGET_S`
            per run and seed to train for `medium`, none for `paper`). A run
            starting gets what is left of it (less what the runs in progress
            were given) divided by the runs still to start, so a run that stops
            early (on success or at its step count) leaves its time to the later
            ones; once it is spent no further run starts, and the runs it stopped
            or never started stay in progress for `resume`. With `jobs` runs at a
            time the wall time is about `time_budget_s / jobs`.
        jobs: runs trained at a time, each in a process of its own with
            `os.cpu_count() // jobs` threads (1: one after another in this
            process). Step-capped runs give the same numbers either way.
        resume: continue the runs kept in the work dir (default
            `<output_dir>/<name>/runs`, so committing `<output_dir>/<name>`
            commits them): a finished run (its step count reached, solved with
            early stopping, diverged or degraded) is not trained again and
            costs no budget, the others resume from their last checkpoint (or
            start). Without it, a work dir that already holds runs is
            refused, so runs of two invocations are never mixed unnoticed.

    Returns:
        The path of the markdown report.
    """
    experiment = get_experiment(name)
    if scale not in experiment.scales:
        raise ValueError(
            f"Experiment {name!r} has no scale {scale!r}; choose one of: "
            f"{', '.join(experiment.scales)}."
        )
    seeds = tuple(seeds)
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(f"seeds={seeds!r} must be distinct non-negative integers, e.g. (0, 1, 2).")
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs={jobs!r} must be a positive integer (runs trained at a time), e.g. 2.")
    planned = [(index, run, seed) for index, run in enumerate(experiment.runs(scale)) for seed in seeds]
    out = os.path.join(output_dir, name)
    work_dir = work_dir or os.path.join(out, "runs")
    held = sorted(glob.glob(os.path.join(glob.escape(work_dir), "*", STATE_FILE)))
    if held and not resume:
        raise ValueError(
            f"{work_dir!r} already holds runs of experiment {name!r} (e.g. "
            f"{os.path.dirname(held[0])!r}); pass --resume to continue them, or another "
            "--output_dir (or --work_dir) to start afresh."
        )
    os.makedirs(out, exist_ok=True)
    _ignore_event_files(out, work_dir)
    configs = [
        dataclasses.replace(run.config, seed=seed, verbose=verbose,
                            model_dir=os.path.join(work_dir, f"{index:02d}_seed{seed}"))
        for index, run, seed in planned
    ]
    results = []
    for (_, run, seed), config in zip(planned, configs):
        _check_same_run(config, scale)
        metrics = _saved_progress(config.model_dir)
        results.append({"label": run.label, "panel": run.panel, "seed": seed,
                        "paper": run.paper, "metric": run.metric,
                        "config": dataclasses.asdict(config), "options": run.options,
                        "metrics": metrics, "in_progress": not _finished(config, metrics)})
    to_train = [position for position, result in enumerate(results) if result["in_progress"]]
    if len(to_train) < len(results):
        print(f"[{name}] {len(results) - len(to_train)} of {len(results)} runs finished before; "
              "they are not trained again", flush=True)
    if time_budget_s is None:
        time_budget_s = {"small": experiment.small_time_budget_s,
                         "medium": MEDIUM_RUN_BUDGET_S * len(to_train)}.get(scale, 0.0)
    campaign = _Campaign(experiment, scale, planned, configs, results,
                         _Budget(time_budget_s, len(to_train)), out, jobs)
    if jobs == 1:
        _train_here(campaign, to_train)
    else:
        _train_in_processes(campaign, to_train, jobs)
    return campaign.write_report()


_INVOCATION_FIELDS = ("model_dir", "verbose", "max_seconds", "train_steps", "jit_compile")
"""`TrainConfig` fields a resumed run may change: where, how verbosely and how compiled it runs,
its budget, and its step count (a longer run continues training)."""


def _check_same_run(config, scale):
    """Raises a ValueError if `config.model_dir` holds a run trained with other settings (e.g. of
    another scale: `train` itself only checks model, task, length and seed)."""
    state = Checkpointer(config.model_dir).state()
    if state is None:
        return
    planned = json.loads(json.dumps(dataclasses.asdict(resolve_config(config))))
    different = {name: (state["config"][name], value) for name, value in planned.items()
                 if name not in _INVOCATION_FIELDS and name in state["config"]
                 and state["config"][name] != value}
    if different:
        details = ", ".join(f"{name}: saved {saved!r}, --scale={scale} gives {value!r}"
                            for name, (saved, value) in different.items())
        raise ValueError(
            f"{config.model_dir!r} holds a run with other settings ({details}); pass the --scale "
            "and seeds it was started with, or another --output_dir."
        )


def _finished(config, metrics):
    """Whether a run with `metrics` (`_saved_progress`) is done: it reached `config.train_steps`,
    met its success criterion with early stopping on, diverged, or degraded with
    `stop_when_degraded` on (without it a degraded run goes on, and may recover).

    Diverged and stopped degraded runs are outcomes the report shows; continuing one (with a
    lower learning rate, say) is a person's decision, which `rnnzoo-train` on its `model_dir` allows.
    """
    return bool(metrics.get("diverged") or (metrics.get("degraded") and config.stop_when_degraded)
                or metrics["step"] >= config.train_steps
                or (config.early_stop and metrics.get("success")))


def _saved_progress(model_dir):
    """The `metrics.json` of the run in `model_dir`; for a run not evaluated yet the step, times
    and history of its checkpoint, or zeros for one not started, so the report shows every run's
    progress."""
    checkpointer = Checkpointer(model_dir)
    metrics = checkpointer.metrics()
    if metrics is not None:
        return metrics
    state = checkpointer.state() or {}
    return {"step": state.get("step", 0), "wall_time_s": state.get("wall_time_s", 0.0),
            "cpu_seconds": state.get("cpu_seconds", 0.0), "history": state.get("history", [])}


def _ignore_event_files(out, work_dir):
    """Writes `out/.gitignore` leaving the runs' TensorBoard event files (a copy of
    `metrics.json`'s history, appended to at every evaluation) and the temporary files of saves a
    killed process left behind out of git, so `git add <out>` commits the report and the runs'
    resumable state. Nothing when the work dir is outside `out`, or `out` has a `.gitignore`."""
    runs = os.path.relpath(work_dir, out)
    path = os.path.join(out, ".gitignore")
    if runs.startswith(os.pardir) or os.path.exists(path):
        return
    with open(path, "w") as f:
        f.write(f"{runs}/*/tensorboard/\n{runs}/*/.tmp-*\n")


class _Campaign:
    """The runs of one `run_experiment` invocation: their budget, results and report."""

    def __init__(self, experiment, scale, planned, configs, results, budget, out, jobs):
        self.experiment, self.scale, self.out, self.jobs = experiment, scale, out, jobs
        self.planned, self.configs, self.results, self.budget = planned, configs, results, budget
        self.time_budget_s = budget.total_s
        self.started = time.monotonic()

    def start(self, position):
        """The config of run `position`, which starts now, with its share of the budget."""
        _, run, seed = self.planned[position]
        done = self.results[position]["metrics"]["step"]
        print(f"[{self.experiment.name}] {run.label} (seed {seed})"
              + (f", from step {done:,}" if done else ""), flush=True)
        return dataclasses.replace(self.configs[position], max_seconds=self.budget.start())

    def finish(self, position, config, metrics, took_s):
        """Records what run `position` (trained with `config` for `took_s` seconds) reached and
        rewrites the report."""
        self.budget.finish(config.max_seconds, took_s)
        self.results[position].update(config=dataclasses.asdict(config), metrics=metrics,
                                      in_progress=not _finished(config, metrics))
        self.write_report()

    def write_report(self):
        """Writes `results.json` and the report (`rnnzoo.zoo.report.write_report`); returns its path."""
        from rnnzoo.zoo.report import write_report

        with open(os.path.join(self.out, "results.json"), "w") as f:
            json.dump(self.results, f, indent=2)
        return write_report(self.experiment, self.scale, self.results, time.monotonic() - self.started,
                            self.out, self.time_budget_s, self.jobs)


class _Budget:
    """Splits `total_s` training seconds over `runs` runs as they start (0: no budget)."""

    def __init__(self, total_s, runs):
        self.total_s = total_s
        self.left_s, self.to_start = total_s, runs
        self.unlimited = not total_s

    def spent(self):
        """True once the runs given time have used it all: no further run starts."""
        return not self.unlimited and self.left_s <= 0

    def start(self):
        """The seconds of the run starting now; call `finish` with what it took."""
        self.to_start -= 1
        if self.unlimited:
            return 0.0
        given = max(self.left_s, 1.0) / (self.to_start + 1)
        self.left_s -= given
        return given

    def finish(self, given_s, took_s):
        self.left_s += given_s - took_s


def _train_here(campaign, positions):
    """Trains the runs at `positions` one after another in this process, while budget is left."""
    for position in positions:
        if campaign.budget.spent():
            return
        # Each run starts from a clean Keras state: tracing a Hessian-free step
        # beside many earlier runs' graphs took up to 8x longer (45 s vs 6 s).
        keras.backend.clear_session()
        gc.collect()
        config = campaign.start(position)
        run_started = time.monotonic()
        metrics = train(config, **campaign.planned[position][1].options)
        campaign.finish(position, config, metrics, time.monotonic() - run_started)


def _train_in_processes(campaign, positions, jobs):
    """Trains the runs at `positions`, up to `jobs` at a time, each in a fresh process, while
    budget is left."""
    import concurrent.futures
    import multiprocessing

    threads = max(1, (os.cpu_count() or 1) // jobs)
    running = {}
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
        max_tasks_per_child=1,
    ) as pool:
        pending = list(positions)
        while running or (pending and not campaign.budget.spent()):
            while pending and len(running) < jobs and not campaign.budget.spent():
                position = pending.pop(0)
                config = campaign.start(position)
                options = campaign.planned[position][1].options
                future = pool.submit(_train_in_process, config, options, threads)
                running[future] = (position, config, time.monotonic())
            finished, _ = concurrent.futures.wait(
                running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in finished:
                position, config, run_started = running.pop(future)
                campaign.finish(position, config, future.result(), time.monotonic() - run_started)


def _train_in_process(config, options, threads):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    return train(config, **options)
