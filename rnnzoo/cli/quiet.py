"""Quiet binaries: TensorFlow's start-up notices and INFO logs off unless asked for.

Every `rnnzoo-*` binary calls `quiet_tensorflow()` before it imports
TensorFlow. Without `--verbosity` / `--v` on the command line it hides what
TensorFlow's C++ runtime prints while it loads (the CUDA stub's "Could not find
cuda drivers", CPU-instruction and oneDNN notices: the C++ log level, and the
loader's own stderr lines, which no log level reaches) and TensorFlow's Python
INFO lines (SavedModel export chatter). `--verbosity=0` (absl's flag) or
`--v=0` bring all of it back.
"""

import logging
import os
import sys


def _verbosity_requested(argv):
    return any(arg.split("=")[0] in ("--verbosity", "--v", "-v") for arg in argv[1:])


def quiet_tensorflow(argv=None):
    """Imports TensorFlow quietly unless `argv` (default `sys.argv`) asks for logs; idempotent."""
    argv = sys.argv if argv is None else argv
    if _verbosity_requested(argv):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" not in sys.modules:
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # device discovery prints too
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    from absl import flags
    from absl import logging as absl_logging

    # TensorFlow's SavedModel code logs through absl (signature renaming, sharding callbacks),
    # and absl.app.run raises an unset --verbosity to INFO: set it.
    flags.FLAGS.verbosity = absl_logging.converter.ABSL_WARNING
