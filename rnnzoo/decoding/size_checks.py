"""Size arguments checked before anything is allocated from them.

An exported signature's size arguments (decode lengths, beam widths, frame counts) decide how
much memory its graph allocates. Inside a `tf.function`, a `tf.debugging.assert_*` op is kept
by the automatic control dependencies but is not ordered before the ops that do not read its
output: a `translate` request with `max_length` = 10^9 used to allocate the beam search's
[batch, beam, 10^9] buffers (tens of GB) before its assertion failed. `gated` returns the size
arguments through `tf.identity` ops that depend on the checks, so every op reading them (and
every allocation sized by them) runs only once every check has passed; a failed check is an
INVALID_ARGUMENT before any of it.
"""

import tensorflow as tf


def gated(checks, *tensors):
    """`tensors`, each readable only after every op of `checks` has run.

    Args:
        checks: the ops of `tf.debugging.assert_*` calls (their `None` results in eager mode,
            where each check has already run, are skipped).
        *tensors: the size arguments to gate.

    Returns:
        The gated tensors, in order (one tensor when one is given).
    """
    with tf.control_dependencies([check for check in checks if check is not None]):
        outputs = [tf.identity(tensor) for tensor in tensors]
    return outputs[0] if len(outputs) == 1 else outputs
