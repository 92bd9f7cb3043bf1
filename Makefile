# `make demo` and `make test` each create (or reuse) .venv and install the pinned stack once.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: demo test test-slow bench clean

$(INSTALLED): setup.py requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet --constraint requirements.lock --editable ".[test]"
	touch $@

demo: $(INSTALLED)
	$(VENV)/bin/rnnzoo-demo

test: $(INSTALLED)
	$(PY) -m pytest -m "not slow" -q

test-slow: $(INSTALLED)
	$(PY) -m pytest -m slow -q

bench: $(INSTALLED)
	$(PY) benchmarks/layers.py --output benchmarks/results/layers.json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
