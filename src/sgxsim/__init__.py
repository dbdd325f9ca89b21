"""sgxsim: an executable model of Intel SGX enclave memory on Linux."""

__version__ = "0.1.0"
