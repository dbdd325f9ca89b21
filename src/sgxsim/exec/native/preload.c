/* sgxsim exec: the preload library.
 *
 * Loaded into an unmodified program with LD_PRELOAD, it hands the program's
 * SGX world to the sgxsim server (a Python process holding the model):
 *
 *  - open()/openat() of /dev/sgx_enclave or /dev/sgx_provision return a real
 *    placeholder fd (a memfd) bound to the model's file; close/dup/fork
 *    follow it; ioctl() on it is the model's driver, and read/write/lseek
 *    (and their p- and -v forms) and fcntl(F_GETFL/F_SETFL) the model's vfs;
 *  - mmap() of such an fd, and munmap/mprotect/mremap touching an enclave
 *    range, are the model's mm; the range is reserved PROT_NONE here so
 *    nothing else lands there;
 *  - getauxval(AT_SYSINFO_EHDR) returns sgxsim's vDSO image, whose
 *    __vdso_sgx_enter_enclave hands its ENCLU to the direct entry below;
 *  - the direct entry (the vDSO's ENCLU) and the trap handlers (any other
 *    ENCLU: #UD, so SIGILL, on a CPU without SGX; #GP or #PF, so SIGSEGV,
 *    where the CPU has SGX but this process has no enclave, as in a guest
 *    whose host has SGX) send the registers to the
 *    server, whose model CPU runs the leaf (and the enclave until EEXIT or an
 *    AEX), and load the registers they get back, as the CPU and the kernel's
 *    vDSO fixup would leave them;
 *  - CPUID instructions of the executable were patched into UD2 by the server
 *    before main(): the handler answers leaf 0x12 and 7 from the model's CPU
 *    and every other leaf from the real one;
 *  - the real signal mask never blocks SIGILL or SIGSEGV, so that the traps
 *    work in any thread: the program's mask for those two is kept here,
 *    per thread (the virtual signal mask, below), and its dispositions and
 *    handlers go through sigaction() and the handlers here.
 *
 * The server reads and writes the program's memory through /proc/PID/mem.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <threads.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <mqueue.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/ucontext.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>
#include <cpuid.h>
#include <elf.h>
#include <stddef.h>

#include "protocol.h"

#define MAX_FDS 4096

static int conn = -1;                  /* the socket to the server */
static pthread_mutex_t conn_lock = PTHREAD_MUTEX_INITIALIZER;
static int in_enclave;                 /* a thread is inside an ENCLU request */
__attribute__((used)) static int direct_state;  /* the vDSO's direct entry (below) */
static unsigned long vdso_base;
static unsigned char sgx_fd[MAX_FDS];  /* placeholder fds of the model's files */
static uint64_t ranges[SGXSIM_MAX_RANGES][2];
static unsigned int nranges;
/* The program's own dispositions, as the kernel would hold them: SIGILL's
 * and SIGSEGV's (the trap handlers stay installed), and every handler of
 * another signal, which runs through tramp() (the virtual mask, below). */
static struct sigaction app_act[2][NSIG];	/* two copies each: act_get() */
static void (*glibc_restorer)(void);   /* the sa_restorer glibc gives every action */
static int active;                     /* the trap handlers are installed */
/* The trap handlers' stack, one per thread (give_altstack()): its guard
 * page's address, or 0 where the thread uses a stack of the program's. */
#define ALTSTACK_SIZE (256 * 1024)
static __thread uintptr_t my_guard __attribute__((tls_model("initial-exec")));
/* The signal this thread's handler last queued for the program (a fault the
 * model's kernel delivers): when it arrives it is the program's, even at an
 * ENCLU (an AEP is one). */
static __thread int queued_sig __attribute__((tls_model("initial-exec")));

/* The real functions. */
static int (*real_openat)(int, const char *, int, ...);
static int (*real_close)(int);
static int (*real_dup)(int);
static int (*real_dup2)(int, int);
static int (*real_dup3)(int, int, int);
static int (*real_fcntl)(int, int, ...);
static int (*real_ioctl)(int, unsigned long, ...);
static void *(*real_mmap)(void *, size_t, int, int, int, off_t);
static int (*real_munmap)(void *, size_t);
static int (*real_mprotect)(void *, size_t, int);
static void *(*real_mremap)(void *, size_t, size_t, int, ...);
static pid_t (*real_fork)(void);
static int (*real_pthread_create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
static int (*real_thrd_create)(thrd_t *, thrd_start_t, void *);
static int (*real_stat)(const char *, struct stat *);
static int (*real_fstat)(int, struct stat *);
static ssize_t (*real_read)(int, void *, size_t);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pread)(int, void *, size_t, off_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_readv)(int, const struct iovec *, int);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_preadv)(int, const struct iovec *, int, off_t);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static off_t (*real_lseek)(int, off_t, int);
static ssize_t (*real___read_chk)(int, void *, size_t, size_t);
static ssize_t (*real___pread_chk)(int, void *, size_t, off_t, size_t);
static unsigned long (*real_getauxval)(unsigned long);
static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);
static int (*real_pthread_sigmask)(int, const sigset_t *, sigset_t *);
static int (*real_sigpending)(sigset_t *);
static int (*real_pthread_attr_getsigmask_np)(const pthread_attr_t *, sigset_t *);
static int (*real_timer_create)(clockid_t, struct sigevent *, timer_t *);
static int (*real_mq_notify)(mqd_t, const struct sigevent *);
static void (*real_pthread_exit)(void *) __attribute__((noreturn));
static void (*real_thrd_exit)(int) __attribute__((noreturn));
__attribute__((used)) static void *real___sigsetjmp, *real_setjmp;
static void (*real_siglongjmp)(struct __jmp_buf_tag *, int) __attribute__((noreturn));
static void (*real___longjmp_chk)(struct __jmp_buf_tag *, int) __attribute__((noreturn));

static void die(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	n = snprintf(buf, sizeof(buf), "sgxsim exec: ");
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(2, buf, n) < 0) {
		/* nothing more to say */
	}
	_exit(127);
}

static void resolve(void)
{
	if (real_mmap)
		return;
#define R(name) real_##name = dlsym(RTLD_NEXT, #name)
	R(openat); R(close); R(dup); R(dup2); R(dup3); R(fcntl); R(ioctl);
	R(munmap); R(mprotect); R(mremap); R(fork); R(stat); R(fstat); R(getauxval);
	R(sigaction); R(pthread_create); R(thrd_create); R(pthread_sigmask); R(sigpending);
	R(pthread_attr_getsigmask_np); R(__sigsetjmp); R(setjmp); R(siglongjmp); R(__longjmp_chk);
	R(mmap); R(timer_create); R(mq_notify); R(pthread_exit); R(thrd_exit);
	R(read); R(write); R(pread); R(pwrite); R(readv); R(writev); R(preadv); R(pwritev);
	R(lseek); R(__read_chk); R(__pread_chk);
#undef R
}

/* -- the connection ------------------------------------------------------------------ */

