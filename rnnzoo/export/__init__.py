"""SavedModel exports in TensorFlow Serving's layout, warmup records and serving-parity checks.

- `write_export`: the one writer every family's export goes through (versions, staging and
  atomic rename, serving-parity and signature-contract checks, warmup records).
- `export_run`: exports a training run's directory with its family's exporter (`rnnzoo-export`).
- `export_keras_model`: a Keras model's forward pass, the `predict` contract (`serving_default`).
- `export_char_lm`, `export_model_dir`: character language models (`generate`, `score`).
- `export_video_model`: RTRBM / TRBM video models (`next_frame`, `generate_frames`).
- `export_translator`: seq2seq translation models (`translate`, beam search with n-best lists).
- `export_controller`: arm controllers (`control_step`, `control_sequence`; thesis ch. 6).
- `check_serving_parity`: fails on what stock TF Serving cannot run; `check_contracts`: fails on
  signatures that differ from `rnnzoo.serving.signatures`.
- `write_warmup_requests`: `assets.extra/tf_serving_warmup_requests`.
"""

from rnnzoo.export.arm_controller import export_controller
from rnnzoo.export.char_lm import export_char_lm, export_model_dir
from rnnzoo.export.contract_check import check_contracts
from rnnzoo.export.parity import ServingParityError, check_serving_parity, save_for_serving
from rnnzoo.export.predict import export_keras_model
from rnnzoo.export.runs import export_run, run_family
from rnnzoo.export.rtrbm import export_video_model
from rnnzoo.export.translation import export_translator
from rnnzoo.export.warmup import read_warmup_requests, write_warmup_requests
from rnnzoo.export.writer import next_version, write_export

__all__ = [
    "ServingParityError",
    "check_contracts",
    "check_serving_parity",
    "export_char_lm",
    "export_controller",
    "export_keras_model",
    "export_model_dir",
    "export_run",
    "export_translator",
    "export_video_model",
    "next_version",
    "read_warmup_requests",
    "run_family",
    "save_for_serving",
    "write_export",
    "write_warmup_requests",
]
