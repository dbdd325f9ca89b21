"""Named kernel designs: each a small subclass of the kernel (and driver) it
changes, registered by name in ``sgxsim.kernel.registry`` like the kernels
themselves, so ``Machine(kernel="no-hook")`` works wherever a kernel name is
accepted.

Importing this package registers them.  ``linux-5.11`` and ``linux-6.0`` are
the SGX driver's kernels (``sgxsim.kernel.sgx.kernels``), re-exported here.
"""

from sgxsim.designs.merged import Linux60, Linux511
from sgxsim.designs.no_hook import NoHook
from sgxsim.designs.sgx2_rfc import Sgx2Rfc

__all__ = ["Linux511", "Linux60", "NoHook", "Sgx2Rfc"]
