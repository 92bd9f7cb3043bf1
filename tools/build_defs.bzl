"""Macros of the rnnzoo BUILD files: pytest-driven py_tests and console scripts."""

_RUNNER = "//tools/pytest:runner.py"

def pytest_tests(srcs, deps = [], data = [], slow_name = "slow", fast_timeout = "long", **kwargs):
    """One fast py_test per test file, and one `slow` py_test for the package.

    For every `test_NAME.py` in `srcs`, a py_test `test_NAME` runs
    `pytest test_NAME.py -m "not slow"` (a file whose tests are all slow passes with
    nothing selected). The py_test `slow_name` runs `pytest -m slow` over all of
    `srcs` in one process; it is tagged `slow`, which the checked-in .bazelrc filters
    out of `bazel test` unless `--config=slow` is given. Pass `srcs = glob(["test_*.py"])`
    so that new test files are picked up without editing BUILD files.

    Args:
      srcs: the test files.
      deps: py_library targets the tests import (their helpers, conftest, rnnzoo).
      data: files the tests read.
      slow_name: name of the target running the slow tests.
      fast_timeout: Bazel timeout of each fast test ("long" is 15 minutes).
      **kwargs: passed to every py_test (e.g. extra tags, env).
    """
    tags = kwargs.pop("tags", [])
    for src in srcs:
        if not src.endswith(".py"):
            fail("pytest_tests: %s is not a Python file" % src)
        native.py_test(
            name = src[:-len(".py")].split("/")[-1],
            srcs = [_RUNNER, src],
            main = _RUNNER,
            args = ["--fast", "$(rootpath %s)" % src],
            deps = deps + ["//tools/pytest:runner_config"],
            data = data,
            python_version = "PY3",
            srcs_version = "PY3",
            timeout = fast_timeout,
            tags = tags,
            **kwargs
        )
    native.py_test(
        name = slow_name,
        srcs = [_RUNNER] + srcs,
        main = _RUNNER,
        args = ["--slow"] + ["$(rootpath %s)" % src for src in srcs],
        deps = deps + ["//tools/pytest:runner_config"],
        data = data,
        python_version = "PY3",
        srcs_version = "PY3",
        timeout = "eternal",
        tags = tags + ["slow"],
        **kwargs
    )

def console_script(name, entry_point, deps, **kwargs):
    """A py_binary `name` running `entry_point` ("package.module:function") like pip's script.

    setup.py's `console_scripts` call a function, not a module's __main__; the main file
    of the py_binary is generated (console_scripts/NAME.py) and does what the script pip
    writes does: `sys.exit(function())`. It lives in its own directory so that the
    script directory Python puts first on sys.path holds no module of the package.
    """
    module, function = entry_point.split(":")
    main = "console_scripts/%s.py" % name.replace("-", "_")
    native.genrule(
        name = name + "_main",
        outs = [main],
        cmd = " && ".join([
            # A comment, not a docstring: absl prints the main module's docstring as --help.
            "echo '# %s: setup.py console script %s.' > $@" % (name, entry_point),
            "echo 'import sys' >> $@",
            "echo 'from %s import %s' >> $@" % (module, function),
            "echo 'sys.exit(%s())' >> $@" % function,
        ]),
        visibility = ["//visibility:private"],
    )
    native.py_binary(
        name = name,
        srcs = [main],
        main = main,
        deps = deps,
        python_version = "PY3",
        srcs_version = "PY3",
        **kwargs
    )
