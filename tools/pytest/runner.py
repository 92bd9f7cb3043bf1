"""Main of the Bazel py_tests: run pytest on the test files, from the runfiles.

    runner.py (--fast | --slow) FILE...

--fast selects `-m "not slow"` (what `make test` runs), --slow `-m slow` (what
`make test-slow` runs). pytest's rootdir and configuration are the workspace's
pytest.ini, so tests/conftest.py and tests/serving/conftest.py apply as under
`make test`.

Before pytest starts, the runner checks that `rnnzoo` resolves to the copy in
this test's runfiles (the py_library targets), not to the venv's editable install
of some checkout, and fails otherwise.
"""

import importlib.util
import os
import shutil
import sys
import tempfile

NO_TESTS_COLLECTED = 5


def _fail(message: str) -> None:
    print(f"pytest runner: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv) -> int:
    if not argv or argv[0] not in ("--fast", "--slow"):
        _fail("usage: runner.py (--fast | --slow) FILE...")
    marker = "not slow" if argv[0] == "--fast" else "slow"
    files = argv[1:]
    if not files:
        _fail("no test files given")

    # `bazel test` and `bazel run` start tests in <runfiles>/<workspace>.
    if "TEST_SRCDIR" in os.environ and "TEST_WORKSPACE" in os.environ:
        workspace = os.path.join(os.environ["TEST_SRCDIR"], os.environ["TEST_WORKSPACE"])
    else:
        workspace = os.getcwd()
    workspace = os.path.abspath(workspace)
    os.chdir(workspace)

    spec = importlib.util.find_spec("rnnzoo")
    origin = os.path.abspath(spec.origin) if spec and spec.origin else None
    if origin is None or not origin.startswith(workspace + os.sep):
        _fail(f"rnnzoo resolves to {origin}, not to the runfiles in {workspace}: "
              "a dependency on //rnnzoo (or a subpackage) is missing, or something puts "
              "another checkout ahead of the runfiles on sys.path")
    print(f"pytest runner: rnnzoo from {origin}", flush=True)

    import pytest  # from the venv

    args = [*files, "-m", marker, "-c", os.path.join(workspace, "pytest.ini"), "--rootdir", workspace,
            "-p", "no:cacheprovider", "-q"]
    # pytest's tmp_path directories: a fresh short directory under /tmp rather than under
    # $TEST_TMPDIR, whose path inside Bazel's output base is too long for a Unix socket
    # (at most 107 bytes; tests/serving binds --grpc_socket_path under tmp_path).
    basetemp = tempfile.mkdtemp(prefix="bazel-pytest-", dir="/tmp" if os.path.isdir("/tmp") else None)
    args += ["--basetemp", basetemp]
    if os.environ.get("XML_OUTPUT_FILE"):
        args += ["--junitxml", os.environ["XML_OUTPUT_FILE"]]
    if os.environ.get("TESTBRIDGE_TEST_ONLY"):  # bazel test --test_filter=EXPR -> pytest -k EXPR
        args += ["-k", os.environ["TESTBRIDGE_TEST_ONLY"]]

    try:
        code = pytest.main(args)
    finally:
        shutil.rmtree(basetemp, ignore_errors=True)
    loaded = sys.modules.get("rnnzoo")
    if loaded is not None and not os.path.abspath(loaded.__file__).startswith(workspace + os.sep):
        _fail(f"the tests ran against rnnzoo from {loaded.__file__}, not from the runfiles")
    if code == NO_TESTS_COLLECTED:
        print(f"pytest runner: no test of {' '.join(files)} is selected by -m \"{marker}\"")
        return 0
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
