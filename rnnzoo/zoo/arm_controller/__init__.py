"""The arm-control family (thesis ch. 6): `--model=arm_controller`, tasks center_out|postural|ddn.

    rnnzoo-train --model=arm_controller --task=center_out --optimizer=hf \
        --train_steps=200 --eval_every=20 --model_dir=/tmp/arm_co

The model is `rnnzoo.zoo.arm_controller.closed_loop.ClosedLoop` as an `rnnzoo.Model`: the thesis's two-layer
recurrent controller (§6.4) run closed-loop through the two-link arm on a task's batch, its
outputs the scaled residuals whose mean square under `"mse"` against zeros is the thesis's loss.
The shared loop (`rnnzoo.training.loop`) then gives it every optimizer of
`rnnzoo.training.optimizer_factory` (Hessian-free's Gauss-Newton products included), checkpoints,
resumption and `metrics.json`.

Data: `center_out` and `postural` train on their whole fixed case set every step (64 and 72
reaches; `--batch_size` does not apply), `ddn` on fresh seeded batches of `--batch_size` reaches
(thesis: 400). `--seq_len` sets the horizon T (default: the task's 40, 100, 60). The test set is
the fixed case set, or `--test_size` (default 400) DDN reaches of a separate seed stream.

Metrics: `test_loss` is the thesis's loss averaged over the test reaches; `final_hand_error`
(metres, lower is better) the mean distance of the hand at step T from the target's hand
position. The thesis states no success criterion, so runs never stop early.
"""

from rnnzoo.training import registry
from rnnzoo.zoo.arm_controller.export import export_controller, export_model_dir
from rnnzoo.zoo.arm_controller.model import (
    DDN_TEST_SIZE,
    TASKS,
    ArmControllerConfig,
    build,
    closed_loop_layer,
    final_hand_error,
    task_options,
)


FAMILY = registry.register(
    registry.Family(
        name="arm_controller", models=("arm_controller",), config_class=ArmControllerConfig,
        build=build, tasks=TASKS, default_task="center_out",
        export=export_model_dir,
        signatures=("control_step", "control_sequence"),
        smallest=lambda directory: (dict(model="arm_controller", task="center_out", seq_len=4),
                                    dict(units=4)),
    )
)

__all__ = [
    "ArmControllerConfig",
    "build",
    "closed_loop_layer",
    "DDN_TEST_SIZE",
    "export_controller",
    "export_model_dir",
    "FAMILY",
    "final_hand_error",
    "task_options",
    "TASKS",
]
