"""Initializers of the papers, usable by name in any Keras layer.

`"sparse"`: `Sparse()` (thesis §7.3.1); `"spectral_radius"`:
`SpectralRadius(Sparse(), 1.2)` (thesis §7.4.1). Identity (iRNN) and
U[-a, a] are Keras's own `"identity"` and `RandomUniform(-a, a)`.
"""

import keras

from rnnzoo.initializers.sparse import Sparse
from rnnzoo.initializers.spectral_radius import SpectralRadius

keras.saving.get_custom_objects().update({"sparse": Sparse, "spectral_radius": SpectralRadius})

__all__ = ["Sparse", "SpectralRadius"]
