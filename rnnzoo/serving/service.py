"""Transport-independent PredictionService and ModelService handlers.

The gRPC servicers and the REST handlers both call `ServingHandlers`, so the two wire formats
share one resolution of model specs, one set of error codes and one set of metrics
(``request_count`` by status and ``request_latency`` by API and entrypoint, as TF Serving).
"""

import time

from google.protobuf import any_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
)

from rnnzoo.serving import errors, inference

SIGNATURE_DEF_FIELD = "signature_def"


def spec_version(spec):
    """(version, label) named by a ModelSpec; (None, None) means the latest version."""
    choice = spec.WhichOneof("version_choice")
    if choice == "version":
        return spec.version.value, None
    if choice == "version_label":
        return None, spec.version_label
    return None, None


class ServingHandlers:
    """Request handlers over a `ModelManager`, recording `ServingMetrics`."""

    def __init__(self, manager, metrics):
        self.manager = manager
        self.metrics = metrics

    def resolve(self, spec):
        version, label = spec_version(spec)
        return self.manager.resolve(spec.name, version, label)

    def measured(self, api: str, entrypoint: str, model_name: str, call):
        start = time.perf_counter()
        try:
            result = call()
        except Exception as error:
            failure = errors.from_exception(error)
            self.metrics.request_count.increment(model_name, failure.code_name)
            raise failure from None
        self.metrics.request_count.increment(model_name, "OK")
        self.metrics.request_latency.add((time.perf_counter() - start) * 1e6, model_name, api, entrypoint)
        return result

    def predict(self, request, entrypoint="GRPC", deadline=None):
        return self.measured(
            "Predict", entrypoint, request.model_spec.name,
            lambda: inference.predict(self.resolve(request.model_spec), request, deadline),
        )

    def classify(self, request, entrypoint="GRPC", deadline=None):
        return self.measured(
            "Classify", entrypoint, request.model_spec.name,
            lambda: inference.classify(self.resolve(request.model_spec), request, deadline),
        )

    def regress(self, request, entrypoint="GRPC", deadline=None):
        return self.measured(
            "Regress", entrypoint, request.model_spec.name,
            lambda: inference.regress(self.resolve(request.model_spec), request, deadline),
        )

    def multi_inference(self, request, entrypoint="GRPC", deadline=None):
        def call():
            inference.check_multi_inference(request)
            return inference.multi_inference(self.resolve(request.tasks[0].model_spec), request, deadline)

        name = request.tasks[0].model_spec.name if request.tasks else ""
        return self.measured("MultiInference", entrypoint, name, call)

    def get_model_metadata(self, request):
        fields = list(request.metadata_field)
        if not fields:
            raise errors.invalid_argument("GetModelMetadataRequest must specify at least one metadata_field")
        for field in fields:
            if field != SIGNATURE_DEF_FIELD:
                raise errors.invalid_argument(
                    f"Metadata field {field} is not supported; the only field is '{SIGNATURE_DEF_FIELD}'"
                )
        servable = self.resolve(request.model_spec)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, signature in servable.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(signature)
        packed = any_pb2.Any()
        packed.Pack(signature_map)
        response.metadata[SIGNATURE_DEF_FIELD].CopyFrom(packed)
        return response

    def get_model_status(self, request):
        version, label = spec_version(request.model_spec)
        response = get_model_status_pb2.GetModelStatusResponse()
        response.model_version_status.extend(self.manager.status(request.model_spec.name, version, label))
        return response

    def reload_config(self, request):
        """Replace the model set; a refused config fails the call with its status code."""
        self.manager.set_config(request.config)
        return model_management_pb2.ReloadConfigResponse()
