"""Linux: syscalls, mm, security (LSM) and the SGX driver."""
