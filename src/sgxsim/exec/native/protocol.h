/* sgxsim exec: the messages between the preload library and the server.
 *
 * One request, one reply, on a Unix stream socket per process.  Every field
 * is little-endian and fixed-size; src/sgxsim/exec/protocol.py holds the same
 * layouts for the server.  Memory the model needs (ioctl structs, source
 * pages, op structs the enclave touches) is not sent: the server reads and
 * writes the program's memory itself through /proc/PID/mem.
 */
#ifndef SGXSIM_PROTOCOL_H
#define SGXSIM_PROTOCOL_H
#include <stdint.h>

enum sgxsim_op {
	SGXSIM_HELLO = 1,     /* a[0] = fork token (0: a new program), a[1] = vDSO base, a[2] = tid */
	SGXSIM_OPEN = 2,      /* a[0] = placeholder fd, a[1] = flags, a[2] = mode; path */
	SGXSIM_CLOSE = 3,     /* a[0] = fd */
	SGXSIM_DUP = 4,       /* a[0] = old fd, a[1] = new fd */
	SGXSIM_IOCTL = 5,     /* a[0] = fd, a[1] = request, a[2] = argument */
	SGXSIM_MMAP = 6,      /* a[0..5] = addr, length, prot, flags, fd, offset */
	SGXSIM_MUNMAP = 7,    /* a[0..1] = addr, length */
	SGXSIM_MPROTECT = 8,  /* a[0..2] = addr, length, prot */
	SGXSIM_MREMAP = 9,    /* a[0..4] = old addr, old size, new size, flags, new addr */
	SGXSIM_ENCLU = 10,    /* regs: the registers at the ENCLU (leaf in RAX) */
	SGXSIM_CPUID = 11,    /* a[0] = leaf, a[1] = subleaf, a[2] = address; regs: the real answer */
	SGXSIM_FORK = 12,     /* reply ret = the token the child says hello with */
	SGXSIM_FORK_FAILED = 13, /* a[0] = token */
	SGXSIM_STAT = 14,     /* a[0] = fd or -1; path */
	SGXSIM_UNSUPPORTED = 15, /* path = what the program did that the bridge cannot serve */
	/* a model file's read side: the model answers (the SGX files have no
	 * read, write or llseek operation) */
	SGXSIM_READ = 16,     /* a[0..2] = fd, buffer, count */
	SGXSIM_WRITE = 17,    /* a[0..2] = fd, buffer, count */
	SGXSIM_PREAD = 18,    /* a[0..3] = fd, buffer, count, position */
	SGXSIM_PWRITE = 19,   /* a[0..3] = fd, buffer, count, position */
	SGXSIM_READV = 20,    /* a[0..2] = fd, iovec array, count of iovecs */
	SGXSIM_WRITEV = 21,   /* a[0..2] = fd, iovec array, count of iovecs */
	SGXSIM_PREADV = 22,   /* a[0..3] = fd, iovec array, count of iovecs, position */
	SGXSIM_PWRITEV = 23,  /* a[0..3] = fd, iovec array, count of iovecs, position */
	SGXSIM_LSEEK = 24,    /* a[0..2] = fd, offset, whence */
	SGXSIM_FCNTL = 25,    /* a[0..2] = fd, command (F_GETFL, F_SETFL), argument */
};

/* Register order in regs[]: the 16 GPRs in encoding order, then RIP, RFLAGS. */
enum sgxsim_reg {
	R_RAX, R_RCX, R_RDX, R_RBX, R_RSP, R_RBP, R_RSI, R_RDI,
	R_R8, R_R9, R_R10, R_R11, R_R12, R_R13, R_R14, R_R15, R_RIP, R_RFLAGS, R_NREGS
};

#define SGXSIM_PATH_MAX 256
#define SGXSIM_MAX_RANGES 64

struct sgxsim_request {
	uint32_t op;
	uint32_t pad;
	int64_t a[6];
	uint64_t regs[R_NREGS];
	char path[SGXSIM_PATH_MAX];
};

/* What the ENCLU reply asks the SIGILL handler to do (CPUID: regs[RAX..RDX] is the answer). */
enum sgxsim_resume {
	RESUME_REGS = 0,      /* load regs[] and return to regs[R_RIP] */
	RESUME_SIGNAL = 1     /* load regs[], then deliver signo/si_code/addr there */
};

struct sgxsim_reply {
	int64_t ret;          /* the syscall's return value, or -errno */
	uint32_t resume;      /* enum sgxsim_resume */
	int32_t signo;
	int32_t si_code;
	uint32_t nranges;     /* enclave ranges after this call (reserved PROT_NONE here) */
	uint64_t addr;        /* the signal's address */
	uint64_t regs[R_NREGS];
	uint64_t stat[4];     /* STAT: st_mode, st_ino, st_rdev, st_size */
	uint64_t ranges[SGXSIM_MAX_RANGES][2];
};

#endif
