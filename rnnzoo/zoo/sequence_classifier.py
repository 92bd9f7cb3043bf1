"""Stacked-LSTM sequence models with or without greedy layer-wise pretraining.

Layer-wise paper §3.5 / fig. 1 and §4.1-4.2: `layers` LSTMs of `units`
each, weights drawn from U[-init_scale, init_scale] (§4.2: U[-0.003,
0.003]), and a linear output layer on the top layer's last hidden state
(or on every step for per-step tasks).

- `layerwise_lstm`: each LSTM first pretrained as the encoder of an
  LSTM autoencoder over the frozen lower layers
  (`rnnzoo.training.layerwise_pretraining`), then everything fine-tuned.
- `deep_lstm`: the same network from its random initialisation (the
  paper's baseline, "Random initialized").
"""

import dataclasses

import keras

from rnnzoo.model import Model
from rnnzoo.export import predict
from rnnzoo.training import evaluation, layerwise_pretraining, registry
from rnnzoo.zoo.pathological import task_loss, test_dataset

MODELS = ("layerwise_lstm", "deep_lstm")

PAPER_PRETRAINING_EXAMPLES = 100_000
"""§4.1: the adding problem's training set; one pretraining epoch covers it once."""


@dataclasses.dataclass
class SequenceClassifierConfig:
    """Hyperparameters of the stacked LSTMs.

    Attributes:
        units: LSTM units per layer (§4.2: 256).
        layers: number of stacked LSTMs (tables 1-2: 1 to 3).
        init_scale: a of the U[-a, a] initialisation (§4.2: 0.003).
        pretrain_steps: autoencoder batches per layer; 0 means one epoch of
            the training set (finite data), or of the paper's 100,000
            training sequences for generated problems (§4.1).
    """

    units: int = 64
    layers: int = 2
    init_scale: float = 0.003
    pretrain_steps: int = 0


def pretraining_steps(config, task, batch_size):
    if config.pretrain_steps:
        return config.pretrain_steps
    examples = task.train_size or PAPER_PRETRAINING_EXAMPLES
    return max(1, examples // batch_size)


def build(model_name, config, train_config):
    """`Built` stacked LSTM of `model_name` on `train_config.task`."""
    if config.layers < 1 or config.units < 1 or not config.init_scale > 0:
        raise ValueError(
            f"layers={config.layers}, units={config.units}, init_scale={config.init_scale}: "
            "layers and units must be >= 1 and init_scale > 0 (e.g. 0.003)."
        )
    task = train_config.make_task()
    initializer = keras.initializers.RandomUniform(-config.init_scale, config.init_scale)
    lstms = [
        keras.layers.LSTM(
            config.units,
            return_sequences=True,
            return_state=True,
            kernel_initializer=initializer,
            recurrent_initializer=initializer,
            name=f"lstm_{i + 1}",
        )
        for i in range(config.layers)
    ]
    inputs = keras.Input((task.time_steps, task.input_dim), name="inputs")
    hidden = inputs
    for lstm in lstms:
        sequence, last, _ = lstm(hidden)
        hidden = sequence
    top = sequence if task.return_sequences else last
    outputs = keras.layers.Dense(task.output_dim, kernel_initializer=initializer, name="output")(top)
    model = Model(inputs, outputs, name=f"{model_name}_{task.name}")

    pretrain = None
    if model_name == "layerwise_lstm":
        from rnnzoo.training.optimizer_factory import make_optimizer

        steps = pretraining_steps(config, task, train_config.batch_size)

        def pretrain(model, train_config):
            stats = layerwise_pretraining.pretrain(
                [model.get_layer(f"lstm_{i + 1}") for i in range(config.layers)],
                (task.time_steps, task.input_dim),
                task.train_dataset(train_config.batch_size),
                lambda: make_optimizer(train_config),
                steps,
                initializer,
                verbose=1 if train_config.verbose == 1 else 0,
            )
            return {"layers": stats}

    metrics, success = evaluation.task_metrics(task)
    return registry.Built(
        model=model,
        loss=task_loss(task),
        train_dataset=task.train_dataset(train_config.batch_size),
        test_dataset=test_dataset(task, train_config),
        metrics=metrics,
        success=success,
        pretrain=pretrain,
        description=(
            f"{model_name}: {config.layers} x LSTM({config.units}) on {task.name}: {task.reference}"
        ),
    )


FAMILY = registry.register(
    registry.Family(
        name="sequence_classifier", models=MODELS, config_class=SequenceClassifierConfig,
        build=build, export=predict.export_run, signatures=("predict",),
        smallest=lambda directory: (
            dict(model="deep_lstm", task="digits", batch_size=16, optimizer="momentum"),
            dict(units=8, layers=2)),
    )
)
