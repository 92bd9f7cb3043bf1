"""The family contract: what every zoo family (`rnnzoo.training.registry.Family`) promises, checked
from its declaration alone.

For every family `registry.load_families()` finds, from its `smallest` configuration and nothing
else (no per-family code here: a family that needs more breaks its declaration):

1. it trains 2 steps through the shared loop (`rnnzoo.training.loop.train`, an evaluation and a
   checkpoint at every step, no early stop) and writes `metrics.json` with its primary metric
   (`rnnzoo.training.evaluation.primary_metric`) finite;
2. re-running to 3 steps resumes: the history continues with step 3, `checkpoint.json` says step 3,
   and the first new step starts from the weights (and optimizer step) of the last checkpoint. (Not
   "the same weights as an uninterrupted 3-step run": a schedule tied to the run's length, e.g. the
   RTRBM's linear learning-rate decay to 0 at `train_steps`, makes that differ by design);
3. `rnnzoo.export.export_run` writes a SavedModel whose signature keys are exactly the
   `signature_key`s of the family's declared contracts (`Family.signatures`,
   `rnnzoo.serving.signatures.CONTRACTS`) and `serving_default` when it declares a
   `default_signature` (then the same inputs and outputs as that contract's signature), nothing
   else (the writer checks each signature against its contract);
4. served by one embedded server (every family's export under the family's name, added to the
   server's model config as it is exported), a `rnnzoo.serving.Client` (gRPC) call of every declared
   contract, with the contract's defaults and the least required inputs derived from its input
   declarations (for `predict`, from the SavedModel's own signature), returns the contract's outputs
   in their declared dtypes with one row per request row, equal to the in-process call of the same
   SavedModel signature on the same inputs (to 1e-5).

And across families: every contract is carried by some family, every family names existing
contracts and declares an exporter and a smallest configuration.
"""

import dataclasses
import math
import os

import grpc
import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc

from rnnzoo.export import export_run
from rnnzoo.serving import Client, ModelServer, ServerOptions
from rnnzoo.serving.client import contract_inputs
from rnnzoo.serving.config import ModelServerConfig
from rnnzoo.serving.signatures import ANY_ALIAS, CONTRACTS
from rnnzoo.training import evaluation, registry
from rnnzoo.training.run_directory import RunDirectory
from rnnzoo.training.loop import TrainConfig, build_run, train

FAMILIES = registry.load_families()

RUN = dict(eval_every=1, test_size=8, early_stop=False, verbose=0)
"""What the contract sets on top of a family's smallest configuration."""

ROWS = 3
"""Rows of every request (not 1, and unlike the other sizes, so a wrong axis shows)."""

FREE = 2
"""The size of an input dimension neither the contract nor the served signature fixes."""

TEXTS = ("the red file is open", "def f(x):", "")
"""String inputs, one per row."""


# ---- 1 and 2: training and resumption ------------------------------------------------------


class FirstStepStart(keras.callbacks.Callback):
    """Records the weights and optimizer step the first training step of a `fit` starts from."""

    weights = iterations = None

    def on_train_batch_begin(self, batch, logs=None):
        if self.weights is None:
            self.weights = [np.array(w) for w in self.model.get_weights()]
            self.iterations = int(self.model.optimizer.iterations)


@dataclasses.dataclass
class Run:
    family: registry.Family
    config: TrainConfig
    options: dict
    first: dict  # metrics.json after 2 steps
    primary: str
    saved_weights: list  # the last checkpoint after 2 steps, loaded before resuming
    start: FirstStepStart  # where the resumed run's first step started
    resumed: dict  # train()'s metrics after resuming to 3 steps
    state: dict  # checkpoint.json after resuming
    resumed_weights: list


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def run(request, tmp_path_factory):
    """The family's smallest configuration trained 2 steps, then resumed to 3."""
    family = FAMILIES[request.param]
    directory = tmp_path_factory.mktemp(family.name)
    fields, options = family.smallest(str(directory))
    config = TrainConfig(**{**fields, **RUN, "model_dir": str(directory / "run"), "train_steps": 2})
    train(config, **options)
    run_dir = RunDirectory(config.model_dir)
    first = run_dir.metrics()
    _, built = build_run(config, **options)
    saved_weights = run_dir.load_model().get_weights()
    start = FirstStepStart()
    resumed = train(dataclasses.replace(config, train_steps=3), callbacks=[start], **options)
    return Run(family, config, options, first, evaluation.primary_metric(built)[0], saved_weights, start,
               resumed, run_dir.state(), run_dir.load_model().get_weights())


