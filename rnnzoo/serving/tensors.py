"""TensorProto <-> numpy conversion with TensorFlow Serving's field conventions, vectorised.

Inputs may arrive in the typed ``*_val`` fields or packed in ``tensor_content``; a typed field
shorter than the shape repeats its last value (as `tf.make_ndarray` does). Shapes and element
counts are checked before anything is allocated, and no Python object is made per element:
typed values are read with `np.fromiter`, packed bytes with `np.frombuffer`. Outputs go to the
typed ``*_val`` fields (TF Serving's default, ``Tensor::AsProtoField``), written as packed wire
bytes built by numpy, or to ``tensor_content`` with `--enable_serialization_as_tensor_content`.
"""

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

from rnnzoo.serving import errors

# dtype enum -> (the repeated field holding its values, its field number, numpy dtype of the field).
_VALUE_FIELD = {
    types_pb2.DT_FLOAT: ("float_val", 5, np.float32),
    types_pb2.DT_DOUBLE: ("double_val", 6, np.float64),
    types_pb2.DT_INT32: ("int_val", 7, np.int32),
    types_pb2.DT_INT16: ("int_val", 7, np.int32),
    types_pb2.DT_INT8: ("int_val", 7, np.int32),
    types_pb2.DT_UINT8: ("int_val", 7, np.int32),
    types_pb2.DT_UINT16: ("int_val", 7, np.int32),
    types_pb2.DT_STRING: ("string_val", 8, object),
    types_pb2.DT_COMPLEX64: ("scomplex_val", 9, np.float32),
    types_pb2.DT_INT64: ("int64_val", 10, np.int64),
    types_pb2.DT_BOOL: ("bool_val", 11, np.bool_),
    types_pb2.DT_COMPLEX128: ("dcomplex_val", 12, np.float64),
    types_pb2.DT_HALF: ("half_val", 13, np.int32),
    types_pb2.DT_BFLOAT16: ("half_val", 13, np.int32),
    types_pb2.DT_UINT32: ("uint32_val", 16, np.uint32),
    types_pb2.DT_UINT64: ("uint64_val", 17, np.uint64),
}
_FIXED_WIDTH = {np.float32, np.float64}  # fields packed as raw little-endian values, the rest as varints
_SHIFTS = np.arange(10, dtype=np.uint64) * np.uint64(7)


_NUMPY_DTYPES = {enum: np.dtype(tf.dtypes.as_dtype(enum).as_numpy_dtype) for enum in _VALUE_FIELD}
_DTYPE_ENUMS = {}  # numpy dtype -> DataType enum, filled as dtypes are met (tf.dtypes lookups cost ~2 us)


def dtype_enum(dtype: np.dtype) -> int:
    """The DataType enum of a numpy dtype (object, bytes and str arrays are DT_STRING)."""
    enum = _DTYPE_ENUMS.get(dtype)
    if enum is None:
        if dtype == object or dtype.kind in ("S", "U"):
            enum = types_pb2.DT_STRING
        else:
            enum = tf.dtypes.as_dtype(dtype).as_datatype_enum
        _DTYPE_ENUMS[dtype] = enum
    return enum


def dtype_name(dtype_enum: int) -> str:
    """`DT_FLOAT` -> ``"float"``, as TensorFlow's DataTypeString names dtypes in its errors."""
    try:
        return types_pb2.DataType.Name(dtype_enum)[len("DT_"):].lower()
    except ValueError:
        return f"unknown dtype {dtype_enum}"


def element_count(proto: tensor_pb2.TensorProto, alias: str = "") -> int:
    """Elements the proto's shape declares; INVALID_ARGUMENT for a negative dimension."""
    dims = [d.size for d in proto.tensor_shape.dim]
    if any(size < 0 for size in dims):
        raise errors.invalid_argument(
            f"input '{alias}' has a negative dimension in its shape {dims}; every dimension of a "
            f"request tensor must be >= 0"
        )
    count = 1
    for size in dims:
        count *= size  # Python ints: a hostile shape cannot overflow the product
    return count


def check_element_budget(count: int, max_elements: int | None, what: str) -> None:
    """INVALID_ARGUMENT when `count` elements exceed `--max_request_elements`."""
    if max_elements is not None and count > max_elements:
        raise errors.invalid_argument(
            f"{what} holds {count} tensor elements, more than the server's limit of {max_elements}; "
            f"send fewer rows per request or raise --max_request_elements"
        )