static void xfer_locked(struct sgxsim_request *req, struct sgxsim_reply *rep)
{
	size_t done = 0;
	ssize_t n;

	while (done < sizeof(*req)) {
		n = send(conn, (char *)req + done, sizeof(*req) - done, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("the server has gone away (send: %s)", strerror(errno));
		done += n;
	}
	done = 0;
	while (done < sizeof(*rep)) {
		n = recv(conn, (char *)rep + done, sizeof(*rep) - done, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("the server has gone away (recv: %s)", n ? strerror(errno) : "EOF");
		done += n;
	}
	if (rep->nranges <= SGXSIM_MAX_RANGES) {
		nranges = rep->nranges;
		memcpy(ranges, rep->ranges, sizeof(ranges[0]) * nranges);
	}
}

/* The thread holding conn_lock: a signal handler that interrupts its own
 * thread's request (a CPUID or ENCLU in a handler of the program) would wait
 * for the lock forever; it is stopped with a message instead. */
static pid_t conn_owner;

static void conn_take(void)
{
	pid_t me = (pid_t)syscall(SYS_gettid);

	if (__atomic_load_n(&conn_owner, __ATOMIC_ACQUIRE) == me)
		die("a signal handler of the program asked the bridge for a CPUID or ENCLU while "
		    "its thread (%ld) was inside a request to it: not supported", (long)me);
	pthread_mutex_lock(&conn_lock);
	__atomic_store_n(&conn_owner, me, __ATOMIC_RELEASE);
}

static void conn_give(void)
{
	__atomic_store_n(&conn_owner, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&conn_lock);
}

static void xfer(struct sgxsim_request *req, struct sgxsim_reply *rep)
{
	int saved = errno;

	conn_take();
	xfer_locked(req, rep);
	conn_give();
	errno = saved;
}

static long call(int op, long a0, long a1, long a2, long a3, long a4, long a5, const char *path)
{
	struct sgxsim_request req;
	struct sgxsim_reply rep;

	memset(&req, 0, sizeof(req));
	req.op = op;
	req.a[0] = a0; req.a[1] = a1; req.a[2] = a2; req.a[3] = a3; req.a[4] = a4; req.a[5] = a5;
	if (path)
		strncpy(req.path, path, SGXSIM_PATH_MAX - 1);
	xfer(&req, &rep);
	return rep.ret;
}

/* A syscall's return: -errno becomes errno and -1. */
static long sys_ret(long ret)
{
	if (ret < 0 && ret > -4096) {
		errno = -ret;
		return -1;
	}
	return ret;
}

static int touches_enclave(unsigned long addr, unsigned long len)
{
	unsigned int i;

	for (i = 0; i < nranges; i++)
		if (addr < ranges[i][1] && addr + len > ranges[i][0])
			return 1;
	return 0;
}

/* Apply a real mprotect() to the parts of [addr, addr+len) outside enclave ranges. */
static void mprotect_outside(unsigned long addr, unsigned long len, int prot)
{
	unsigned long a = addr, end = addr + len;

	while (a < end) {
		unsigned long next = end, skip_to = 0;
		unsigned int i;

		for (i = 0; i < nranges; i++) {
			if (ranges[i][0] <= a && a < ranges[i][1])
				skip_to = ranges[i][1];
			else if (ranges[i][0] > a && ranges[i][0] < next)
				next = ranges[i][0];
		}
		if (skip_to) {
			a = skip_to;
			continue;
		}
		real_mprotect((void *)a, next - a, prot);
		a = next;
	}
}

static void reserve(unsigned long addr, unsigned long len)
{
	void *p = real_mmap((void *)addr, len, PROT_NONE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		die("cannot reserve the enclave range %#lx+%#lx: %s", addr, len, strerror(errno));
}

/* -- files ------------------------------------------------------------------------------ */

static int is_sgx_path(const char *path)
{
	return path && (!strcmp(path, "/dev/sgx_enclave") || !strcmp(path, "/dev/sgx_provision"));
}

static int is_sgx_fd(int fd)
{
	return fd >= 0 && fd < MAX_FDS && sgx_fd[fd];
}

static int sgx_open(const char *path, int flags, mode_t mode)
{
	int fd = memfd_create(path + 5, (flags & O_CLOEXEC) ? MFD_CLOEXEC : 0);
	long ret;

	if (fd < 0)
		return -1;
	if (fd >= MAX_FDS) {
		real_close(fd);
		errno = EMFILE;
		return -1;
	}
	ret = call(SGXSIM_OPEN, fd, flags, mode, 0, 0, 0, path);
	if (ret < 0) {
		real_close(fd);
		return sys_ret(ret);
	}
	sgx_fd[fd] = 1;
	return fd;
}

/* open() is openat(AT_FDCWD): one path for both. */
static int do_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	resolve();
	if (is_sgx_path(path) && conn >= 0)
		return sgx_open(path, flags, mode);
	return real_openat(dirfd, path, flags, mode);
}

/* The mode argument exists only with O_CREAT or O_TMPFILE. */
#define MODE_ARG(last, flags, mode)				\
	do {							\
		va_list ap;					\
		if ((flags) & (O_CREAT | O_TMPFILE)) {		\
			va_start(ap, last);			\
			mode = va_arg(ap, mode_t);		\
			va_end(ap);				\
		}						\
	} while (0)

int open(const char *path, int flags, ...)
{
	mode_t mode = 0;

	MODE_ARG(flags, flags, mode);
	return do_openat(AT_FDCWD, path, flags, mode);
}
int open64(const char *path, int flags, ...) __attribute__((alias("open")));

int __open_2(const char *path, int flags)
{
	return do_openat(AT_FDCWD, path, flags, 0);
}
int __open64_2(const char *path, int flags) __attribute__((alias("__open_2")));

int openat(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;

	MODE_ARG(flags, flags, mode);
	return do_openat(dirfd, path, flags, mode);
}
int openat64(int dirfd, const char *path, int flags, ...) __attribute__((alias("openat")));

int close(int fd)
{
	resolve();
	if (is_sgx_fd(fd)) {
		long ret = call(SGXSIM_CLOSE, fd, 0, 0, 0, 0, 0, NULL);

		sgx_fd[fd] = 0;
		real_close(fd);
		return sys_ret(ret);
	}
	if (fd == conn) {
		errno = EBADF;	/* the bridge's own socket is not the program's */
		return -1;
	}
	return real_close(fd);
}

static int after_dup(int old, int new)
{
	if (new < 0 || !is_sgx_fd(old))
		return new;
	if (new >= MAX_FDS) {
		real_close(new);
		errno = EMFILE;
		return -1;
	}
	if (is_sgx_fd(new))
		call(SGXSIM_CLOSE, new, 0, 0, 0, 0, 0, NULL);
	call(SGXSIM_DUP, old, new, 0, 0, 0, 0, NULL);
	sgx_fd[new] = 1;
	return new;
}

static void before_replace(int old, int new)
{
	/* dup2 onto a placeholder closes the model's file behind it. */
	if (old != new && is_sgx_fd(new) && fcntl(old, F_GETFD) >= 0) {
		call(SGXSIM_CLOSE, new, 0, 0, 0, 0, 0, NULL);
		sgx_fd[new] = 0;
	}
}

int dup(int fd)
{
	resolve();
	return after_dup(fd, real_dup(fd));
}

int dup2(int old, int new)
{
	resolve();
	before_replace(old, new);
	if (old == new)
		return real_dup2(old, new);
	return after_dup(old, real_dup2(old, new));
}

int dup3(int old, int new, int flags)
{
	resolve();
	before_replace(old, new);
	return after_dup(old, real_dup3(old, new, flags));
}

int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	long arg;

	resolve();
	va_start(ap, cmd);
	arg = va_arg(ap, long);
	va_end(ap);
	if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)
		return after_dup(fd, real_fcntl(fd, cmd, arg));
	/* The open's access mode and status flags are the model file's. */
	if ((cmd == F_GETFL || cmd == F_SETFL) && is_sgx_fd(fd))
		return sys_ret(call(SGXSIM_FCNTL, fd, cmd, arg, 0, 0, 0, NULL));
	return real_fcntl(fd, cmd, arg);
}
int fcntl64(int fd, int cmd, ...) __attribute__((alias("fcntl")));

/* read, write and lseek of a model file: the model answers (the SGX files
 * have no such operations); the placeholder memfd would have read 0 bytes. */
ssize_t read(int fd, void *buf, size_t n)
{
	resolve();
	if (is_sgx_fd(fd))
		return sys_ret(call(SGXSIM_READ, fd, (long)buf, n, 0, 0, 0, NULL));
	return real_read(fd, buf, n);
}

ssize_t write(int fd, const void *buf, size_t n)
{
	resolve();
	if (is_sgx_fd(fd))
		return sys_ret(call(SGXSIM_WRITE, fd, (long)buf, n, 0, 0, 0, NULL));
	return real_write(fd, buf, n);
}

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	resolve();
	if (is_sgx_fd(fd))
		return sys_ret(call(SGXSIM_PREAD, fd, (long)buf, n, off, 0, 0, NULL));
	return real_pread(fd, buf, n, off);
}
ssize_t pread64(int, void *, size_t, off_t) __attribute__((alias("pread")));

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	resolve();
	if (is_sgx_fd(fd))
		return sys_ret(call(SGXSIM_PWRITE, fd, (long)buf, n, off, 0, 0, NULL));
	return real_pwrite(fd, buf, n, off);
}
ssize_t pwrite64(int, const void *, size_t, off_t) __attribute__((alias("pwrite")));

ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
	resolve();
	if (is_sgx_fd(fd))
		return sys_ret(call(SGXSIM_READV, fd, (long)iov, cnt, 0, 0, 0, NULL));
	return real_readv(fd, iov, cnt);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	resolve();
	if (is_sgx_fd(fd))
		return sys_ret(call(SGXSIM_WRITEV, fd, (long)iov, cnt, 0, 0, 0, NULL));
	return real_writev(fd, iov, cnt);
}

ssize_t preadv(int fd, const struct iovec *iov, int cnt, off_t off)
{
	resolve();
	if (is_sgx_fd(fd))
		return sys_ret(call(SGXSIM_PREADV, fd, (long)iov, cnt, off, 0, 0, NULL));
	return real_preadv(fd, iov, cnt, off);
}
ssize_t preadv64(int, const struct iovec *, int, off_t) __attribute__((alias("preadv")));

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	resolve();
	if (is_sgx_fd(fd))
		return sys_ret(call(SGXSIM_PWRITEV, fd, (long)iov, cnt, off, 0, 0, NULL));
	return real_pwritev(fd, iov, cnt, off);
}
ssize_t pwritev64(int, const struct iovec *, int, off_t) __attribute__((alias("pwritev")));

off_t lseek(int fd, off_t off, int whence)
{
	resolve();
	if (is_sgx_fd(fd))
		return sys_ret(call(SGXSIM_LSEEK, fd, off, whence, 0, 0, 0, NULL));
	return real_lseek(fd, off, whence);
}
off_t lseek64(int, off_t, int) __attribute__((alias("lseek")));

/* _FORTIFY_SOURCE's versions: glibc's own buffer check, then the call. */
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	resolve();
	if (is_sgx_fd(fd) && n <= buflen)
		return read(fd, buf, n);
	return real___read_chk(fd, buf, n, buflen);
}

ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
	resolve();
	if (is_sgx_fd(fd) && n <= buflen)
		return pread(fd, buf, n, off);
	return real___pread_chk(fd, buf, n, off, buflen);
}
ssize_t __pread64_chk(int, void *, size_t, off_t, size_t) __attribute__((alias("__pread_chk")));

static void fill_stat(struct stat *st, const struct sgxsim_reply *rep)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = rep->stat[0];
	st->st_ino = rep->stat[1];
	st->st_rdev = rep->stat[2];
	st->st_size = rep->stat[3];
	st->st_nlink = 1;
	st->st_blksize = 4096;
	st->st_dev = makedev(0, 5);
}

static int model_stat(int fd, const char *path, struct stat *st)
{
	struct sgxsim_request req;
	struct sgxsim_reply rep;

	memset(&req, 0, sizeof(req));
	req.op = SGXSIM_STAT;
	req.a[0] = fd;
	if (path)
		strncpy(req.path, path, SGXSIM_PATH_MAX - 1);
	xfer(&req, &rep);
	if (rep.ret < 0)
		return sys_ret(rep.ret);
	fill_stat(st, &rep);
	return 0;
}

int stat(const char *path, struct stat *st)
{
	resolve();
	if (is_sgx_path(path) && conn >= 0)
		return model_stat(-1, path, st);
	return real_stat(path, st);
}
int stat64(const char *path, struct stat64 *st)
{
	return stat(path, (struct stat *)st);	/* the same layout on x86-64 */
}

int fstat(int fd, struct stat *st)
{
	resolve();
	if (is_sgx_fd(fd))
		return model_stat(fd, NULL, st);
	return real_fstat(fd, st);
}
int fstat64(int fd, struct stat64 *st)
{
	return fstat(fd, (struct stat *)st);
}

int ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	long arg;

	resolve();
	va_start(ap, request);
	arg = va_arg(ap, long);
	va_end(ap);
	if (is_sgx_fd(fd))
		return sys_ret(call(SGXSIM_IOCTL, fd, request, arg, 0, 0, 0, NULL));
	return real_ioctl(fd, request, arg);
}

/* -- memory ------------------------------------------------------------------------------ */

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	long ret;

	resolve();
	if (!is_sgx_fd(fd) || (flags & MAP_ANONYMOUS))
		return real_mmap(addr, len, prot, flags, fd, off);
	ret = call(SGXSIM_MMAP, (long)addr, len, prot, flags, fd, off, NULL);
	if (ret < 0 && ret > -4096) {
		errno = -ret;
		return MAP_FAILED;
	}
	reserve(ret, (len + 4095) & ~4095UL);
	return (void *)ret;
}
void *mmap64(void *, size_t, int, int, int, off_t) __attribute__((alias("mmap")));

int munmap(void *addr, size_t len)
{
	long ret;

	resolve();
	if (!touches_enclave((unsigned long)addr, len))
		return real_munmap(addr, len);
	ret = call(SGXSIM_MUNMAP, (long)addr, len, 0, 0, 0, 0, NULL);
	if (ret < 0)
		return sys_ret(ret);
	real_munmap(addr, len);
	return 0;
}

