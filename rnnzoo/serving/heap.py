"""Keeping Python's cyclic garbage collector off the loaded models' objects.

TensorFlow and a loaded SavedModel leave ~400,000 objects tracked by the cyclic collector. A full
(generation 2) collection walks all of them while holding the GIL: 1.5 s in one pause under wrk
load with the benchmark's one-layer model, whenever enough survivors accumulate. After the served
set changes, the manager calls `settle`: one full collection, then `gc.freeze()` moves what
survives out of the collector's reach, so later collections walk only the objects requests
create. Unfreezing first lets that collection free what an unloaded version left in reference
cycles. The pause moves to model loads and unloads, where it is logged.
"""

import gc
import time


def settle() -> float:
    """Collect everything once and freeze the survivors; returns the seconds it took."""
    start = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    return time.perf_counter() - start
