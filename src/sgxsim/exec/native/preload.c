/* sgxsim exec: the preload library.
 *
 * Loaded into an unmodified program with LD_PRELOAD, it hands the program's
 * SGX world to the sgxsim server (a Python process holding the model):
 *
 *  - open()/openat() of /dev/sgx_enclave or /dev/sgx_provision return a real
 *    placeholder fd (a memfd) bound to the model's file; close/dup/fork
 *    follow it; ioctl() on it is the model's driver;
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
 *    and every other leaf from the real one.
 *
 * The server reads and writes the program's memory through /proc/PID/mem.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <threads.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
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
static struct sigaction app_sigill;    /* the program's own SIGILL disposition */
static struct sigaction app_sigsegv;   /* the program's own SIGSEGV disposition */
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
static unsigned long (*real_getauxval)(unsigned long);
static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);

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
	R(sigaction); R(pthread_create); R(thrd_create);
	R(mmap);
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
	return real_fcntl(fd, cmd, arg);
}
int fcntl64(int fd, int cmd, ...) __attribute__((alias("fcntl")));

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

/* -- the traps: ENCLU and patched CPUID -------------------------------------------------------- */

static const int greg_of[R_NREGS] = {
	[R_RAX] = REG_RAX, [R_RCX] = REG_RCX, [R_RDX] = REG_RDX, [R_RBX] = REG_RBX,
	[R_RSP] = REG_RSP, [R_RBP] = REG_RBP, [R_RSI] = REG_RSI, [R_RDI] = REG_RDI,
	[R_R8] = REG_R8, [R_R9] = REG_R9, [R_R10] = REG_R10, [R_R11] = REG_R11,
	[R_R12] = REG_R12, [R_R13] = REG_R13, [R_R14] = REG_R14, [R_R15] = REG_R15,
	[R_RIP] = REG_RIP, [R_RFLAGS] = REG_EFL,
};

static struct sigaction *app_action(int sig)
{
	return sig == SIGILL ? &app_sigill : &app_sigsegv;
}

/* How a signal that is not ours came: a fault the kernel raised, one sent
 * by a process (kill, raise, sigqueue: si_code <= 0), or a fault of the
 * model's kernel that load_reply() queued. */
enum origin { FAULT, SENT, QUEUED };

/* A signal that is not ours goes where the program asked, as the kernel
 * would deliver it: its sa_mask (and, without SA_NODEFER, the signal itself)
 * blocked while its handler runs, SA_RESETHAND honoured.  An ENCLU the
 * handler executes while its trap signal is blocked kills the program, as
 * any fault on a blocked signal does: runtimes whose exception handlers
 * enter their enclave (the Intel SDK's) install them with SA_NODEFER and
 * SIGSEGV unblocked, for the enclave's own exceptions.  With no handler the
 * program dies of the signal, and of a fault also when it ignores it
 * (force_sig_fault()); a sent signal it ignores is discarded.  Otherwise
 * the signal is sent again as it came, to the default action. */
static void chain(int sig, siginfo_t *si, void *uc, enum origin how)
{
	struct sigaction *app = app_action(sig), dfl, act = *app;
	sigset_t block, old;

	/* sa_handler and sa_sigaction share their storage: the kernel looks at
	 * the value, SA_SIGINFO or not. */
	if (act.sa_handler != SIG_DFL && act.sa_handler != SIG_IGN) {
		block = act.sa_mask;
		if (!(act.sa_flags & SA_NODEFER))
			sigaddset(&block, sig);
		if (act.sa_flags & SA_RESETHAND)
			app->sa_handler = SIG_DFL;	/* the kernel resets the handler only */
		sigprocmask(SIG_BLOCK, &block, &old);
		if (act.sa_flags & SA_SIGINFO)
			act.sa_sigaction(sig, si, uc);
		else
			act.sa_handler(sig);
		sigprocmask(SIG_SETMASK, &old, NULL);
		return;
	}
	if (act.sa_handler == SIG_IGN && how == SENT)
		return;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	real_sigaction(sig, &dfl, NULL);
	/* Sent again as it came (a fault too: not every fault recurs when its
	 * instruction runs again, e.g. a bad sigreturn frame's); not blocked
	 * here (SA_NODEFER), so the default action takes it at once. */
	syscall(SYS_rt_tgsigqueueinfo, getpid(), (pid_t)syscall(SYS_gettid), sig, si);
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
		struct sigaction now;
		siginfo_t info;
		sigset_t block;

		if (sig == SIGILL || sig == SIGSEGV)
			now = *app_action(sig);
		else
			real_sigaction(sig, NULL, &now);
		if (sigismember(&uc->uc_sigmask, sig) || now.sa_handler == SIG_IGN) {
			/* force_sig_fault(): a fault's signal the program blocks or
			 * ignores is unblocked and its handler reset, so it kills. */
			struct sigaction dfl;

			memset(&dfl, 0, sizeof(dfl));
			dfl.sa_handler = SIG_DFL;
			if (sig == SIGILL || sig == SIGSEGV)
				*app_action(sig) = dfl;
			else
				real_sigaction(sig, &dfl, NULL);
			sigdelset(&uc->uc_sigmask, sig);
		}
		/* Blocked until sigreturn restores the program's mask. */
		sigemptyset(&block);
		sigaddset(&block, sig);
		sigprocmask(SIG_BLOCK, &block, NULL);
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

/* The program's own SIGILL and SIGSEGV handlers are kept aside and called
 * for the signals that are not ours. */
int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	resolve();
	if ((sig != SIGILL && sig != SIGSEGV) || conn < 0)
		return real_sigaction(sig, act, old);
	if (old)
		*old = *app_action(sig);
	if (act)
		*app_action(sig) = *act;
	return 0;
}

