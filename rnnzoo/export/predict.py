"""SavedModel export of a Keras model's forward pass: the `predict` contract, served as `serving_default`.

The export of the supervised families (`pathological`, `sequence_classifier`,
`autoencoder`): one signature whose inputs are the model's Keras inputs (same names,
float32, batch dimension free, the time and feature dimensions as the model has them)
and whose outputs are its Keras outputs (float32, named as the model names them).
The function is traced, so the SavedModel holds TensorFlow ops only: a process
with TensorFlow alone loads and runs it, rnnzoo's layers (ResRNN, ScopedRNN, MRNN, ...)
are not needed at load time.

    rnnzoo-export --model_dir=/tmp/resrnn_add --export_base=/models/addition
"""

import numpy as np
import tensorflow as tf

from rnnzoo.export.warmup import predict_request
from rnnzoo.export.writer import DEFAULT_SIGNATURE, write_export
from rnnzoo.training import registry
from rnnzoo.training.run_directory import RunDirectory

WARMUP_ROWS = 2


class KerasForward(tf.Module):
    """Tracks a Keras model so that its variables are saved with the traced forward pass."""

    def __init__(self, model):
        super().__init__(name="predict")
        self.model = model


def input_specs(model):
    """One float32 `tf.TensorSpec` per Keras input, named as the input, batch dimension free."""
    return [tf.TensorSpec((None, *tensor.shape[1:]), tf.float32, name=tensor.name) for tensor in model.inputs]


def serving_functions(model):
    """{"predict": function}: the model's inputs -> {output name: float32 output}, inference mode."""
    specs = input_specs(model)

    @tf.function(input_signature=specs)
    def predict(*inputs):
        outputs = model(list(inputs) if len(inputs) > 1 else inputs[0], training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return {name: tf.cast(output, tf.float32) for name, output in zip(model.output_names, outputs)}

    return {"predict": predict}


def warmup_requests(model):
    """One warmup request of `WARMUP_ROWS` zero rows through `serving_default` (free time dimensions: 1 step)."""
    inputs = {spec.name: np.zeros((WARMUP_ROWS, *[d or 1 for d in spec.shape[1:]]), np.float32)
              for spec in input_specs(model)}
    return [predict_request(DEFAULT_SIGNATURE, inputs)]


def export_keras_model(model, export_base, version=None):
    """Writes the forward pass of `model` (a built Keras model) as `export_base/<version>/`; returns the path.

    Raises:
        ValueError: a bad or existing version.
        ServingParityError: the graph would not run on stock TF Serving.
    """
    return write_export(KerasForward(model), serving_functions(model), export_base, version,
                        warmup_requests=warmup_requests(model))


def export_run(model_dir, export_base, version=None, checkpoint="best"):
    """Exports the Keras model of a training run (its `checkpoint`, best or last, of rnnzoo-train)."""
    registry.load_families()  # registers rnnzoo's layers, initializers and Model for deserialisation
    model = RunDirectory(model_dir).load_model(checkpoint, compile=False)
    return export_keras_model(model, export_base, version)