int mprotect(void *addr, size_t len, int prot)
{
	long ret;

	resolve();
	if (!touches_enclave((unsigned long)addr, len))
		return real_mprotect(addr, len, prot);
	ret = call(SGXSIM_MPROTECT, (long)addr, len, prot, 0, 0, 0, NULL);
	if (ret < 0)
		return sys_ret(ret);
	mprotect_outside((unsigned long)addr, (len + 4095) & ~4095UL, prot);
	return 0;
}

void *mremap(void *old, size_t old_size, size_t new_size, int flags, ...)
{
	void *new_addr = NULL;
	va_list ap;
	long ret;

	resolve();
	if (flags & MREMAP_FIXED) {
		va_start(ap, flags);
		new_addr = va_arg(ap, void *);
		va_end(ap);
	}
	if (!touches_enclave((unsigned long)old, old_size ? old_size : 1))
		return real_mremap(old, old_size, new_size, flags, new_addr);
	ret = call(SGXSIM_MREMAP, (long)old, old_size, new_size, flags, (long)new_addr, 0, NULL);
	if (ret < 0 && ret > -4096) {
		errno = -ret;
		return MAP_FAILED;
	}
	/* The model moved or resized an enclave mapping: move the reservation. */
	if (!(flags & MREMAP_DONTUNMAP))
		real_munmap(old, old_size);
	reserve(ret, (new_size + 4095) & ~4095UL);
	return (void *)ret;
}

/* -- fork ---------------------------------------------------------------------------------- */

static int connect_server(long token);
static void threads_after_fork(void);

pid_t fork(void)
{
	long token;
	pid_t pid;

	resolve();
	if (conn < 0)
		return real_fork();
	conn_take();
	{
		struct sgxsim_request req;
		struct sgxsim_reply rep;

		memset(&req, 0, sizeof(req));
		req.op = SGXSIM_FORK;
		xfer_locked(&req, &rep);
		token = rep.ret;
	}
	pid = real_fork();
	if (pid == 0) {
		/* The child: its own connection, saying which model process it is. */
		real_close(conn);
		conn = -1;
		pthread_mutex_init(&conn_lock, NULL);
		conn_owner = 0;
		in_enclave = 0;
		direct_state = 0;
		threads_after_fork();
		if (connect_server(token) < 0)
			die("the child cannot reach the server");
		return 0;
	}
	if (pid < 0) {
		struct sgxsim_request req;
		struct sgxsim_reply rep;
		int saved = errno;

		memset(&req, 0, sizeof(req));
		req.op = SGXSIM_FORK_FAILED;
		req.a[0] = token;
		xfer_locked(&req, &rep);
		errno = saved;
	}
	conn_give();
	return pid;
}

/* vfork() runs as fork(): the child of a real vfork() shares the parent's
 * memory, so the preload's state it changes (the virtual mask, the
 * program's actions, the connection) would be the parent's, where the
 * kernel keeps the child's signal state its own.  A wrapper cannot vfork
 * either: the child would return through the parent's stack frame. */
pid_t vfork(void)
{
	return fork();
}
pid_t __vfork(void) __attribute__((alias("vfork"), nothrow, leaf));

/* -- the vDSO -------------------------------------------------------------------------------- */

unsigned long getauxval(unsigned long type)
{
	resolve();
	if (type == AT_SYSINFO_EHDR && vdso_base)
		return vdso_base;
	return real_getauxval(type);
}

void sgxsim_direct_enclu(void) __attribute__((visibility("hidden")));
static unsigned long vdso_enclu;  /* the vDSO's ENCLU, as its exception table names it */
static int direct_always_trap;

/* The ENCLU of the image's exception table (section sgxsim_extable, whose
 * first field is the ENCLU's offset from itself), 0 if there is none. */
static unsigned long find_enclu(const char *img, size_t size)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)img;
	const Elf64_Shdr *sh;
	const char *names;
	unsigned int i;

	if (size < sizeof(*eh) || eh->e_shoff > size ||
	    eh->e_shnum > (size - eh->e_shoff) / sizeof(*sh) || eh->e_shstrndx >= eh->e_shnum)
		return 0;
	sh = (const Elf64_Shdr *)(img + eh->e_shoff);
	names = img + sh[eh->e_shstrndx].sh_offset;
	for (i = 0; i < eh->e_shnum; i++) {
		int32_t insn;

		if (sh[eh->e_shstrndx].sh_offset + sh[i].sh_name + 15 > size ||
		    strcmp(names + sh[i].sh_name, "sgxsim_extable") || sh[i].sh_size < 8 ||
		    sh[i].sh_offset + 4 > size)
			continue;
		memcpy(&insn, img + sh[i].sh_offset, 4);
		return vdso_base + sh[i].sh_addr + insn;
	}
	return 0;
}

static void map_vdso(const char *path)
{
	const char *entry;
	struct stat st;
	char *p;
	int fd;

	fd = real_openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || real_fstat(fd, &st) < 0)
		die("cannot open the vDSO image %s: %s", path, strerror(errno));
	/* The data page (sgxsim_vvar, vdso.lds), then the image right after it. */
	p = real_mmap(NULL, 4096 + st.st_size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED ||
	    real_mmap(p + 4096, st.st_size, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_FIXED, fd, 0)
	    == MAP_FAILED)
		die("cannot map the vDSO image: %s", strerror(errno));
	real_close(fd);
	vdso_base = (unsigned long)p + 4096;
	/* The vDSO's ENCLU goes to the direct entry, unless SGXSIM_VDSO_ENTRY
	 * says "sigill" (the ENCLU traps: SIGILL without SGX, SIGSEGV on a CPU
	 * with SGX, each served by its handler); "trap" has the direct entry
	 * load every reply through its trap.  The tests run all three. */
	vdso_enclu = find_enclu(p + 4096, st.st_size);
	entry = getenv("SGXSIM_VDSO_ENTRY");
	direct_always_trap = entry && !strcmp(entry, "trap");
	if (vdso_enclu && !(entry && !strcmp(entry, "sigill")))
		*(void (**)(void))p = sgxsim_direct_enclu;
}

/* -- the vDSO's direct entry ------------------------------------------------------------------ */

/* The vDSO's ENCLU without the signal.  The vDSO jumps to sgxsim_direct_enclu
 * with every register and flag as they are at its ENCLU (vdso.S).  The entry
 * saves them into direct_req, moves to a stack of its own (the enclave may
 * store below the program's stack pointer, which is why the trap handlers have
 * their own stack too), sends the request a trap handler would send (ENCLU
 * at the vDSO's ENCLU address) and loads the registers of the reply.  RIP and
 * RFLAGS pass through the 16 bytes below the red zone of the reply's stack
 * pointer when that is the ENCLU's (an EEXIT or a reported fault back to the
 * vDSO: memory the entry has just used itself); any other reply (a signal to
 * deliver, another stack) is loaded by the SIGILL handler from the UD2 at
 * sgxsim_direct_trap, exactly as the signal path loads it.
 *
 * direct_state: 0 free; 1 a thread is inside (saving its registers, in the
 * server, or at the trap): a second one entering stops the program as the
 * signal path does; 2 a thread is loading the reply's registers: another
 * waits the few instructions it takes. */
__attribute__((used)) static struct sgxsim_request direct_req;
__attribute__((used)) static struct sgxsim_reply direct_rep;
__attribute__((used, aligned(16))) static char direct_stack[64 * 1024];
extern const char sgxsim_direct_trap[] __attribute__((visibility("hidden")));

#define REQ_REGS 56
#define REP_RESUME 8
#define REP_REGS 32
_Static_assert(offsetof(struct sgxsim_request, regs) == REQ_REGS, "request layout");
_Static_assert(offsetof(struct sgxsim_reply, resume) == REP_RESUME, "reply layout");
_Static_assert(offsetof(struct sgxsim_reply, regs) == REP_REGS, "reply layout");
_Static_assert(R_RAX == 0 && R_RCX == 1 && R_RDX == 2 && R_RBX == 3 && R_RSP == 4 &&
	       R_RBP == 5 && R_RSI == 6 && R_RDI == 7 && R_R8 == 8 && R_R15 == 15 &&
	       R_RIP == 16 && R_RFLAGS == 17, "register order (the offsets below)");

static void two_threads(void)
{
	die("two threads inside enclaves at once are not supported "
	    "(thread %ld entered while another was inside)", (long)syscall(SYS_gettid));
}

/* An ENCLU request.  The model runs an enclave call from EENTER to EEXIT or
 * AEX in one request: a second thread entering meanwhile would be serialised
 * behind it, which is not what the hardware does. */
static void xfer_enclu(struct sgxsim_request *req, struct sgxsim_reply *rep)
{
	if (__atomic_load_n(&conn_owner, __ATOMIC_ACQUIRE) == (pid_t)syscall(SYS_gettid))
		conn_take();	/* its own thread's request, interrupted: the message */
	if (__atomic_load_n(&in_enclave, __ATOMIC_ACQUIRE))
		two_threads();
	conn_take();
	__atomic_store_n(&in_enclave, 1, __ATOMIC_RELEASE);
	xfer_locked(req, rep);
	__atomic_store_n(&in_enclave, 0, __ATOMIC_RELEASE);
	conn_give();
}

__attribute__((used, noreturn)) static void direct_two_threads(void)
{
	two_threads();
	__builtin_unreachable();
}

/* On direct_stack, with the registers in direct_req.regs.  Returns 1 when
 * the entry loads the reply's registers itself, 0 for the trap. */
__attribute__((used)) static int direct_call(void)
{
	int saved = errno;

	direct_req.op = SGXSIM_ENCLU;
	direct_req.regs[R_RIP] = vdso_enclu;
	xfer_enclu(&direct_req, &direct_rep);
	errno = saved;
	if (direct_rep.resume == RESUME_REGS && !direct_always_trap &&
	    direct_rep.regs[R_RSP] == direct_req.regs[R_RSP]) {
		__atomic_store_n(&direct_state, 2, __ATOMIC_RELEASE);
		return 1;
	}
	return 0;
}

