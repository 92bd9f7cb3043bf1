"""Predict, Classify, Regress and MultiInference on one loaded version.

These functions hold TF Serving's request semantics (predict_util.cc, classifier.cc,
regressor.cc, multi_inference.cc) independent of the transport: the gRPC service, the REST
handlers and warmup replay all call them with a resolved `Servable`. Predict is split into
`predict_inputs` / `predict_response` so the service can run the signature in between on the
batcher or the model pool; Classify/Regress/MultiInference run whole on a model thread.
`method_check` is `--enable_signature_method_name_check`: off (TF Serving's default), a
Classify/Regress signature may carry any method_name.
"""

import numpy as np
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    predict_pb2,
    regression_pb2,
)

from rnnzoo.serving import errors
from rnnzoo.serving.servable import CLASSIFY_METHOD, DEFAULT_SIGNATURE, REGRESS_METHOD, Servable
from rnnzoo.serving.tensors import check_element_budget, element_count, to_ndarray, to_tensor_proto

CLASSIFY_INPUTS = "inputs"
CLASSIFY_OUTPUT_CLASSES = "classes"
CLASSIFY_OUTPUT_SCORES = "scores"
REGRESS_OUTPUTS = "outputs"


def fill_model_spec(spec, servable: Servable, signature_name: str) -> None:
    spec.name = servable.name
    spec.version.value = servable.version
    spec.signature_name = signature_name or DEFAULT_SIGNATURE


def check_output_filter(signature, output_filter) -> list:
    """The aliases a non-empty output_filter requests; INVALID_ARGUMENT if unknown or repeated."""
    names = list(output_filter)
    for name in names:
        if name not in signature.outputs:
            raise errors.invalid_argument(
                f"output tensor alias not found in signature: {name} Outputs expected to be in the "
                f"set {{{','.join(sorted(signature.outputs))}}}."
            )
    if len(set(names)) != len(names):
        raise errors.invalid_argument(f"duplicate output tensor alias in output_filter: {names}")
    return names


def check_predict(servable: Servable, signature_name: str, inputs: dict, output_filter=(), max_elements=None) -> list:
    """Check decoded inputs against the signature and the element cap; the output aliases to return."""
    check_element_budget(sum(int(v.size) for v in inputs.values()), max_elements, "the request")
    signature = servable.check_inputs(signature_name, inputs)
    if not output_filter:  # every output, in the order cached at load
        return servable.output_aliases(signature_name)
    return check_output_filter(signature, output_filter)


def predict_inputs(servable: Servable, request: predict_pb2.PredictRequest, max_elements=None) -> tuple:
    """(signature name, checked numpy inputs, output aliases) of a PredictRequest.

    Element counts are checked from the shapes alone, before any input is decoded.
    """
    signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    servable.signature(signature_name)  # FAILED_PRECONDITION before any input decoding
    total = sum(element_count(proto, alias) for alias, proto in request.inputs.items())
    check_element_budget(total, max_elements, "the request")
    inputs = {alias: to_ndarray(proto, alias) for alias, proto in request.inputs.items()}
    return signature_name, inputs, check_predict(servable, signature_name, inputs, request.output_filter)


def predict_response(servable: Servable, signature_name: str, outputs: dict, names: list,
                     tensor_content: bool = False) -> predict_pb2.PredictResponse:
    response = predict_pb2.PredictResponse()
    fill_model_spec(response.model_spec, servable, signature_name)
    for alias in names:
        response.outputs[alias].CopyFrom(to_tensor_proto(outputs[alias], tensor_content))
    return response


def predict(servable: Servable, request: predict_pb2.PredictRequest, max_elements=None) -> predict_pb2.PredictResponse:
    """Predict run now on the calling thread, unbatched (warmup replay)."""
    signature_name, inputs, names = predict_inputs(servable, request, max_elements)
    return predict_response(servable, signature_name, servable.run(signature_name, inputs), names)


def serialized_examples(input_proto) -> np.ndarray:
    """The Input proto's examples as serialized tf.Example strings (context merged in)."""
    kind = input_proto.WhichOneof("kind")
    if kind == "example_list":
        serialized = [e.SerializeToString() for e in input_proto.example_list.examples]
    elif kind == "example_list_with_context":
        context = input_proto.example_list_with_context.context.SerializeToString()
        serialized = [context + e.SerializeToString() for e in input_proto.example_list_with_context.examples]
    else:
        serialized = []
    if not serialized:
        raise errors.invalid_argument("Input is empty.")
    return np.array(serialized, dtype=object)


def _example_signature(servable: Servable, signature_name: str, method: str, what: str, method_check: bool):
    signature = servable.signature(signature_name)
    if method_check and signature.method_name != method:
        raise errors.invalid_argument(
            f"Expected {what} signature method_name to be {method}. Was: {signature.method_name}"
        )
    if list(signature.inputs) != [CLASSIFY_INPUTS] or signature.inputs[CLASSIFY_INPUTS].dtype != types_pb2.DT_STRING:
        raise errors.invalid_argument(
            f"{what} signature '{signature_name}' must have exactly one string input named "
            f"'{CLASSIFY_INPUTS}' holding serialized tf.Examples"
        )
    return signature


