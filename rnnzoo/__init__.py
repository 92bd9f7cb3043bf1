"""rnnzoo: recurrent networks of the papers, their optimizers, and TF-Serving exports.

Submodules are imported on use: `from rnnzoo.layers import MRNN` loads the
layers only.
"""

__version__ = "0.1.0"