#define SAVE(reg, i) "	movq %" #reg ", direct_req+56+8*" #i "(%rip)\n"
#define LOAD(reg, i) "	movq direct_rep+32+8*" #i "(%rip), %" #reg "\n"
asm(".text\n"
    "	.globl sgxsim_direct_enclu\n"
    "	.hidden sgxsim_direct_enclu\n"
    "	.type sgxsim_direct_enclu, @function\n"
    "sgxsim_direct_enclu:\n"
    "	leaq -128(%rsp), %rsp\n"	/* past the red zone */
    "	pushq %rax\n"
    "	pushfq\n"
    "	pushq %rcx\n"
    "1:	xorl %eax, %eax\n"
    "	movl $1, %ecx\n"
    "	lock cmpxchgl %ecx, direct_state(%rip)\n"
    "	je 3f\n"
    "	cmpl $2, %eax\n"
    "	jne 2f\n"
    "	pause\n"
    "	jmp 1b\n"
    "2:	andq $-16, %rsp\n"
    "	call direct_two_threads\n"
    "3:	popq %rcx\n"
    SAVE(rcx, 1)
    "	popq %rcx\n"
    SAVE(rcx, 17)
    "	popq %rax\n"
    SAVE(rax, 0)
    "	leaq 128(%rsp), %rsp\n"
    SAVE(rdx, 2) SAVE(rbx, 3) SAVE(rsp, 4) SAVE(rbp, 5) SAVE(rsi, 6) SAVE(rdi, 7)
    SAVE(r8, 8) SAVE(r9, 9) SAVE(r10, 10) SAVE(r11, 11) SAVE(r12, 12) SAVE(r13, 13)
    SAVE(r14, 14) SAVE(r15, 15)
    "	leaq direct_stack+65536(%rip), %rsp\n"
    "	call direct_call\n"
    "	testl %eax, %eax\n"
    "	jz sgxsim_direct_trap\n"
    LOAD(rax, 4)			/* the ENCLU's stack pointer */
    LOAD(rcx, 16)
    "	movq %rcx, -136(%rax)\n"
    LOAD(rcx, 17)
    "	movq %rcx, -144(%rax)\n"
    "	leaq -144(%rax), %rsp\n"
    LOAD(rcx, 1) LOAD(rdx, 2) LOAD(rbx, 3) LOAD(rbp, 5) LOAD(rsi, 6) LOAD(rdi, 7)
    LOAD(r8, 8) LOAD(r9, 9) LOAD(r10, 10) LOAD(r11, 11) LOAD(r12, 12) LOAD(r13, 13)
    LOAD(r14, 14) LOAD(r15, 15) LOAD(rax, 0)
    "	movl $0, direct_state(%rip)\n"	/* the reply is read: the next thread may go */
    "	popfq\n"
    "	ret $128\n"			/* to RIP, and RSP back above the red zone */
    "	.globl sgxsim_direct_trap\n"
    "	.hidden sgxsim_direct_trap\n"
    "sgxsim_direct_trap:\n"
    "	ud2\n"
    "	.size sgxsim_direct_enclu, .-sgxsim_direct_enclu\n");
#undef SAVE
#undef LOAD

/* -- the virtual signal mask ----------------------------------------------------------------- */

/* A trap needs its signal unblocked: the kernel forces a fault whose signal
 * is blocked (force_sig_info_to_task() unblocks it and resets the handler to
 * SIG_DFL), so an ENCLU or a patched CPUID executed while the program blocks
 * SIGILL or SIGSEGV would kill it, where the CPU just runs the instruction.
 * So the real mask never blocks those two.  What the program asks for them
 * is kept here, per thread (blocked), applied where the kernel applies the
 * mask (a handler's sa_mask, sigreturn, a fault on a blocked signal) and
 * reported wherever the kernel reports it.  A signal sent while its thread
 * blocks it virtually waits here (pending, with its siginfo) and is sent
 * again when the mask no longer blocks it. */
#define SIGBIT(sig) (1UL << ((sig) - 1))	/* the kernel's sigset word 0 */
#define TRAP_SIGS (SIGBIT(SIGILL) | SIGBIT(SIGSEGV))
#define MAX_THREADS 1024
#define KERNEL_SIGSET 8				/* rt_sigprocmask()'s sigsetsize */

struct vthread {
	pid_t tid;			/* 0: a free slot */
	unsigned long blocked;		/* the TRAP_SIGS bits the program blocks */
	unsigned long pending;		/* sent to this thread while blocked */
	siginfo_t info[2];		/* their siginfo: [0] SIGILL, [1] SIGSEGV */
	int doorbell;			/* pend() chose it for a signal of the shared queue */
};

/* The main thread and those pthread_create()/thrd_create() made: a signal
 * sent to the process goes to one of them that does not block it. */
static struct vthread threads[MAX_THREADS];
static int threads_lock;
/* Sent to the process while every thread blocks it (the shared queue). */
static unsigned long shared_pending;
static siginfo_t shared_info[2];
static __thread struct vthread *my_slot __attribute__((tls_model("initial-exec")));
/* A thread made otherwise (a raw clone, glibc's helpers) has no slot. */
static __thread struct vthread my_own __attribute__((tls_model("initial-exec")));

static struct vthread *me(void)
{
	return my_slot ? my_slot : &my_own;
}

static unsigned long trap_bits(const sigset_t *set)
{
	return set->__val[0] & TRAP_SIGS;
}

static void set_trap_bits(sigset_t *set, unsigned long bits)
{
	set->__val[0] = (set->__val[0] & ~TRAP_SIGS) | bits;
}

static int trap_index(int sig)
{
	return sig == SIGSEGV;
}

/* The real mask, without glibc (whose calls are interposed below). */
static void real_mask(int how, const sigset_t *set, sigset_t *old)
{
	syscall(SYS_rt_sigprocmask, how, set, old, KERNEL_SIGSET);
}

static void real_block_one(int sig)
{
	sigset_t one;

	sigemptyset(&one);
	sigaddset(&one, sig);
	real_mask(SIG_BLOCK, &one, NULL);
}

/* threads_lock, held with every signal blocked: a handler interrupting its
 * holder in the same thread may want it too. */
static void lock_threads(sigset_t *saved)
{
	sigset_t all;

	sigfillset(&all);
	real_mask(SIG_SETMASK, &all, saved);
	while (__atomic_exchange_n(&threads_lock, 1, __ATOMIC_ACQUIRE))
		__builtin_ia32_pause();
}

static void unlock_threads(const sigset_t *saved)
{
	__atomic_store_n(&threads_lock, 0, __ATOMIC_RELEASE);
	real_mask(SIG_SETMASK, saved, NULL);
}

/* The calling thread takes a slot, with the mask it starts with. */
static void thread_enter(unsigned long blocked)
{
	sigset_t saved;
	int i;

	my_own.blocked = blocked;
	lock_threads(&saved);
	for (i = 0; i < MAX_THREADS; i++) {
		if (threads[i].tid)
			continue;
		memset(&threads[i], 0, sizeof(threads[i]));
		threads[i].blocked = blocked;
		threads[i].tid = (pid_t)syscall(SYS_gettid);
		my_slot = &threads[i];
		break;
	}
	unlock_threads(&saved);
}

/* The thread ends (its pending signals go with it, as the kernel's do). */
static void thread_leave(void)
{
	sigset_t saved;

	if (!my_slot)
		return;
	my_own.blocked = my_slot->blocked;
	lock_threads(&saved);
	my_slot->tid = 0;
	my_slot = NULL;
	unlock_threads(&saved);
}

/* A signal sent while this thread blocks it: pending, one of each (a
 * standard signal already pending is not queued again: legacy_queue()).
 * One sent to this thread (tgkill, raise, pthread_kill: SI_TKILL) waits
 * for it.  One sent to the process (kill, sigqueue) waits in the shared
 * queue, and a thread that does not block it, if there is one, is told to
 * take it (complete_signal()), by a tgkill() that its own chain() knows by
 * its doorbell (rt_tgsigqueueinfo() may not pass the sender's siginfo to
 * another thread; one the program sends that thread at the same moment
 * merges with the doorbell); else the first thread that unblocks it takes it. */
static void pend(int sig, const siginfo_t *si)
{
	struct vthread *t = me();
	unsigned long bit = SIGBIT(sig);
	sigset_t saved;
	int i;

	if (si->si_code == SI_TKILL) {
		if (!(t->pending & bit)) {
			t->info[trap_index(sig)] = *si;
			t->pending |= bit;
		}
		return;
	}
	lock_threads(&saved);
	if (!(shared_pending & bit)) {
		shared_info[trap_index(sig)] = *si;
		__atomic_store_n(&shared_pending, shared_pending | bit, __ATOMIC_RELAXED);
	}
	for (i = 0; i < MAX_THREADS; i++) {
		struct vthread *to = &threads[i];

		if (!to->tid || to == t || (__atomic_load_n(&to->blocked, __ATOMIC_RELAXED) & bit))
			continue;
		__atomic_store_n(&to->doorbell, 1, __ATOMIC_RELEASE);
		if (syscall(SYS_tgkill, getpid(), to->tid, sig) == 0)
			break;
		__atomic_store_n(&to->doorbell, 0, __ATOMIC_RELEASE);
	}
	unlock_threads(&saved);
}

/* The doorbell of pend(): the shared queue's signal, into info; 0 if
 * another thread took it meanwhile. */
static int answer_doorbell(int sig, siginfo_t *info)
{
	unsigned long bit = SIGBIT(sig);
	sigset_t saved;
	int have = 0;

	lock_threads(&saved);
	if (shared_pending & bit) {
		*info = shared_info[trap_index(sig)];
		__atomic_store_n(&shared_pending, shared_pending & ~bit, __ATOMIC_RELAXED);
		have = 1;
	}
	unlock_threads(&saved);
	return have;
}

/* A signal pending for this thread that its mask no longer blocks is sent
 * again: delivered at once (a mask lowered by a call: the kernel delivers at
 * the call's return), or, with at_sigreturn, when the handler this runs in
 * returns and sigreturn lowers the mask (blocked for real until then).  One
 * of each signal: the handler it reaches sends the next when it returns. */
static void deliver_unblocked(int at_sigreturn)
{
	struct vthread *t = me();
	static const int sigs[2] = { SIGILL, SIGSEGV };
	unsigned int i;

	for (i = 0; i < 2; i++) {
		int sig = sigs[i], have = 0;
		unsigned long bit = SIGBIT(sig);
		siginfo_t info;
		sigset_t saved;

		if (t->blocked & bit)
			continue;
		if (t->pending & bit) {		/* the thread's own queue first (dequeue_signal()) */
			info = t->info[i];
			t->pending &= ~bit;
			have = 1;
		} else if (__atomic_load_n(&shared_pending, __ATOMIC_RELAXED) & bit) {
			lock_threads(&saved);
			if (shared_pending & bit) {
				info = shared_info[i];
				__atomic_store_n(&shared_pending, shared_pending & ~bit, __ATOMIC_RELAXED);
				have = 1;
			}
			unlock_threads(&saved);
		}
		if (!have)
			continue;
		if (at_sigreturn)
			real_block_one(sig);
		syscall(SYS_rt_tgsigqueueinfo, getpid(), (pid_t)syscall(SYS_gettid), sig, &info);
	}
}

/* sigaction() to SIG_IGN discards the signal wherever it is pending
 * (do_sigaction(), after POSIX).  The caller holds threads_lock. */
static void discard_pending_locked(int sig)
{
	unsigned long bit = SIGBIT(sig);
	int i;

	my_own.pending &= ~bit;
	for (i = 0; i < MAX_THREADS; i++)
		threads[i].pending &= ~bit;
	__atomic_store_n(&shared_pending, shared_pending & ~bit, __ATOMIC_RELAXED);
}

