"""`rnnzoo-reproduce`: the papers' experiments, their resumable runner and their reports.

- `experiment`: `Experiment` and `Run`, what an experiment is at a scale.
- one module per paper: `thesis`, `longer_rnns`, `layerwise`, `sequence_to_sequence`, each
  declaring its `EXPERIMENTS`;
- `runner`: `run_experiment` (campaigns that resume, budgets, processes) and `EXPERIMENTS` by name;
- `report`: report.md, curves and results.json; `arm_figures`, `videos`: their pictures.
"""

from rnnzoo.experiments.experiment import SCALES, Experiment, Run
from rnnzoo.experiments.runner import EXPERIMENTS, experiment_names, get_experiment, run_experiment

__all__ = ["EXPERIMENTS", "SCALES", "Experiment", "Run", "experiment_names", "get_experiment", "run_experiment"]
