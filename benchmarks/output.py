"""Writing a benchmark's JSON report: printed, and saved when a path is given."""

import json
import os


def write_json(report, path=None, indent=2):
    """Prints `report` as JSON and, with `path`, writes it there (creating its directory)."""
    text = json.dumps(report, indent=indent)
    print(text)
    if path:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w") as f:
            f.write(text + "\n")
