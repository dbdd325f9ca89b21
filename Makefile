# sgxsim: every target bootstraps its own virtual environment from nothing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test bench lint clean sgx-header native interop

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The project's main job: every design against every property at the default
# scope and depth (about 35 s with two workers), traces and scenario files
# under scenarios/.
run: $(STAMP) native
	$(PY) -m sgxsim.cli check --workers 2

# The whole test suite.
test: $(STAMP) sgx-header native
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

# sgxsim exec's native half (preload library, vDSO image) into build/native.
native:
	$(MAKE) -s -C src/sgxsim/exec/native OUT=$(CURDIR)/build/native

# The Linux kernel's own SGX selftests, fetched from Debian's linux-source and
# built at test time (into build/cache, never committed), under sgxsim exec.
interop: $(STAMP) native
	$(PY) -m pytest -m interop tests/interop

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benches

# Benchmarks: ratios measured side by side in one run, written to BENCHMARKS.md.
bench: $(STAMP)
	$(PY) -m benches

clean:
	rm -rf $(VENV) build src/*.egg-info
