# sgxsim: every target bootstraps its own virtual environment from nothing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test bench lint clean sgx-header fuzz

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The project's main job: every design against every property at the default
# scope and depth (about 35 s with two workers), traces and scenario files
# under scenarios/.
run: $(STAMP)
	$(PY) -m sgxsim.cli check --workers 2

# The whole test suite.
test: $(STAMP) sgx-header
	$(PY) -m pytest

# tests/hw/test_uapi_header.py compiles against the system's <asm/sgx.h>
# (Debian: linux-libc-dev). Install it when missing and we are root with apt-get.
sgx-header:
	@if ! echo '#include <asm/sgx.h>' | gcc -E -x c - >/dev/null 2>&1; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	        echo "<asm/sgx.h> missing: installing linux-libc-dev"; \
	        apt-get update -qq && \
	        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-libc-dev; \
	    else \
	        echo "warning: gcc or <asm/sgx.h> missing (install gcc linux-libc-dev);" \
	             "the uapi header test will fail" >&2; \
	    fi; \
	fi

# The project's fuzzer (docs/fuzzing.md) for five minutes; FUZZ_SEED / FUZZ_SECONDS override.
FUZZ_SEED    ?= 0
FUZZ_SECONDS ?= 300
fuzz: $(STAMP)
	$(PY) -m sgxsim.cli fuzz --seconds $(FUZZ_SECONDS) --seed $(FUZZ_SEED)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benches

# Benchmarks: ratios measured side by side in one run, written to BENCHMARKS.md.
bench: $(STAMP)
	$(PY) -m benches

clean:
	rm -rf $(VENV) build src/*.egg-info
