# `make demo` and `make test` each create (or reuse) .venv and install the pinned stack once.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: demo demo-addition test test-distributed test-slow bazel-build bazel-test bazel-test-slow bench reproduce-small clean

$(INSTALLED): setup.py requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet --constraint requirements.lock --editable ".[test]"
	touch $@

demo: $(INSTALLED)
	$(VENV)/bin/rnnzoo-demo

demo-addition: $(INSTALLED)
	$(VENV)/bin/rnnzoo-demo --demo=addition

test: $(INSTALLED)
	$(PY) -m pytest -m "not slow and not distributed" -q

# Mirrored replicas on logical CPU devices and two local workers (a few minutes; CI runs it).
test-distributed: $(INSTALLED)
	$(PY) -m pytest -m distributed -q

test-slow: $(INSTALLED)
	$(PY) -m pytest -m slow -q

# Bazel 4.2.3 (apt-get install bazel-bootstrap; see docs/bazel.md). The py_* targets run
# on this venv's interpreter (RNNZOO_VENV, read by tools/python/venv.bzl) and import
# third-party packages from it; rnnzoo itself comes from the Bazel targets.
BAZEL ?= bazel
BAZEL_ENV := RNNZOO_VENV=$(abspath $(VENV))
# Re-read the venv (interpreter, package list) in case `make` just reinstalled it.
BAZEL_VENV_SYNC := $(BAZEL_ENV) $(BAZEL) sync --only=rnnzoo_venv

bazel-build: $(INSTALLED)
	$(BAZEL_VENV_SYNC)
	$(BAZEL_ENV) nice -n 5 $(BAZEL) build //...

# The fast tests (pytest -m "not slow"), one py_test per test file.
bazel-test: $(INSTALLED)
	$(BAZEL_VENV_SYNC)
	$(BAZEL_ENV) nice -n 5 $(BAZEL) test //...

bazel-test-slow: $(INSTALLED)
	$(BAZEL_VENV_SYNC)
	$(BAZEL_ENV) nice -n 5 $(BAZEL) test --config=slow //...

bench: $(INSTALLED)
	$(PY) benchmarks/layers.py --output benchmarks/results/layers.json

# Every experiment of rnnzoo-reproduce at --scale=small (at most about 15 minutes each on 2 cores).
reproduce-small: $(INSTALLED)
	for e in $$($(VENV)/bin/rnnzoo-reproduce --list | cut -d: -f1); do \
		$(VENV)/bin/rnnzoo-reproduce --experiment=$$e --scale=small --output_dir=reproduce || exit 1; \
	done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
	-$(BAZEL) clean 2>/dev/null
