"""Server configuration protos: ModelServerConfig, BatchingParameters, MonitoringConfig.

ModelServerConfig comes from the `tensorflow-serving-api` package. BatchingParameters
(session_bundle_config.proto) and MonitoringConfig (monitoring_config.proto) are not shipped in
that package; they are declared here with TF Serving's package, field names and numbers, so the
same text-proto files parse for `rnnzoo-serve` and for `tensorflow_model_server`.
"""

import dataclasses
import os

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from google.protobuf import wrappers_pb2  # noqa: F401  (registers wrappers.proto in the pool)
from tensorflow_serving.config import model_server_config_pb2

ModelServerConfig = model_server_config_pb2.ModelServerConfig
ModelConfig = model_server_config_pb2.ModelConfig


def _declare_protos():
    file = descriptor_pb2.FileDescriptorProto(
        name="rnnzoo/serving/tf_serving_config.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    f = descriptor_pb2.FieldDescriptorProto
    batching = file.message_type.add(name="BatchingParameters")
    for number, (name, wrapper) in enumerate(
        [
            ("max_batch_size", "Int64Value"),
            ("batch_timeout_micros", "Int64Value"),
            ("max_enqueued_batches", "Int64Value"),
            ("num_batch_threads", "Int64Value"),
            ("thread_pool_name", "StringValue"),
        ],
        start=1,
    ):
        batching.field.add(
            name=name, number=number, label=f.LABEL_OPTIONAL, type=f.TYPE_MESSAGE,
            type_name=f".google.protobuf.{wrapper}",
        )
    batching.field.add(name="allowed_batch_sizes", number=6, label=f.LABEL_REPEATED, type=f.TYPE_INT64)
    batching.field.add(name="pad_variable_length_inputs", number=7, label=f.LABEL_OPTIONAL, type=f.TYPE_BOOL)
    for number, (name, wrapper) in [(8, ("enable_large_batch_splitting", "BoolValue")),
                                    (9, ("max_execution_batch_size", "Int64Value"))]:
        batching.field.add(
            name=name, number=number, label=f.LABEL_OPTIONAL, type=f.TYPE_MESSAGE,
            type_name=f".google.protobuf.{wrapper}",
        )
    ssl = file.message_type.add(name="SSLConfig")
    for number, name in enumerate(["server_key", "server_cert", "custom_ca"], start=1):
        ssl.field.add(name=name, number=number, label=f.LABEL_OPTIONAL, type=f.TYPE_STRING)
    ssl.field.add(name="client_verify", number=4, label=f.LABEL_OPTIONAL, type=f.TYPE_BOOL)
    prometheus = file.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, label=f.LABEL_OPTIONAL, type=f.TYPE_BOOL)
    prometheus.field.add(name="path", number=2, label=f.LABEL_OPTIONAL, type=f.TYPE_STRING)
    monitoring = file.message_type.add(name="MonitoringConfig")
    monitoring.field.add(
        name="prometheus_config", number=1, label=f.LABEL_OPTIONAL, type=f.TYPE_MESSAGE,
        type_name=".tensorflow.serving.PrometheusConfig",
    )
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(file.name)
    except KeyError:
        pool.Add(file)
    return tuple(
        message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tensorflow.serving.{name}"))
        for name in ("BatchingParameters", "MonitoringConfig", "SSLConfig")
    )


BatchingParameters, MonitoringConfig, SSLConfig = _declare_protos()

# --max_request_elements: the most tensor elements one request may carry, summed over its inputs
# (2**24: a float32 request of 64 MiB).
DEFAULT_MAX_REQUEST_ELEMENTS = 2**24

DEFAULT_METRICS_PATH = "/monitoring/prometheus/metrics"


def _parse_text_file(path: str, message, what: str):
    if not os.path.exists(path):
        raise ValueError(f"{what} file {path!r} does not exist; pass an existing text-proto file")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        return text_format.Parse(text, message)
    except text_format.ParseError as error:
        raise ValueError(f"{what} file {path!r} is not a valid {type(message).__name__} text proto: {error}") from None


def read_model_server_config(path: str) -> ModelServerConfig:
    """Parse a `--model_config_file` (ModelServerConfig text proto)."""
    config = _parse_text_file(path, ModelServerConfig(), "--model_config_file")
    validate_model_server_config(config)
    return config


def single_model_config(name: str, base_path: str) -> ModelServerConfig:
    """The config `--model_name`/`--model_base_path` stand for (latest version, one model)."""
    config = ModelServerConfig()
    model = config.model_config_list.config.add(name=name, base_path=base_path, model_platform="tensorflow")
    model.model_version_policy.latest.num_versions = 1
    validate_model_server_config(config)
    return config


