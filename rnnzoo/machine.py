"""What a measurement ran on: one description shared by the reports and the benchmarks."""

import os
import platform


def machine_description():
    """`{"processor", "cpus", "python", "tensorflow", "keras"}` of this machine and stack."""
    import keras
    import tensorflow as tf

    return {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__}


def machine_summary():
    """One line for a report, e.g. `x86_64, 2 CPU cores, Python 3.11.7, TensorFlow 2.21.0`."""
    machine = machine_description()
    return (f"{machine['processor']}, {machine['cpus']} CPU cores, Python {machine['python']}, "
            f"TensorFlow {machine['tensorflow']}")
