"""Op errors raised inside a served graph reach clients as the op's own message."""

import grpc
import pytest
import tensorflow as tf

from rnnzoo.serving.errors import from_exception


@tf.function
def _checked(max_length):
    tf.debugging.assert_non_negative(max_length, message="max_length must be >= 0")
    return max_length


def test_graph_op_error_keeps_the_op_message_and_drops_the_python_traceback():
    with pytest.raises(tf.errors.InvalidArgumentError) as raised:
        _checked(tf.constant(-1))
    error = from_exception(raised.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "max_length must be >= 0" in error.message
    assert "Graph execution error" not in error.message
    assert "File " not in error.message and "[[{{node" not in error.message


def test_eager_op_error_message_is_unchanged():
    with pytest.raises(tf.errors.InvalidArgumentError) as raised:
        tf.reshape(tf.zeros([3]), [2])
    error = from_exception(raised.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "reshape" in error.message.lower() and "3" in error.message
