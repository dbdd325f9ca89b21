/* ADD_PAGES of an executable page whose source is a file mapping (argv[1]):
 * from a noexec mount the source VMA lacks VM_MAYEXEC and the kernel says
 * EACCES; from an anonymous mapping it is added. */
#define _GNU_SOURCE
#include <asm/sgx.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

static int add(int fd, void *src, unsigned long off, uint64_t *secinfo)
{
	struct sgx_enclave_add_pages a = {
		.src = (unsigned long)src, .offset = off, .length = 4096,
		.secinfo = (unsigned long)secinfo, .flags = SGX_PAGE_MEASURE,
	};

	return ioctl(fd, SGX_IOC_ENCLAVE_ADD_PAGES, &a);
}

int main(int argc, char **argv)
{
	int file = open(argv[1], O_RDONLY);
	void *from_file = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, file, 0);
	void *anon = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fd = open("/dev/sgx_enclave", O_RDWR);
	unsigned long size = 0x4000, area, base;
	uint64_t *secs = aligned_alloc(4096, 4096), *secinfo = aligned_alloc(64, 64);
	struct sgx_enclave_create create = { .src = (unsigned long)secs };

	(void)argc;
	area = (unsigned long)mmap(NULL, 2 * size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	base = (area + size - 1) & ~(size - 1);
	memset(secs, 0, 4096);
	secs[0] = size;
	secs[1] = base;
	secs[2] = 1;		/* SSAFRAMESIZE */
	secs[6] = 0x4;		/* ATTRIBUTES: MODE64BIT */
	secs[7] = 3;		/* XFRM */
	if (ioctl(fd, SGX_IOC_ENCLAVE_CREATE, &create))
		return 2;
	memset(secinfo, 0, 64);
	secinfo[0] = (2 << 8) | 1 | 4;	/* REG, R, X */
	printf("rx page from %s -> %s\n", argv[1], add(fd, from_file, 0x1000, secinfo) ?
	       strerrorname_np(errno) : "0");
	printf("rx page from anonymous memory -> %s\n", add(fd, anon, 0x2000, secinfo) ?
	       strerrorname_np(errno) : "0");
	return 0;
}
