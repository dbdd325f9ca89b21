"""The CPU model: EPC and EPCM, ENCLS and ENCLU leaves, measurement, and the
access check that combines the page tables with the EPCM.

Nothing here imports :mod:`sgxsim.kernel`: the CPU talks to the kernel only by
raising faults (:mod:`sgxsim.hw.faults`).
"""