/* The program's actions (app_act[]) are read by handlers in any thread while
 * another may be replacing one: the kernel replaces an action whole, under
 * siglock (do_sigaction()), and delivery reads it under the same lock.  Here
 * each action has two copies and a sequence count whose bit 1 says which
 * copy is current: a writer fills the other copy and then advances the
 * count by 2, so the current copy is always whole (a fork()'s child too,
 * whatever another thread was writing); a reader copies the current one and
 * copies again if the count moved meanwhile (a writer may then be filling
 * the copy it read).  Writers hold threads_lock, so with every signal
 * blocked. */
static unsigned int act_seq[NSIG];
#define ACT_WORDS (sizeof(struct sigaction) / sizeof(unsigned long))

/* The current copy; to read whole, the caller holds threads_lock. */
static struct sigaction *act_cur(int sig)
{
	return &app_act[(act_seq[sig] >> 1) & 1][sig];
}

static void act_get(int sig, struct sigaction *out)
{
	unsigned long *to = (unsigned long *)out;
	const unsigned long *from;
	unsigned int seq;
	size_t i;

	do {
		seq = __atomic_load_n(&act_seq[sig], __ATOMIC_ACQUIRE);
		from = (const unsigned long *)&app_act[(seq >> 1) & 1][sig];
		for (i = 0; i < ACT_WORDS; i++)
			to[i] = __atomic_load_n(&from[i], __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
	} while (__atomic_load_n(&act_seq[sig], __ATOMIC_RELAXED) != seq);
}

/* The caller holds threads_lock. */
static void act_put_locked(int sig, const struct sigaction *act)
{
	unsigned int seq = act_seq[sig];
	unsigned long *to = (unsigned long *)&app_act[((seq >> 1) + 1) & 1][sig];
	const unsigned long *from = (const unsigned long *)act;
	size_t i;

	for (i = 0; i < ACT_WORDS; i++)
		__atomic_store_n(&to[i], from[i], __ATOMIC_RELAXED);
	__atomic_store_n(&act_seq[sig], seq + 2, __ATOMIC_RELEASE);
}

/* The kernel resets a handler to SIG_DFL, its flags and mask kept
 * (force_sig_info_to_task(), SA_RESETHAND at delivery). */
static void act_reset_locked(int sig)
{
	struct sigaction k = *act_cur(sig);

	k.sa_handler = SIG_DFL;
	act_put_locked(sig, &k);
}

/* The fork()'s child: one thread, its mask kept, nothing pending
 * (copy_process() gives the child empty queues). */
static void threads_after_fork(void)
{
	int i;

	threads_lock = 0;
	for (i = 0; i < MAX_THREADS; i++)
		if (&threads[i] != my_slot)
			threads[i].tid = 0;
	me()->tid = (pid_t)syscall(SYS_gettid);
	me()->pending = 0;
	shared_pending = 0;
}

/* sigprocmask() and pthread_sigmask(): the real mask takes every signal but
 * SIGILL and SIGSEGV, the virtual one those two; oldset has both, as
 * rt_sigprocmask() reports the thread's mask (only when the call succeeds:
 * the real call decides the errors). */
static int mask_change(int how, const sigset_t *set, sigset_t *old)
{
	struct vthread *t = me();
	unsigned long before = t->blocked, after = before;
	sigset_t real;
	int ret;

	resolve();
	if (!active)
		return real_pthread_sigmask(how, set, old);
	if (set) {
		real = *set;
		if (how == SIG_BLOCK)
			after = before | trap_bits(set);
		else if (how == SIG_UNBLOCK)
			after = before & ~trap_bits(set);
		else if (how == SIG_SETMASK)
			after = trap_bits(set);
		if (how != SIG_UNBLOCK)
			set_trap_bits(&real, 0);
	}
	ret = real_pthread_sigmask(how, set ? &real : NULL, old);
	if (ret)
		return ret;
	if (old)
		old->__val[0] |= before;
	__atomic_store_n(&t->blocked, after, __ATOMIC_RELAXED);
	if (before & ~after)
		deliver_unblocked(0);
	return 0;
}

int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
	return mask_change(how, set, old);
}

int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
	int ret = mask_change(how, set, old);

	if (ret) {
		errno = ret;
		return -1;
	}
	return 0;
}

/* BSD's masks: an int holding signals 1 to 32. */
static int bsd_mask(int how, int mask)
{
	sigset_t set, old;

	sigemptyset(&set);
	set.__val[0] = (unsigned int)mask;
	if (sigprocmask(how, &set, &old) < 0)
		return -1;
	return (int)(unsigned int)old.__val[0];
}

int sigblock(int mask)
{
	return bsd_mask(SIG_BLOCK, mask);
}

int sigsetmask(int mask)
{
	return bsd_mask(SIG_SETMASK, mask);
}

int siggetmask(void)
{
	return bsd_mask(SIG_BLOCK, 0);
}

/* rt_sigpending(): what is pending and blocked, the virtual part too. */
int sigpending(sigset_t *set)
{
	struct vthread *t = me();

	resolve();
	if (real_sigpending(set) < 0)
		return -1;
	if (active)
		set->__val[0] |= (t->pending | __atomic_load_n(&shared_pending, __ATOMIC_RELAXED)) &
				 t->blocked;
	return 0;
}

/* sigsetjmp() saves the real mask in its jmp_buf, siglongjmp() restores it;
 * the virtual part is kept here, per thread, by the jmp_buf's address (the
 * last JMP_SLOTS of them).  The two entry points that save a mask
 * (__sigsetjmp, and setjmp as a function) note it and go on to glibc's: a
 * jump, so that glibc's saves the caller's own frame. */
#define JMP_SLOTS 64
static __thread struct {
	const void *env;
	unsigned long blocked;
} jmp_saved[JMP_SLOTS] __attribute__((tls_model("initial-exec")));
static __thread unsigned int jmp_next __attribute__((tls_model("initial-exec")));

__attribute__((used)) static void note_jmp(const void *env, int savemask)
{
	unsigned int i;

	resolve();
	if (!savemask || !active)
		return;
	for (i = 0; i < JMP_SLOTS && jmp_saved[i].env != env; i++)
		;
	if (i == JMP_SLOTS)
		i = jmp_next++ % JMP_SLOTS;
	jmp_saved[i].env = env;
	jmp_saved[i].blocked = me()->blocked;
}

asm(".text\n"
    "	.globl __sigsetjmp\n"
    "	.type __sigsetjmp, @function\n"
    "__sigsetjmp:\n"
    "	pushq %rdi\n"
    "	pushq %rsi\n"
    "	subq $8, %rsp\n"		/* the call's stack alignment */
    "	call note_jmp\n"
    "	addq $8, %rsp\n"
    "	popq %rsi\n"
    "	popq %rdi\n"
    "	jmpq *real___sigsetjmp(%rip)\n"
    "	.size __sigsetjmp, .-__sigsetjmp\n"
    "	.globl setjmp\n"
    "	.type setjmp, @function\n"
    "setjmp:\n"
    "	pushq %rdi\n"
    "	movl $1, %esi\n"
    "	call note_jmp\n"
    "	popq %rdi\n"
    "	jmpq *real_setjmp(%rip)\n"
    "	.size setjmp, .-setjmp\n");

/* siglongjmp() of a jmp_buf that saved the mask: the real mask first, as
 * glibc's would set it, the virtual one with it, and a pending signal that
 * this unblocks delivered before the jump, as at that sigprocmask()'s return. */
static void jmp_restore(struct __jmp_buf_tag *env)
{
	struct vthread *t = me();
	unsigned long before = t->blocked, after;
	unsigned int i;

	resolve();
	if (!active || !env->__mask_was_saved)
		return;
	after = trap_bits(&env->__saved_mask);	/* saved before the preload's start */
	for (i = 0; i < JMP_SLOTS; i++)
		if (jmp_saved[i].env == env) {
			after = jmp_saved[i].blocked;
			break;
		}
	set_trap_bits(&env->__saved_mask, 0);	/* glibc's restore must not block them for real */
	real_mask(SIG_SETMASK, &env->__saved_mask, NULL);
	__atomic_store_n(&t->blocked, after, __ATOMIC_RELAXED);
	if (before & ~after)
		deliver_unblocked(0);
}

void siglongjmp(sigjmp_buf env, int val)
{
	jmp_restore(env);
	real_siglongjmp(env, val);
}
void longjmp(jmp_buf env, int val) __attribute__((alias("siglongjmp")));
void _longjmp(jmp_buf env, int val) __attribute__((alias("siglongjmp")));

void __longjmp_chk(struct __jmp_buf_tag env[1], int val) __attribute__((noreturn));
void __longjmp_chk(struct __jmp_buf_tag env[1], int val)
{
	jmp_restore(env);
	real___longjmp_chk(env, val);
}

/* The program's handler runs with the mask the kernel gives it
 * (signal_delivered(): its sa_mask, and the signal unless SA_NODEFER):
 * SIGILL and SIGSEGV virtually, the others for real (already done by the
 * kernel when real_done: tramp() is installed with that part of the
 * program's sa_mask).  The frame's uc_sigmask holds the mask from before,
 * as the kernel saves it; when the handler returns, sigreturn restores the
 * mask from there (set_current_blocked()), with any change the handler made
 * to it: its SIGILL and SIGSEGV bits here, the rest by the real sigreturn. */
static void run_handler(int sig, const struct sigaction *act, siginfo_t *si, ucontext_t *uc,
			int real_done)
{
	struct vthread *t = me();
	unsigned long add = trap_bits(&act->sa_mask);
	int errno_after;

	if (!(act->sa_flags & SA_NODEFER))
		add |= SIGBIT(sig) & TRAP_SIGS;
	uc->uc_sigmask.__val[0] |= t->blocked;
	if (!real_done) {
		sigset_t block = act->sa_mask;

		if (!(act->sa_flags & SA_NODEFER))
			sigaddset(&block, sig);
		set_trap_bits(&block, 0);
		real_mask(SIG_BLOCK, &block, NULL);
	}
	__atomic_store_n(&t->blocked, t->blocked | add, __ATOMIC_RELAXED);
	/* Called with all three arguments, SA_SIGINFO or not: the x86-64 kernel
	 * passes the siginfo and the ucontext to every handler (setup_rt_frame()
	 * loads them into the argument registers), and programs use them. */
	act->sa_sigaction(sig, si, uc);
	errno_after = errno;	/* the handler's errno is the program's */
	__atomic_store_n(&t->blocked, trap_bits(&uc->uc_sigmask), __ATOMIC_RELAXED);
	set_trap_bits(&uc->uc_sigmask, 0);
	deliver_unblocked(1);
	errno = errno_after;
}

