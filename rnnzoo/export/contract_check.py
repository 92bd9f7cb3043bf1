"""The signature-contract check: does a SavedModel serve what `rnnzoo.serving.signatures` declares?

`check_contracts(export_dir, contract_of)` reads `saved_model.pb` and raises a
`ServingParityError` naming every difference between the export's signatures and
their contracts: a missing or extra signature, input or output; a dtype; a rank;
a fixed dimension of another size; a batch dimension that is not free.
"""

import tensorflow as tf

from rnnzoo.export.parity import ServingParityError, read_saved_model
from rnnzoo.serving import signatures


def _shape_problems(where, contract_shape, dims):
    if Ellipsis in contract_shape:
        fixed = contract_shape[: contract_shape.index(Ellipsis)]
        if len(dims) < len(fixed):
            return [f"{where} has rank {len(dims)}, the contract needs at least {len(fixed)}"]
    else:
        fixed = contract_shape
        if len(dims) != len(fixed):
            return [f"{where} has shape {dims}, the contract's is {signatures.describe_shape(contract_shape)}"]
    found = []
    for axis, (want, got) in enumerate(zip(fixed, dims)):
        if axis == 0 and got != -1:
            found.append(f"{where} fixes the batch dimension to {got}; leave it free (None)")
        elif want != -1 and got != want:
            found.append(f"{where} dimension {axis} is {got}, the contract's is {want}")
    return found


def _side_problems(name, side, declared, tensors):
    found = []
    wildcard = any(t.alias == signatures.ANY_ALIAS for t in declared)
    if not wildcard:
        missing = sorted({t.alias for t in declared} - set(tensors))
        extra = sorted(set(tensors) - {t.alias for t in declared})
        if missing:
            found.append(f"signature {name!r} lacks {side} {', '.join(missing)}")
        if extra:
            found.append(f"signature {name!r} has {side} {', '.join(extra)} its contract does not declare")
    elif not tensors:
        found.append(f"signature {name!r} has no {side}")
    for alias, info in sorted(tensors.items()):
        tensor = signatures.find_tensor(declared, alias)
        if tensor is None:
            continue
        where = f"signature {name!r} {side} {alias!r}"
        dtype = tf.dtypes.as_dtype(info.dtype)
        if dtype != tf.dtypes.as_dtype(tensor.dtype):
            found.append(f"{where} is {dtype.name}, the contract's is {tensor.dtype}")
        if info.tensor_shape.unknown_rank:
            found.append(f"{where} has an unknown rank")
        else:
            found.extend(_shape_problems(where, tensor.shape, [d.size for d in info.tensor_shape.dim]))
    return found


def contract_problems(export_dir, contract_of):
    """Every difference between the export's signatures and `contract_of` ({signature key: contract name})."""
    signature_defs = read_saved_model(export_dir).meta_graphs[0].signature_def
    found = []
    extra = sorted(key for key in set(signature_defs) - set(contract_of) if not key.startswith("__saved_model"))
    if extra:
        found.append(f"signatures {', '.join(extra)} have no contract")
    for key, contract_name in sorted(contract_of.items()):
        contract = signatures.get(contract_name)
        if key not in signature_defs:
            found.append(f"signature {key!r} ({contract_name}) is missing")
            continue
        definition = signature_defs[key]
        found += _side_problems(key, "inputs", contract.inputs, definition.inputs)
        found += _side_problems(key, "outputs", contract.outputs, definition.outputs)
    return found


def check_contracts(export_dir, contract_of):
    """Raises `ServingParityError` listing `contract_problems`; returns `export_dir`."""
    found = contract_problems(export_dir, contract_of)
    if found:
        raise ServingParityError(
            f"{export_dir} breaks its signature contracts (rnnzoo/serving/signatures.py):\n  - "
            + "\n  - ".join(found)
        )
    return export_dir


if __name__ == "__main__":  # docs/serving.md's contract table
    from rnnzoo.serving.signatures import markdown_table
    from rnnzoo.training.registry import contract_families

    print(markdown_table(contract_families()))
