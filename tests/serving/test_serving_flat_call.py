"""The flat call of a signature returns exactly what the structured call returns."""

import numpy as np
import tensorflow as tf

from rnnzoo.serving.flat_call import FlatCall, make_call, structured_call


class Mixed(tf.Module):
    """Inputs whose aliases sort differently from their declaration order, mixed dtypes, variables."""

    def __init__(self):
        super().__init__()
        self.w = tf.Variable(np.arange(6, dtype=np.float32).reshape(3, 2))
        self.scale = tf.Variable(0.5)

    @tf.function(input_signature=[
        tf.TensorSpec([None, 3], tf.float32, name="zeta"),
        tf.TensorSpec([None], tf.int64, name="alpha"),
        tf.TensorSpec([None], tf.string, name="middle"),
    ])
    def mixed(self, zeta, alpha, middle):
        return {
            "b_sum": zeta @ self.w * self.scale + tf.cast(alpha, tf.float32)[:, None],
            "a_len": tf.strings.length(middle) + tf.cast(alpha, tf.int32),
            "c_text": tf.strings.join([middle, "!"]),
        }

    @tf.function(input_signature=[(tf.TensorSpec([None], tf.float32, name="p"), tf.TensorSpec([None], tf.float32, name="q"))])
    def nested(self, pair):
        return {"sum": pair[0] + pair[1]}


def _loaded(tmp_path):
    """(the loaded SavedModel, which owns the variables, and its signature function)."""
    module = Mixed()
    path = str(tmp_path / "1")
    tf.saved_model.save(module, path, signatures={"mixed": module.mixed})
    loaded = tf.saved_model.load(path)
    return loaded, loaded.signatures["mixed"]


def test_flat_call_matches_the_structured_call(tmp_path):
    _, function = _loaded(tmp_path)
    call = make_call(function)
    assert isinstance(call, FlatCall)
    assert sorted(call.input_order) == ["alpha", "middle", "zeta"]
    rng = np.random.default_rng(0)
    inputs = {
        "zeta": rng.normal(size=(4, 3)).astype(np.float32),
        "alpha": np.array([1, -2, 3, 40], np.int64),
        "middle": np.array([b"", b"ab", "\u00e9".encode(), b"xyz"], dtype=object),
    }
    flat, structured = call(inputs), structured_call(function)(inputs)
    assert sorted(flat) == sorted(structured) == ["a_len", "b_sum", "c_text"]
    for alias in flat:
        np.testing.assert_array_equal(flat[alias], structured[alias])
    np.testing.assert_allclose(
        flat["b_sum"], inputs["zeta"] @ np.arange(6, dtype=np.float32).reshape(3, 2) * 0.5 + inputs["alpha"][:, None],
        rtol=1e-6)
    np.testing.assert_array_equal(flat["a_len"], [1, 0, 5, 43])
    np.testing.assert_array_equal(flat["c_text"], [b"!", b"ab!", "\u00e9!".encode(), b"xyz!"])


def test_flat_call_sees_variable_updates(tmp_path):
    loaded, function = _loaded(tmp_path)
    call = make_call(function)
    inputs = {"zeta": np.ones((1, 3), np.float32), "alpha": np.zeros(1, np.int64), "middle": np.array([b"a"], object)}
    before = call(inputs)["b_sum"]
    loaded.scale.assign(1.0)
    np.testing.assert_allclose(call(inputs)["b_sum"], before * 2)


def test_a_nested_input_signature_keeps_the_structured_call():
    module = Mixed()
    function = module.nested.get_concrete_function()
    call = make_call(function)
    assert not isinstance(call, FlatCall)
    np.testing.assert_allclose(call({"pair": (np.ones(2, np.float32), np.full(2, 2, np.float32))})["sum"], [3, 3])