def to_ndarray(proto: tensor_pb2.TensorProto, alias: str = "", max_elements: int | None = None) -> np.ndarray:
    """Decode a request TensorProto; malformed or oversized protos raise INVALID_ARGUMENT naming `alias`."""
    if proto.dtype not in _VALUE_FIELD:
        raise errors.invalid_argument(
            f"input '{alias}' has dtype {dtype_name(proto.dtype)} ({proto.dtype}), which cannot be "
            f"sent over the wire; use one of the numeric, bool or string dtypes"
        )
    dims = [d.size for d in proto.tensor_shape.dim]
    count = element_count(proto, alias)
    check_element_budget(count, max_elements, f"input '{alias}' with shape {dims}")
    numpy_dtype = _NUMPY_DTYPES[proto.dtype]
    if proto.tensor_content:
        if proto.dtype == types_pb2.DT_STRING:
            raise errors.invalid_argument(f"input '{alias}': string tensors cannot use tensor_content; use string_val")
        itemsize = numpy_dtype.itemsize
        if len(proto.tensor_content) != count * itemsize:
            raise errors.invalid_argument(
                f"input '{alias}': tensor_content holds {len(proto.tensor_content)} bytes but shape "
                f"{dims} of {dtype_name(proto.dtype)} needs {count * itemsize}"
            )
        return np.frombuffer(proto.tensor_content, dtype=numpy_dtype).reshape(dims)
    field, _, field_dtype = _VALUE_FIELD[proto.dtype]
    values = getattr(proto, field)
    pairs = field in ("scomplex_val", "dcomplex_val")
    n_values = len(values) // 2 if pairs else len(values)
    if n_values > count:
        raise errors.invalid_argument(
            f"input '{alias}': {n_values} values given for shape {dims} ({count} elements); "
            f"send exactly as many values as the shape holds"
        )
    if field_dtype is object:
        flat = np.empty(len(values), dtype=object)
        flat[:] = list(values)
    else:
        flat = np.fromiter(values, dtype=field_dtype, count=len(values))
        if field == "half_val":
            flat = flat.astype(np.uint16).view(numpy_dtype)
        elif pairs:
            flat = flat.view(numpy_dtype)
        else:
            flat = flat.astype(numpy_dtype, copy=False)
    if n_values == count:
        return flat.reshape(dims)
    full = np.empty(count, dtype=flat.dtype)
    full[:n_values] = flat
    full[n_values:] = flat[-1] if n_values else (b"" if field_dtype is object else 0)
    return full.reshape(dims)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _varints(values: np.ndarray) -> bytes:
    """Protobuf varints of uint64 `values` (two's complement for negatives), vectorised."""
    words = values[:, None] >> _SHIFTS[None, :]
    lengths = np.maximum(1, np.count_nonzero(words, axis=1))
    groups = (words & np.uint64(0x7F)).astype(np.uint8)
    columns = np.arange(10)[None, :]
    groups |= (columns < (lengths - 1)[:, None]).astype(np.uint8) << 7
    return groups[columns < lengths[:, None]].tobytes()


def _packed_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _typed_payload(flat: np.ndarray, field: str, field_dtype) -> bytes:
    if field == "half_val":
        flat = flat.view(np.uint16)
    elif field in ("scomplex_val", "dcomplex_val"):
        flat = flat.view(field_dtype)
    if field_dtype in _FIXED_WIDTH:
        return flat.astype(np.dtype(field_dtype).newbyteorder("<"), copy=False).tobytes()
    return _varints(flat.astype(np.int64, copy=False).view(np.uint64) if flat.dtype.kind in "ib" else flat.astype(np.uint64))


def to_tensor_proto(value, tensor_content: bool = False) -> tensor_pb2.TensorProto:
    """Encode an output (numpy array or eager tensor) into the typed ``*_val`` field, or into
    ``tensor_content`` when `tensor_content` is set (strings always use ``string_val``)."""
    array = value.numpy() if hasattr(value, "numpy") else np.asarray(value)
    dtype = dtype_enum(array.dtype)
    proto = tensor_pb2.TensorProto(
        dtype=dtype,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in array.shape]
        ),
    )
    if dtype not in _VALUE_FIELD:
        raise errors.ServingError(
            grpc.StatusCode.INTERNAL,
            f"output dtype {dtype_name(dtype)} cannot be sent over the wire",
        )
    flat = np.ascontiguousarray(array).reshape(-1)
    if dtype == types_pb2.DT_STRING:
        proto.string_val.extend(v if isinstance(v, bytes) else str(v).encode() for v in flat)
    elif tensor_content:
        proto.tensor_content = flat.astype(flat.dtype.newbyteorder("<"), copy=False).tobytes()
    elif flat.size:
        field, number, field_dtype = _VALUE_FIELD[dtype]
        proto.MergeFromString(_packed_field(number, _typed_payload(flat, field, field_dtype)))
    return proto
