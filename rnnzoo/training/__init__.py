"""The machinery every zoo family shares: the training loop, the run directory, the family
registry, the optimizer factory, evaluation, collapse detection, distribution and callbacks.

    from rnnzoo.training import TrainConfig, train
    metrics = train(TrainConfig(model="irnn", task="addition", seq_len=50, model_dir="/tmp/irnn"))

- `loop`: `TrainConfig`, `train`, `build_run`, `evaluate_checkpoint`.
- `registry`: `Family` (a family's one declaration) and `Built` (what its builder returns);
  families are found in `rnnzoo.zoo`, never listed by hand.
- `run_directory`: `RunDirectory`, a run directory's files (state, last and best checkpoints,
  metrics, the family's assets) and what they hold.
- `optimizer_factory`, `evaluation`, `degradation`, `position_weights`, `distribution`,
  `gradient_propagation` (a callback), `layerwise_pretraining` (layer-wise §3.5).

Modules load on use: `from rnnzoo.training import registry` does not import TensorFlow's
distribution machinery or any family.
"""


def __getattr__(name):
    if name in ("TrainConfig", "train", "build_run", "evaluate_checkpoint"):
        from rnnzoo.training import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'rnnzoo.training' has no attribute {name!r}")
