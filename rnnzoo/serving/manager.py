"""The model manager: which versions of which models are loaded, and their lifecycle.

Mirrors TF Serving's AspiredVersionsManager with the availability-preserving policy: the file
system is scanned for ``<base_path>/<integer version>/saved_model.pb``; the model's version
policy (latest{N} / all / specific) picks the aspired versions; new aspired versions are loaded
and warmed up *before* versions that are no longer aspired are unloaded, so a swap never leaves
a model without a servable version. A version that fails to load is reported (state END with
its error) and the versions already serving keep serving.
"""

import dataclasses
import logging
import threading

import grpc
import tensorflow as tf
from google.protobuf import message as protobuf_message
from tensorflow_serving.apis import get_model_status_pb2

from rnnzoo.serving import errors, heap
from rnnzoo.serving.batching import Batcher
from rnnzoo.serving.config import ModelServerConfig, validate_model_server_config
from rnnzoo.serving.servable import Servable, has_saved_model
from rnnzoo.serving.warmup import run_warmup

class State:
    """ModelVersionStatus.State values as plain ints: a request reads them, and protobuf's enum
    wrapper resolves every attribute access in Python (13% of the loop under load, by py-spy)."""

    START, LOADING, AVAILABLE, UNLOADING, END = map(
        get_model_status_pb2.ModelVersionStatus.State.Value, ("START", "LOADING", "AVAILABLE", "UNLOADING", "END"))
_log = logging.getLogger("rnnzoo.serving")


@dataclasses.dataclass
class _Version:
    version: int
    path: str
    state: int = State.START
    servable: Servable | None = None
    error: errors.ServingError | None = None


@dataclasses.dataclass
class _Model:
    config: object  # tensorflow.serving.ModelConfig
    versions: dict = dataclasses.field(default_factory=dict)
    labels: dict = dataclasses.field(default_factory=dict)


class BasePathMissing(Exception):
    """A model's base path cannot be listed (absent, unmounted, or renamed for a moment)."""


def _scan(base_path: str) -> dict:
    """{version: path} for every integer-named directory holding a SavedModel.

    Raises `BasePathMissing` when `base_path` cannot be listed, so that a poll that cannot see the
    directory changes nothing (TF Serving's FileSystemStoragePathSource reports the error and keeps
    the aspired versions); an existing but empty directory means "no versions".
    """
    try:
        names = tf.io.gfile.listdir(base_path)
    except (tf.errors.NotFoundError, tf.errors.PermissionDeniedError, OSError) as error:
        raise BasePathMissing(str(error)) from None
    found = {}
    for name in names:
        name = name.rstrip("/")
        if name.isdigit():
            path = tf.io.gfile.join(base_path, name)
            if has_saved_model(path):
                found[int(name)] = path
    return found


def _aspired(model_config, on_disk: dict) -> list:
    policy = model_config.model_version_policy
    choice = policy.WhichOneof("policy_choice")
    versions = sorted(on_disk)
    if choice == "all":
        return versions
    if choice == "specific":
        return [v for v in versions if v in set(policy.specific.versions)]
    count = policy.latest.num_versions if choice == "latest" and policy.latest.num_versions > 0 else 1
    return versions[-count:]


def _load_error(error: BaseException) -> errors.ServingError:
    if isinstance(error, protobuf_message.DecodeError):
        return errors.ServingError(grpc.StatusCode.DATA_LOSS, f"Can't parse saved_model.pb as binary proto: {error}")
    return errors.from_exception(error)


