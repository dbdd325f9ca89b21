"""kernel/sgx."""
