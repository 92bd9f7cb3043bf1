"""SavedModel exports in TensorFlow Serving's layout, warmup records and serving-parity checks.

- `export_char_lm`, `export_model_dir`: character language models (`generate`, `score`).
- `check_serving_parity`: fails on what stock TF Serving cannot run.
- `write_warmup_requests`: `assets.extra/tf_serving_warmup_requests`.
"""

from rnnzoo.export.char_lm import export_char_lm, export_model_dir, next_version
from rnnzoo.export.parity import ServingParityError, check_serving_parity, save_for_serving
from rnnzoo.export.warmup import read_warmup_requests, write_warmup_requests

__all__ = [
    "ServingParityError",
    "check_serving_parity",
    "export_char_lm",
    "export_model_dir",
    "next_version",
    "read_warmup_requests",
    "save_for_serving",
    "write_warmup_requests",
]