def _run_examples(servable, signature_name, input_proto):
    examples = serialized_examples(input_proto)
    outputs = servable.run(signature_name, {CLASSIFY_INPUTS: examples})
    for alias, value in outputs.items():
        if value.ndim == 0 or value.shape[0] != len(examples):
            raise errors.invalid_argument(
                f"output '{alias}' has shape {list(value.shape)}; expected {len(examples)} rows, one per example"
            )
    return outputs


def classify_result(servable, signature_name, input_proto, method_check=False) -> classification_pb2.ClassificationResult:
    signature_name = signature_name or DEFAULT_SIGNATURE
    signature = _example_signature(servable, signature_name, CLASSIFY_METHOD, "classification", method_check)
    outputs = _run_examples(servable, signature_name, input_proto)
    classes = outputs.get(CLASSIFY_OUTPUT_CLASSES) if CLASSIFY_OUTPUT_CLASSES in signature.outputs else None
    scores = outputs.get(CLASSIFY_OUTPUT_SCORES) if CLASSIFY_OUTPUT_SCORES in signature.outputs else None
    if classes is None and scores is None:
        raise errors.invalid_argument(
            f"classification signature '{signature_name}' has neither a '{CLASSIFY_OUTPUT_CLASSES}' "
            f"nor a '{CLASSIFY_OUTPUT_SCORES}' output"
        )
    result = classification_pb2.ClassificationResult()
    rows = (classes if classes is not None else scores).shape[0]
    for i in range(rows):
        row_classes = None if classes is None else np.reshape(classes[i], -1)
        row_scores = None if scores is None else np.reshape(scores[i], -1)
        if row_classes is not None and row_scores is not None and len(row_classes) != len(row_scores):
            raise errors.invalid_argument(
                f"classes ({len(row_classes)}) and scores ({len(row_scores)}) differ in length for example {i}"
            )
        classifications = result.classifications.add()
        for j in range(len(row_classes) if row_classes is not None else len(row_scores)):
            entry = classifications.classes.add()
            if row_classes is not None:
                entry.label = row_classes[j].decode("utf-8", "replace")
            if row_scores is not None:
                entry.score = float(row_scores[j])
    return result


def regress_result(servable, signature_name, input_proto, method_check=False) -> regression_pb2.RegressionResult:
    signature_name = signature_name or DEFAULT_SIGNATURE
    signature = _example_signature(servable, signature_name, REGRESS_METHOD, "regression", method_check)
    if REGRESS_OUTPUTS not in signature.outputs:
        raise errors.invalid_argument(f"regression signature '{signature_name}' has no '{REGRESS_OUTPUTS}' output")
    values = _run_examples(servable, signature_name, input_proto)[REGRESS_OUTPUTS]
    if values.ndim > 2 or (values.ndim == 2 and values.shape[1] != 1):
        raise errors.invalid_argument(
            f"regression output has shape {list(values.shape)}; expected [batch] or [batch, 1]"
        )
    result = regression_pb2.RegressionResult()
    for value in np.reshape(values, -1):
        result.regressions.add(value=float(value))
    return result


def classify(servable, request, method_check=False) -> classification_pb2.ClassificationResponse:
    response = classification_pb2.ClassificationResponse()
    response.result.CopyFrom(classify_result(servable, request.model_spec.signature_name, request.input, method_check))
    fill_model_spec(response.model_spec, servable, request.model_spec.signature_name)
    return response


def regress(servable, request, method_check=False) -> regression_pb2.RegressionResponse:
    response = regression_pb2.RegressionResponse()
    response.result.CopyFrom(regress_result(servable, request.model_spec.signature_name, request.input, method_check))
    fill_model_spec(response.model_spec, servable, request.model_spec.signature_name)
    return response


def check_multi_inference(request) -> None:
    if not request.tasks:
        raise errors.invalid_argument("MultiInferenceRequest has no tasks; add at least one InferenceTask")
    names = {task.model_spec.name for task in request.tasks}
    if len(names) != 1:
        raise errors.invalid_argument("All ModelSpecs in a MultiInferenceRequest must access the same model name.")
    signatures = [task.model_spec.signature_name or DEFAULT_SIGNATURE for task in request.tasks]
    if len(set(signatures)) != len(signatures):
        raise errors.invalid_argument(f"Duplicate evaluation of signature: {signatures}")


def multi_inference(servable, request, method_check=False) -> inference_pb2.MultiInferenceResponse:
    check_multi_inference(request)
    response = inference_pb2.MultiInferenceResponse()
    for task in request.tasks:
        result = response.results.add()
        fill_model_spec(result.model_spec, servable, task.model_spec.signature_name)
        if task.method_name == CLASSIFY_METHOD:
            result.classification_result.CopyFrom(
                classify_result(servable, task.model_spec.signature_name, request.input, method_check)
            )
        elif task.method_name == REGRESS_METHOD:
            result.regression_result.CopyFrom(
                regress_result(servable, task.model_spec.signature_name, request.input, method_check)
            )
        else:
            raise errors.invalid_argument(
                f"Unsupported signature method_name: {task.method_name!r}; use {CLASSIFY_METHOD} or {REGRESS_METHOD}"
            )
    return response
