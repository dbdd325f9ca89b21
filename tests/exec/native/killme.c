/* A child that keeps the server busy with requests is killed mid-stream. */
#define _GNU_SOURCE
#include <asm/sgx.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		int fd = open("/dev/sgx_enclave", O_RDWR);
		for (;;) {
			void *p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
			ioctl(fd, SGX_IOC_ENCLAVE_INIT, NULL);
			munmap(p, 4096);
		}
	}
	usleep(300000);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return 7;
}