/* Every other signal's handler of the program, through the same path. */
static void tramp(int sig, siginfo_t *si, void *uc)
{
	struct sigaction act;

	act_get(sig, &act);
	run_handler(sig, &act, si, uc, 1);
}

/* -- the traps: ENCLU and patched CPUID -------------------------------------------------------- */

static const int greg_of[R_NREGS] = {
	[R_RAX] = REG_RAX, [R_RCX] = REG_RCX, [R_RDX] = REG_RDX, [R_RBX] = REG_RBX,
	[R_RSP] = REG_RSP, [R_RBP] = REG_RBP, [R_RSI] = REG_RSI, [R_RDI] = REG_RDI,
	[R_R8] = REG_R8, [R_R9] = REG_R9, [R_R10] = REG_R10, [R_R11] = REG_R11,
	[R_R12] = REG_R12, [R_R13] = REG_R13, [R_R14] = REG_R14, [R_R15] = REG_R15,
	[R_RIP] = REG_RIP, [R_RFLAGS] = REG_EFL,
};

/* How a signal that is not ours came: a fault the kernel raised, one sent
 * by a process (kill, raise, sigqueue: si_code <= 0), or a fault of the
 * model's kernel that load_reply() queued. */
enum origin { FAULT, SENT, QUEUED };

/* A signal that is not ours goes where the program asked, as the kernel
 * would deliver it.  While the thread blocks it (virtually): one sent waits
 * until it is unblocked; a fault kills (force_sig_info_to_task() unblocks
 * it and resets the handler to SIG_DFL).  A handler runs with its mask
 * (run_handler()), SA_RESETHAND honoured.  With no handler the program dies
 * of the signal, and of a fault also when it ignores it (force_sig_fault());
 * a sent signal it ignores is discarded.  Otherwise the signal is sent
 * again as it came, to the default action. */
static void chain(int sig, siginfo_t *si, void *uc, enum origin how)
{
	struct sigaction dfl, act;
	struct vthread *t = me();
	siginfo_t shared;
	sigset_t saved;
	int e;

	if (how == SENT && si->si_code == SI_TKILL && si->si_pid == getpid() &&
	    __atomic_exchange_n(&t->doorbell, 0, __ATOMIC_ACQUIRE)) {
		if (!answer_doorbell(sig, &shared))
			return;
		si = &shared;
	}
	if ((t->blocked & SIGBIT(sig)) && how == SENT) {
		int e = errno;	/* pend()'s tgkill() may fail: not the interrupted code's errno */

		pend(sig, si);
		errno = e;
		return;
	}
	/* The action read and reset in one step, as get_signal() does under
	 * siglock: a sigaction() in another thread comes wholly before or after. */
	lock_threads(&saved);
	if (t->blocked & SIGBIT(sig)) {
		act_reset_locked(sig);	/* force_sig_info_to_task() */
		__atomic_store_n(&t->blocked, t->blocked & ~SIGBIT(sig), __ATOMIC_RELAXED);
	}
	act = *act_cur(sig);
	/* sa_handler and sa_sigaction share their storage: the kernel looks at
	 * the value, SA_SIGINFO or not. */
	if (act.sa_handler != SIG_DFL && act.sa_handler != SIG_IGN && (act.sa_flags & SA_RESETHAND))
		act_reset_locked(sig);	/* the kernel resets the handler only */
	unlock_threads(&saved);
	if (act.sa_handler != SIG_DFL && act.sa_handler != SIG_IGN) {
		run_handler(sig, &act, si, uc, 0);
		return;
	}
	if (act.sa_handler == SIG_IGN && how == SENT)
		return;
	e = errno;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	real_sigaction(sig, &dfl, NULL);
	/* Sent again as it came (a fault too: not every fault recurs when its
	 * instruction runs again, e.g. a bad sigreturn frame's); not blocked
	 * here (SA_NODEFER), so the default action takes it at once. */
	syscall(SYS_rt_tgsigqueueinfo, getpid(), (pid_t)syscall(SYS_gettid), sig, si);
	errno = e;
}

/* Read the n bytes of code at ip without faulting in this handler: through
 * the kernel (process_vm_readv), or, for code the program cannot read
 * (execute-only), /proc/thread-self/mem, which may.  0 when neither can. */
static int read_code(const void *ip, unsigned char *b, size_t n)
{
	struct iovec local = { b, n }, remote = { (void *)ip, n };
	static int warned;
	int fd, err;
	ssize_t got;

	/* This thread's id, not the process's: the main thread may have left
	 * (pthread_exit), and with it the group leader's mm. */
	if (syscall(SYS_process_vm_readv, (pid_t)syscall(SYS_gettid), &local, 1, &remote, 1, 0)
	    == (long)n)
		return 1;
	err = errno;
	fd = real_openat(AT_FDCWD, "/proc/thread-self/mem", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		got = pread(fd, b, n, (off_t)(uintptr_t)ip);
		real_close(fd);
		if (got == (ssize_t)n)
			return 1;
	}
	if (err != EFAULT && !warned) {
		static const char msg[] = "sgxsim exec: cannot read the code at a fault "
			"(process_vm_readv and /proc/thread-self/mem refused): an ENCLU there is not served\n";

		warned = 1;
		if (write(2, msg, sizeof(msg) - 1) < 0) {
			/* nothing more to say */
		}
	}
	return 0;
}

static int is_enclu(const unsigned char *b)
{
	return b[0] == 0x0f && b[1] == 0x01 && b[2] == 0xd7;
}

/* Load the reply's registers into the interrupted context; queue the signal
 * the model's kernel delivers there, if any. */
static void load_reply(ucontext_t *uc, const struct sgxsim_reply *rep)
{
	greg_t *g = uc->uc_mcontext.gregs;
	int i, sig = rep->signo;

	for (i = 0; i < R_NREGS; i++)
		g[greg_of[i]] = rep->regs[i];
	if (rep->resume == RESUME_SIGNAL) {
		/* The kernel would deliver this signal at the restored RIP. */
		int trap = sig == SIGILL || sig == SIGSEGV, blocked;
		struct vthread *t = me();
		struct sigaction now;
		siginfo_t info;

		if (trap)
			act_get(sig, &now);
		else
			real_sigaction(sig, NULL, &now);
		blocked = trap ? !!(t->blocked & SIGBIT(sig)) : sigismember(&uc->uc_sigmask, sig);
		if (blocked || now.sa_handler == SIG_IGN) {
			/* force_sig_info_to_task(): a fault's signal the program
			 * blocks or ignores is unblocked and its handler reset, so
			 * it kills. */
			struct sigaction dfl;

			memset(&dfl, 0, sizeof(dfl));
			dfl.sa_handler = SIG_DFL;
			if (trap) {
				sigset_t saved;

				lock_threads(&saved);
				act_reset_locked(sig);
				unlock_threads(&saved);
				__atomic_store_n(&t->blocked, t->blocked & ~SIGBIT(sig),
						 __ATOMIC_RELAXED);
			} else {
				real_sigaction(sig, &dfl, NULL);
				sigdelset(&uc->uc_sigmask, sig);
			}
		}
		/* Blocked for real until sigreturn restores the program's mask. */
		real_block_one(sig);
		memset(&info, 0, sizeof(info));
		info.si_signo = sig;
		info.si_code = rep->si_code;
		info.si_addr = (void *)rep->addr;
		if (sig == SIGILL || sig == SIGSEGV)
			queued_sig = sig;	/* the trap handlers pass it on */
		syscall(SYS_rt_tgsigqueueinfo, getpid(), (pid_t)syscall(SYS_gettid), sig, &info);
	}
}

/* The ENCLU the CPU refused at the context's RIP, run by the model. */
static void trap_enclu(ucontext_t *uc)
{
	greg_t *g = uc->uc_mcontext.gregs;
	struct sgxsim_request req;
	struct sgxsim_reply rep;
	int i;

	memset(&req, 0, sizeof(req));
	req.op = SGXSIM_ENCLU;
	for (i = 0; i < R_NREGS; i++)
		req.regs[i] = g[greg_of[i]];
	xfer_enclu(&req, &rep);
	load_reply(uc, &rep);
}

/* SIGILL: an ENCLU on a CPU without SGX (#UD), the direct entry's UD2, or a
 * CPUID the server patched into UD2.  Only a #UD the CPU raised (si_code > 0)
 * is one: a SIGILL sent by a process is the program's wherever it lands. */
static void on_sigill(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	greg_t *g = uc->uc_mcontext.gregs;
	const unsigned char *ip = (const unsigned char *)g[REG_RIP];
	struct sgxsim_request req;
	struct sgxsim_reply rep;
	int saved = errno;
	unsigned char code[3];
	unsigned int a, b, c, d;

	if (conn >= 0 && si->si_code > 0 && ip == (const unsigned char *)sgxsim_direct_trap) {
		/* A reply the direct entry does not load itself. */
		memcpy(&rep, &direct_rep, sizeof(rep));
		__atomic_store_n(&direct_state, 0, __ATOMIC_RELEASE);
		load_reply(uc, &rep);
		errno = saved;
		return;
	}
	if (queued_sig == sig) {
		queued_sig = 0;
		errno = saved;
		chain(sig, si, ucv, QUEUED);
		return;
	}
	if (conn < 0 || si->si_code <= 0 || !read_code(ip, code, sizeof(code)))
		goto chain;
	if (is_enclu(code)) {
		trap_enclu(uc);
		errno = saved;
		return;
	}
	if (!(code[0] == 0x0f && code[1] == 0x0b))
		goto chain;
	/* Maybe a patched CPUID: the server answers from the real values. */
	memset(&req, 0, sizeof(req));
	req.op = SGXSIM_CPUID;
	req.a[0] = (uint32_t)g[REG_RAX];
	req.a[1] = (uint32_t)g[REG_RCX];
	req.a[2] = g[REG_RIP];
	__cpuid_count((unsigned int)req.a[0], (unsigned int)req.a[1], a, b, c, d);
	req.regs[R_RAX] = a; req.regs[R_RBX] = b; req.regs[R_RCX] = c; req.regs[R_RDX] = d;
	xfer(&req, &rep);
	if (rep.ret < 0)
		goto chain;	/* a UD2 that was not a patched CPUID */
	g[REG_RAX] = (uint32_t)rep.regs[R_RAX];
	g[REG_RBX] = (uint32_t)rep.regs[R_RBX];
	g[REG_RCX] = (uint32_t)rep.regs[R_RCX];
	g[REG_RDX] = (uint32_t)rep.regs[R_RDX];
	g[REG_RIP] += 2;
	errno = saved;
	return;
chain:
	errno = saved;
	chain(sig, si, ucv, si->si_code <= 0 ? SENT : FAULT);
}

