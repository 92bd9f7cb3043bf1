"""SavedModel export of an RTRBM / TRBM video model for TensorFlow Serving (thesis ch. 3).

`export_video_model(rbm, export_base)` writes `export_base/N/` through the generic writer
(`rnnzoo.export.writer`: versions, staging and atomic rename, serving-parity and
signature-contract checks, warmup records) with the contracts (`rnnzoo.serving.signatures`):

- `next_frame` (also `serving_default`): `frames` float32[b, t, 900] -> `probabilities`
  float32[b, 900], E[v_{t+1} | v_1..v_t] as `RTRBM.predict_next` takes it (the run's
  prediction settings; `gibbs` sampling with seed 0 for every row, so a row's answer does not
  depend on the rest of the batch and the same frames always give the same prediction);
- `generate_frames`: `seed` int64[b], `num_frames` int32[b], `prefix` float32[b, t, 900] ->
  `frames` float32[b, n, 900], n the largest `num_frames`: `RTRBM.generate` (thesis Alg. 3)
  after the prefix, each row sampled from its own seed; a row's frames beyond its
  `num_frames` are zeros.

The model's state is recomputed from the frames sent (TF Serving keeps no per-client
state). Bad values (negative or too many frames, batch sizes that differ) are INVALID_ARGUMENT.
"""

import numpy as np
import tensorflow as tf

from rnnzoo.export.warmup import predict_request
from rnnzoo.decoding.size_checks import gated
from rnnzoo.export.writer import write_export
from rnnzoo.training.run_directory import RunDirectory
from rnnzoo.zoo.rtrbm.model import RTRBMConfig


class VideoModel(tf.Module):
    """The exported module: an `RTRBM` / `TRBM` layer and its prediction settings."""

    def __init__(self, rbm, gibbs_steps=25, expectation="gibbs", chains=1, max_frames=1000):
        super().__init__()
        self.rbm = rbm
        self.gibbs_steps, self.expectation, self.chains = gibbs_steps, expectation, chains
        self.max_frames = max_frames

    def next_frame(self, frames):
        seeds = tf.zeros([tf.shape(frames)[0]], tf.int64)
        return {"probabilities": self.rbm.predict_next(frames, self.gibbs_steps, self.expectation, self.chains,
                                                       seed=seeds)}

    def generate_frames(self, seed, num_frames, prefix):
        rows = tf.shape(prefix)[0]
        checks = [
            tf.debugging.assert_equal(tf.shape(seed)[0], rows, message="seed, num_frames and prefix must have "
                                      "the same batch size (one seed and one num_frames per prefix)"),
            tf.debugging.assert_equal(tf.shape(num_frames)[0], rows, message="seed, num_frames and prefix must "
                                      "have the same batch size (one seed and one num_frames per prefix)"),
            tf.debugging.assert_non_negative(num_frames, message="num_frames must be >= 0"),
            tf.debugging.assert_less_equal(num_frames, self.max_frames, message=f"num_frames must be <= "
                                           f"{self.max_frames}, the export's limit (rnnzoo-export --max_frames)"),
        ]
        seed, num_frames, prefix = gated(checks, seed, num_frames, prefix)
        longest = tf.reduce_max(tf.concat([num_frames, [0]], axis=0))
        frames = self.rbm.generate(longest, prefix=prefix, gibbs_steps=self.gibbs_steps, seed=seed)
        keep = tf.sequence_mask(num_frames, longest, dtype=frames.dtype)[..., None]
        return {"frames": frames * keep}


def serving_functions(video_model):
    """{contract name: function}: the `next_frame` and `generate_frames` signatures."""
    pixels = video_model.rbm.visible_units

    @tf.function(input_signature=[tf.TensorSpec([None, None, pixels], tf.float32, name="frames")])
    def next_frame(frames):
        return video_model.next_frame(frames)

    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.int64, name="seed"),
        tf.TensorSpec([None], tf.int32, name="num_frames"),
        tf.TensorSpec([None, None, pixels], tf.float32, name="prefix"),
    ])
    def generate_frames(seed, num_frames, prefix):
        return video_model.generate_frames(seed, num_frames, prefix)

    return {"next_frame": next_frame, "generate_frames": generate_frames}


def warmup_requests(pixels):
    """Warmup PredictRequests: next_frame after 3 frames and after none; generate_frames of 2 and 0 frames."""
    frames = np.zeros((2, 3, pixels), np.float32)
    generate = {"seed": np.array([1, 2], np.int64), "num_frames": np.array([2, 0], np.int32),
                "prefix": np.zeros((2, 1, pixels), np.float32)}
    return [
        predict_request("next_frame", {"frames": frames}),
        predict_request("serving_default", {"frames": np.zeros((1, 0, pixels), np.float32)}),
        predict_request("generate_frames", generate),
    ]


def export_video_model(rbm, export_base, version=None, gibbs_steps=25, expectation="gibbs", chains=1,
                       max_frames=1000):
    """Writes an `RTRBM` / `TRBM` layer as `export_base/<version>/`; returns that path.

    Raises:
        ValueError: `version` exists already or is not a positive integer.
        ServingParityError: the graph would not run on stock TF Serving or breaks its contracts
            (the contracts fix frames to 900 pixels: 30 x 30).
    """
    video_model = VideoModel(rbm, gibbs_steps, expectation, chains, max_frames)
    return write_export(video_model, serving_functions(video_model), export_base, version, default="next_frame",
                        warmup_requests=warmup_requests(rbm.visible_units))


def export_model_dir(model_dir, export_base, version=None, max_frames=1000, checkpoint="best"):
    """Exports the (R)TRBM trained in `model_dir` (its `checkpoint`, best or last) with its run's
    prediction settings."""
    run_dir = RunDirectory(model_dir)
    config = RTRBMConfig(**run_dir.model_config())
    model = run_dir.load_model(checkpoint, compile=False)  # no optimizer needed
    return export_video_model(model.rbm, export_base, version, config.prediction_gibbs_steps,
                              config.prediction_expectation, config.prediction_chains, max_frames)
