"""REST JSON: numeric outputs written from numpy by orjson, with TF Serving's float32 text and NaN."""

import json

import numpy as np
import pytest
from tensorflow.core.framework import types_pb2

from rnnzoo.serving import errors, rest_json


def _predict_body(outputs, rows=True) -> dict:
    return json.loads(rest_json.predict_body(outputs, rows))


def test_float32_outputs_are_written_as_their_shortest_decimals():
    y = np.array([[0.1, 1e-8, 3.4e38, 1 / 3]], np.float32)
    text = rest_json.dumps({"predictions": rest_json.row_outputs({"y": y})}).decode()
    assert "0.1," in text and "0.33333334" in text and "0.10000000149" not in text
    assert np.array_equal(np.array(json.loads(text)["predictions"], np.float32), y)


def test_several_outputs_become_one_object_per_row_with_every_dtype():
    outputs = {
        "f64": np.array([0.1, -2.5]), "i64": np.array([[2**62], [-7]], np.int64), "u8": np.array([3, 255], np.uint8),
        "flag": np.array([True, False]), "text": np.array([b"a", "\u00e9".encode()], object),
        "raw_bytes": np.array([b"\x00\xff", b""], object),
    }
    rows = _predict_body(outputs)["predictions"]
    assert rows == [
        {"f64": 0.1, "i64": [2**62], "u8": 3, "flag": True, "text": "a", "raw_bytes": {"b64": "AP8="}},
        {"f64": -2.5, "i64": [-7], "u8": 255, "flag": False, "text": "\u00e9", "raw_bytes": {"b64": ""}},
    ]
    assert _predict_body({"s": np.float32(0.5)}, rows=False) == {"outputs": 0.5}


def test_nan_and_infinity_are_written_as_tf_serving_writes_them():
    outputs = {"y": np.array([[np.nan, 0.1], [np.inf, -np.inf]], np.float32), "k": np.array([1, 2])}
    text = rest_json.predict_body(outputs, rows=True).decode()
    assert "NaN" in text and "-Infinity" in text and "null" not in text
    rows = json.loads(text)["predictions"]
    assert np.isnan(rows[0]["y"][0]) and rows[0]["y"][1] == 0.1 and rows[1] == {"y": [np.inf, -np.inf], "k": 2}
    assert np.isnan(json.loads(rest_json.predict_body({"y": np.float32(np.nan)}, rows=False))["outputs"])
    assert rest_json.predict_body(outputs, rows=True) == rest_json.dumps({"predictions": rest_json.row_outputs(outputs)})


def test_an_answer_holding_the_text_null_keeps_its_finite_floats_as_orjson_wrote_them():
    outputs = {"y": np.array([0.1, 2.5], np.float32), "text": np.array([b"null", b"a"], object)}
    text = rest_json.predict_body(outputs, rows=True).decode()
    assert text == '{"predictions":[{"y":0.1,"text":"null"},{"y":2.5,"text":"a"}]}'


def test_request_bodies_with_nan_literals_parse_and_bad_json_is_named():
    assert np.isnan(rest_json.loads(b'{"instances": [[NaN, 1.0]]}')["instances"][0][0])
    assert rest_json.loads(b'{"instances": [[0.5]]}') == {"instances": [[0.5]]}
    with pytest.raises(ValueError, match="Expecting"):
        rest_json.loads(b'{"instances": [[0.5]')


@pytest.mark.parametrize("value, dtype, message", [
    ([[1.0, 2.0], [3.0]], types_pb2.DT_FLOAT, "different lengths"),
    ([[1.5]], types_pb2.DT_INT32, "non-integer"),
    ([[True]], types_pb2.DT_FLOAT, "true/false"),
    ([[2**40]], types_pb2.DT_INT32, "out of range"),
    ([["a"]], types_pb2.DT_FLOAT, "not of expected type: float32"),
    ([], types_pb2.DT_FLOAT, None),
])
def test_numeric_inputs_are_checked_on_the_fast_path_too(value, dtype, message):
    if message is None:
        assert rest_json.json_to_array(value, dtype, "x").shape == (0,)
        return
    with pytest.raises(errors.ServingError, match=message):
        rest_json.json_to_array(value, dtype, "input 'x'")


def test_numeric_inputs_keep_their_values_and_dtype():
    array = rest_json.json_to_array([[1, 2.5], [3, 4]], types_pb2.DT_FLOAT, "x")
    assert array.dtype == np.float32 and np.array_equal(array, [[1, 2.5], [3, 4]])
    ints = rest_json.json_to_array([[1, 2]], types_pb2.DT_INT64, "x")
    assert ints.dtype == np.int64 and ints.tolist() == [[1, 2]]
