"""Check that the py_binaries of rnnzoo/cli/BUILD are setup.py's console scripts.

    check_console_scripts.py SETUP_PY NAME=MODULE:FUNCTION...
"""

import ast
import sys


def console_scripts(setup_py: str) -> dict:
    """{name: entry point} of the console_scripts of setup.py (read, not run)."""
    tree = ast.parse(open(setup_py, encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    entries = [ast.literal_eval(item) for item in value.elts]
                    return dict(entry.replace(" ", "").split("=", 1) for entry in entries)
    raise SystemExit(f"no console_scripts in {setup_py}")


def main(argv) -> int:
    expected = console_scripts(argv[0])
    built = dict(arg.split("=", 1) for arg in argv[1:])
    if expected == built:
        print(f"{len(built)} console scripts match setup.py")
        return 0
    for name in sorted(set(expected) | set(built)):
        if expected.get(name) != built.get(name):
            print(f"{name}: setup.py has {expected.get(name)}, rnnzoo/cli/BUILD has {built.get(name)}",
                  file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