sighandler_t signal(int sig, sighandler_t handler)
{
	struct sigaction act, old;

	memset(&act, 0, sizeof(act));
	act.sa_handler = handler;
	act.sa_flags = SA_RESTART;
	if (sigaction(sig, &act, &old) < 0)
		return SIG_ERR;
	return old.sa_handler;
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
};

static struct thread_start *new_start(void *(*fn)(void *), thrd_start_t c11, void *arg)
{
	struct thread_start *t = conn < 0 ? NULL : malloc(sizeof(*t));

	if (t) {
		t->fn = fn;
		t->c11 = c11;
		t->arg = arg;
	}
	return t;
}

static void *call_start(const struct thread_start *t)
{
	return t->fn ? t->fn(t->arg) : (void *)(intptr_t)t->c11(t->arg);
}

/* A new thread has no alternate stack (clone() resets it): each gets its own
 * before the program's start routine runs, freed when the thread ends. */
static void *thread_start(void *v)
{
	struct thread_start t = *(struct thread_start *)v;
	void *stack, *ret;

	free(v);
	stack = give_altstack();
	if (!stack)
		return call_start(&t);
	pthread_cleanup_push(drop_altstack, stack);
	ret = call_start(&t);
	pthread_cleanup_pop(1);
	return ret;
}

static int thrd_start(void *v)
{
	return (int)(intptr_t)thread_start(v);
}

int thrd_create(thrd_t *th, thrd_start_t fn, void *arg)
{
	struct thread_start *t;
	int ret;

	resolve();
	if (!real_thrd_create)
		return thrd_error;
	if (!(t = new_start(NULL, fn, arg)))
		return real_thrd_create(th, fn, arg);
	ret = real_thrd_create(th, thrd_start, t);
	if (ret != thrd_success)
		free(t);
	return ret;
}

int pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	struct thread_start *t;
	int ret;

	resolve();
	if (!(t = new_start(fn, NULL, arg)))
		return real_pthread_create(th, attr, fn, arg);
	ret = real_pthread_create(th, attr, thread_start, t);
	if (ret)
		free(t);
	return ret;
}

__attribute__((constructor)) static void sgxsim_init(void)
{
	const char *vdso = getenv("SGXSIM_VDSO");
	struct sigaction act;

	resolve();
	if (!getenv("SGXSIM_SOCK"))
		return;
	if (vdso)
		map_vdso(vdso);
	give_altstack();	/* none if an earlier constructor set the program's own */
	memset(&act, 0, sizeof(act));
	act.sa_sigaction = on_sigill;
	act.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
	sigemptyset(&act.sa_mask);
	/* A handler an earlier constructor (a library's) installed is the
	 * program's: kept aside, as sigaction() keeps later ones. */
	real_sigaction(SIGILL, &act, &app_sigill);
	act.sa_sigaction = on_sigsegv;
	real_sigaction(SIGSEGV, &act, &app_sigsegv);
	if (connect_server(0) < 0)
		die("cannot reach the server at %s", getenv("SGXSIM_SOCK"));
}
