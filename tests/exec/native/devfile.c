/* read, write, lseek and fcntl on a device file: each line is
 * "mode call -> result" (an errno name, a count, or F_GETFL's flags in hex).
 * Under sgxsim exec with /dev/sgx_enclave and /dev/sgx_provision the model
 * answers; natively with a device whose operations have no read or write
 * (/dev/kvm) the host kernel does.  Built with _FORTIFY_SOURCE, so read()
 * and pread() of a buffer of known size are glibc's __read_chk/__pread_chk.
 * A pipe's read and write go on as without sgxsim. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

static const char *mode_name[] = { "rdonly", "wronly", "rdwr", "accmode3" };

static void show(const char *mode, const char *what, long ret, int hex)
{
	if (ret < 0)
		printf("%s %s -> %s\n", mode, what, strerrorname_np(errno));
	else if (hex)
		printf("%s %s -> %#lx\n", mode, what, ret);
	else
		printf("%s %s -> %ld\n", mode, what, ret);
}

static void calls(const char *path, int acc, int seek)
{
	const char *m = mode_name[acc];
	char buf[16] = "abcdefgh";
	struct iovec iov[2] = { { buf, 4 }, { buf + 4, 4 } };
	volatile size_t n = sizeof(buf);	/* not a constant: fortified calls stay __read_chk */
	int fd = open(path, acc | O_CLOEXEC), fd2;

	if (fd < 0) {
		show(m, "open", -1, 0);
		return;
	}
	show(m, "read", read(fd, buf, n), 0);
	show(m, "write", write(fd, buf, 3), 0);
	show(m, "pread", pread(fd, buf, n, 0), 0);
	show(m, "pread -1", pread(fd, buf, n, -1), 0);
	show(m, "pwrite", pwrite(fd, buf, 3, 4096), 0);
	show(m, "readv", readv(fd, iov, 2), 0);
	show(m, "writev", writev(fd, iov, 2), 0);
	show(m, "preadv", preadv(fd, iov, 2, 0), 0);
	show(m, "pwritev", pwritev(fd, iov, 2, 0), 0);
	show(m, "read 0", read(fd, NULL, 0), 0);
	if (seek) {
		show(m, "lseek set", lseek(fd, 0, SEEK_SET), 0);
		show(m, "lseek cur", lseek(fd, 0, SEEK_CUR), 0);
		show(m, "lseek end", lseek(fd, 0, SEEK_END), 0);
		show(m, "lseek whence 7", lseek(fd, 0, 7), 0);
	}
	show(m, "getfl", fcntl(fd, F_GETFL), 1);
	show(m, "setfl nonblock|append|rdwr", fcntl(fd, F_SETFL, O_NONBLOCK | O_APPEND | O_RDWR), 0);
	show(m, "getfl", fcntl(fd, F_GETFL), 1);
	fd2 = dup(fd);	/* the same open file: its flags too */
	show(m, "setfl direct", fcntl(fd2, F_SETFL, O_DIRECT), 0);
	show(m, "setfl 0 on dup", fcntl(fd2, F_SETFL, 0), 0);
	show(m, "getfl", fcntl(fd, F_GETFL), 1);
	close(fd2);
	close(fd);
	show(m, "read closed", read(fd, buf, 1), 0);
	show(m, "getfl closed", fcntl(fd, F_GETFL), 1);
}

int main(int argc, char **argv)
{
	int i, acc, p[2];
	char got[8] = "";

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (i = 1; i < argc; i++) {
		int seek = strcmp(argv[i], "-noseek") != 0;

		if (!seek)
			i++;
		for (acc = 0; acc < 4; acc++)
			calls(argv[i], acc, seek);
	}
	if (pipe(p) == 0) {
		show("pipe", "write", write(p[1], "ok", 2), 0);
		show("pipe", "read", read(p[0], got, sizeof(got)), 0);
		printf("pipe got %s\n", got);
	}
	return 0;
}
