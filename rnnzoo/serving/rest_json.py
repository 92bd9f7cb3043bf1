"""TF Serving's REST JSON <-> numpy tensors and tf.Examples.

Predict takes the row format (``instances``) or the columnar format (``inputs``); binary strings
travel as ``{"b64": ...}`` and outputs whose alias ends in ``_bytes`` are returned that way.
Classify/Regress take ``{"examples": [...], "context": {...}}``. Every malformed value raises
INVALID_ARGUMENT naming where it is and what was expected.

Bodies are parsed and written with orjson: numeric outputs go to JSON straight from the numpy
array, in C (float32 as the shortest decimal that round-trips the float32 value, ``0.1`` rather
than ``0.10000000149011612``, as TF Serving writes it). A body orjson refuses is parsed again by
`json`, which accepts ``NaN``/``Infinity`` as TF Serving's parser does and names the error;
outputs holding NaN or infinities are written by `json` as ``NaN``/``Infinity``, as TF Serving
writes them (orjson would write null).
"""

import base64
import json

import numpy as np
import orjson
import tensorflow as tf
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import input_pb2

from rnnzoo.serving import errors


def _is_b64(value) -> bool:
    return isinstance(value, dict) and list(value) == ["b64"]


def _strings(value, where: str):
    """Nested JSON strings / {"b64": ...} objects -> nested bytes."""
    if isinstance(value, list):
        return [_strings(v, where) for v in value]
    if isinstance(value, str):
        return value.encode("utf-8")
    if _is_b64(value) and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except ValueError:
            raise errors.invalid_argument(f"{where}: {value['b64']!r} is not valid base64") from None
    raise errors.invalid_argument(
        f"{where}: JSON value {json.dumps(value)[:80]} is not of expected type: string "
        f'(send a string or {{"b64": "<base64>"}})'
    )


MAX_RANK = 64  # numpy's (and so a request tensor's) most dimensions


def _nested_shape(value, where: str, depth: int = 0) -> tuple:
    """The rectangular shape of nested lists; INVALID_ARGUMENT when ragged or deeper than MAX_RANK."""
    if not isinstance(value, list):
        return ()
    if depth >= MAX_RANK:
        raise errors.invalid_argument(
            f"{where}: lists nest more than {MAX_RANK} levels deep; a tensor has at most {MAX_RANK} dimensions"
        )
    shapes = {_nested_shape(v, where, depth + 1) for v in value}
    if len(shapes) > 1:
        raise errors.invalid_argument(f"{where}: nested lists have different lengths; tensors must be rectangular")
    return (len(value),) + (shapes.pop() if shapes else ())


def loads(body: bytes):
    """The parsed JSON body; ValueError (or RecursionError) when it is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:  # NaN/Infinity literals, or an error for `json` to name
        return json.loads(body)


def dumps(payload) -> bytes:
    """A Predict answer (dicts and lists holding `row_outputs` / `columnar_outputs` values) as JSON."""
    try:
        return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:  # an output with NaN or infinities (_NonFinite)
        return json.dumps(payload, default=_plain).encode()


class _NonFinite:
    """Values of a float output holding NaN or infinities: orjson refuses it, `json` writes NaN."""

    __slots__ = ("values",)

    def __init__(self, values):
        self.values = values


def _plain(value):
    """json.dumps's fallback for what orjson writes itself."""
    if isinstance(value, _NonFinite):
        return value.values
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _numeric_array(value):
    """`np.array(value)` when it is a non-empty rectangular numeric array (a common request);
    otherwise None, and `json_to_array` takes the checking path that names the problem."""
    try:
        array = np.array(value)
    except (ValueError, TypeError, RecursionError):
        return None
    return array if array.dtype.kind in "biuf" and array.size else None


def json_to_array(value, dtype_enum: int, where: str) -> np.ndarray:
    """A JSON value (scalar or nested lists) as an array of the signature's dtype."""
    array = None if dtype_enum == types_pb2.DT_STRING else _numeric_array(value)
    if array is not None:
        return _checked_numeric(array, dtype_enum, where)
    shape = _nested_shape(value, where)
    if dtype_enum == types_pb2.DT_STRING:
        flat = np.empty(int(np.prod(shape, dtype=np.int64)), dtype=object)
        data = _strings(value, where)
        flat[:] = np.array(data, dtype=object).reshape(-1) if shape else [data]
        return flat.reshape(shape)
    try:
        array = np.array(value)
    except (ValueError, TypeError):
        array = np.array([], dtype=object)
    if array.dtype.kind not in "biuf" or (array.size == 0 and shape and shape[-1] != 0):
        raise errors.invalid_argument(
            f"{where}: JSON value {json.dumps(value)[:80]} is not of expected type: "
            f"{tf.dtypes.as_dtype(dtype_enum).name}"
        )
    return _checked_numeric(array, dtype_enum, where)


