"""Warmup replay of ``assets.extra/tf_serving_warmup_requests`` before a version serves.

The file is a TFRecord of `tensorflow.serving.PredictionLog`s, as TF Serving reads it
(servables/tensorflow/saved_model_warmup_util.cc): each logged request runs once against the
new version; any failure fails the load, so a version never becomes AVAILABLE half-warm.
"""

import os

import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from rnnzoo.serving import errors, inference

WARMUP_PATH = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000


def warmup_file(version_path: str) -> str:
    return os.path.join(version_path, WARMUP_PATH)


def run_warmup(servable) -> int:
    """Replay the version's warmup records; returns how many ran (0 when there is no file)."""
    path = warmup_file(servable.path)
    if not tf.io.gfile.exists(path):
        return 0
    count = 0
    for record in tf.data.TFRecordDataset(path):
        count += 1
        if count > MAX_WARMUP_RECORDS:
            raise ValueError(f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) in {path}")
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record.numpy())
        kind = log.WhichOneof("log_type")
        try:
            if kind == "predict_log":
                inference.predict(servable, log.predict_log.request)
            elif kind == "classify_log":
                inference.classify(servable, log.classify_log.request)
            elif kind == "regress_log":
                inference.regress(servable, log.regress_log.request)
            elif kind == "multi_inference_log":
                inference.multi_inference(servable, log.multi_inference_log.request)
            else:
                raise errors.invalid_argument(f"unsupported warmup log type {kind!r}")
        except errors.ServingError as error:
            raise ValueError(f"warmup record {count} of {path} failed: {error.code_name}: {error.message}") from None
    return count
