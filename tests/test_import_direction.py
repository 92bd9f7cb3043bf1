"""Imports go one way (ARCHITECTURE.md, "Layout"): `cli -> experiments -> zoo -> export ->
training -> the building blocks`. The building blocks (`data/`, `decoding/`, `layers/`,
`optimizers/`, `initializers/`, `control/`) import none of the packages above them; `training/`
imports no family (it finds them at run time, `rnnzoo.training.registry.load_families`), no
export, experiment, server or binary; `export/` imports no family or experiment; `zoo/` imports no
experiment, server or binary; `serving/` imports nothing else of rnnzoo; nothing imports `cli/`.
Read from the sources with `ast`, imports inside functions included."""

import ast
import pathlib
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "rnnzoo"

_FORBIDDEN = {
    **{block: ("training", "zoo", "export", "experiments", "serving", "cli")
       for block in ("data", "decoding", "layers", "optimizers", "initializers", "control")},
    "training": ("zoo", "export", "experiments", "serving", "cli"),
    "export": ("zoo", "experiments", "cli"),
    "zoo": ("experiments", "serving", "cli"),
    "experiments": ("serving", "cli"),
    "anything else": ("cli",),
}
RULES = {
    **{package: (lambda target, forbidden=forbidden: target not in forbidden)
       for package, forbidden in _FORBIDDEN.items()},
    "serving": lambda target: False,
}
"""{package: may its modules import rnnzoo package `target`?} (its own package is always allowed)."""


def rnnzoo_imports(path):
    """[(line, imported name)] of the rnnzoo imports of a source file, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package_parts = path.relative_to(PACKAGE.parent).parts[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package_parts[: len(package_parts) - node.level + 1]
                base = ".".join(parent + ((node.module,) if node.module else ()))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name == "rnnzoo" or name.startswith("rnnzoo.")]


def violations(rule):
    """["rnnzoo/<file>:<line> imports <name>"] breaking `RULES[rule]`."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        owner = path.relative_to(PACKAGE).parts[0]
        if (owner if owner in RULES else "anything else") != rule:
            continue
        for line, name in rnnzoo_imports(path):
            target = name.split(".")[1] if "." in name else "rnnzoo"
            if target != owner and not RULES[rule](target):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}")
    return found


def test_the_checker_sees_absolute_relative_and_function_level_imports(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path / "rnnzoo")
    (tmp_path / "rnnzoo" / "zoo").mkdir(parents=True)
    (tmp_path / "rnnzoo" / "zoo" / "bad.py").write_text(
        "from rnnzoo.layers import MRNN\nfrom ..serving import Client\n\n"
        "def f():\n    import rnnzoo.cli.demo\n    from rnnzoo.experiments.runner import x\n"
    )
    assert violations("zoo") == [
        "rnnzoo/zoo/bad.py:2 imports rnnzoo.serving.Client",
        "rnnzoo/zoo/bad.py:5 imports rnnzoo.cli.demo",
        "rnnzoo/zoo/bad.py:6 imports rnnzoo.experiments.runner.x",
    ]


@pytest.mark.parametrize("rule", sorted(RULES))
def test_imports_go_one_way(rule):
    assert violations(rule) == []
