"""One-layer recurrent regressors and classifiers for the papers' sequence problems.

Models (`--model`), each one recurrent layer and a linear output layer read
at the last step (or at every step for per-step tasks):

- `rnn`: tanh RNN with the ESN-inspired initialisation of thesis §7.4.1:
  recurrent weights sparse (15 incoming N(0, 1) weights per unit) rescaled
  to spectral radius 1.2, input weights sparse scaled by 0.02 (addition,
  multiplication, XOR) or 0.3 (memorisation and the symbol problems).
- `irnn`: ReLU RNN with identity recurrent weights, zero biases and
  N(0, 0.001^2) input weights (Le et al. 2015, as used by longer-rnns §6).
- `resrnn`: residual RNN (longer-rnns §3, zero-initialised).
- `vlirnn`: VL-iRNN, an iRNN with `num_scopes` untied time scopes and the
  tying penalty of longer-rnns §2 with the schedule of §6.3.
- `mrnn`: multiplicative RNN (thesis eq. 5.4-5.7).
- `lstm`: Keras's LSTM.

Outputs are linear and the losses match them (mean squared error;
softmax cross-entropy from logits), so every optimizer, Hessian-free
included, trains them (thesis §4.2.2).

Variable-length problems (thesis §4.4.1, T' ~ i[T, 11T/10] per sequence)
are fed padded to 11T/10 steps behind a `keras.layers.Masking` layer, which
makes the recurrence skip the padding exactly; every batch then has one
static length, which Hessian-free needs to unroll Keras's layers in forward
mode.
"""

import dataclasses
import math

import keras

from rnnzoo.data import REGRESSION
from rnnzoo.initializers import Sparse, SpectralRadius
from rnnzoo.layers import MRNN, ResRNN, ScopedRNN, paper_penalty_schedule
from rnnzoo.model import Model
from rnnzoo.export import predict
from rnnzoo.training import evaluation, registry

MODELS = ("rnn", "irnn", "resrnn", "vlirnn", "mrnn", "lstm")

_SMALL_INPUT_SCALE_TASKS = ("addition", "multiplication", "xor")
"""Thesis §7.4.1: input weights x0.02 for these, x0.3 for the memorisation problems."""


@dataclasses.dataclass
class RecurrentConfig:
    """Hyperparameters of the one-layer recurrent models.

    Attributes:
        units: hidden units (100 in thesis §7.4 and longer-rnns §6).
        spectral_radius: `rnn`: spectral radius of the sparse recurrent
            weights (thesis §7.4.1: 1.2).
        input_scale: `rnn`: scale of the sparse input weights; 0 picks the
            thesis's value for the task (0.02 or 0.3).
        num_scopes: `vlirnn`: number of untied time scopes (longer-rnns §6.1: 10).
        penalty: `vlirnn`: tying penalty rho; negative uses the §6.3 schedule.
        factors: `mrnn`: number of factors; 0 means `units`.
        unroll: unroll the recurrence (faster for short sequences).
    """

    units: int = 100
    spectral_radius: float = 1.2
    input_scale: float = 0.0
    num_scopes: int = 10
    penalty: float = -1.0
    factors: int = 0
    unroll: bool = False


def thesis_input_scale(task_name):
    """Thesis §7.4.1: 0.02 for the addition/multiplication family, else 0.3."""
    return 0.02 if task_name.startswith(_SMALL_INPUT_SCALE_TASKS) else 0.3


def recurrent_layer(model_name, config, task, return_sequences):
    """The recurrent layer of `model_name` for `task` (see the module docstring)."""
    common = {"return_sequences": return_sequences, "unroll": config.unroll}
    units = config.units
    if model_name == "rnn":
        scale = config.input_scale or thesis_input_scale(task.name)
        return keras.layers.SimpleRNN(
            units,
            activation="tanh",
            kernel_initializer=Sparse(15, scale=scale),
            recurrent_initializer=SpectralRadius(Sparse(15), config.spectral_radius),
            name="rnn",
            **common,
        )
    if model_name == "irnn":
        return keras.layers.SimpleRNN(
            units,
            activation="relu",
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.001),
            recurrent_initializer="identity",
            name="irnn",
            **common,
        )
    if model_name == "resrnn":
        return ResRNN(units, name="resrnn", **common)
    if model_name == "vlirnn":
        scope_length = math.ceil(task.seq_len / config.num_scopes)
        penalty = paper_penalty_schedule() if config.penalty < 0 else config.penalty
        return ScopedRNN(
            units,
            num_scopes=config.num_scopes,
            scope_length=scope_length,
            penalty=penalty,
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.001),
            name="vlirnn",
            **common,
        )
    if model_name == "mrnn":
        return MRNN(units, factors=config.factors or units, name="mrnn", **common)
    if model_name == "lstm":
        return keras.layers.LSTM(units, name="lstm", **common)
    raise ValueError(f"Unknown model {model_name!r}; choose one of: {', '.join(MODELS)}.")


def task_loss(task):
    """The loss matching the linear output layer for `task`."""
    if task.output_kind == REGRESSION:
        return keras.losses.MeanSquaredError()
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def test_dataset(task, train_config, padded=False):
    size = train_config.test_size or None
    return task.test_dataset(batch_size=min(1000, size or 1000), size=size, padded=padded)


def padded_inputs(task):
    """`(inputs, masked)`: a `keras.Input` of `task.max_time_steps` steps and, for a
    variable-length task, a `Masking` layer over it that hides the padding."""
    inputs = keras.Input((task.max_time_steps, task.input_dim), name="inputs")
    if task.time_steps is not None:
        return inputs, inputs
    return inputs, keras.layers.Masking(task.pad_value, name="padding")(inputs)


def build(model_name, config, train_config):
    """`Built` model and data of `model_name` on `train_config.task`."""
    task = train_config.make_task()
    inputs, masked = padded_inputs(task)
    hidden = recurrent_layer(model_name, config, task, task.return_sequences)(masked)
    outputs = keras.layers.Dense(task.output_dim, name="output")(hidden)
    model = Model(inputs, outputs, name=f"{model_name}_{task.name}")
    metrics, success = evaluation.task_metrics(task)
    return registry.Built(
        model=model,
        loss=task_loss(task),
        train_dataset=task.train_dataset(train_config.batch_size, padded=True),
        test_dataset=test_dataset(task, train_config, padded=True),
        metrics=metrics,
        success=success,
        description=f"{model_name} ({config.units} units) on {task.name}: {task.reference}",
    )


LONGER_RNNS_RECIPE = {"clip_norm": 0.1}
"""Longer-rnns §6 trains the iRNN, resRNN and VL-iRNN with gradients clipped at norm 0.1.

The resRNN needs it from the first step: its state sums T residual increments,
so the curvature along b_2 and W_hh2 grows as T^2 (the largest Hessian
eigenvalue is about 2,100 at T = 20, batch 32, from the zero initialisation).
A learning rate of 1e-3 is then past the stability limit of Nesterov's
momentum, eps < 2 (1 + mu) / ((1 + 2 mu) lambda_max) (6.5e-4 at mu = 0.9),
and at T = 100 past classical momentum's, 2 (1 + mu) / lambda_max.
"""

FAMILY = registry.register(
    registry.Family(
        name="pathological", models=MODELS, config_class=RecurrentConfig, build=build,
        export=predict.export_run, signatures=("predict",),
        smallest=lambda directory: (dict(model="rnn", task="addition", seq_len=10, batch_size=20),
                                    dict(units=8)),
        recipes={model: LONGER_RNNS_RECIPE for model in ("irnn", "resrnn", "vlirnn")},
    )
)