class ModelManager:
    """Loads, serves and unloads model versions according to a ModelServerConfig.

    Args:
      batching: `config.BatchingOptions` to batch every version's Predict calls, or None.
      metrics: `metrics.ServingMetrics` passed to the batchers.
      runtime: the `runtime.ServingRuntime` the batchers queue on (needed with `batching`).
      max_load_retries: how often a failed load is tried again (`--max_num_load_retries`).
      load_retry_interval_s: seconds between those tries (`--load_retry_interval_micros`).
      settle_heap: after versions load or unload, collect and freeze the heap (`heap.py`).
    """

    def __init__(self, batching=None, metrics=None, runtime=None, max_load_retries: int = 0,
                 load_retry_interval_s: float = 0.0, settle_heap: bool = False):
        self._batching = batching
        self._max_load_retries = max_load_retries
        self._load_retry_interval_s = load_retry_interval_s
        self._metrics = metrics
        self._runtime = runtime
        self._lock = threading.Lock()  # guards _models for request threads
        self._sync_lock = threading.Lock()  # one load/unload pass at a time
        self._models = {}
        self._stop = threading.Event()
        self._poller = None
        self._settle = settle_heap
        self._heap_changed = False

    # ---- configuration and file-system polling -------------------------------------------
    def set_config(self, config: ModelServerConfig) -> None:
        """Replace the served model set (HandleReloadConfigRequest); blocks until loads finish.

        The new set is staged first: its base paths are listed, its aspired versions loaded and its
        labels checked; only then does it replace the old set, whose dropped models unload. A config
        that fails any step (INVALID_ARGUMENT for a bad config, NOT_FOUND for a missing base path,
        the load error of a version that cannot load, FAILED_PRECONDITION for a label on a version
        that is not available) raises and leaves the old set serving.
        """
        try:
            validate_model_server_config(config)
        except ValueError as error:
            raise errors.invalid_argument(str(error)) from None
        wanted = {m.name: m for m in config.model_config_list.config}
        with self._sync_lock:
            staged, loaded = self._stage(wanted)
            try:
                labels = {name: self._checked_labels(name, staged[name], wanted[name]) for name in wanted}
            except errors.ServingError:
                for record in loaded:
                    self._unload(record)
                raise
            with self._lock:
                removed = [model for name, model in self._models.items() if name not in wanted]
                for name, model in staged.items():
                    model.config, model.labels = wanted[name], labels[name]
                self._models = staged
            for model in removed:
                for record in list(model.versions.values()):
                    self._unload(record)
            self._sync()
            self._settle_heap()

    def _stage(self, wanted: dict) -> tuple:
        """({name: _Model} for the new set with its aspired versions loaded, [records loaded here]).

        On failure every version loaded here is unloaded again before the error is raised.
        """
        with self._lock:
            current = dict(self._models)
        staged, loaded = {}, []
        try:
            for name, model_config in wanted.items():
                model = current.get(name) or _Model(config=model_config)
                staged[name] = model
                try:
                    on_disk = _scan(model_config.base_path)
                except BasePathMissing:
                    raise errors.not_found(
                        f"Could not find base path {model_config.base_path} for servable {name}; create it "
                        f"(holding <version>/saved_model.pb) before naming it in the config"
                    ) from None
                for version in _aspired(model_config, on_disk):
                    record = model.versions.get(version)
                    if record is None or record.state == State.END:
                        record = self._load(model, version, on_disk[version])
                        if record.error is not None:
                            raise errors.ServingError(
                                record.error.code,
                                f"model {name} version {version} failed to load: {record.error.message}",
                            )
                        loaded.append(record)
        except errors.ServingError:
            for record in loaded:
                self._unload(record)
            for name, model in staged.items():
                if name not in current:
                    model.versions.clear()
            raise
        return staged, loaded

    def _checked_labels(self, name: str, model: _Model, model_config) -> dict:
        """The config's version labels; FAILED_PRECONDITION if one names a version not AVAILABLE."""
        labels = dict(model_config.version_labels)
        with self._lock:
            for label, version in labels.items():
                record = model.versions.get(version)
                if record is None or record.state != State.AVAILABLE:
                    raise errors.failed_precondition(
                        f"Request to assign label to version {version} of model {name}, which is "
                        f"not currently available for inference; load that version first"
                    )
        return labels

    def poll(self) -> None:
        """One file-system pass: load new aspired versions, then unload the rest."""
        with self._sync_lock:
            self._sync()
            self._settle_heap()

    def _settle_heap(self) -> None:
        """After versions loaded or unloaded, collect once and freeze the survivors (`heap.py`)."""
        if self._settle and self._heap_changed:
            self._heap_changed = False
            _log.info("Froze the loaded models' objects out of the garbage collector in %.2f s", heap.settle())

    def start_polling(self, interval_seconds: float) -> None:
        if interval_seconds <= 0 or self._poller is not None:
            return

        def loop():
            while not self._stop.wait(interval_seconds):
                try:
                    self.poll()
                except Exception:  # keep polling; the failure is logged and reported by status
                    _log.exception("file-system poll failed")

        self._poller = threading.Thread(target=loop, name="fs-poll", daemon=True)
        self._poller.start()

    def close(self) -> None:
        """Stop polling and unload every version (queued batches still run)."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join()
        with self._sync_lock:
            with self._lock:
                models, self._models = list(self._models.values()), {}
            for model in models:
                for record in model.versions.values():
                    self._unload(record)

    def _sync(self) -> None:
        with self._lock:
            models = list(self._models.values())
        for model in models:
            try:
                on_disk = _scan(model.config.base_path)
            except BasePathMissing as error:
                _log.warning("Could not list base path %s of servable %s (%s); keeping its loaded versions",
                             model.config.base_path, model.config.name, error)
                continue
            aspired = _aspired(model.config, on_disk)
            for version in aspired:
                record = model.versions.get(version)
                if record is None or (record.state == State.END and record.error is None):
                    self._load(model, version, on_disk[version])
            with self._lock:
                any_available = any(model.versions[v].state == State.AVAILABLE for v in aspired if v in model.versions)
                retire = [
                    r for v, r in model.versions.items()
                    if v not in aspired and r.state == State.AVAILABLE and (any_available or not aspired)
                ]
                for version in [v for v, r in model.versions.items() if r.error is not None and v not in on_disk]:
                    del model.versions[version]  # a failed version whose directory is gone
            for record in retire:
                self._unload(record)

    def _load(self, model: _Model, version: int, path: str) -> _Version:
        """Load and warm up one version, retrying a failed load `max_load_retries` times; the
        returned record is AVAILABLE or END with the last error."""
        record = _Version(version=version, path=path, state=State.LOADING)
        with self._lock:
            model.versions[version] = record
        for attempt in range(self._max_load_retries + 1):
            if attempt and self._stop.wait(self._load_retry_interval_s):
                break  # the server is stopping: no more retries
            try:
                servable = Servable(model.config.name, version, path)
                if self._batching is not None:
                    servable.batcher = Batcher(servable, self._batching, self._runtime, self._metrics)
                run_warmup(servable)
            except Exception as error:
                failure = _load_error(error)
                _log.error("Loading servable %s version %d failed (attempt %d of %d): %s", model.config.name,
                           version, attempt + 1, self._max_load_retries + 1, failure.message)
                continue
            with self._lock:
                record.servable, record.state = servable, State.AVAILABLE
            self._heap_changed = True
            _log.info("Successfully loaded servable version {name: %s version: %d}", model.config.name, version)
            return record
        with self._lock:
            record.state, record.error = State.END, failure
        return record

    def _unload(self, record: _Version) -> None:
        with self._lock:
            if record.state != State.AVAILABLE:
                return
            record.state = State.UNLOADING
            servable, record.servable = record.servable, None
        if servable.batcher is not None:
            servable.batcher.stop()
        with self._lock:
            record.state = State.END
        self._heap_changed = True
        _log.info("Unloaded servable version {name: %s version: %d}", servable.name, servable.version)

    # ---- request-time lookups ----------------------------------------------------------------
    def model_names(self) -> list:
        with self._lock:
            return sorted(self._models)

    def resolve(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        """The AVAILABLE servable a request addresses (latest version when none is given)."""
        with self._lock:
            model = self._models.get(name)
            if label:
                if model is None:
                    raise errors.not_found(f"Servable not found for request: Latest({name})")
                if label not in model.labels:
                    raise errors.invalid_argument(f"Unrecognized servable version label: {label}")
                version = model.labels[label]
            if version is None:
                available = [] if model is None else [
                    r for r in model.versions.values() if r.state == State.AVAILABLE
                ]
                if not available:
                    raise errors.not_found(f"Servable not found for request: Latest({name})")
                return max(available, key=lambda r: r.version).servable
            record = None if model is None else model.versions.get(version)
            if record is None or record.state != State.AVAILABLE:
                raise errors.not_found(f"Servable not found for request: Specific({name}, {version})")
            return record.servable

    def status(self, name: str, version: int | None = None, label: str | None = None) -> list:
        """ModelVersionStatus protos, newest version first (GetModelStatus semantics)."""
        with self._lock:
            model = self._models.get(name)
            if model is None or not model.versions:
                raise errors.not_found(f"Could not find any versions of model {name}")
            if label:
                if label not in model.labels:
                    raise errors.invalid_argument(f"Unrecognized servable version label: {label}")
                version = model.labels[label]
            if version is not None and version not in model.versions:
                raise errors.not_found(f"Could not find version {version} of model {name}")
            records = [model.versions[version]] if version is not None else [
                model.versions[v] for v in sorted(model.versions, reverse=True)
            ]
            statuses = []
            for record in records:
                status = get_model_status_pb2.ModelVersionStatus(version=record.version, state=record.state)
                status.status.SetInParent()  # TF Serving always reports a status (OK by default)
                if record.error is not None:
                    status.status.error_code = record.error.code_number
                    status.status.error_message = record.error.message
                statuses.append(status)
            return statuses
