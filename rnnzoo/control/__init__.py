"""Learning to control a two-joint arm (thesis ch. 6): the differentiable plant and the tasks.

    from rnnzoo.control import TwoLinkArm, CenterOut, rollout
    task = CenterOut()
    arm = TwoLinkArm(task.arm_config)
    batch = task.batch(np.random.default_rng(0))
    result = tf.function(lambda: rollout(controller, arm, batch, delay=task.delay))()
    loss = task.loss(result.trajectory, result.commands, batch.target)

`ilqr(task, arm, batch)` optimises open-loop torques per reach (the thesis's gold standard).

`control` is a building block like `data` and `layers`: it imports nothing else of rnnzoo.
"""

from rnnzoo.control.arm import STATE_SIZE, TORQUE_SIZE, ArmConfig, TwoLinkArm
from rnnzoo.control.ilqr import ILQRResult, ilqr
from rnnzoo.control.rollout import Rollout, rollout
from rnnzoo.control.tasks import DDN, TASKS, CenterOut, Postural, ReachBatch, ReachTask, make_task

__all__ = [
    "DDN",
    "ILQRResult",
    "STATE_SIZE",
    "TASKS",
    "TORQUE_SIZE",
    "ArmConfig",
    "CenterOut",
    "Postural",
    "ReachBatch",
    "ReachTask",
    "Rollout",
    "TwoLinkArm",
    "ilqr",
    "make_task",
    "rollout",
]
