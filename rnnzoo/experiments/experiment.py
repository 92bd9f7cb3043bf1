"""An experiment and its runs: what `rnnzoo-reproduce` trains and reports.

Each `Experiment` expands, for a scale, into `Run`s (a `TrainConfig` plus
model options and the paper's number for that row); `run_experiment`
trains them one after another with `rnnzoo.training.loop.train` and writes a
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

from rnnzoo.training.loop import TrainConfig

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
