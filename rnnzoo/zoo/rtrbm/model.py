"""The (R)TRBM family's model, train step and evaluation (the family: `rnnzoo.zoo.rtrbm`)."""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from rnnzoo.data.bouncing_balls import BouncingBalls
from rnnzoo.layers.rtrbm import EXPECTATIONS, RTRBM, TRBM, VISIBLE_TYPES
from rnnzoo.model import symbolic_build_from_spec
from rnnzoo.training import evaluation, registry

MODELS = ("rtrbm", "trbm")
TASKS = ("bouncing_balls",)
DEFAULT_FRAMES = 100
DEFAULT_TEST_SIZE = 20
REPLICA_SEED_STRIDE = 1 << 40
"""Seed offset between the replicas of a tf.distribute strategy (far beyond any update count)."""


@dataclasses.dataclass
class RTRBMConfig:
    """Hyperparameters of the (R)TRBM family (the thesis's §3.11 values as defaults).

    Attributes:
        units: hidden units (thesis: 400 for the balls).
        visible: `binary` or `gaussian` visible units.
        balls, resolution: videos of `balls` balls on `resolution` x `resolution` frames;
            the number of frames T is the run's `seq_len` (default 100).
        train_size: 0: a fresh video per training sequence (thesis); else a fixed set.
        cd_steps: k of CD-k after the first `initial_cd_updates` updates (thesis: 25).
        initial_cd_steps, initial_cd_updates: CD-k of the first updates (thesis: 10, 1,000).
        lr_decay_steps: the learning rate decays linearly to 0 at this update; 0: at the
            run's `train_steps` (thesis); -1: no decay.
        pretrain_steps: updates of static-RBM CD pretraining of W, b_h, b_v (0: none).
        pretrain_cd_steps, pretrain_sequences, pretrain_batch_size, pretrain_learning_rate,
            pretrain_momentum: its CD-k, videos whose frames it trains on, frames per update,
            learning rate and momentum (thesis: CD-5 on 30 sequences, 0.01, 0.9).
        prediction_expectation: how the metric takes E[v_t]: `gibbs` (mean over
            `prediction_chains` chains of E[v_t | h] after `prediction_gibbs_steps` Gibbs steps,
            the last visible update replaced by its expectation) or `mean_field`.
        prediction_gibbs_steps, prediction_chains: see above.
    """

    units: int = 400
    visible: str = "binary"
    balls: int = 3
    resolution: int = 30
    train_size: int = 0
    cd_steps: int = 25
    initial_cd_steps: int = 10
    initial_cd_updates: int = 1000
    lr_decay_steps: int = 0
    pretrain_steps: int = 1000
    pretrain_cd_steps: int = 5
    pretrain_sequences: int = 30
    pretrain_batch_size: int = 100
    pretrain_learning_rate: float = 0.01
    pretrain_momentum: float = 0.9
    prediction_expectation: str = "gibbs"
    prediction_gibbs_steps: int = 25
    prediction_chains: int = 1

    def check(self):
        """Raises `ValueError` naming the first invalid field."""
        if self.visible not in VISIBLE_TYPES:
            raise ValueError(f"visible={self.visible!r}; choose one of {', '.join(VISIBLE_TYPES)}.")
        if self.prediction_expectation not in EXPECTATIONS:
            raise ValueError(f"prediction_expectation={self.prediction_expectation!r}; choose one of "
                             f"{', '.join(EXPECTATIONS)}.")
        for name in ("units", "balls", "resolution", "cd_steps", "initial_cd_steps", "pretrain_cd_steps",
                     "pretrain_sequences", "pretrain_batch_size", "prediction_gibbs_steps",
                     "prediction_chains"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        for name in ("train_size", "initial_cd_updates", "pretrain_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}.")
        if self.lr_decay_steps < -1:
            raise ValueError(f"lr_decay_steps must be >= -1 (-1: no decay, 0: the run's train_steps), "
                             f"got {self.lr_decay_steps!r}.")


@keras.saving.register_keras_serializable(package="rnnzoo")
class TemporalRBMModel(keras.Model):
    """A `keras.Model` around an `RTRBM` / `TRBM` layer whose `train_step` is CD-k (+ BPTT).

    Calling it returns the layer's r chain. Each `fit` step takes a batch of videos
    `(batch, T, pixels)`, computes `rbm.cd_loss` with CD-k (k = `initial_cd_steps` for
    the first `initial_cd_updates` updates, then `cd_steps`), scales the gradient by the
    linear decay 1 - step / `lr_decay_steps` (when > 0) and applies it with the compiled
    optimizer. Logs `loss` (the free-energy gap per frame) and `reconstruction_error`
    (mean squared difference between the data and its CD-k sample).

    Args:
        rbm: an `RTRBM` or `TRBM` layer.
        seed: seed of the CD sampling (with the update counter).
    """

    def __init__(self, rbm, cd_steps=25, initial_cd_steps=10, initial_cd_updates=1000, lr_decay_steps=-1,
                 seed=0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rbm, dict):
            rbm = keras.saving.deserialize_keras_object(rbm)
        self.rbm = rbm
        self.cd_steps = cd_steps
        self.initial_cd_steps = initial_cd_steps
        self.initial_cd_updates = initial_cd_updates
        self.lr_decay_steps = lr_decay_steps
        self.seed = seed

    def build(self, input_shape):
        self.frames_shape = tuple(input_shape)
        if not self.rbm.built:  # a deserialised layer comes built
            self.rbm.build(input_shape)
        self.built = True

    @property
    def input_shape(self):
        """`(None, None, pixels)`: videos of any length (what `evaluate_checkpoint` compares)."""
        return self.frames_shape

    def get_build_config(self):
        return {"input_shape": self.frames_shape}

    def build_from_config(self, config):
        self.build(config["input_shape"])

    def call(self, frames):
        return self.rbm(frames)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        return super()._maybe_symbolic_build(**symbolic_build_from_spec(iterator, data_batch))

    def cd_steps_at(self, step):
        """k of CD-k at update `step` (int tensor)."""
        return tf.where(step < self.initial_cd_updates, self.initial_cd_steps, self.cd_steps)

    def train_step(self, data):
        frames, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        step = tf.cast(self.optimizer.iterations, tf.int64)
        # Under a tf.distribute strategy each replica samples its own chains (its id in the
        # seed) for its shard, and the optimizer sums the replicas' gradients: each replica
        # contributes its shard's mean gradient / replicas, the gradient of the global batch.
        context = tf.distribute.get_replica_context()
        replica = tf.cast(context.replica_id_in_sync_group, tf.int64)
        seed = tf.constant(self.seed, tf.int64) * 1_000_000_007 + step + replica * REPLICA_SEED_STRIDE
        with tf.GradientTape() as tape:
            loss, negatives = self.rbm.cd_loss(frames, self.cd_steps_at(step), seed)
        variables = self.rbm.trainable_variables
        gradients = tape.gradient(loss, variables)
        scale = 1.0 / context.num_replicas_in_sync
        if self.lr_decay_steps > 0:
            scale *= tf.maximum(0.0, 1.0 - tf.cast(step, tf.float32) / float(self.lr_decay_steps))
        self.optimizer.apply_gradients(zip([g * scale for g in gradients], variables))
        return {"loss": loss, "reconstruction_error": tf.reduce_mean(tf.square(frames - negatives))}

    def get_config(self):
        return {
            **super().get_config(),
            "rbm": keras.saving.serialize_keras_object(self.rbm),
            "cd_steps": self.cd_steps,
            "initial_cd_steps": self.initial_cd_steps,
            "initial_cd_updates": self.initial_cd_updates,
            "lr_decay_steps": self.lr_decay_steps,
            "seed": self.seed,
        }


def build_model(model_name, config, pixels, lr_decay_steps=-1, seed=0):
    """A built `TemporalRBMModel` with an `RTRBM` (`rtrbm`) or `TRBM` (`trbm`) layer named `rbm`,
    taking videos of any length `(batch, time, pixels)`."""
    if model_name not in MODELS:
        raise ValueError(f"Unknown model {model_name!r} of the rtrbm family; choose one of {', '.join(MODELS)}.")
    layer = (RTRBM if model_name == "rtrbm" else TRBM)(config.units, visible=config.visible, name="rbm")
    model = TemporalRBMModel(layer, cd_steps=config.cd_steps, initial_cd_steps=config.initial_cd_steps,
                             initial_cd_updates=config.initial_cd_updates, lr_decay_steps=lr_decay_steps,
                             seed=seed, name=model_name)
    model.build((None, None, pixels))
    return model


def pretrain_static(rbm, frames, steps, cd_steps, batch_size, learning_rate, momentum, seed=0):
    """Static-RBM CD-k on single frames `(n, pixels)` for `steps` updates (thesis §3.11): the
    step RBM with its constant bias b_h trains W, b_h and b_v. Returns statistics."""
    optimizer = keras.optimizers.SGD(learning_rate, momentum=momentum)
    variables = [rbm.kernel, rbm.hidden_bias, rbm.visible_bias]
    optimizer.build(variables)  # its variables, mirrored under a strategy, made outside the steps
    data = tf.constant(frames[:, None, :])
    rng = np.random.default_rng(seed)

    strategy = tf.distribute.get_strategy()

    def replica_update(batch, step):
        shape = [tf.shape(batch)[0], 1, rbm.units]
        negatives, _ = rbm.gibbs(batch, tf.broadcast_to(rbm.hidden_bias, shape), cd_steps, step, salt=7)
        with tf.GradientTape() as tape:
            biases = tf.broadcast_to(rbm.hidden_bias, shape)
            loss = tf.reduce_mean(rbm.free_energy_gap(batch, negatives, biases))
        share = 1.0 / tf.distribute.get_replica_context().num_replicas_in_sync
        gradients = [g * share for g in tape.gradient(loss, variables)]
        optimizer.apply_gradients(zip(gradients, variables))
        return tf.reduce_mean(tf.square(batch - negatives))

    @tf.function
    def update(batch, step):
        # Under a tf.distribute strategy every replica updates on the whole batch with the
        # same chains: the summed shares are the single-device update on every replica.
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, strategy.run(replica_update, args=(batch, step)),
                               axis=None)

    error = None
    for step in range(steps):
        index = rng.integers(0, len(frames), batch_size)
        error = float(update(tf.gather(data, index), tf.constant(step, tf.int64)))
    return {"pretrain_steps": steps, "pretrain_reconstruction_error": error}


