"""SavedModel exports in TensorFlow Serving's layout, warmup records and serving-parity checks.

- `write_export`: the one writer every family's export goes through (versions, staging and
  atomic rename, serving-parity and signature-contract checks, warmup records).
- `export_run`: exports a training run's directory with its family's exporter (`rnnzoo-export`).
- `export_keras_model`: a Keras model's forward pass, the `predict` contract (`serving_default`).
  Each family's own serving functions live in its package (`rnnzoo.zoo.char_lm.export_char_lm`,
  `rnnzoo.zoo.translation.export_translator`, `rnnzoo.zoo.arm_controller.export_controller`,
  `rnnzoo.zoo.rtrbm.export_video_model`) and write through `write_export`.
- `check_serving_parity`: fails on what stock TF Serving cannot run; `check_contracts`: fails on
  signatures that differ from `rnnzoo.serving.signatures`.
- `write_warmup_requests`: `assets.extra/tf_serving_warmup_requests`.
"""

from rnnzoo.export.contract_check import check_contracts
from rnnzoo.export.parity import ServingParityError, check_serving_parity, save_for_serving
from rnnzoo.export.predict import export_keras_model
from rnnzoo.export.runs import export_run, run_family
from rnnzoo.export.warmup import read_warmup_requests, write_warmup_requests
from rnnzoo.export.writer import next_version, write_export

__all__ = [
    "ServingParityError",
    "check_contracts",
    "check_serving_parity",
    "export_keras_model",
    "export_run",
    "next_version",
    "read_warmup_requests",
    "run_family",
    "save_for_serving",
    "write_export",
    "write_warmup_requests",
]
