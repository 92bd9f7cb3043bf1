"""Deep autoencoder of thesis §7.3 (table 7.1-7.2), on the 8x8 digits.

`deep_autoencoder`: logistic-sigmoid encoder layers of `encoder_sizes`
(the last one, the code, linear), a mirrored decoder and 64 logistic
outputs trained with binary cross-entropy (table 7.1, as the thesis's
CURVES and MNIST autoencoders), sparse initialisation (§7.3.1: 15 incoming
N(0, 1) weights per unit). The thesis reports the *training* squared
reconstruction error per case (§7.3: "we examine only the training error in
order to focus purely on the effectiveness of the optimization"), so the
evaluation set is the training split and the metric `reconstruction_error`
is that error: sum over pixels of (sigmoid(output) - pixel)^2, averaged over
images (lower is better; no success threshold).
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from rnnzoo.data.digits import ROWS
from rnnzoo.initializers import Sparse
from rnnzoo.model import Model
from rnnzoo.export import predict
from rnnzoo.training import evaluation, registry

MODELS = ("deep_autoencoder",)
PIXELS = ROWS * ROWS


@dataclasses.dataclass
class AutoencoderConfig:
    """Hyperparameters of the deep autoencoder.

    Attributes:
        encoder_sizes: comma-separated encoder layer sizes, the last one the
            linear code (thesis CURVES: 400,200,100,50,25,6; here scaled to 64 inputs).
    """

    encoder_sizes: str = "100,50,25,6"


def squared_error_per_case(y_true, logits):
    """Sum over pixels of (sigmoid(logits) - y)^2, averaged over cases."""
    probabilities = 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64)))
    return float(np.mean(np.sum((probabilities - np.asarray(y_true)) ** 2, axis=-1)))


def _images(x, *rest):
    del rest  # labels are not used
    flat = tf.reshape(x, (-1, PIXELS))
    return flat, flat


def build(model_name, config, train_config):
    try:
        sizes = [int(s) for s in config.encoder_sizes.split(",")]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise ValueError(
            f"encoder_sizes={config.encoder_sizes!r} must be positive comma-separated integers, "
            "e.g. 100,50,25,6."
        )
    task = train_config.make_task()
    inputs = keras.Input((PIXELS,), name="pixels")
    hidden = inputs
    for i, size in enumerate(sizes):
        last = i == len(sizes) - 1
        hidden = keras.layers.Dense(
            size, activation=None if last else "sigmoid", kernel_initializer=Sparse(15),
            name="code" if last else f"encoder_{i + 1}",
        )(hidden)
    for i, size in enumerate(reversed(sizes[:-1])):
        hidden = keras.layers.Dense(
            size, activation="sigmoid", kernel_initializer=Sparse(15), name=f"decoder_{i + 1}"
        )(hidden)
    logits = keras.layers.Dense(PIXELS, kernel_initializer=Sparse(15), name="reconstruction")(hidden)
    train_size = task.train_size
    training_images = (
        task.train_dataset(train_size).take(1).map(_images).unbatch().batch(500)
    )
    return registry.Built(
        model=Model(inputs, logits, name="deep_autoencoder"),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        train_dataset=task.train_dataset(train_config.batch_size).map(_images),
        test_dataset=training_images,
        metrics=(evaluation.Metric(
            "reconstruction_error", squared_error_per_case,
            description="training squared reconstruction error per image (thesis §7.3)"),),
        description=(
            f"deep_autoencoder 64-{'-'.join(map(str, sizes))}-...-64 on the digits' "
            f"{train_size} training images (thesis §7.3, table 7.2)"
        ),
    )


FAMILY = registry.register(
    registry.Family(
        name="autoencoder", models=MODELS, config_class=AutoencoderConfig, build=build,
        export=predict.export_run, signatures=("predict",),
        smallest=lambda directory: (
            dict(model="deep_autoencoder", task="digits", batch_size=16, optimizer="nag",
                 learning_rate=0.005),
            dict(encoder_sizes="16,4")),
        tasks=("digits",), default_task="digits",
    )
)