def next_frame_errors(rbm, videos, gibbs_steps, expectation, chains, seed=0, batch_size=10):
    """`{"next_frame_mse", "copy_last_frame_mse"}` over frames 2..T of `videos` `(n, T, pixels)`
    (thesis §3.11.1: mean squared error per pixel per frame)."""

    @tf.function
    def predict(batch):
        return rbm.predict_frames(batch, gibbs_steps, expectation, chains, seed)

    squared = []
    for start in range(0, len(videos), batch_size):
        batch = videos[start:start + batch_size]
        predicted = np.asarray(predict(tf.constant(batch)))
        squared.append(np.square(predicted[:, 1:] - batch[:, 1:]).mean(axis=-1))
    copy = np.square(videos[:, 1:] - videos[:, :-1]).mean()
    return {"next_frame_mse": float(np.concatenate(squared).mean()), "copy_last_frame_mse": float(copy)}


def build(model_name, config, train_config):
    """`registry.Built` for `rnnzoo-train --model=rtrbm|trbm --task=bouncing_balls`."""
    config.check()
    frames = train_config.seq_len or DEFAULT_FRAMES
    data = BouncingBalls(frames=frames, balls=config.balls, resolution=config.resolution,
                         seed=train_config.seed, train_size=config.train_size or None)
    decay = {0: train_config.train_steps, -1: -1}.get(config.lr_decay_steps, config.lr_decay_steps)
    model = build_model(model_name, config, data.pixels, decay, train_config.seed)
    test_videos = data.test_videos(train_config.test_size or DEFAULT_TEST_SIZE)

    def evaluate(trained):
        return next_frame_errors(trained.rbm, test_videos, config.prediction_gibbs_steps,
                                 config.prediction_expectation, config.prediction_chains)

    def pretrain(trained, _train_config):
        if not config.pretrain_steps:
            return {"pretrain_steps": 0}
        videos = BouncingBalls(frames=frames, balls=config.balls, resolution=config.resolution,
                               seed=train_config.seed + 1).videos(0, config.pretrain_sequences)
        return pretrain_static(trained.rbm, videos.reshape(-1, data.pixels), config.pretrain_steps,
                               config.pretrain_cd_steps, config.pretrain_batch_size,
                               config.pretrain_learning_rate, config.pretrain_momentum, train_config.seed)

    return registry.Built(
        model=model,
        loss=None,
        train_dataset=data.train_dataset(train_config.batch_size),
        test_dataset=None,
        metrics=(
            evaluation.Metric("next_frame_mse", None,
                              description="next-frame prediction error per pixel per frame (thesis §3.11.1)"),
            evaluation.Metric("copy_last_frame_mse", None,
                              description="error of predicting each frame by the previous one (baseline)"),
        ),
        evaluate=evaluate,
        pretrain=pretrain,
        # A resumed run decays to 0 at its own train_steps, not at the first invocation's.
        resume=lambda restored: setattr(restored, "lr_decay_steps", decay),
        description=(
            f"{model_name} ({config.units} hidden units) on {config.balls}-ball videos, {frames} frames of "
            f"{config.resolution}x{config.resolution}; CD-{config.initial_cd_steps} for "
            f"{config.initial_cd_updates} updates, then CD-{config.cd_steps}; metric: next-frame MSE per pixel"
        ),
    )
