"""rnnzoo-query: query a model on rnnzoo-serve or stock TensorFlow Serving over gRPC.

  rnnzoo-query --model=char_lm generate --prompt="def " --max_length=80 --temperature=0.8
  rnnzoo-query --model=char_lm score --text="import os"
  rnnzoo-query --model=translator translate --text="Open the file"      # or --source=
  rnnzoo-query --model=arm control --observation='[[0.785,1.571,0,0]]' --target='[[0.5,1.2,0,0]]' --steps=40
  rnnzoo-query --model=toy predict --inputs='{"x": [[1, 2, 3]]}' --signature=serving_default
  rnnzoo-query --model=toy status | metadata

`control` drives the served controller (`control_step`) against the local plant
(`rnnzoo.control.TwoLinkArm`, default constants) for `--steps` ticks from the arm state
`--observation`, one request per tick, the controller seeing the state `--delay` ticks old, and
prints the torques, the trajectory, the final controller state and the final errors (state
distance to the target, and hand distance in metres); `--steps=1` is a single `control_step`.

Prints one JSON document on stdout; a refused request prints the server's status code and
message on stderr and exits 1.
"""

import base64
import json
import sys

from rnnzoo.cli.quiet import quiet_tensorflow

quiet_tensorflow()

from absl import app, flags  # noqa: E402

_SERVER = flags.DEFINE_string("server", "localhost:8500", "gRPC address of the model server.")
_MODEL = flags.DEFINE_string("model", None, "Model name.")
_SIGNATURE = flags.DEFINE_string("signature", None, "Signature name (each command has a default).")
_VERSION = flags.DEFINE_integer("version", None, "Model version (default: the latest).")
_LABEL = flags.DEFINE_string("label", None, "Version label, instead of --version.")
_TIMEOUT = flags.DEFINE_float("timeout", 30.0, "Deadline of each call in seconds.")
_PROMPT = flags.DEFINE_multi_string("prompt", [], "generate: a prompt (repeat for a batch).")
_MAX_LENGTH = flags.DEFINE_integer("max_length", 100, "generate: characters to sample.")
_TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "generate: sampling temperature (>= 0; 0 decodes greedily).")
_SEED = flags.DEFINE_integer("seed", 0, "generate: sampling seed.")
_TEXT = flags.DEFINE_multi_string("text", [], "score: a text; translate: a source sentence, like --source "
                                   "(repeat for a batch).")
_SOURCE = flags.DEFINE_multi_string("source", [], "translate: a source sentence (repeat for a batch).")
_OBSERVATION = flags.DEFINE_string("observation", None, "control: JSON [batch, 4] arm state.")
_TARGET = flags.DEFINE_string("target", None, "control: JSON [batch, 4] target state.")
_STATE = flags.DEFINE_string("state", None, "control: JSON [batch, s] recurrent state (default zeros).")
_STEPS = flags.DEFINE_integer("steps", 40, "control: ticks to drive the local plant (>= 1).")
_DELAY = flags.DEFINE_integer("delay", 0, "control: feedback delay in ticks (>= 0).")
_INPUTS = flags.DEFINE_string("inputs", None, 'predict: JSON {"alias": value}; strings as text or {"b64": ...}.')

COMMANDS = ("generate", "score", "translate", "control", "predict", "status", "metadata")


def _jsonable(value):
    import numpy as np

    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return [_jsonable(v) for v in value.tolist()] if value.ndim else _jsonable(value.item())
        return value.tolist()
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode("ascii")}
    return value


def _decode_b64(value):
    if isinstance(value, dict) and list(value) == ["b64"]:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_decode_b64(v) for v in value]
    return value


def _json_flag(flag, name: str, required: bool = True):
    if flag.value is None:
        if required:
            raise app.UsageError(f"--{name} is required for this command")
        return None
    try:
        return json.loads(flag.value)
    except json.JSONDecodeError as error:
        raise app.UsageError(f"--{name} is not valid JSON ({error}): {flag.value!r}") from None


