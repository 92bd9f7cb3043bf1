"""After models load, their objects are frozen out of the cyclic garbage collector."""

import gc
import weakref

import numpy as np
import requests
from conftest import WEIGHTS, install, start_server

from rnnzoo.serving import heap


def test_settle_collects_cycles_and_freezes_the_survivors():
    class Cycle:
        pass

    gc.unfreeze()
    try:
        kept = Cycle()
        kept.me = kept
        garbage = Cycle()
        garbage.me = garbage
        collected = weakref.ref(garbage)
        del garbage
        assert heap.settle() >= 0
        assert collected() is None  # the unreachable cycle was freed before freezing
        assert gc.get_freeze_count() > 1000
        assert not any(o is kept for o in gc.get_objects())  # the survivor is out of the collector's reach
    finally:
        gc.unfreeze()


def test_a_server_freezes_its_loaded_model_and_keeps_serving(toy_versions, tmp_path):
    gc.unfreeze()
    base = str(tmp_path / "toy")
    install(toy_versions[1], base, 1)
    server = start_server(model_name="toy", model_base_path=base, settle_heap=True)
    try:
        assert gc.get_freeze_count() > 10000  # TensorFlow's and the SavedModel's objects
        x = [[1.0, 2.0, 3.0]]
        body = requests.post(f"http://127.0.0.1:{server.rest_port}/v1/models/toy:predict",
                             json={"instances": x}, timeout=30).json()
        np.testing.assert_allclose(body["predictions"][0]["y"], (np.array(x, np.float32) @ WEIGHTS + 1.0)[0], rtol=1e-6)
    finally:
        server.stop()
        gc.unfreeze()
