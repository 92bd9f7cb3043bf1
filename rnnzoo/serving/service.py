"""Transport-independent PredictionService and ModelService handlers, on the serving loop.

The gRPC servicers and the REST handlers both await `ServingHandlers`, so the two wire formats
share one resolution of model specs, one set of error codes, one element cap and one set of
metrics (``request_count`` by status and ``request_latency`` by API and entrypoint, as TF
Serving). Predict decodes and encodes on the loop and leaves it only to run the signature (on the
batcher, or as one call on the model pool); everything else that blocks runs on the pool.
"""

import dataclasses
import time

from google.protobuf import any_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
)

from rnnzoo.serving import errors, inference
from rnnzoo.serving.config import DEFAULT_MAX_REQUEST_ELEMENTS

SIGNATURE_DEF_FIELD = "signature_def"


def spec_version(spec):
    """(version, label) named by a ModelSpec; (None, None) means the latest version."""
    choice = spec.WhichOneof("version_choice")
    if choice == "version":
        return spec.version.value, None
    if choice == "version_label":
        return None, spec.version_label
    return None, None


@dataclasses.dataclass(frozen=True)
class RequestPolicy:
    """Per-request options of the server's flags."""

    max_request_elements: int = DEFAULT_MAX_REQUEST_ELEMENTS
    tensor_content: bool = False  # --enable_serialization_as_tensor_content
    method_name_check: bool = False  # --enable_signature_method_name_check


class ServingHandlers:
    """Request handlers over a `ModelManager`, recording `ServingMetrics`.

    Args:
      manager: the `ModelManager`.
      metrics: the `ServingMetrics`.
      runtime: the `ServingRuntime` whose pool runs signatures.
      policy: a `RequestPolicy`.
    """

    def __init__(self, manager, metrics, runtime, policy: RequestPolicy = RequestPolicy()):
        self.manager = manager
        self.metrics = metrics
        self.runtime = runtime
        self.policy = policy

    def resolve(self, spec):
        return self.resolve_version(spec.name, *spec_version(spec))

    def resolve_version(self, name: str, version: int | None, label: str | None):
        """The servable a model name and version (or label, or neither: the latest) address."""
        if not name:
            raise errors.invalid_argument("model_spec.name is empty; set it to the name of a served model")
        return self.manager.resolve(name, version, label)

    async def measured(self, api: str, entrypoint: str, model_name: str, call):
        """Await `call()` recording request_count and request_latency; errors become `ServingError`."""
        start = time.perf_counter()
        try:
            result = await call()
        except Exception as error:
            failure = errors.from_exception(error)
            self.metrics.request_count.increment(model_name, failure.code_name)
            raise failure from None
        self.metrics.request_count.increment(model_name, "OK")
        self.metrics.request_latency.add((time.perf_counter() - start) * 1e6, model_name, api, entrypoint)
        return result

    async def run_signature(self, servable, signature_name: str, inputs: dict, deadline=None) -> dict:
        """Run checked inputs: through the version's batcher when it batches this signature."""
        batcher = servable.batcher
        if batcher is not None and batcher.batches(signature_name):
            return await batcher.submit(signature_name, inputs, deadline)
        return await self.runtime.call(servable.run, signature_name, inputs)

    async def predict_arrays(self, servable, signature_name: str, inputs: dict) -> dict:
        """The outputs of a Predict given decoded numpy inputs (the REST path, whose deadline cancels it)."""
        names = inference.check_predict(servable, signature_name, inputs, (), self.policy.max_request_elements)
        outputs = await self.run_signature(servable, signature_name, inputs)
        return {name: outputs[name] for name in names}

    async def predict(self, request, entrypoint="GRPC", deadline=None):
        async def call():
            servable = self.resolve(request.model_spec)
            signature_name, inputs, names = inference.predict_inputs(
                servable, request, self.policy.max_request_elements)
            outputs = await self.run_signature(servable, signature_name, inputs, deadline)
            return inference.predict_response(servable, signature_name, outputs, names, self.policy.tensor_content)

        return await self.measured("Predict", entrypoint, request.model_spec.name, call)

    async def _on_pool(self, api, entrypoint, spec, function, request):
        async def call():
            servable = self.resolve(spec)
            return await self.runtime.call(function, servable, request, self.policy.method_name_check)

        return await self.measured(api, entrypoint, spec.name, call)

    async def classify(self, request, entrypoint="GRPC"):
        return await self._on_pool("Classify", entrypoint, request.model_spec, inference.classify, request)

    async def regress(self, request, entrypoint="GRPC"):
        return await self._on_pool("Regress", entrypoint, request.model_spec, inference.regress, request)

    async def multi_inference(self, request, entrypoint="GRPC"):
        inference.check_multi_inference(request)
        return await self._on_pool(
            "MultiInference", entrypoint, request.tasks[0].model_spec, inference.multi_inference, request)

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
        if not request.model_spec.name:
            raise errors.invalid_argument("model_spec.name is empty; set it to the name of a served model")
        version, label = spec_version(request.model_spec)
        response = get_model_status_pb2.GetModelStatusResponse()
        response.model_version_status.extend(self.manager.status(request.model_spec.name, version, label))
        return response

    async def reload_config(self, request):
        """Replace the model set (loads run on the pool); a refused config fails with its status."""
        await self.runtime.call(self.manager.set_config, request.config)
        return model_management_pb2.ReloadConfigResponse()