def test_trains_two_steps_and_writes_a_finite_primary_metric(run):
    first = run.first
    assert first is not None, "no metrics.json"
    assert first["step"] == 2 and not first["diverged"]
    assert [h["step"] for h in first["history"]] == [1, 2]
    assert run.primary in first["metric_directions"] or run.primary == "test_loss"
    value = first.get(run.primary)
    assert value is not None and math.isfinite(value), f"primary metric {run.primary} = {value!r}"


def test_resuming_continues_from_the_last_checkpoint(run):
    resumed, first = run.resumed, run.first
    assert resumed["step"] == 3 and not resumed["diverged"]
    assert [h["step"] for h in resumed["history"]] == [1, 2, 3]
    assert resumed["history"][:2] == first["history"]
    assert run.state["step"] == 3
    assert run.start.weights is not None, "the resumed run took no training step"
    assert run.start.iterations == 2, "the resumed optimizer does not continue at step 2"
    assert len(run.start.weights) == len(run.saved_weights)
    for started, saved in zip(run.start.weights, run.saved_weights):
        np.testing.assert_array_equal(started, saved)
    assert any(not np.array_equal(a, b) for a, b in zip(run.resumed_weights, run.saved_weights)), \
        "step 3 changed no weight"


# ---- 3: the export ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def export(run, tmp_path_factory):
    base = str(tmp_path_factory.mktemp("serving") / run.family.name)
    path = export_run(run.config.model_dir, base)
    assert path == os.path.join(base, "1")
    return base, path, tf.saved_model.load(path)


def test_the_export_carries_exactly_the_declared_contracts(run, export):
    _, _, loaded = export
    declared = {CONTRACTS[name].signature_key for name in run.family.signatures}
    if run.family.default_signature:
        declared.add("serving_default")
        default, named = (loaded.signatures[key] for key in (
            "serving_default", CONTRACTS[run.family.default_signature].signature_key))
        assert default.structured_outputs.keys() == named.structured_outputs.keys()
        assert default.structured_input_signature == named.structured_input_signature
    exported = set(loaded.signatures)
    assert exported == declared, (
        f"{run.family.name} exports signatures {sorted(exported - declared)} that its Family.signatures "
        f"{run.family.signatures} do not declare, and lacks {sorted(declared - exported)}")


# ---- 4: serving --------------------------------------------------------------------------------


class Served:
    """One embedded server for the module; `add` puts a family's export into its model config."""

    def __init__(self, directory):
        config_file = os.path.join(directory, "models.config")
        with open(config_file, "w") as f:
            f.write("model_config_list {}\n")  # nothing yet: families are added as they export
        self.server = ModelServer(ServerOptions(
            port=0, rest_api_port=None, host="127.0.0.1", model_config_file=config_file,
            file_system_poll_wait_seconds=0, max_num_load_retries=0, settle_heap=False)).start()
        self.target = f"127.0.0.1:{self.server.grpc_port}"
        self.config = ModelServerConfig()
        self.config.model_config_list.SetInParent()
        self.channel = grpc.insecure_channel(self.target)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def add(self, name, base_path):
        """Serves `base_path` as model `name` besides the models already served."""
        self.config.model_config_list.config.add(name=name, base_path=base_path, model_platform="tensorflow")
        self.models.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(config=self.config),
                                              timeout=300)

    def close(self):
        self.channel.close()
        self.server.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    served = Served(str(tmp_path_factory.mktemp("server")))
    yield served
    served.close()


