"""The RTRBM and TRBM on bouncing-balls videos (thesis ch. 3, §3.11.1).

Models (`--model`), each one `rnnzoo.layers.RTRBM` / `TRBM` layer on 30 x 30 frames
(`--task=bouncing_balls`, the family's only task):

- `rtrbm`: CD-k at every step plus backpropagation through the mean-field r chain
  (thesis eq. 3.21-3.25, Alg. 4);
- `trbm`: the simplified TRBM (eq. 3.14-3.15), CD-k at every step given a sampled history.

Training runs through the shared loop (`rnnzoo.training.loop.train`) with the family's own
train step (`TemporalRBMModel.train_step`): the compiled optimizer applies the CD gradient,
divided by the sequence length and scaled by the linear learning-rate decay to 0 of
thesis §3.11 (for SGD with classical momentum, scaling the gradient by 1 - step / N is
scaling the learning rate). CD-`initial_cd_steps` for the first `initial_cd_updates`
updates, then CD-`cd_steps`. Before training, W (with b_h and b_v) is pretrained as a
static RBM by CD-`pretrain_cd_steps` on the frames of `pretrain_sequences` videos.

The thesis recipe (§3.11) is the default of `rnnzoo-train --model=rtrbm`: the family's
recipe gives learning rate 0.01 and, where the command line leaves them out,
`--optimizer=momentum --momentum=0.9 --batch_size=1`; the config's defaults give 400 hidden
units, CD-10 then CD-25, the linear decay to 0 over the run and static CD-5 pretraining on 30
videos. `TrainConfig` users pass `optimizer="momentum", batch_size=1` themselves.

Metric (§3.11.1): `next_frame_mse`, the mean squared error per pixel per frame of predicting
frames 2..T of each test video from their true history (`RTRBM.predict_frames`: r_{t-1}
from frames 1..t-1, then E[v_t] under the step's RBM, taken as `prediction_expectation`
says with `prediction_gibbs_steps` steps started at frame t-1). `copy_last_frame_mse` is
the error of predicting each frame by the one before it.
"""

from rnnzoo.training import registry
from rnnzoo.zoo.rtrbm.export import export_model_dir, export_video_model
from rnnzoo.zoo.rtrbm.model import (
    DEFAULT_FRAMES,
    DEFAULT_TEST_SIZE,
    MODELS,
    TASKS,
    build,
    build_model,
    next_frame_errors,
    pretrain_static,
    RTRBMConfig,
    TemporalRBMModel,
)


FAMILY = registry.register(
    registry.Family(
        name="rtrbm",
        models=MODELS,
        config_class=RTRBMConfig,
        build=build,
        tasks=TASKS,
        default_task="bouncing_balls",
        recipes={model: {"learning_rate": 0.01, "optimizer": "momentum", "momentum": 0.9, "batch_size": 1}
                 for model in MODELS},
        export=export_model_dir,
        signatures=("next_frame", "generate_frames"),
        default_signature="next_frame",
        smallest=lambda directory: (
            dict(model="rtrbm", optimizer="momentum", batch_size=2, seq_len=8),
            dict(units=12, pretrain_steps=3, pretrain_sequences=2, pretrain_batch_size=10,
                 initial_cd_updates=2, initial_cd_steps=1, cd_steps=2, prediction_gibbs_steps=2)),
    )
)
"""The (R)TRBM family; `recipes`: thesis §3.11's learning rate 0.01 unless a run sets one, and
for `rnnzoo-train` without those flags SGD with momentum 0.9 on one video per update."""

__all__ = [
    "build",
    "build_model",
    "DEFAULT_FRAMES",
    "DEFAULT_TEST_SIZE",
    "export_model_dir",
    "export_video_model",
    "FAMILY",
    "MODELS",
    "next_frame_errors",
    "pretrain_static",
    "RTRBMConfig",
    "TASKS",
    "TemporalRBMModel",
]
