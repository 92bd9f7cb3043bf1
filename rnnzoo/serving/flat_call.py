"""A signature's concrete function called with flat tensors: the serving hot path.

Calling a loaded signature as ``function(x=tensor)`` binds the keyword arguments against its
FunctionType, flattens them, looks up its captured variables and packs the outputs back into a
dict: ~200 us of Python per call on a 2-core machine, more than a small model's kernels. A
`FlatCall` does that work once, when the version loads: it records the order in which TensorFlow
flattens the signature's inputs (found by TensorFlow's own `unpack_inputs` on probe tensors, not
re-derived), the resource handles of the captured variables and the flat order of the outputs,
and then runs each request as one `call_function` of the signature's graph function on eager
tensors made straight from the numpy inputs (`EagerTensor`, what `tf.constant` builds). The
outputs are the same tensors the structured call returns (the same graph function runs); a
signature whose inputs or outputs are not plain tensors keeps the structured call.
"""

import tensorflow as tf
from tensorflow.python.eager import context
from tensorflow.python.eager.polymorphic_function import function_type_utils
from tensorflow.python.framework import ops


def _probe(spec: tf.TensorSpec):
    shape = [1 if d is None else d for d in spec.shape.as_list()] if spec.shape.rank is not None else []
    return tf.zeros(shape, spec.dtype) if spec.dtype != tf.string else tf.fill(shape, "")


class FlatCall:
    """Run a signature function on {alias: numpy array} with one flat graph-function call.

    Args:
      function: a signature's ConcreteFunction (``loaded.signatures[name]``).

    Raises:
      TypeError: when the signature's inputs or outputs are not single tensors per alias (the
        caller then keeps the structured call).
    """

    def __init__(self, function):
        _, kwarg_specs = function.structured_input_signature
        if not all(isinstance(spec, tf.TensorSpec) for spec in kwarg_specs.values()):
            raise TypeError("signature inputs are not all plain tensors")
        outputs = function.structured_outputs
        if not isinstance(outputs, dict) or not all(isinstance(s, tf.TensorSpec) for s in outputs.values()):
            raise TypeError("signature outputs are not a dict of plain tensors")
        probes = {alias: _probe(spec) for alias, spec in kwarg_specs.items()}
        bound = function_type_utils.canonicalize_function_inputs((), probes, function.function_type)
        flat = function.function_type.unpack_inputs(bound)
        positions = {id(tensor): alias for alias, tensor in probes.items()}
        if len(flat) != len(probes) or any(id(t) not in positions for t in flat):
            raise TypeError("signature inputs do not flatten to one tensor per alias")
        self.input_order = [positions[id(t)] for t in flat]
        self._dtypes = {alias: kwarg_specs[alias].dtype.as_datatype_enum for alias in self.input_order}
        self.output_order = tf.nest.flatten({alias: alias for alias in outputs})
        atomic = function._inference_function  # the graph function the structured call runs
        self._name = atomic.name
        self._num_outputs = len(atomic.function_type.flat_outputs)
        if self._num_outputs != len(self.output_order):
            raise TypeError("signature outputs do not flatten to one tensor per alias")
        self._captures = [getattr(c, "handle", c) for c in function.captured_inputs]
        self._context = context.context()

    def __call__(self, inputs: dict) -> dict:
        """{output alias: numpy array} of the signature on checked numpy `inputs`."""
        device = self._context.device_name
        tensors = [ops.EagerTensor(inputs[alias], device, self._dtypes[alias]) for alias in self.input_order]
        outputs = self._context.call_function(self._name, tensors + self._captures, self._num_outputs)
        return {alias: tensor.numpy() for alias, tensor in zip(self.output_order, outputs)}


def structured_call(function):
    """The fallback: `function(**tensors)` for functions `FlatCall` does not take (inputs already
    carry the signature's dtypes: `Servable.check_inputs` ran)."""

    def call(inputs: dict) -> dict:
        outputs = function(**{alias: tf.nest.map_structure(tf.constant, v) for alias, v in inputs.items()})
        return {alias: tensor.numpy() for alias, tensor in outputs.items()}

    return call


def make_call(function):
    """A `FlatCall` of `function`, or its structured call when its inputs or outputs are not flat
    (or this TensorFlow's function internals differ from the ones `FlatCall` reads)."""
    try:
        return FlatCall(function)
    except (TypeError, ValueError, AttributeError):
        return structured_call(function)
