"""Warmup records: `assets.extra/tf_serving_warmup_requests` (TF Serving's SavedModel warmup).

TF Serving (and `rnnzoo-serve`) replays each `PredictionLog` in this TFRecord
file once when it loads a version, before reporting it AVAILABLE, so the first
real request does not pay for graph initialisation.
"""

import os

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


def predict_request(signature, inputs, model_name="default"):
    """A `PredictRequest` for `signature`; `inputs` maps aliases to numpy arrays (of the signature's
    dtypes) or lists of strings."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    for alias, value in inputs.items():
        array = np.asarray(value, dtype=object) if _is_text(value) else np.asarray(value)
        request.inputs[alias].CopyFrom(tf.make_tensor_proto(array))
    return request


def _is_text(value):
    while isinstance(value, (list, tuple)) and value:
        value = value[0]
    return isinstance(value, (str, bytes))


def write_warmup_requests(export_dir, requests):
    """Writes `requests` (PredictRequests) as PredictionLogs; returns the file's path."""
    path = os.path.join(export_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for request in requests:
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(export_dir):
    """The PredictRequests of an export's warmup file."""
    requests = []
    for record in tf.data.TFRecordDataset(os.path.join(export_dir, WARMUP_FILE)).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog.FromString(record)
        requests.append(log.predict_log.request)
    return requests
