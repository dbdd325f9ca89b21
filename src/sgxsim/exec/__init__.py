"""`sgxsim exec`: unmodified native SGX programs served by the model."""