/* SIGSEGV: an ENCLU on a CPU that has SGX, which refuses it for this process
 * (it has no enclave on the real CPU): #GP (si_code SI_KERNEL) for most
 * leaves, #PF on the TCS operand for EENTER and ERESUME.  A #PF at the
 * instruction's own bytes is its fetch failing (a non-executable page): the
 * CPU never ran the ENCLU, so that fault is the program's, as is a SIGSEGV
 * sent by a process. */
static void on_sigsegv(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	uintptr_t rip = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP], addr = (uintptr_t)si->si_addr;
	int saved = errno;
	unsigned char code[3];
	stack_t ss;

	if (queued_sig == sig) {
		queued_sig = 0;
		errno = saved;
		chain(sig, si, ucv, QUEUED);
		return;
	}
	if (si->si_code > 0 && my_guard && addr - my_guard < 4096 &&
	    sigaltstack(NULL, &ss) == 0 && (uintptr_t)ss.ss_sp == my_guard + 4096) {
		/* A handler overran the handlers' stack into its guard page: the
		 * next signal frame would go back to the stack's top, over the
		 * frames in use.  The kernel kills a task whose signal frame
		 * does not fit; so does this. */
		struct sigaction dfl;

		memset(&dfl, 0, sizeof(dfl));
		dfl.sa_handler = SIG_DFL;
		real_sigaction(sig, &dfl, NULL);
		errno = saved;
		return;
	}
	if (conn >= 0 && (si->si_code == SI_KERNEL || (si->si_code > 0 && addr - rip >= 3)) &&
	    read_code((const void *)rip, code, sizeof(code)) && is_enclu(code)) {
		trap_enclu(uc);
		errno = saved;
		return;
	}
	errno = saved;
	chain(sig, si, ucv, si->si_code <= 0 ? SENT : FAULT);
}

/* -- the program's dispositions ------------------------------------------------------------- */

/* What glibc passes and do_sigaction() keeps: SA_RESTORER with glibc's
 * restorer, unknown flag bits cleared, SIGKILL and SIGSTOP out of the mask. */
#define KNOWN_SA_FLAGS (SA_NOCLDSTOP | SA_NOCLDWAIT | SA_SIGINFO | SA_ONSTACK | SA_RESTART | \
			SA_NODEFER | SA_RESETHAND | 0x800 /* SA_EXPOSE_TAGBITS */ | SA_RESTORER)
#ifndef SA_RESTORER
#define SA_RESTORER 0x04000000
#endif

static void as_kernel_keeps(struct sigaction *k, const struct sigaction *act)
{
	memset(k, 0, sizeof(*k));
	k->sa_handler = act->sa_handler;
	k->sa_flags = (act->sa_flags | SA_RESTORER) & KNOWN_SA_FLAGS;
	k->sa_restorer = glibc_restorer;
	k->sa_mask.__val[0] = act->sa_mask.__val[0];	/* the kernel's 64 signals */
	sigdelset(&k->sa_mask, SIGKILL);
	sigdelset(&k->sa_mask, SIGSTOP);
}

/* The old action as glibc's sigaction() copies it out (all of it). */
static void report(struct sigaction *old, const struct sigaction *k)
{
	*old = *k;
}

/* SIGILL and SIGSEGV: the program's disposition is kept aside and the trap
 * handlers stay.  Any other signal's handler is installed as tramp(), with
 * the SIGILL and SIGSEGV bits of its sa_mask left to the virtual mask;
 * SIG_DFL and SIG_IGN are installed as they are. */
int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	struct sigaction prev, k, real_old, kept;
	sigset_t saved;
	int ret = 0;

	resolve();
	if (!active || sig < 1 || sig >= NSIG)
		return real_sigaction(sig, act, old);
	if (act)
		as_kernel_keeps(&kept, act);	/* built whole before it is published */
	/* The old action and the new one in one step (do_sigaction() under
	 * siglock): two threads replacing it each report the other's. */
	lock_threads(&saved);
	prev = *act_cur(sig);
	if (sig == SIGILL || sig == SIGSEGV) {
		if (act) {
			act_put_locked(sig, &kept);
			if (act->sa_handler == SIG_IGN)
				discard_pending_locked(sig);
		}
		unlock_threads(&saved);
		if (old)
			report(old, &prev);
		return 0;
	}
	if (act && act->sa_handler != SIG_DFL && act->sa_handler != SIG_IGN) {
		/* Kept before the handler can run; the last one stays for a
		 * signal already on its way when SIG_DFL or SIG_IGN replaces it. */
		act_put_locked(sig, &kept);
		k = *act;
		k.sa_sigaction = tramp;
		k.sa_flags |= SA_SIGINFO;
		set_trap_bits(&k.sa_mask, 0);
		if (real_sigaction(sig, &k, &real_old) < 0) {
			act_put_locked(sig, &prev);
			ret = -1;
		}
	} else if (real_sigaction(sig, act, &real_old) < 0) {
		ret = -1;
	}
	unlock_threads(&saved);
	if (ret == 0 && old) {
		if (real_old.sa_sigaction == tramp) {
			report(old, &prev);
		} else if (real_old.sa_handler == SIG_DFL && prev.sa_flags & SA_RESETHAND &&
			   real_old.sa_flags == (prev.sa_flags | SA_SIGINFO) &&
			   (real_old.sa_mask.__val[0] | TRAP_SIGS) ==
			   (prev.sa_mask.__val[0] | TRAP_SIGS) &&
			   prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) {
			/* tramp()'s action that SA_RESETHAND reset when it fired: the
			 * kernel reset only the handler of the program's action. */
			prev.sa_handler = SIG_DFL;
			report(old, &prev);
		} else {
			report(old, &real_old);
		}
	}
	return ret;
}

/* The signal()s: sigaction() with each one's flags. */
static sighandler_t install(int sig, sighandler_t handler, int flags, int mask_self)
{
	struct sigaction act, old;

	if (handler == SIG_ERR || sig < 1 || sig >= NSIG) {
		errno = EINVAL;
		return SIG_ERR;
	}
	memset(&act, 0, sizeof(act));
	act.sa_handler = handler;
	act.sa_flags = flags;
	sigemptyset(&act.sa_mask);
	if (mask_self)
		sigaddset(&act.sa_mask, sig);
	if (sigaction(sig, &act, &old) < 0)
		return SIG_ERR;
	return old.sa_handler;
}

/* The signals siginterrupt() made interrupt system calls. */
static sigset_t interrupting;

/* glibc's signal() is BSD's: the signal blocked in its handler (in
 * sa_mask), SA_RESTART unless siginterrupt() said otherwise. */
sighandler_t signal(int sig, sighandler_t handler)
{
	int restart = sig < 1 || sig >= NSIG || !sigismember(&interrupting, sig);

	return install(sig, handler, restart ? SA_RESTART : 0, 1);
}
sighandler_t bsd_signal(int sig, sighandler_t handler)
	__attribute__((alias("signal"), nothrow, leaf));
sighandler_t ssignal(int sig, sighandler_t handler) __attribute__((alias("signal")));

/* System V's: reset when delivered, not blocked in its handler, no restart. */
sighandler_t sysv_signal(int sig, sighandler_t handler)
{
	return install(sig, handler, SA_RESETHAND | SA_NODEFER, 0);
}
sighandler_t __sysv_signal(int sig, sighandler_t handler) __attribute__((alias("sysv_signal")));

int siginterrupt(int sig, int flag)
{
	struct sigaction act;

	memset(&act, 0, sizeof(act));
	if (sigaction(sig, NULL, &act) < 0)
		return -1;
	if (flag) {
		sigaddset(&interrupting, sig);
		act.sa_flags &= ~SA_RESTART;
	} else {
		sigdelset(&interrupting, sig);
		act.sa_flags |= SA_RESTART;
	}
	return sigaction(sig, &act, NULL);
}

/* The System V calls (sigset(3)). */
static int just(int sig, sigset_t *set)
{
	sigemptyset(set);
	return sigaddset(set, sig);
}

int sighold(int sig)
{
	sigset_t set;

	return just(sig, &set) < 0 ? -1 : sigprocmask(SIG_BLOCK, &set, NULL);
}

int sigrelse(int sig)
{
	sigset_t set;

	return just(sig, &set) < 0 ? -1 : sigprocmask(SIG_UNBLOCK, &set, NULL);
}

int sigignore(int sig)
{
	struct sigaction act;

	memset(&act, 0, sizeof(act));
	act.sa_handler = SIG_IGN;
	sigemptyset(&act.sa_mask);
	return sigaction(sig, &act, NULL);
}

/* SIG_HOLD blocks the signal, its disposition unchanged; any other
 * disposition is installed (the signal blocked in its handler) and the
 * signal unblocked.  The result: SIG_HOLD if the signal was blocked before,
 * else its previous disposition. */
sighandler_t sigset(int sig, sighandler_t disp)
{
	struct sigaction act, old;
	sigset_t set, was;

	if (just(sig, &set) < 0)
		return SIG_ERR;
	if (disp == SIG_HOLD) {
		if (sigprocmask(SIG_BLOCK, &set, &was) < 0)
			return SIG_ERR;
		if (sigismember(&was, sig))
			return SIG_HOLD;
		if (sigaction(sig, NULL, &old) < 0)
			return SIG_ERR;
		return old.sa_handler;
	}
	memset(&act, 0, sizeof(act));
	act.sa_handler = disp;
	sigemptyset(&act.sa_mask);
	if (sigaction(sig, &act, &old) < 0 || sigprocmask(SIG_UNBLOCK, &set, &was) < 0)
		return SIG_ERR;
	return sigismember(&was, sig) ? SIG_HOLD : old.sa_handler;
}

/* -- start-up ---------------------------------------------------------------------------------- */

static int connect_server(long token)
{
	const char *path = getenv("SGXSIM_SOCK");
	struct sockaddr_un sa;
	long ret;
	int fd;

	if (!path)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	strncpy(sa.sun_path, path, sizeof(sa.sun_path) - 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		real_close(fd);
		return -1;
	}
	/* Keep the socket away from the fds the program counts on. */
	conn = real_fcntl(fd, F_DUPFD_CLOEXEC, 900);
	if (conn < 0)
		conn = fd;
	else
		real_close(fd);
	ret = call(SGXSIM_HELLO, token, vdso_base, syscall(SYS_gettid), 0, 0, 0, NULL);
	if (ret < 0)
		die("the server refused this process: %s", strerror(-ret));
	return 0;
}

/* -- the trap handlers' stacks ----------------------------------------------------------------- */

/* A stack of the handlers' own for the calling thread, with a guard page
 * below it: the server may write back what the enclave stored below the
 * program's stack pointer, and the program's own handlers, which chain()
 * calls from there, may need room.  The address, to free it, or NULL. */
