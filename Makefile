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

# The whole test suite.  The uapi test compiles against <asm/sgx.h>: on a
# Debian machine without it (root), install linux-libc-dev first.
test: $(STAMP)
	@echo '#include <asm/sgx.h>' | gcc -E -x c - >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    apt-get update -qq && apt-get install -y -qq linux-libc-dev; } || true
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benches

# Benchmarks: ratios measured side by side in one run, written to BENCHMARKS.md.
bench: $(STAMP)
	$(PY) -m benches

clean:
	rm -rf $(VENV) build src/*.egg-info