def signature_dims(signature, alias):
    """The served dimensions of input `alias` of a loaded signature, -1 where free."""
    shape = signature.structured_input_signature[1][alias].shape
    return [-1 if d is None else d for d in shape.as_list()]


def required_value(tensor, dims):
    """A value of input `tensor` (a `SignatureTensor`) of shape `dims` (its free dimensions -1)."""
    shape = [ROWS] + [FREE if d == -1 else d for d in dims[1:]]
    if tensor.dtype == "string":
        return np.resize(np.array(TEXTS, object), shape)
    if tf.dtypes.as_dtype(tensor.dtype).is_floating:
        low = 0.0 if tensor.minimum is None else tensor.minimum
        return np.random.default_rng(0).uniform(low, low + 1.0, shape).astype(tensor.dtype)
    return np.full(shape, FREE if tensor.minimum is None else int(tensor.minimum) + FREE, tensor.dtype)


def least_inputs(contract, signature):
    """{alias: value}: every input the contract requires (no default), none of the defaulted ones."""
    values = {}
    for tensor in contract.inputs:
        if tensor.alias == ANY_ALIAS:  # the model's own inputs: as the SavedModel declares them
            for alias in signature.structured_input_signature[1]:
                values[alias] = required_value(tensor, signature_dims(signature, alias))
        elif tensor.default is None:
            served = signature_dims(signature, tensor.alias)
            dims = [want if want != -1 else got for want, got in zip(tensor.shape, served)]
            values[tensor.alias] = required_value(tensor, dims)
    return values


def test_every_declared_contract_serves_as_the_savedmodel_computes(run, export, served):
    base, _, loaded = export
    name = run.family.name
    served.add(name, base)
    with Client(served.target, timeout=300) as client:
        assert client.wait_until_available(name) == 1  # polls until the version is AVAILABLE
        for contract_name in run.family.signatures:
            contract = CONTRACTS[contract_name]
            signature = loaded.signatures[contract.signature_key]
            values = least_inputs(contract, signature)
            remote = client.call(name, contract_name, values)
            request = contract_inputs(contract, values, lambda alias: signature_dims(signature, alias))
            local = {alias: t.numpy() for alias, t in signature(
                **{alias: tf.constant(value) for alias, value in request.items()}).items()}
            declared = {t.alias for t in contract.outputs}
            assert set(remote) == set(local) and (ANY_ALIAS in declared or set(remote) == declared), contract_name
            for alias, value in remote.items():
                where = f"{name} {contract_name} output {alias!r}"
                tensor = contract.outputs[0] if ANY_ALIAS in declared else next(
                    t for t in contract.outputs if t.alias == alias)
                want = object if tensor.dtype == "string" else np.dtype(tensor.dtype)
                assert value.dtype == want and local[alias].dtype == want, (where, value.dtype, local[alias].dtype)
                assert value.shape[0] == ROWS and value.shape == local[alias].shape, (where, value.shape)
                if want is object or np.issubdtype(want, np.integer):
                    np.testing.assert_array_equal(value, local[alias], err_msg=where)
                else:
                    np.testing.assert_allclose(value, local[alias], rtol=1e-5, atol=1e-5, err_msg=where)


# ---- across families -----------------------------------------------------------------------------


def test_contracts_and_family_declarations_name_each_other():
    carried = {name for family in FAMILIES.values() for name in family.signatures}
    assert set(CONTRACTS) <= carried, f"contracts no family carries: {sorted(set(CONTRACTS) - carried)}"
    for family in FAMILIES.values():
        unknown = set(family.signatures) - set(CONTRACTS)
        assert family.default_signature in (None, *family.signatures), family.name
        assert not unknown, f"family {family.name} names unknown contracts {sorted(unknown)}"
        assert family.signatures, f"family {family.name} declares no contract"
        assert family.export is not None, f"family {family.name} declares no exporter"
        assert family.smallest is not None, f"family {family.name} declares no smallest configuration"