def validate_model_server_config(config: ModelServerConfig) -> None:
    """Reject configs TF Serving would reject: no model list, duplicate names, relative or no base
    path, bad platform."""
    choice = config.WhichOneof("config")
    if choice == "custom_model_config":
        raise ValueError("custom_model_config is not supported; use model_config_list")
    if choice is None:
        raise ValueError(
            "the ModelServerConfig sets no model_config_list; send model_config_list { config { name: ... "
            "base_path: ... } } (an empty model_config_list {} unloads every model)"
        )
    names = set()
    for model in config.model_config_list.config:
        if not model.name:
            raise ValueError("every model in model_config_list needs a non-empty name")
        if model.name in names:
            raise ValueError(f"model name {model.name!r} appears twice in model_config_list; names must be unique")
        names.add(model.name)
        if not model.base_path:
            raise ValueError(f"model {model.name!r} has no base_path; set it to the directory holding <version>/saved_model.pb")
        if not (os.path.isabs(model.base_path) or "://" in model.base_path):
            raise ValueError(
                f"Expected model {model.name} to have an absolute path or URI; got base_path()={model.base_path}"
            )
        if model.model_platform not in ("", "tensorflow"):
            raise ValueError(f"model {model.name!r} has platform {model.model_platform!r}; only 'tensorflow' is served")
        policy = model.model_version_policy
        if policy.WhichOneof("policy_choice") == "specific" and not policy.specific.versions:
            raise ValueError(f"model {model.name!r}: specific version policy lists no versions")
        if policy.WhichOneof("policy_choice") == "latest" and policy.latest.num_versions < 0:
            raise ValueError(f"model {model.name!r}: latest.num_versions must be >= 1")


@dataclasses.dataclass(frozen=True)
class BatchingOptions:
    """BatchingParameters with TF Serving's defaults filled in (SharedBatchScheduler::QueueOptions)."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = os.cpu_count() or 1
    allowed_batch_sizes: tuple = ()
    pad_variable_length_inputs: bool = False
    enable_large_batch_splitting: bool = False
    max_execution_batch_size: int | None = None  # None: max_batch_size

    @property
    def execution_batch_size(self) -> int:
        """The most rows one batch runs with: max_execution_batch_size when requests are split."""
        if self.enable_large_batch_splitting and self.max_execution_batch_size is not None:
            return self.max_execution_batch_size
        return self.max_batch_size

    @classmethod
    def from_proto(cls, params) -> "BatchingOptions":
        defaults = cls()
        options = cls(
            max_batch_size=params.max_batch_size.value if params.HasField("max_batch_size") else defaults.max_batch_size,
            batch_timeout_micros=(
                params.batch_timeout_micros.value if params.HasField("batch_timeout_micros") else defaults.batch_timeout_micros
            ),
            max_enqueued_batches=(
                params.max_enqueued_batches.value if params.HasField("max_enqueued_batches") else defaults.max_enqueued_batches
            ),
            num_batch_threads=(
                params.num_batch_threads.value if params.HasField("num_batch_threads") else defaults.num_batch_threads
            ),
            allowed_batch_sizes=tuple(params.allowed_batch_sizes),
            pad_variable_length_inputs=params.pad_variable_length_inputs,
            enable_large_batch_splitting=params.enable_large_batch_splitting.value,
            max_execution_batch_size=(
                params.max_execution_batch_size.value if params.HasField("max_execution_batch_size") else None
            ),
        )
        options.validate()
        return options

    def validate(self) -> None:
        for name in ("max_batch_size", "max_enqueued_batches", "num_batch_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"BatchingParameters.{name} is {getattr(self, name)}; it must be >= 1")
        if self.batch_timeout_micros < 0:
            raise ValueError(f"BatchingParameters.batch_timeout_micros is {self.batch_timeout_micros}; it must be >= 0")
        if self.max_execution_batch_size is not None and not 1 <= self.max_execution_batch_size <= self.max_batch_size:
            raise ValueError(
                f"BatchingParameters.max_execution_batch_size is {self.max_execution_batch_size}; it must be "
                f"between 1 and max_batch_size ({self.max_batch_size})"
            )
        sizes = list(self.allowed_batch_sizes)
        if sizes:
            if sizes != sorted(set(sizes)) or sizes[0] < 1:
                raise ValueError(f"allowed_batch_sizes {sizes} must be positive and strictly increasing")
            limit = self.execution_batch_size
            if sizes[-1] != limit:
                raise ValueError(
                    f"the last allowed_batch_sizes entry ({sizes[-1]}) must equal "
                    f"{'max_execution_batch_size' if limit != self.max_batch_size else 'max_batch_size'} ({limit})"
                )


def read_batching_parameters(path: str | None) -> BatchingOptions:
    """Parse `--batching_parameters_file` (BatchingParameters text proto); None -> defaults."""
    if not path:
        return BatchingOptions()
    return BatchingOptions.from_proto(_parse_text_file(path, BatchingParameters(), "--batching_parameters_file"))


def read_ssl_config(path: str | None):
    """`--ssl_config_file` (SSLConfig text proto: PEM server_key, server_cert, custom_ca,
    client_verify), or None when the gRPC port is plaintext."""
    if not path:
        return None
    config = _parse_text_file(path, SSLConfig(), "--ssl_config_file")
    if not config.server_key or not config.server_cert:
        raise ValueError(f"--ssl_config_file {path!r} needs both server_key and server_cert (PEM text)")
    if config.client_verify and not config.custom_ca:
        raise ValueError(f"--ssl_config_file {path!r} sets client_verify but no custom_ca to verify clients against")
    return config


def read_metrics_path(path: str | None) -> str | None:
    """Prometheus path from `--monitoring_config_file`, or None when metrics are not exported."""
    if not path:
        return None
    config = _parse_text_file(path, MonitoringConfig(), "--monitoring_config_file")
    if not config.prometheus_config.enable:
        return None
    return config.prometheus_config.path or DEFAULT_METRICS_PATH