static void *give_altstack(void)
{
	char *p;
	stack_t ss;

	if (sigaltstack(NULL, &ss) == 0 && !(ss.ss_flags & SS_DISABLE))
		return NULL;	/* the program's own (set by an earlier constructor) */
	p = real_mmap(NULL, 4096 + ALTSTACK_SIZE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	real_mprotect(p, 4096, PROT_NONE);
	ss.ss_sp = p + 4096;
	ss.ss_size = ALTSTACK_SIZE;
	ss.ss_flags = 0;
	if (sigaltstack(&ss, NULL) < 0) {
		real_munmap(p, 4096 + ALTSTACK_SIZE);
		return NULL;
	}
	my_guard = (uintptr_t)p;
	return p;
}

static void drop_altstack(void *p)
{
	stack_t ss;

	memset(&ss, 0, sizeof(ss));
	ss.ss_flags = SS_DISABLE;
	sigaltstack(&ss, NULL);
	my_guard = 0;
	real_munmap(p, 4096 + ALTSTACK_SIZE);
}

/* A thread's start routine, pthread's or C11's (glibc's thrd_create()
 * reaches pthread_create() internally, past that wrapper, so it has its own). */
struct thread_start {
	void *(*fn)(void *);	/* pthread_create() */
	thrd_start_t c11;	/* thrd_create() */
	void *arg;
	unsigned long blocked;	/* the virtual mask it starts with */
};

/* The new thread's mask is its creator's (clone() copies it), or the one
 * the attribute gives it (pthread_attr_setsigmask_np()). */
static struct thread_start *new_start(void *(*fn)(void *), thrd_start_t c11, void *arg,
				      const pthread_attr_t *attr)
{
	struct thread_start *t = conn < 0 ? NULL : malloc(sizeof(*t));
	sigset_t mask;

	if (t) {
		t->fn = fn;
		t->c11 = c11;
		t->arg = arg;
		t->blocked = me()->blocked;
		if (attr && real_pthread_attr_getsigmask_np &&
		    real_pthread_attr_getsigmask_np(attr, &mask) == 0)
			t->blocked = trap_bits(&mask);
	}
	return t;
}

static void *call_start(const struct thread_start *t)
{
	return t->fn ? t->fn(t->arg) : (void *)(intptr_t)t->c11(t->arg);
}

static void thread_end(void *stack)
{
	if (stack)
		drop_altstack(stack);
	thread_leave();
}

/* What every thread the preload starts does first (thread_start(),
 * notify_start()): take its slot with the virtual mask ``blocked``, unblock
 * SIGILL and SIGSEGV for real, get the handlers' stack (returned, for
 * thread_end()) and take the signals already waiting for it. */
static void *thread_begin(unsigned long blocked)
{
	sigset_t traps;
	void *stack;

	thread_enter(blocked);
	sigemptyset(&traps);
	set_trap_bits(&traps, TRAP_SIGS);
	real_mask(SIG_UNBLOCK, &traps, NULL);
	stack = give_altstack();
	deliver_unblocked(0);
	return stack;
}

/* A new thread has no alternate stack (clone() resets it): each gets its own
 * before the program's start routine runs, freed when the thread ends.  It
 * takes its slot with its virtual mask, and unblocks SIGILL and SIGSEGV for
 * real (an attribute's mask may have blocked them).  A signal of the shared
 * queue that it does not block is its own: it may have been sent, as the
 * kernel saw it, after the thread existed and before it had a slot. */
static void *thread_start(void *v)
{
	struct thread_start t = *(struct thread_start *)v;
	void *stack, *ret;

	free(v);
	stack = thread_begin(t.blocked);
	pthread_cleanup_push(thread_end, stack);
	ret = call_start(&t);
	pthread_cleanup_pop(1);
	return ret;
}

/* A new thread that is to block SIGILL or SIGSEGV starts with them blocked
 * for real (clone() copies its creator's mask), so a signal sent to it
 * before thread_start() gives it its slot waits in the kernel and reaches
 * chain() only once the virtual mask is in force.  The creator blocks them
 * just around the call, running no trapped instruction meanwhile. */
static int hold_traps(const struct thread_start *t, sigset_t *saved)
{
	sigset_t traps;

	if (!(t->blocked & TRAP_SIGS))
		return 0;
	sigemptyset(&traps);
	set_trap_bits(&traps, t->blocked & TRAP_SIGS);
	real_mask(SIG_BLOCK, &traps, saved);
	return 1;
}

static void release_traps(int held, const sigset_t *saved)
{
	int e = errno;

	if (held)
		real_mask(SIG_SETMASK, saved, NULL);
	errno = e;
}

/* The main thread leaving by pthread_exit() (or thrd_exit()) frees its
 * slot, as thread_end() frees a created thread's: its tid stays valid
 * while it is a zombie leader, so tgkill() to it would succeed and pend()
 * would leave a process-directed signal with it, where the kernel gives it
 * to a live thread (a zombie leader has PF_EXITING: wants_signal()). */
void pthread_exit(void *ret)
{
	resolve();
	if (active && syscall(SYS_gettid) == getpid())
		thread_leave();
	real_pthread_exit(ret);
}

void thrd_exit(int ret)
{
	resolve();
	if (active && syscall(SYS_gettid) == getpid())
		thread_leave();
	real_thrd_exit(ret);
}

static int thrd_start(void *v)
{
	return (int)(intptr_t)thread_start(v);
}

int thrd_create(thrd_t *th, thrd_start_t fn, void *arg)
{
	struct thread_start *t;
	sigset_t saved;
	int held, ret;

	resolve();
	if (!real_thrd_create)
		return thrd_error;
	if (!(t = new_start(NULL, fn, arg, NULL)))
		return real_thrd_create(th, fn, arg);
	held = hold_traps(t, &saved);
	ret = real_thrd_create(th, thrd_start, t);
	release_traps(held, &saved);
	if (ret != thrd_success)
		free(t);
	return ret;
}

int pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	struct thread_start *t;
	sigset_t saved;
	int held, ret;

	resolve();
	if (!(t = new_start(fn, NULL, arg, attr)))
		return real_pthread_create(th, attr, fn, arg);
	held = hold_traps(t, &saved);
	ret = real_pthread_create(th, attr, thread_start, t);
	release_traps(held, &saved);
	if (ret)
		free(t);
	return ret;
}

/* SIGEV_THREAD: glibc runs the notification function in a thread it makes
 * itself (past pthread_create() above), with every signal blocked for real,
 * so a CPUID or ENCLU in it would be forced (killed).  timer_create() and
 * mq_notify() pass glibc a wrapper instead, which runs the program's
 * function as thread_start() runs a start routine: a slot with the mask
 * glibc gave the thread (SIGILL and SIGSEGV virtually blocked), SIGILL and
 * SIGSEGV unblocked for real, the handlers' stack. */
struct notify {
	void (*fn)(union sigval);
	union sigval value;
	int once;		/* mq_notify(): notified once, then freed */
};

static void notify_start(union sigval v)
{
	struct notify *n = v.sival_ptr;
	union sigval value = n->value;
	void (*fn)(union sigval) = n->fn;
	sigset_t now;
	void *stack;

	if (n->once)
		free(n);
	real_mask(SIG_BLOCK, NULL, &now);
	stack = thread_begin(trap_bits(&now));
	pthread_cleanup_push(thread_end, stack);
	fn(value);
	pthread_cleanup_pop(1);
}

/* A copy of the program's sigevent that calls notify_start(), or NULL to
 * pass the program's on as it is. */
static struct notify *wrap_notify(const struct sigevent *ev, struct sigevent *copy, int once)
{
	struct notify *n;

	if (conn < 0 || !ev || ev->sigev_notify != SIGEV_THREAD || !(n = malloc(sizeof(*n))))
		return NULL;
	n->fn = ev->sigev_notify_function;
	n->value = ev->sigev_value;
	n->once = once;
	*copy = *ev;
	copy->sigev_notify_function = notify_start;
	copy->sigev_value.sival_ptr = n;
	return n;
}

/* A timer's record stays: glibc may still be starting a callback of it
 * when timer_delete() returns. */
int timer_create(clockid_t clock, struct sigevent *ev, timer_t *id)
{
	struct sigevent copy;
	struct notify *n;
	int ret;

	resolve();
	if (!(n = wrap_notify(ev, &copy, 0)))
		return real_timer_create(clock, ev, id);
	ret = real_timer_create(clock, &copy, id);
	if (ret < 0) {
		int saved = errno;

		free(n);
		errno = saved;
	}
	return ret;
}

int mq_notify(mqd_t mq, const struct sigevent *ev)
{
	struct sigevent copy;
	struct notify *n;
	int ret;

	resolve();
	if (!(n = wrap_notify(ev, &copy, 1)))
		return real_mq_notify(mq, ev);
	ret = real_mq_notify(mq, &copy);
	if (ret < 0) {
		int saved = errno;

		free(n);
		errno = saved;
	}
	return ret;
}

__attribute__((constructor)) static void sgxsim_init(void)
{
	const char *vdso = getenv("SGXSIM_VDSO");
	struct sigaction act, ours;
	sigset_t start, traps;

	resolve();
	if (!getenv("SGXSIM_SOCK"))
		return;
	if (vdso)
		map_vdso(vdso);
	give_altstack();	/* none if an earlier constructor set the program's own */
	memset(&act, 0, sizeof(act));
	act.sa_sigaction = on_sigill;
	/* SA_RESTART: a SIGSEGV sent while the thread blocks it only pends
	 * here, and natively would not interrupt a read() at all; and
	 * signal() asks for SA_RESTART. */
	act.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER | SA_RESTART;
	sigemptyset(&act.sa_mask);
	/* A handler an earlier constructor (a library's) installed is the
	 * program's: kept aside, as sigaction() keeps later ones. */
	real_sigaction(SIGILL, &act, act_cur(SIGILL));
	act.sa_sigaction = on_sigsegv;
	real_sigaction(SIGSEGV, &act, act_cur(SIGSEGV));
	real_sigaction(SIGSEGV, NULL, &ours);
	glibc_restorer = ours.sa_restorer;
	if (connect_server(0) < 0)
		die("cannot reach the server at %s", getenv("SGXSIM_SOCK"));
	/* The mask the program starts with (execve() keeps it): its SIGILL and
	 * SIGSEGV become virtual; one of them pending reaches the trap handler,
	 * which keeps it pending. */
	real_mask(SIG_BLOCK, NULL, &start);
	thread_enter(trap_bits(&start));
	active = 1;
	sigemptyset(&traps);
	set_trap_bits(&traps, TRAP_SIGS);
	real_mask(SIG_UNBLOCK, &traps, NULL);
}
