"""The one SavedModel writer every family's export goes through.

`write_export(module, functions, export_base)` writes `<export_base>/<version>/` in TF
Serving's layout:

1. the version: the next free integer under `export_base` unless given; an existing
   version is never overwritten;
2. `tf.saved_model.save` into a staging directory inside `export_base` (hidden name, so
   servers polling the base path ignore it), each function under its contract's signature
   key (`rnnzoo.serving.signatures`), one of them also as `serving_default` if asked;
3. the serving-parity check (`rnnzoo.export.parity`: no Python ops, only ops stock TF Serving
   links, no float16 at the boundary, every resource tracked);
4. the signature-contract check (`rnnzoo.export.contract_check`);
5. the warmup records (`assets.extra/tf_serving_warmup_requests`), each naming an exported
   signature;
6. an atomic rename of the staging directory to `<export_base>/<version>`.

Any failure removes the staging directory: nothing partial ever appears as a version, and the
versions already exported stay as they were. A family's exporter (`rnnzoo/zoo/<family>/export.py`)
only builds its serving functions and warmup requests.
"""

import os
import shutil
import tempfile

from rnnzoo.export.contract_check import check_contracts
from rnnzoo.export.parity import save_for_serving
from rnnzoo.export.warmup import write_warmup_requests
from rnnzoo.serving import signatures

DEFAULT_SIGNATURE = "serving_default"


def next_version(export_base):
    """1 + the largest integer version directory under `export_base` (1 if none)."""
    if not os.path.isdir(export_base):
        return 1
    versions = [int(name) for name in os.listdir(export_base) if name.isdigit()]
    return max(versions, default=0) + 1


def version_directory(export_base, version=None):
    """`(version, <export_base>/<version>)`: the next free version, or `version` checked to be free.

    Raises:
        ValueError: `version` is not a positive integer or exists already.
    """
    if version is None:
        version = next_version(export_base)
    if isinstance(version, bool) or not isinstance(version, int) or version <= 0:
        raise ValueError(f"version must be a positive integer, got {version!r}")
    target = os.path.join(export_base, str(version))
    if os.path.exists(target):
        raise ValueError(
            f"{target} exists already; pass another --version (next free: {next_version(export_base)}) "
            "or remove it"
        )
    return version, target


def signature_map(functions, default=None):
    """`({signature key: function}, {signature key: contract name})` of `functions` ({contract name: function})."""
    if default is not None and default not in functions:
        raise ValueError(f"default={default!r} is none of the exported contracts {sorted(functions)}")
    exported, contract_of = {}, {}
    for name, function in functions.items():
        key = signatures.get(name).signature_key
        exported[key], contract_of[key] = function, name
    if default is not None and DEFAULT_SIGNATURE not in exported:
        exported[DEFAULT_SIGNATURE], contract_of[DEFAULT_SIGNATURE] = functions[default], default
    return exported, contract_of


def _check_warmup(requests, exported):
    unknown = sorted({r.model_spec.signature_name for r in requests} - set(exported))
    if unknown:
        raise ValueError(f"warmup requests name signatures {unknown} the export does not have ({sorted(exported)})")


def write_export(module, functions, export_base, version=None, default=None, warmup_requests=(), extra_ops=()):
    """Writes `module`'s `functions` as `<export_base>/<version>/` and returns that path.

    Args:
        module: the `tf.Module` that tracks every variable and resource the functions use.
        functions: {contract name (`rnnzoo.serving.signatures.CONTRACTS`): `tf.function` with an
            input signature}; each is exported under its contract's signature key.
        export_base: TF Serving's base path of the model.
        version: a positive integer; `None` takes the next free one.
        default: the contract also exported as `serving_default` (when no contract already is).
        warmup_requests: `PredictRequest`s written as warmup records (`rnnzoo.export.warmup.predict_request`).
        extra_ops: op names beyond core TF and the tf-text ops TF Serving links that the serving build links.

    Raises:
        ValueError: a bad or existing version, an unknown contract, a warmup request for no exported signature.
        ServingParityError: the export would not run on stock TF Serving or breaks its contracts.
    """
    exported, contract_of = signature_map(functions, default)
    _check_warmup(warmup_requests, exported)
    version, target = version_directory(export_base, version)
    os.makedirs(export_base, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".export-{version}-", dir=export_base)
    try:
        save_for_serving(module, staging, exported, extra_ops)
        check_contracts(staging, contract_of)
        if warmup_requests:
            write_warmup_requests(staging, warmup_requests)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
