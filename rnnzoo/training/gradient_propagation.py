"""Per-time-step gradients of the recurrent weights (longer-rnns §6.9, fig. 10-11).

Longer-rnns §6.9: "even though the parameters are tied across time, we can
compute the partial derivatives with parameters at each time step assuming
they can be independently changed. The actual gradient applied to the
parameters is then the average of all of these gradients." For each time
step t the untied partial derivative is

    dL/dW^(t) = VJP of h_t = cell(x_t, h_{t-1}; W) w.r.t. W, with h_{t-1}
                held fixed, at the cotangent dL/dh_t (the total derivative
                of the loss w.r.t. the state at t, backpropagated from later
                steps),

whose sum over t is the ordinary gradient dL/dW (for a tanh RNN,
dL/dW_hh^(t) = h_{t-1}^T (dL/dh_t * (1 - h_t^2))). The paper plots, per
time step, the min, median and max of |dL/dW^(t)| over the entries of the
hidden-to-hidden matrix (W_hh for the iRNN; W_hh1 and W_hh2 for the resRNN).
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf

RECURRENT_WEIGHTS = ("recurrent_kernel", "combination_kernel")
"""Cell weights treated as hidden-to-hidden: W_hh (and the resRNN's W_hh2)."""


def _recurrent_layer(model):
    rnn_layers = [(i, layer) for i, layer in enumerate(model.layers)
                  if isinstance(layer, keras.layers.RNN)]
    if len(rnn_layers) != 1:
        raise ValueError(
            f"Gradient propagation needs a model with exactly one recurrent layer followed by "
            f"feed-forward layers; {model.name!r} has {len(rnn_layers)} keras.layers.RNN layers."
        )
    return rnn_layers[0]


def _head(model, index):
    layers = model.layers[index + 1:]

    def apply(outputs):
        for layer in layers:
            outputs = layer(outputs)
        return outputs

    return apply


def per_step_gradients(model, x, y, loss, sample_weight=None, weight_names=RECURRENT_WEIGHTS):
    """The untied gradients dL/dW^(t) of the recurrent weights, one per time step.

    Args:
        model: a model of one `keras.layers.RNN` (any Keras or rnnzoo cell whose
            output is its first state) followed by feed-forward layers.
        x, y, sample_weight: a batch.
        loss: the Keras loss of the model.
        weight_names: names of the cell weights to differentiate.

    Returns:
        `{weight name: array (time, *weight shape)}`.
    """
    index, layer = _recurrent_layer(model)
    cell = layer.cell
    weights = [w for w in cell.weights if w.name in weight_names]
    if not weights:
        raise ValueError(
            f"Cell {cell.name!r} has no weight named {', '.join(weight_names)}; its weights are "
            f"{', '.join(w.name for w in cell.weights)}."
        )
    x = tf.convert_to_tensor(x)
    steps = x.shape[1]
    states = cell.get_initial_state(batch_size=tf.shape(x)[0])
    states = list(states) if isinstance(states, (list, tuple)) else [states]
    history = []  # (inputs_t, states before t, states after t)
    with tf.GradientTape() as tape:
        outputs = []
        for t in range(steps):
            before = states
            _, states = cell(x[:, t], before)
            states = list(states) if isinstance(states, (list, tuple)) else [states]
            tape.watch(states)
            history.append((x[:, t], before, states))
            outputs.append(states[0])
        sequence = tf.stack(outputs, axis=1) if layer.return_sequences else outputs[-1]
        value = loss(y, _head(model, index)(sequence), sample_weight=sample_weight)
    cotangents = tape.gradient(
        value, [s for _, _, after in history for s in after],
        unconnected_gradients=tf.UnconnectedGradients.ZERO,
    )
    per_state = len(history[0][2])
    result = {w.name: [] for w in weights}
    for t, (inputs, before, after) in enumerate(history):
        before = [tf.stop_gradient(s) for s in before]
        with tf.GradientTape() as step_tape:
            _, new_states = cell(inputs, before)
            new_states = list(new_states) if isinstance(new_states, (list, tuple)) else [new_states]
        grads = step_tape.gradient(
            new_states, [w.value for w in weights],
            output_gradients=cotangents[t * per_state:(t + 1) * per_state],
            unconnected_gradients=tf.UnconnectedGradients.ZERO,
        )
        for w, g in zip(weights, grads):
            result[w.name].append(np.asarray(g))
    return {name: np.stack(values) for name, values in result.items()}


def summarize(gradients):
    """Per time step min / median / max of |dL/dW^(t)| over the weight's entries.

    Untied scope weights `(scopes, ...)` (VL-iRNN) are summarised over the
    scope that step used, i.e. the slice with nonzero gradient.
    """
    summary = {}
    for name, per_step in gradients.items():
        magnitudes = np.abs(per_step.reshape(per_step.shape[0], -1))
        if per_step.ndim == 4:  # (time, scopes, units, units)
            norms = np.abs(per_step).sum(axis=(2, 3))
            magnitudes = np.stack(
                [np.abs(per_step[t, np.argmax(norms[t])]).ravel() for t in range(len(per_step))]
            )
        summary[name] = {
            "min": magnitudes.min(axis=1).tolist(),
            "median": np.median(magnitudes, axis=1).tolist(),
            "max": magnitudes.max(axis=1).tolist(),
        }
    return summary


def plot(summary, path, title):
    """Min / median / max per time step on a log scale, one panel per weight."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(summary), figsize=(5 * len(summary), 3.5), squeeze=False)
    for axis, (name, stats) in zip(axes[0], summary.items()):
        for key in ("max", "median", "min"):
            values = np.maximum(np.asarray(stats[key]), 1e-30)
            axis.semilogy(np.arange(1, len(values) + 1), values, label=key)
        axis.set_title(f"|dL/d{name}| per time step")
        axis.set_xlabel("time step")
        axis.legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


class GradientPropagation(keras.callbacks.Callback):
    """Records per-time-step recurrent-weight gradients at chosen training steps.

    At each step in `steps` (0: before training) computes `summarize` of
    `per_step_gradients` on a fixed batch and writes `step_<n>.png` and
    `gradients.json` (`{step: {weight: {min, median, max}}}`) in `output_dir`.

    Args:
        steps: training steps at which to record.
        batch: `(x, y)` or `(x, y, sample_weight)`, e.g. the first test batch.
        loss: the model's Keras loss.
        output_dir: where the plots and the JSON go.
        start_step: the step the training starts from (when resuming).
    """

    def __init__(self, steps, batch, loss, output_dir, start_step=0):
        super().__init__()
        self.steps = sorted(int(s) for s in steps)
        self.x, self.y, self.sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
        self.loss = loss
        self.output_dir = output_dir
        self.step = start_step
        self.json_path = os.path.join(output_dir, "gradients.json")

    def _record(self):
        summary = summarize(
            per_step_gradients(self.model, self.x, self.y, self.loss, self.sample_weight)
        )
        os.makedirs(self.output_dir, exist_ok=True)
        records = {}
        if os.path.exists(self.json_path):
            with open(self.json_path) as f:
                records = json.load(f)
        records[str(self.step)] = summary
        tmp = self.json_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(records, f)
        os.replace(tmp, self.json_path)
        plot(summary, os.path.join(self.output_dir, f"step_{self.step}.png"),
             f"training step {self.step}")

    def on_train_begin(self, logs=None):
        if self.step in self.steps:
            self._record()

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step in self.steps:
            self._record()
