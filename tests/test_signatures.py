"""Signature contracts: the declarations, the export check that reads them, the client's request
building from them and the docs table generated from them."""

import math
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from rnnzoo.export import ServingParityError, write_export
from rnnzoo.export.contract_check import check_contracts, contract_problems
from rnnzoo.export.warmup import predict_request
from rnnzoo.serving import signatures
from rnnzoo.serving.client import contract_inputs
from rnnzoo.training import registry

DOCS = os.path.join(os.path.dirname(__file__), "..", "docs", "serving.md")


def test_docs_table_is_the_declarations():
    text = open(DOCS, encoding="utf-8").read()
    section = text[text.index("### Signature contracts"):]
    table = re.search(r"^\|.*?(?=\n\n)", section, re.S | re.M).group(0)
    assert table == signatures.markdown_table(registry.contract_families()), "regenerate it: python -m rnnzoo.export.contract_check"


def test_names_and_signature_keys_are_unique_and_declarations_well_formed():
    names = [c.name for c in signatures.CONTRACT_LIST]
    keys = [c.signature_key for c in signatures.CONTRACT_LIST]
    assert len(set(names)) == len(names) and len(set(keys)) == len(keys)
    assert set(names) >= {"generate", "score", "predict", "translate", "control_step", "control_sequence",
                          "next_frame", "generate_frames"}
    assert signatures.get("predict").signature_key == "serving_default"
    for contract in signatures.CONTRACT_LIST:
        for tensor in contract.inputs + contract.outputs:
            dtype = tf.as_dtype(tensor.dtype)
            assert dtype not in (tf.float16, tf.bfloat16), tensor
            assert tensor.shape[0] == -1, f"{contract.name} {tensor.alias}: the batch dimension must be free"
            if tensor.default is not None:
                assert np.asarray(tensor.default, dtype.as_numpy_dtype).ndim == 0
                assert tensor.minimum is None or tensor.default >= tensor.minimum
    with pytest.raises(ValueError, match="no signature contract 'control'; the contracts are: generate, score"):
        signatures.get("control")


def saved(tmp_path, signature_functions):
    module = tf.Module()
    path = str(tmp_path / "export")
    tf.saved_model.save(module, path, signatures=signature_functions)
    return path


def spec(shape, dtype, name):
    return tf.TensorSpec(shape, dtype, name=name)


def test_a_conforming_control_step_export_passes_with_its_state_size_fixed(tmp_path):
    @tf.function(input_signature=[spec([None, 4], tf.float32, "observation"), spec([None, 4], tf.float32, "target"),
                                  spec([None, 7], tf.float32, "state")])
    def step(observation, target, state):
        return {"torque": observation[:, :2] + target[:, :2], "state": state + 1.0}

    path = saved(tmp_path, {"control_step": step})
    assert check_contracts(path, {"control_step": "control_step"}) == path


def test_every_difference_from_the_contract_is_named(tmp_path):
    @tf.function(input_signature=[spec([None, 3], tf.float32, "observation"), spec([2, 4], tf.float32, "target"),
                                  spec([None, 5], tf.float32, "extra")])
    def step(observation, target, extra):
        return {"torque": tf.cast(observation[:, :2], tf.float64), "state": tf.concat([target, extra[:2, :1]], 1)[0]}

    @tf.function(input_signature=[spec([None], tf.string, "text")])
    def other(text):
        return {"length": tf.strings.length(text)}

    path = saved(tmp_path, {"control_step": step, "other": other})
    problems = contract_problems(path, {"control_step": "control_step", "score": "score"})
    assert problems == [
        "signatures other have no contract",
        "signature 'control_step' lacks inputs state",
        "signature 'control_step' has inputs extra its contract does not declare",
        "signature 'control_step' inputs 'observation' dimension 1 is 3, the contract's is 4",
        "signature 'control_step' inputs 'target' fixes the batch dimension to 2; leave it free (None)",
        "signature 'control_step' outputs 'state' has shape [5], the contract's is [b, n]",
        "signature 'control_step' outputs 'torque' is float64, the contract's is float32",
        "signature 'score' (score) is missing",
    ]
    with pytest.raises(ServingParityError, match="breaks its signature contracts"):
        check_contracts(path, {"control_step": "control_step"})


