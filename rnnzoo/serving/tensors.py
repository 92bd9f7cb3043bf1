"""TensorProto <-> numpy conversion with TensorFlow Serving's field conventions.

Inputs may arrive in the typed ``*_val`` fields or packed in ``tensor_content``; outputs are
written to the typed ``*_val`` fields, as TF Serving's Predict does by default
(``Tensor::AsProtoField``).
"""

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

from rnnzoo.serving import errors

# dtype enum -> the repeated field holding its values.
_VALUE_FIELD = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_INT16: "int_val",
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_UINT16: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val",
    types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_STRING: "string_val",
    types_pb2.DT_COMPLEX64: "scomplex_val",
    types_pb2.DT_COMPLEX128: "dcomplex_val",
    types_pb2.DT_HALF: "half_val",
    types_pb2.DT_BFLOAT16: "half_val",
}


def dtype_name(dtype_enum: int) -> str:
    """`DT_FLOAT` -> ``"float"``, as TensorFlow's DataTypeString names dtypes in its errors."""
    try:
        return types_pb2.DataType.Name(dtype_enum)[len("DT_"):].lower()
    except ValueError:
        return f"unknown dtype {dtype_enum}"


def to_ndarray(proto: tensor_pb2.TensorProto, alias: str = "") -> np.ndarray:
    """Decode a request TensorProto; malformed protos raise INVALID_ARGUMENT naming `alias`."""
    if proto.dtype not in _VALUE_FIELD:
        raise errors.invalid_argument(
            f"input '{alias}' has dtype {dtype_name(proto.dtype)} ({proto.dtype}), which cannot be "
            f"sent over the wire; use one of the numeric, bool or string dtypes"
        )
    dims = [d.size for d in proto.tensor_shape.dim]
    if any(size < 0 for size in dims):
        raise errors.invalid_argument(
            f"input '{alias}' has a negative dimension in its shape {dims}; every dimension of a "
            f"request tensor must be >= 0"
        )
    count = int(np.prod(dims, dtype=np.int64)) if dims else 1
    if count > np.iinfo(np.int32).max:
        raise errors.invalid_argument(f"input '{alias}' with shape {dims} is too large")
    if proto.tensor_content:
        itemsize = tf.dtypes.as_dtype(proto.dtype).size
        if len(proto.tensor_content) != count * itemsize:
            raise errors.invalid_argument(
                f"input '{alias}': tensor_content holds {len(proto.tensor_content)} bytes but shape "
                f"{dims} of {dtype_name(proto.dtype)} needs {count * itemsize}"
            )
    else:
        field = _VALUE_FIELD[proto.dtype]
        n_values = len(getattr(proto, field))
        if field in ("scomplex_val", "dcomplex_val"):
            n_values //= 2
        if n_values > count:
            raise errors.invalid_argument(
                f"input '{alias}': {n_values} values given for shape {dims} ({count} elements); "
                f"send exactly as many values as the shape holds"
            )
    try:
        return tf.make_ndarray(proto)
    except (ValueError, TypeError, KeyError, IndexError) as error:
        raise errors.invalid_argument(f"input '{alias}' is not a valid TensorProto: {error}") from None


def to_tensor_proto(value) -> tensor_pb2.TensorProto:
    """Encode an output (numpy array or eager tensor) into the typed ``*_val`` field."""
    array = value.numpy() if hasattr(value, "numpy") else np.asarray(value)
    if array.dtype == object or array.dtype.kind in ("S", "U"):
        dtype = types_pb2.DT_STRING
    else:
        dtype = tf.dtypes.as_dtype(array.dtype).as_datatype_enum
    proto = tensor_pb2.TensorProto(
        dtype=dtype,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in array.shape]
        ),
    )
    field = _VALUE_FIELD.get(dtype)
    if field is None:
        raise errors.ServingError(
            grpc.StatusCode.INTERNAL,
            f"output dtype {dtype_name(dtype)} cannot be sent over the wire",
        )
    flat = array.ravel()
    if dtype == types_pb2.DT_STRING:
        proto.string_val.extend(v if isinstance(v, bytes) else str(v).encode() for v in flat)
    elif field == "half_val":
        proto.half_val.extend(flat.view(np.uint16).tolist())
    elif field in ("scomplex_val", "dcomplex_val"):
        getattr(proto, field).extend(np.stack([flat.real, flat.imag], -1).ravel().tolist())
    else:
        getattr(proto, field).extend(flat.tolist())
    return proto
