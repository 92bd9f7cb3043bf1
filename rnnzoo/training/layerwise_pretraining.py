"""Greedy layer-wise LSTM-autoencoder pretraining (layer-wise paper §3.5, fig. 1).

For layer l = 1..L of a stacked LSTM:

1. the encoder is LSTM l, reading the hidden-state sequence of the frozen
   layers 1..l-1 (the input itself for l = 1);
2. a fresh decoder LSTM starts from the encoder's final hidden and cell
   states (copied, §3.4) and reconstructs the original input in reverse
   order, {v'_T, ..., v'_1} (fig. 1); it reads the reversed input shifted by
   one step (zeros first), i.e. the previous element it had to predict;
3. encoder and decoder minimise the squared reconstruction error (§4) for
   one epoch (§4: "we pretrained the model for only one epoch");
4. the decoder is discarded.

The lower layers are frozen (`trainable = False`) while layer l is trained
and trainable again afterwards, for the supervised fine-tuning of everything
(§3.5 step 5).
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from rnnzoo.model import Model


def reversed_targets(x, *rest):
    """`(x, reverse(x))`: the autoencoder's input and its target (fig. 1)."""
    del rest  # labels and weights are not used by the autoencoder
    return x, tf.reverse(x, axis=[1])


def teacher_forcing_inputs(x):
    """Decoder inputs: the reversed input shifted right by one step, zeros first."""
    reversed_x = ops.flip(x, axis=1)
    return ops.pad(reversed_x, [[0, 0], [1, 0], [0, 0]])[:, :-1]


def autoencoder(lstm_layers, layer_index, inputs_shape, initializer, name):
    """The autoencoder that pretrains `lstm_layers[layer_index]` over the frozen lower layers.

    Each LSTM layer must return `(sequence, h, c)` (`return_sequences=True,
    return_state=True`).
    """
    x = keras.Input(inputs_shape, name="inputs")
    hidden = x
    for layer in lstm_layers[:layer_index]:
        hidden = layer(hidden)[0]
    _, h, c = lstm_layers[layer_index](hidden)
    units = lstm_layers[layer_index].units
    decoder = keras.layers.LSTM(
        units,
        return_sequences=True,
        kernel_initializer=initializer,
        recurrent_initializer=initializer,
        name=f"decoder_{layer_index + 1}",
    )
    decoded = decoder(teacher_forcing_inputs(x), initial_state=[h, c])
    reconstruction = keras.layers.Dense(
        inputs_shape[-1], kernel_initializer=initializer, name=f"reconstruction_{layer_index + 1}"
    )(decoded)
    return Model(x, reconstruction, name=name)


def pretrain(lstm_layers, inputs_shape, dataset, make_optimizer, steps, initializer, verbose=0):
    """Pretrains `lstm_layers` bottom-up, one autoencoder epoch of `steps` batches each.

    Args:
        lstm_layers: the stacked `keras.layers.LSTM`s (each with
            `return_sequences=True, return_state=True`), bottom first.
        inputs_shape: `(time, features)` of the input sequences.
        dataset: `tf.data.Dataset` of training batches whose first element is `x`.
        make_optimizer: a callable returning a fresh optimizer per layer.
        steps: batches per layer (one epoch of the training set).
        initializer: initializer of the decoders (U[-a, a] as the encoders).
        verbose: Keras `fit` verbosity.

    Returns:
        A list with one dict per layer: `steps`, `first_loss`, `last_loss`
        (reconstruction mean squared error of the first and last batch).
    """
    pairs = dataset.map(reversed_targets)
    stats = []
    for index, layer in enumerate(lstm_layers):
        for lower in lstm_layers[:index]:
            lower.trainable = False
        model = autoencoder(lstm_layers, index, inputs_shape, initializer, f"autoencoder_{index + 1}")
        model.compile(optimizer=make_optimizer(), loss=keras.losses.MeanSquaredError())
        losses = _BatchLosses()
        model.fit(pairs, steps_per_epoch=steps, epochs=1, callbacks=[losses], shuffle=False,
                  verbose=verbose)
        stats.append(
            {"layer": index + 1, "steps": int(steps), "first_loss": losses.values[0],
             "last_loss": float(np.mean(losses.values[-max(1, steps // 10):]))}
        )
        for lower in lstm_layers[:index]:
            lower.trainable = True
    return stats


class _BatchLosses(keras.callbacks.Callback):
    """Records the loss of every batch (Keras reports running means)."""

    def __init__(self):
        super().__init__()
        self.values = []
        self._previous = 0.0

    def on_train_batch_end(self, batch, logs=None):
        mean = float(logs["loss"])
        self.values.append(mean * (batch + 1) - self._previous * batch)
        self._previous = mean