def execute(command: str, client) -> object:
    """Run one command with `client`; returns a JSON-serialisable result."""
    model, version, label = _MODEL.value, _VERSION.value, _LABEL.value
    where = {"version": version, "label": label}
    if _SIGNATURE.value:
        where["signature"] = _SIGNATURE.value
    if command == "generate":
        if not _PROMPT.value:
            raise app.UsageError("generate needs at least one --prompt")
        texts = client.generate(model, _PROMPT.value, _MAX_LENGTH.value, _TEMPERATURE.value, _SEED.value, **where)
        return {"text": texts}
    if command == "score":
        if not _TEXT.value:
            raise app.UsageError("score needs at least one --text")
        return {k: v.tolist() for k, v in client.score(model, _TEXT.value, **where).items()}
    if command == "translate":
        sources = _SOURCE.value + _TEXT.value
        if not sources:
            raise app.UsageError("translate needs at least one --text (or --source)")
        return {"translations": [[{"text": t, "score": s} for t, s in beam] for beam in client.translate(model, sources, **where)]}
    if command == "control":
        return _drive_plant(client, model, where)
    if command == "predict":
        inputs = _json_flag(_INPUTS, "inputs")
        if not isinstance(inputs, dict):
            raise app.UsageError('--inputs must be a JSON object {"alias": value}')
        outputs = client.predict(model, {k: _decode_b64(v) for k, v in inputs.items()},
                                 where.get("signature", "serving_default"), version, label)
        return {"outputs": {k: _jsonable(v) for k, v in outputs.items()}, "version": client.last_model_spec.version.value}
    if command == "status":
        return {"model_version_status": client.model_status(model, version, label)}
    from google.protobuf import json_format

    return {name: json_format.MessageToDict(sig) for name, sig in client.signatures(model, version, label).items()}


def _drive_plant(client, model, where):
    """`control`: the served controller closing the loop through the local plant."""
    import numpy as np

    from rnnzoo.control import TwoLinkArm

    if _STEPS.value < 1 or _DELAY.value < 0:
        raise app.UsageError(f"--steps must be >= 1 and --delay >= 0, got {_STEPS.value} and "
                             f"{_DELAY.value}")
    arm = TwoLinkArm()
    target = np.asarray(_json_flag(_TARGET, "target"), np.float64)
    trajectory = [np.asarray(_json_flag(_OBSERVATION, "observation"), np.float64)]
    state, torques = _json_flag(_STATE, "state", required=False), []
    for t in range(_STEPS.value):
        observation = trajectory[max(t - _DELAY.value, 0)]
        torque, state = client.control_step(model, observation.astype(np.float32),
                                            target.astype(np.float32), state, **where)
        torques.append(torque)
        trajectory.append(arm.step(trajectory[-1], torque.astype(np.float64)).numpy())
    final = trajectory[-1]
    hand_error = np.linalg.norm((arm.hand_position(final) - arm.hand_position(target)).numpy(), axis=-1)
    return {"torques": np.stack(torques, 1).tolist(), "trajectory": np.stack(trajectory, 1).tolist(),
            "state": state.tolist(), "final_error": np.linalg.norm(final - target, axis=-1).tolist(),
            "final_hand_error": hand_error.tolist()}


def main(argv):
    if len(argv) != 2 or argv[1] not in COMMANDS:
        raise app.UsageError(f"give exactly one command out of {', '.join(COMMANDS)}")
    if not _MODEL.value:
        raise app.UsageError("--model is required")
    import grpc

    from rnnzoo.serving import Client

    with Client(_SERVER.value, timeout=_TIMEOUT.value) as client:
        try:
            result = execute(argv[1], client)
        except grpc.RpcError as error:
            print(f"{error.code().name}: {error.details()}", file=sys.stderr)
            return 1
        except ValueError as error:
            print(f"rnnzoo-query: {error}", file=sys.stderr)
            return 1
    print(json.dumps(result, indent=1))
    return 0


def run():
    app.run(main)


if __name__ == "__main__":
    run()
