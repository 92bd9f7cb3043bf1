"""The signature contracts of rnnzoo's exports: what each served signature takes and returns.

One place, plain data: the export check (`rnnzoo.export.writer`), the `rnnzoo.serving.Client`
helpers and the table in docs/serving.md ("Signature contracts") all read `CONTRACTS`. A
contract's `name` is unique across model families; a family whose signature differs from an
existing one declares a new name rather than reusing one.

A tensor's `shape` lists its dimensions batch first; `-1` is a free dimension (the batch
dimension is always free, so servers can batch requests; an export may fix any other free
dimension, e.g. the controller's state size). `...` stands for the dimensions of the exported
model itself (the `predict` contract, whose aliases are the model's own, `ANY_ALIAS`).
`dtype` is a TensorFlow dtype name (`float32`, `int32`, `int64`, `string`, ...). `default` is the value a client sends when the
caller leaves the input out (`None`: required); it is broadcast over the input's shape.
`minimum` is the smallest valid value (`None`: any).

Regenerate the docs table with `python -m rnnzoo.export.contract_check`.
"""

import dataclasses

ANY_ALIAS = "*"
"""Alias of a `predict` tensor: one tensor per model input (output), named as the model names it."""


@dataclasses.dataclass(frozen=True)
class SignatureTensor:
    """One input or output of a signature (see the module docstring)."""

    alias: str
    dtype: str
    shape: tuple
    meaning: str
    default: object = None
    minimum: float | None = None


@dataclasses.dataclass(frozen=True)
class SignatureContract:
    """A served signature: `inputs` -> `outputs`, exported under `signature_key`.

    Attributes:
        name: the contract's name, unique across families (`Client.call(model, name, ...)`).
        signature_key: the SavedModel signature it is exported as (`predict` is served as
            `serving_default`, what TF Serving calls without a signature name).
        meaning: one line.
        source: the paper section it comes from.
    """

    name: str
    signature_key: str
    inputs: tuple
    outputs: tuple
    meaning: str
    source: str

    def input(self, alias):
        """The input named `alias` (`ANY_ALIAS` inputs match every alias); `None` if there is none."""
        return find_tensor(self.inputs, alias)


def find_tensor(tensors, alias):
    """The tensor of `tensors` named `alias` (an `ANY_ALIAS` tensor matches every alias), or `None`."""
    for tensor in tensors:
        if tensor.alias in (alias, ANY_ALIAS):
            return tensor
    return None


def _tensor(alias, dtype, shape, meaning, default=None, minimum=None):
    return SignatureTensor(alias, dtype, tuple(shape), meaning, default, minimum)


FRAME_PIXELS = 900
"""Bouncing-balls frames: 30 x 30 pixels, flattened (thesis §3.11)."""

