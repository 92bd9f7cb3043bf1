"""Serving-parity check: will stock TensorFlow Serving run this SavedModel?

`check_serving_parity(export_dir)` reads `saved_model.pb` and fails with a
`ServingParityError` naming every problem it finds:

- `py_function` / `numpy_function` ops (`EagerPyFunc`, `PyFunc`,
  `PyFuncStateless`): they call back into Python, which TF Serving does not have;
- ops outside core TensorFlow and the tf-text ops TF Serving links
  (`SERVING_TEXT_OPS`; TF Serving lags tensorflow-text, so only long-standing
  tf-text ops are accepted);
- float16 / bfloat16 tensors at a signature's inputs or outputs (clients
  send float32; cast inside the graph);
- captured inputs of a function that point at no tracked object (a resource
  the exporter did not track, e.g. a lookup table created outside a tracked
  layer), which would fail to restore.

Every rnnzoo export runs it; it is also usable on any SavedModel:

    from rnnzoo.export import check_serving_parity
    check_serving_parity("/models/char_lm/1")
"""

import os

import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2

PYTHON_OPS = frozenset({"EagerPyFunc", "PyFunc", "PyFuncStateless"})

SERVING_TEXT_OPS = frozenset({
    "CaseFoldUTF8",
    "ConstrainedSequence",
    "FastWordpieceTokenizeWithOffsets",
    "MaxSpanningTree",
    "NormalizeUTF8",
    "RegexSplitWithOffsets",
    "SentenceFragments",
    "SentencepieceDetokenizeOp",
    "SentencepieceIdToStringOp",
    "SentencepieceOp",
    "SentencepieceStringToIdOp",
    "SentencepieceTokenizeOp",
    "SentencepieceTokenizeWithOffsetsOp",
    "SentencepieceVocabSizeOp",
    "SplitMergeTokenizeWithOffsets",
    "TFText>FastSentencepieceDetokenize",
    "TFText>FastSentencepieceTokenize",
    "TFText>FastWordpieceDetokenize",
    "UnicodeScriptTokenizeWithOffsets",
    "WhitespaceTokenizeWithOffsets",
    "WordpieceTokenizeWithOffsets",
})
"""tf-text ops TF Serving links (HEAD links tensorflow-text 2.20's op library), under their registered names."""

_BOUNDARY_DTYPES = {types_pb2.DT_HALF: "float16", types_pb2.DT_BFLOAT16: "bfloat16"}
_TRACKED_KINDS = ("variable", "constant", "resource", "asset", "captured_tensor")


class ServingParityError(ValueError):
    """The SavedModel would not run (or not run the same) on stock TensorFlow Serving."""


def core_ops():
    """Names of the ops core TensorFlow registers (custom-library ops excluded)."""
    return frozenset(name for name in dir(tf.raw_ops) if not name.startswith("_")) - PYTHON_OPS


def read_saved_model(export_dir):
    path = os.path.join(export_dir, "saved_model.pb")
    if not os.path.exists(path):
        raise ServingParityError(f"{export_dir!r} holds no saved_model.pb; pass a SavedModel version directory")
    saved = saved_model_pb2.SavedModel()
    with open(path, "rb") as f:
        saved.ParseFromString(f.read())
    return saved


def graph_ops(meta_graph):
    """{op type: first place it appears ("graph" or "function <name>")}."""
    where = {}
    for node in meta_graph.graph_def.node:
        where.setdefault(node.op, "graph")
    for function in meta_graph.graph_def.library.function:
        for node in function.node_def:
            where.setdefault(node.op, f"function {function.signature.name}")
    return where


def problems(export_dir, extra_ops=()):
    """Every serving-parity problem of the SavedModel at `export_dir`, as messages (empty: none)."""
    saved = read_saved_model(export_dir)
    found = []
    allowed = core_ops() | SERVING_TEXT_OPS | frozenset(extra_ops)
    for meta_graph in saved.meta_graphs:
        functions = {f.signature.name for f in meta_graph.graph_def.library.function}
        for op, where in sorted(graph_ops(meta_graph).items()):
            if op in PYTHON_OPS:
                found.append(
                    f"op {op} (tf.py_function / tf.numpy_function) in {where}: TF Serving has no Python; "
                    "write that computation with TensorFlow ops"
                )
            elif op not in allowed and op not in functions:
                found.append(
                    f"op {op} in {where} is not a core TensorFlow op nor a tf-text op TF Serving links; "
                    "stock tensorflow_model_server cannot load this model"
                )
        for name, signature in sorted(meta_graph.signature_def.items()):
            for side, tensors in (("input", signature.inputs), ("output", signature.outputs)):
                for alias, info in sorted(tensors.items()):
                    if info.dtype in _BOUNDARY_DTYPES:
                        found.append(
                            f"signature {name!r} {side} {alias!r} is {_BOUNDARY_DTYPES[info.dtype]}; "
                            "serve float32 at the boundary and cast inside the graph"
                        )
        graph = meta_graph.object_graph_def
        for function_name, function in sorted(graph.concrete_functions.items()):
            for node_id in function.bound_inputs:
                kind = graph.nodes[node_id].WhichOneof("kind") if node_id < len(graph.nodes) else None
                if kind not in _TRACKED_KINDS:
                    found.append(
                        f"function {function_name} captures object {node_id} ({kind or 'missing'}), "
                        "not a tracked variable or resource: attach it to the exported module"
                    )
    return found


def save_for_serving(module, export_dir, signatures, extra_ops=()):
    """`tf.saved_model.save` then `check_serving_parity`; untracked resources become `ServingParityError`."""
    try:
        tf.saved_model.save(module, export_dir, signatures=signatures)
    except AssertionError as error:
        if "untracked" not in str(error):
            raise
        raise ServingParityError(
            f"the exported functions use a resource no exported object tracks ({error}); "
            "assign it to an attribute of the exported module or layer"
        ) from None
    return check_serving_parity(export_dir, extra_ops)


def check_serving_parity(export_dir, extra_ops=()):
    """Raises `ServingParityError` listing every problem (see the module docstring); returns `export_dir`.

    Args:
        export_dir: a SavedModel directory (one version, holding `saved_model.pb`).
        extra_ops: further op names your TF Serving build links (custom ops).
    """
    found = problems(export_dir, extra_ops)
    if found:
        raise ServingParityError(
            f"{export_dir} would not run on stock TensorFlow Serving:\n  - " + "\n  - ".join(found)
        )
    return export_dir
