"""rnnzoo: recurrent networks of the papers, their optimizers, and TF-Serving exports.

Submodules are imported on use: `from rnnzoo.layers import MRNN` loads the
layers only.
"""

__version__ = "0.1.0"


def __getattr__(name):
    """`rnnzoo.Model` is imported on first use, keeping `import rnnzoo` light."""
    if name == "Model":
        from rnnzoo.model import Model

        return Model
    raise AttributeError(f"module 'rnnzoo' has no attribute {name!r}")