class _Target:
    """What checking a JSON-parsed array against one signature dtype needs, read once per dtype
    (tf.DType's properties are Python code: ~1 us per request when read each time)."""

    __slots__ = ("name", "is_bool", "is_integer", "min", "max", "numpy_dtype")

    def __init__(self, dtype_enum: int):
        dtype = tf.dtypes.as_dtype(dtype_enum)
        self.name = dtype.name
        self.is_bool = dtype.is_bool
        self.is_integer = dtype.is_integer
        self.min, self.max = (dtype.min, dtype.max) if dtype.is_integer else (None, None)
        self.numpy_dtype = np.dtype(dtype.as_numpy_dtype)


_TARGETS = {}  # DataType enum -> _Target, filled as dtypes are met


def _checked_numeric(array: np.ndarray, dtype_enum: int, where: str) -> np.ndarray:
    """A numeric `array` parsed from JSON, checked against and cast to the signature's dtype."""
    target = _TARGETS.get(dtype_enum)
    if target is None:
        target = _TARGETS[dtype_enum] = _Target(dtype_enum)
    if target.is_bool:
        if array.dtype.kind != "b":
            raise errors.invalid_argument(f"{where}: expected true/false values for a bool tensor")
    elif target.is_integer:
        if array.dtype.kind == "f" and not np.all(np.equal(np.mod(array, 1), 0)):
            raise errors.invalid_argument(f"{where}: non-integer value for a {target.name} tensor")
        if array.size and (array.min() < target.min or array.max() > target.max):
            raise errors.invalid_argument(f"{where}: value out of range for a {target.name} tensor")
    elif array.dtype.kind == "b":
        raise errors.invalid_argument(f"{where}: true/false given for a {target.name} tensor")
    return array.astype(target.numpy_dtype)


def row_inputs(instances, dtypes: dict) -> dict:
    """The row format's inputs; `dtypes` maps each input alias to its DataType enum."""
    if not isinstance(instances, list) or not instances:
        raise errors.invalid_argument("'instances' must be a non-empty list, one entry per example")
    named = isinstance(instances[0], dict) and not _is_b64(instances[0])
    if not named:
        if len(dtypes) != 1:
            raise errors.invalid_argument(
                "instances is a plain list, but expecting list of objects as multiple input tensors "
                f"required as per tensorinfo_map ({sorted(dtypes)})"
            )
        alias = next(iter(dtypes))
        return {alias: json_to_array(instances, dtypes[alias], f"input '{alias}' of 'instances'")}
    keys = set(instances[0])
    for i, instance in enumerate(instances):
        if not isinstance(instance, dict) or _is_b64(instance) or set(instance) != keys:
            raise errors.invalid_argument(
                f"Failed to process element: {i} of 'instances' list. Every instance must be an object "
                f"with the same keys {sorted(keys)}"
            )
    unknown = keys - set(dtypes)
    if unknown:
        raise errors.invalid_argument(f"instances name unknown inputs {sorted(unknown)}; the signature takes {sorted(dtypes)}")
    return {
        alias: json_to_array([inst[alias] for inst in instances], dtypes[alias], f"input '{alias}' of 'instances'")
        for alias in keys
    }


def columnar_inputs(inputs, dtypes: dict) -> dict:
    """The columnar format's inputs; `dtypes` maps each input alias to its DataType enum."""
    if isinstance(inputs, dict) and not _is_b64(inputs):
        unknown = set(inputs) - set(dtypes)
        if unknown:
            raise errors.invalid_argument(f"inputs name unknown inputs {sorted(unknown)}; the signature takes {sorted(dtypes)}")
        return {alias: json_to_array(v, dtypes[alias], f"input '{alias}'") for alias, v in inputs.items()}
    if len(dtypes) != 1:
        raise errors.invalid_argument(
            f"'inputs' is a single value but the signature takes {len(dtypes)} inputs {sorted(dtypes)}; "
            f"send an object keyed by input name"
        )
    alias = next(iter(dtypes))
    return {alias: json_to_array(inputs, dtypes[alias], f"input '{alias}'")}


# ---- tensors -> JSON ----------------------------------------------------------------------------
_ORJSON_KINDS = "biuf"  # numpy kinds orjson writes itself (float16/32/64, ints, bools)