CONTRACT_LIST = (
    SignatureContract(
        name="generate",
        signature_key="generate",
        inputs=(
            _tensor("prompt", "string", [-1], "UTF-8 text to continue (may be empty)"),
            _tensor("max_length", "int32", [-1], "characters to sample after the prompt", 100, 0),
            _tensor("temperature", "float32", [-1], "softmax temperature; 0 decodes greedily", 1.0, 0),
            _tensor("seed", "int64", [-1], "sampling seed: the same row gives the same text", 0),
        ),
        outputs=(_tensor("text", "string", [-1], "the prompt followed by the sampled characters"),),
        meaning="sample text after a prompt (also the char LM's serving_default)",
        source="thesis §5.5.1",
    ),
    SignatureContract(
        name="score",
        signature_key="score",
        inputs=(_tensor("text", "string", [-1], "UTF-8 text to score"),),
        outputs=(
            _tensor("bits_per_char", "float32", [-1], "-log2 P(text) per character (0 for empty text)"),
            _tensor("log_prob", "float32", [-1], "log P(text) in nats"),
        ),
        meaning="log-probability of texts under the language model",
        source="thesis §5.4.1",
    ),
    SignatureContract(
        name="predict",
        signature_key="serving_default",
        inputs=(_tensor(ANY_ALIAS, "float32", [-1, ...],
                        "each Keras input of the model under its name; time and feature dimensions as the model has them"),),
        outputs=(_tensor(ANY_ALIAS, "float32", [-1, ...],
                         "each Keras output under its name (linear: regression values or class logits)"),),
        meaning="the trained Keras model's forward pass",
        source="thesis §4.4, §7.3; longer-rnns §5; layer-wise §3.5",
    ),
    SignatureContract(
        name="translate",
        signature_key="translate",
        inputs=(
            _tensor("source", "string", [-1], "source sentence (UTF-8, tokenised in the graph)"),
            _tensor("beam_width", "int32", [-1], "beam width; 1 decodes greedily", 4, 1),
            _tensor("length_penalty", "float32", [-1], "alpha of the GNMT penalty ((5 + len) / 6)^alpha; 0: none",
                    0.6, 0),
            _tensor("max_length", "int32", [-1], "largest target length in tokens; 0: the model's limit "
                    "relative to the source length", 0, 0),
        ),
        outputs=(
            _tensor("translation", "string", [-1], "the best hypothesis, n_best[:, 0]"),
            _tensor("n_best", "string", [-1, -1], "the beam's hypotheses, best first; unused slots empty"),
            _tensor("scores", "float32", [-1, -1], "length-penalised log-probabilities of n_best; unused slots -inf"),
        ),
        meaning="beam-search translation with n-best lists",
        source="rnn-critical-review §4.2, §5.2",
    ),
    SignatureContract(
        name="control_step",
        signature_key="control_step",
        inputs=(
            _tensor("observation", "float32", [-1, 4], "arm state: shoulder and elbow angles, their velocities"),
            _tensor("target", "float32", [-1, 4], "target state"),
            _tensor("state", "float32", [-1, -1], "controller state from the previous step (size fixed by "
                    "the export); 0 starts a reach", 0.0),
        ),
        outputs=(
            _tensor("torque", "float32", [-1, 2], "shoulder and elbow torques"),
            _tensor("state", "float32", [-1, -1], "controller state to send with the next step"),
        ),
        meaning="one step of the RNN arm controller, its state passed explicitly",
        source="thesis §6.4",
    ),
    SignatureContract(
        name="control_sequence",
        signature_key="control_sequence",
        inputs=(
            _tensor("initial_state", "float32", [-1, 4], "arm state at the start of the reach"),
            _tensor("target", "float32", [-1, 4], "target state"),
        ),
        outputs=(
            _tensor("torques", "float32", [-1, -1, 2], "the T torques applied to the exported plant"),
            _tensor("trajectory", "float32", [-1, -1, 4], "the T + 1 arm states, trajectory[:, 0] the initial state"),
        ),
        meaning="a closed-loop reach through the exported plant",
        source="thesis §6.3-6.5",
    ),
    SignatureContract(
        name="next_frame",
        signature_key="next_frame",
        inputs=(_tensor("frames", "float32", [-1, -1, FRAME_PIXELS], "the t frames seen so far"),),
        outputs=(_tensor("probabilities", "float32", [-1, FRAME_PIXELS], "expected next frame (pixel probabilities)"),),
        meaning="next-frame prediction of the (R)TRBM",
        source="thesis §3.11.1",
    ),
    SignatureContract(
        name="generate_frames",
        signature_key="generate_frames",
        inputs=(
            _tensor("seed", "int64", [-1], "sampling seed: the same row gives the same frames", 0),
            _tensor("num_frames", "int32", [-1], "frames to generate after the prefix", None, 0),
            _tensor("prefix", "float32", [-1, -1, FRAME_PIXELS], "the t frames to continue"),
        ),
        outputs=(_tensor("frames", "float32", [-1, -1, FRAME_PIXELS], "the generated frames; rows asking for "
                         "fewer than the longest num_frames are padded with zeros"),),
        meaning="video generation by the (R)TRBM",
        source="thesis Alg. 3",
    ),
)

CONTRACTS = {contract.name: contract for contract in CONTRACT_LIST}
"""{contract name: `SignatureContract`}."""


def get(name):
    """The contract named `name`; raises `ValueError` naming the known ones."""
    if name not in CONTRACTS:
        raise ValueError(f"no signature contract {name!r}; the contracts are: {', '.join(CONTRACTS)}")
    return CONTRACTS[name]


def describe_shape(shape):
    """`[b, 4]`-style text of a contract shape (batch `b`, other free dims `n`, model dims `...`)."""
    names = ["b" if i == 0 and d == -1 else "n" if d == -1 else "..." if d is Ellipsis else str(d)
             for i, d in enumerate(shape)]
    return "[" + ", ".join(names) + "]"


def _describe(tensor):
    alias = "*(model's own)*" if tensor.alias == ANY_ALIAS else f"`{tensor.alias}`"
    default = "" if tensor.default is None else f" = {tensor.default!r}"
    minimum = "" if tensor.minimum is None else f" (>= {tensor.minimum:g})"
    return f"{alias} {tensor.dtype}{describe_shape(tensor.shape)}{default}{minimum}: {tensor.meaning}"


def markdown_table(families):
    """The contracts as the markdown table docs/serving.md holds; `families`: {contract name: the
    names of the families whose exports carry it} (each family declares its contracts,
    `rnnzoo.training.registry.contract_families`)."""
    rows = [
        "| contract | exported as | inputs | outputs | families | source |",
        "|---|---|---|---|---|---|",
    ]
    for contract in CONTRACT_LIST:
        inputs = "<br>".join(_describe(t) for t in contract.inputs)
        outputs = "<br>".join(_describe(t) for t in contract.outputs)
        rows.append(
            f"| `{contract.name}`: {contract.meaning} | `{contract.signature_key}` | {inputs} | {outputs} | "
            f"{', '.join(families.get(contract.name, ()))} | {contract.source} |"
        )
    return "\n".join(rows)