def test_the_writer_refuses_unknown_contracts_and_stray_warmup_requests(tmp_path):
    @tf.function(input_signature=[spec([None], tf.string, "text")])
    def score(text):
        n = tf.cast(tf.strings.length(text), tf.float32)
        return {"bits_per_char": n, "log_prob": -n}

    base = str(tmp_path / "b")
    with pytest.raises(ValueError, match="no signature contract 'scores'"):
        write_export(tf.Module(), {"scores": score}, base)
    with pytest.raises(ValueError, match=r"warmup requests name signatures \['generate'\]"):
        write_export(tf.Module(), {"score": score}, base, warmup_requests=[predict_request("generate", {"x": [1]})])
    with pytest.raises(ValueError, match="default='generate' is none of the exported contracts"):
        write_export(tf.Module(), {"score": score}, base, default="generate")
    assert not os.path.exists(base)
    path = write_export(tf.Module(), {"score": score}, base, default="score",
                        warmup_requests=[predict_request("serving_default", {"text": ["ab"]})])
    assert set(tf.saved_model.load(path).signatures) == {"score", "serving_default"}


def test_client_requests_follow_the_contract():
    generate = signatures.get("generate")
    request = contract_inputs(generate, {"prompt": ["a", "bc"], "seed": [3, 4]})
    assert request["prompt"].tolist() == [b"a", b"bc"]
    assert request["max_length"].dtype == np.int32 and request["max_length"].tolist() == [100, 100]
    assert request["temperature"].dtype == np.float32 and request["temperature"].tolist() == [1.0, 1.0]
    assert request["seed"].dtype == np.int64 and request["seed"].tolist() == [3, 4]
    broadcast = contract_inputs(generate, {"prompt": "x", "temperature": 0.0})  # no batch dimension: one row
    assert broadcast["prompt"].tolist() == [b"x"] and broadcast["temperature"].tolist() == [0.0]
    with pytest.raises(ValueError, match="the generate contract has no input promt; its inputs are prompt, max_length"):
        contract_inputs(generate, {"promt": ["x"]})
    with pytest.raises(ValueError, match=r"needs input 'prompt' \(UTF-8 text to continue"):
        contract_inputs(generate, {"seed": [1]})
    with pytest.raises(ValueError, match=r"temperature must be >= 0 \(softmax temperature.*got \[0.5, nan\]"):
        contract_inputs(generate, {"prompt": ["a", "b"], "temperature": [0.5, math.nan]})
    with pytest.raises(ValueError, match="seed has 3 values for 2 rows; pass one value or one per row"):
        contract_inputs(generate, {"prompt": ["a", "b"], "seed": [1, 2, 3]})
    with pytest.raises(ValueError, match="generate input 'max_length' must be int32"):
        contract_inputs(generate, {"prompt": ["a"], "max_length": ["ten"]})
    with pytest.raises(ValueError, match="request has no rows"):
        contract_inputs(generate, {"prompt": []})


def test_client_fills_the_controller_state_from_the_served_size():
    step = signatures.get("control_step")
    request = contract_inputs(step, {"observation": [[0, 0, 0, 0], [1, 1, 1, 1]], "target": [0.5, 1.2, 0, 0]},
                              served_dims=lambda alias: {"state": [-1, 3]}[alias])
    assert request["target"].shape == (2, 4) and request["target"][1].tolist() == pytest.approx([0.5, 1.2, 0, 0])
    assert request["state"].dtype == np.float32 and request["state"].tolist() == [[0.0] * 3] * 2
    with pytest.raises(ValueError, match="leaves the size of 'state' free; pass state explicitly"):
        contract_inputs(step, {"observation": [[0, 0, 0, 0]], "target": [[0, 0, 0, 0]]}, lambda alias: [-1, -1])
    predict = signatures.get("predict")
    request = contract_inputs(predict, {"inputs": [[[1, 2]], [[3, 4]]], "mask": np.ones((2, 1))})
    assert {k: (v.dtype, v.shape) for k, v in request.items()} == {
        "inputs": (np.float32, (2, 1, 2)), "mask": (np.float32, (2, 1))}
    with pytest.raises(ValueError, match="inputs is empty"):
        contract_inputs(predict, {})
    with pytest.raises(ValueError, match=r"inputs has shape \[\]; the predict contract wants \[b, ...\]"):
        contract_inputs(predict, {"inputs": 1.0})
