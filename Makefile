# sgxsim: every target bootstraps its own virtual environment from nothing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test bench lint clean sgx-header browser kernel-source native interop fuzz

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
test: $(STAMP) sgx-header browser kernel-source native
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

# tests/report/test_browser.py loads the HTML report in a real headless browser
# (Debian's chromium). Install it when missing and we are root with apt-get.
browser:
	@if ! command -v chromium >/dev/null 2>&1; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	        echo "chromium missing: installing it (Debian package)"; \
	        apt-get update -qq && \
	        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	            chromium fonts-dejavu-core; \
	    else \
	        echo "warning: chromium missing (apt-get install chromium);" \
	             "the HTML report's browser test will fail" >&2; \
	    fi; \
	fi

# sgxsim exec's native half (preload library, vDSO image) into build/native.
native:
	$(MAKE) -s -C src/sgxsim/exec/native OUT=$(CURDIR)/build/native

# tests/engine and tests/interop build the kernel's SGX selftest enclave (test_encl.elf) from Debian's
# linux-source package, fetched into build/kernel-source (never committed: GPL).
KSRC_DIR := build/kernel-source
kernel-source:
	@if ! ls $(KSRC_DIR)/linux-source-6.12_*.deb >/dev/null 2>&1; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	        mkdir -p $(KSRC_DIR) && cd $(KSRC_DIR) && \
	        { apt-get download -qq linux-source-6.12 2>/dev/null || \
	          { apt-get update -qq && apt-get download -qq linux-source-6.12; }; } || \
	        echo "warning: linux-source-6.12 could not be downloaded;" \
	             "the tests that build the kernel's selftests will fail" >&2; \
	    else \
	        echo "warning: not root: linux-source-6.12 not fetched;" \
	             "the tests that build the kernel's selftests will fail" >&2; \
	    fi; \
	fi

# The Linux kernel's own SGX selftests (test_sgx and test_encl.elf), built at
# test time from the same package (in build/kernel-source), under sgxsim exec.
interop: $(STAMP) kernel-source native
	$(PY) -m pytest -m interop tests/interop

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
