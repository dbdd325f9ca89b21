/* Bad input from a native program: each line is "what -> errno name".
 * The test holds each against the Python API on the same model. */
#define _GNU_SOURCE
#include <asm/sgx.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

static void show(const char *what, long ret)
{
	printf("%s -> %s\n", what, ret < 0 ? strerrorname_np(errno) : "0");
}

int main(void)
{
	unsigned char junk[4096];
	int fd = open("/dev/sgx_enclave", O_RDWR);
	int null = open("/dev/null", O_RDWR);
	struct sgx_enclave_create create = { .src = 0xdead0000 };
	struct sgx_enclave_add_pages add;

	setvbuf(stdout, NULL, _IOLBF, 0);
	memset(junk, 0xa5, sizeof(junk));
	show("create NULL", ioctl(fd, SGX_IOC_ENCLAVE_CREATE, NULL));
	show("create unmapped src", ioctl(fd, SGX_IOC_ENCLAVE_CREATE, &create));
	show("create garbage secs", ioctl(fd, SGX_IOC_ENCLAVE_CREATE, junk));
	memset(&add, 0x5a, sizeof(add));
	show("add_pages garbage", ioctl(fd, SGX_IOC_ENCLAVE_ADD_PAGES, &add));
	show("init unmapped", ioctl(fd, SGX_IOC_ENCLAVE_INIT, (void *)8));
	show("unknown ioctl", ioctl(fd, 0xc0ffee, junk));
	show("remove_pages garbage", ioctl(fd, SGX_IOC_ENCLAVE_REMOVE_PAGES, junk));
	show("mmap unaligned offset", mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 123) == MAP_FAILED ? -1 : 0);
	{
		/* mremap of an enclave mapping is the model's mm too. */
		void *p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
		void *q = mremap(p, 4096, 8192, MREMAP_MAYMOVE);

		show("mremap grow enclave mapping", q == MAP_FAILED ? -1 : 0);
		show("munmap enclave mapping", munmap(p, 4096));
	}
	show("create on another file", ioctl(null, SGX_IOC_ENCLAVE_CREATE, &create));
	{
		/* The provision fd travels inside the struct: the model must see
		 * the program's fd numbers. */
		struct sgx_enclave_provision prov = { .fd = open("/dev/sgx_provision", O_RDWR) };

		show("provision with /dev/sgx_provision", ioctl(fd, SGX_IOC_ENCLAVE_PROVISION, &prov));
		prov.fd = null;
		show("provision with another file", ioctl(fd, SGX_IOC_ENCLAVE_PROVISION, &prov));
	}
	show("close", close(fd));
	show("close again", close(fd));
	show("ioctl after close", ioctl(fd, SGX_IOC_ENCLAVE_CREATE, &create));
	return 0;
}
