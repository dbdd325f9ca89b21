/* Changes an enclave range with a raw syscall the preload library cannot
 * see, then makes another request: the bridge must stop it with a message. */
#define _GNU_SOURCE
#include <asm/sgx.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void)
{
	int fd = open("/dev/sgx_enclave", O_RDWR);
	void *p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED)
		return 2;
	syscall(SYS_mprotect, p, 4096, PROT_READ | PROT_WRITE);
	ioctl(fd, SGX_IOC_ENCLAVE_INIT, NULL);
	puts("not stopped");
	return 0;
}