def _json_value(array: np.ndarray, alias: str, check_finite: bool = True):
    """A JSON-ready value of one output: the (C-contiguous) array itself when `dumps` writes it in C
    (without `check_finite`, also a float array holding NaN or infinities, which orjson writes as null)."""
    if array.dtype.kind in _ORJSON_KINDS and (not check_finite or array.dtype.kind != "f" or np.isfinite(array).all()):
        return np.ascontiguousarray(array) if array.ndim else array[()]
    if array.dtype == object or array.dtype.kind == "S":
        if alias.endswith("_bytes"):
            convert = lambda b: {"b64": base64.b64encode(b).decode("ascii")}  # noqa: E731
        else:
            convert = lambda b: b.decode("utf-8", "replace")  # noqa: E731
        flat = [convert(b) for b in array.ravel()]
        return np.array(flat, dtype=object).reshape(array.shape).tolist() if array.ndim else flat[0]
    if array.dtype.kind == "f":
        # shortest decimal that round-trips the float32 value (0.1, not 0.10000000149011612)
        values = array.astype(np.float32) if array.dtype.itemsize <= 4 else array
        flat = [float(str(v)) for v in values.ravel()]
        nested = np.array(flat, dtype=object).reshape(array.shape).tolist() if array.ndim else flat[0]
        return _NonFinite(nested)
    return array.tolist()


def row_outputs(outputs: dict, check_finite: bool = True):
    sizes = {alias: (value.shape[0] if value.ndim else None) for alias, value in outputs.items()}
    batch = next(iter(sizes.values()))
    for alias, size in sizes.items():
        if size is None or size != batch:
            raise errors.invalid_argument(
                f"Tensor name: {alias} has inconsistent batch size: {size} expecting: {batch}; "
                f"use the columnar 'inputs' format for outputs without a shared batch dimension"
            )
    columns = {alias: _json_value(value, alias, check_finite) for alias, value in outputs.items()}
    if len(columns) == 1:
        return next(iter(columns.values()))
    rows = {alias: [_NonFinite(v) for v in column.values] if isinstance(column, _NonFinite) else column
            for alias, column in columns.items()}
    return [{alias: rows[alias][i] for alias in rows} for i in range(batch)]


def columnar_outputs(outputs: dict, check_finite: bool = True):
    columns = {alias: _json_value(value, alias, check_finite) for alias, value in outputs.items()}
    return next(iter(columns.values())) if len(columns) == 1 else columns


def predict_body(outputs: dict, rows: bool) -> bytes:
    """A Predict answer as JSON: ``{"predictions": ...}`` (row format) or ``{"outputs": ...}``.

    Float outputs are written by orjson without first checking them for NaN and infinities (a
    numpy pass per output, ~7 us per request under load); orjson writes those as ``null``, so an
    answer holding ``null`` whose float outputs are not all finite is written again, checked,
    with ``NaN``/``Infinity`` as TF Serving writes them.
    """
    key, convert = ("predictions", row_outputs) if rows else ("outputs", columnar_outputs)
    data = dumps({key: convert(outputs, check_finite=False)})
    if b"null" in data and any(v.dtype.kind == "f" and not np.isfinite(v).all() for v in outputs.values()):
        data = dumps({key: convert(outputs)})
    return data


# ---- tf.Example JSON for classify / regress ----------------------------------------------------
def _feature(value, where: str) -> feature_pb2.Feature:
    values = value if isinstance(value, list) else [value]
    feature = feature_pb2.Feature()
    if all(isinstance(v, bool) for v in values) and values:
        feature.int64_list.value.extend(int(v) for v in values)
    elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        feature.int64_list.value.extend(values)
    elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        feature.float_list.value.extend(values)
    elif all(isinstance(v, str) or _is_b64(v) for v in values):
        feature.bytes_list.value.extend(_strings(values, where))
    else:
        raise errors.invalid_argument(f"{where}: feature values must be all numbers or all strings, got {json.dumps(value)[:80]}")
    return feature


def _example(obj, where: str) -> example_pb2.Example:
    if not isinstance(obj, dict):
        raise errors.invalid_argument(f"{where} must be an object mapping feature names to values")
    example = example_pb2.Example()
    for name, value in obj.items():
        example.features.feature[name].CopyFrom(_feature(value, f"{where} feature '{name}'"))
    return example


def example_input(body: dict) -> input_pb2.Input:
    examples = body.get("examples")
    if not isinstance(examples, list) or not examples:
        raise errors.invalid_argument("'examples' must be a non-empty list of objects")
    result = input_pb2.Input()
    if "context" in body:
        target = result.example_list_with_context
        target.context.CopyFrom(_example(body["context"], "'context'"))
    else:
        target = result.example_list
    for i, obj in enumerate(examples):
        target.examples.add().CopyFrom(_example(obj, f"example {i}"))
    return result
