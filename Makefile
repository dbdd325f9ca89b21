# sgxsim: every target bootstraps its own virtual environment from nothing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The project's main job.
run: $(STAMP)
	$(PY) -m sgxsim.cli demo

# The whole test suite.
test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benches

# Benchmarks: ratios measured side by side in one run, written to BENCHMARKS.md.
bench: $(STAMP)
	$(PY) -m benches

clean:
	rm -rf $(VENV) build src/*.egg-info
