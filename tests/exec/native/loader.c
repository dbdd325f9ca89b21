/* sgxsim's native test loader: what an SGX runtime does, driven by a script.
 *
 *   loader ENCLAVE.elf SIGSTRUCT HEAP_SIZE SCRIPT
 *
 * Builds the enclave like a runtime (segments from the ELF's PT_LOAD
 * headers: the first is the TCS, the others REG pages with their p_flags,
 * then an unmeasured RW heap; the size is the next power of two), maps it,
 * finds __vdso_sgx_enter_enclave through the vDSO's GNU hash table, then runs
 * the script's steps and prints one result line per step.  The Python
 * twin (tests/exec/edmm.py) runs the same script on the Python API; the test
 * compares the two outputs line for line.
 */
#define _GNU_SOURCE
#include <asm/sgx.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE 4096UL
#define SECINFO_TCS (1UL << 8)	/* SDM: SECINFO.FLAGS.PAGE_TYPE = PT_TCS */
#define SECINFO_REG (2UL << 8)	/* PT_REG */
#define EENTER 2

typedef int (*enter_fn)(unsigned long rdi, unsigned long rsi, unsigned long rdx,
			unsigned int function, unsigned long r8, unsigned long r9,
			struct sgx_enclave_run *run);

/* The vDSO call, with the callee-saved registers kept here: an AEX leaves
 * synthetic register state, so what the enclave or the exit path clobbers is
 * the caller's to save (runtimes do the same). */
int call_enclave(unsigned long rdi, unsigned long rsi, unsigned long rdx, unsigned int function,
		 unsigned long r8, unsigned long r9, struct sgx_enclave_run *run, enter_fn fn);
asm(".text\n"
    ".globl call_enclave\n"
    "call_enclave:\n"
    "	push %rbp\n"
    "	mov %rsp, %rbp\n"
    "	push %rbx\n"
    "	push %r12\n"
    "	push %r13\n"
    "	push %r14\n"
    "	push %r15\n"
    "	mov 24(%rbp), %r11\n"
    "	pushq 16(%rbp)\n"
    "	call *%r11\n"
    "	add $8, %rsp\n"
    "	pop %r15\n"
    "	pop %r14\n"
    "	pop %r13\n"
    "	pop %r12\n"
    "	pop %rbx\n"
    "	pop %rbp\n"
    "	ret\n");

struct op {
	uint64_t op, a, b, ret;
};

static int fd;
static unsigned long base, size;
static enter_fn enter;

static void fail(const char *what)
{
	fprintf(stderr, "loader: %s: %s\n", what, strerror(errno));
	exit(2);
}

static const char *ename(int e)
{
	const char *n = strerrorname_np(e);
	return n ? n : "E?";
}

static void *slurp(const char *path, size_t *len)
{
	struct stat st;
	void *p;
	int f = open(path, O_RDONLY);

	if (f < 0 || fstat(f, &st) < 0)
		fail(path);
	p = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, f, 0);
	if (p == MAP_FAILED)
		fail(path);
	close(f);
	*len = st.st_size;
	return p;
}

/* The vDSO's symbol through DT_GNU_HASH (the SysV table is the selftests'). */
static void *vdso_sym(const char *name)
{
	unsigned char *b = (unsigned char *)getauxval(AT_SYSINFO_EHDR);
	Elf64_Ehdr *eh = (Elf64_Ehdr *)b;
	Elf64_Phdr *ph = (Elf64_Phdr *)(b + eh->e_phoff);
	Elf64_Dyn *dyn = NULL;
	Elf64_Sym *symtab = NULL;
	const char *strtab = NULL;
	uint32_t *gnu = NULL, h = 5381, nbuckets, symoffset, bloom_size, *buckets, *chain, i;
	const unsigned char *c;

	if (!b)
		return NULL;
	for (i = 0; i < eh->e_phnum; i++)
		if (ph[i].p_type == PT_DYNAMIC)
			dyn = (Elf64_Dyn *)(b + ph[i].p_offset);
	for (; dyn && dyn->d_tag != DT_NULL; dyn++) {
		if (dyn->d_tag == DT_SYMTAB)
			symtab = (Elf64_Sym *)(b + dyn->d_un.d_ptr);
		else if (dyn->d_tag == DT_STRTAB)
			strtab = (const char *)(b + dyn->d_un.d_ptr);
		else if (dyn->d_tag == DT_GNU_HASH)
			gnu = (uint32_t *)(b + dyn->d_un.d_ptr);
	}
	if (!symtab || !strtab || !gnu)
		return NULL;
	for (c = (const unsigned char *)name; *c; c++)
		h = h * 33 + *c;
	nbuckets = gnu[0];
	symoffset = gnu[1];
	bloom_size = gnu[2];
	buckets = gnu + 4 + bloom_size * 2;	/* 64-bit bloom words */
	chain = buckets + nbuckets;
	for (i = buckets[h % nbuckets]; i; i++) {
		if ((chain[i - symoffset] | 1) == (h | 1) && !strcmp(strtab + symtab[i].st_name, name))
			return b + symtab[i].st_value;
		if (chain[i - symoffset] & 1)
			break;
	}
	return NULL;
}

static void build(const char *elf_path, const char *sig_path, unsigned long heap)
{
	size_t elf_len, sig_len;
	unsigned char *elf = slurp(elf_path, &elf_len);
	void *sig = slurp(sig_path, &sig_len);
	Elf64_Ehdr *eh = (Elf64_Ehdr *)elf;
	Elf64_Phdr *ph = (Elf64_Phdr *)(elf + eh->e_phoff);
	struct sgx_enclave_create create;
	struct sgx_enclave_init init;
	unsigned long src_off = 0, end = 0, area;
	uint8_t *secs, *secinfo;
	int i, first = 1;
	struct { unsigned long off, len; int prot; uint64_t flags; void *src; int measure; } seg[16];
	int nseg = 0;

	for (i = 0; i < eh->e_phnum; i++) {
		unsigned long len;
		int prot;

		if (ph[i].p_type != PT_LOAD)
			continue;
		prot = (ph[i].p_flags & PF_R ? PROT_READ : 0) | (ph[i].p_flags & PF_W ? PROT_WRITE : 0) |
		       (ph[i].p_flags & PF_X ? PROT_EXEC : 0);
		if (first)
			src_off = ph[i].p_offset & ~(PAGE - 1);
		len = (ph[i].p_filesz + PAGE - 1) & ~(PAGE - 1);
		seg[nseg].off = (ph[i].p_offset & ~(PAGE - 1)) - src_off;
		seg[nseg].len = len;
		seg[nseg].prot = prot;
		seg[nseg].flags = first ? SECINFO_TCS : (SECINFO_REG | prot);
		seg[nseg].src = mmap(NULL, len, PROT_READ | PROT_WRITE | PROT_EXEC,
				     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		memcpy(seg[nseg].src, elf + ph[i].p_offset, ph[i].p_filesz);
		seg[nseg].measure = 1;
		end = seg[nseg].off + len;
		nseg++;
		first = 0;
	}
	seg[nseg].off = end;
	seg[nseg].len = heap;
	seg[nseg].prot = PROT_READ | PROT_WRITE;
	seg[nseg].flags = SECINFO_REG | PROT_READ | PROT_WRITE;
	seg[nseg].src = mmap(NULL, heap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	seg[nseg].measure = 0;
	end += heap;
	nseg++;
	for (size = PAGE; size < end; size <<= 1)
		;

	fd = open("/dev/sgx_enclave", O_RDWR);
	if (fd < 0)
		fail("open /dev/sgx_enclave");
	area = (unsigned long)mmap(NULL, size * 2, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	base = (area + size - 1) & ~(size - 1);

	secs = aligned_alloc(PAGE, PAGE);
	memset(secs, 0, PAGE);
	*(uint64_t *)(secs + 0) = size;
	*(uint64_t *)(secs + 8) = base;
	*(uint32_t *)(secs + 16) = 1;		/* SSAFRAMESIZE */
	*(uint64_t *)(secs + 48) = 0x4;		/* ATTRIBUTES: MODE64BIT */
	*(uint64_t *)(secs + 56) = 3;		/* XFRM: x87, SSE */
	create.src = (unsigned long)secs;
	if (ioctl(fd, SGX_IOC_ENCLAVE_CREATE, &create))
		fail("SGX_IOC_ENCLAVE_CREATE");

	secinfo = aligned_alloc(64, 64);
	for (i = 0; i < nseg; i++) {
		struct sgx_enclave_add_pages add = {
			.src = (unsigned long)seg[i].src, .offset = seg[i].off, .length = seg[i].len,
			.secinfo = (unsigned long)secinfo, .flags = seg[i].measure ? SGX_PAGE_MEASURE : 0,
		};

		memset(secinfo, 0, 64);
		*(uint64_t *)secinfo = seg[i].flags;
		if (ioctl(fd, SGX_IOC_ENCLAVE_ADD_PAGES, &add) || add.count != seg[i].len)
			fail("SGX_IOC_ENCLAVE_ADD_PAGES");
	}
	init.sigstruct = (unsigned long)sig;
	if (ioctl(fd, SGX_IOC_ENCLAVE_INIT, &init))
		fail("SGX_IOC_ENCLAVE_INIT");
	for (i = 0; i < nseg; i++)
		if (mmap((void *)(base + seg[i].off), seg[i].len, seg[i].prot, MAP_SHARED | MAP_FIXED,
			 fd, 0) == MAP_FAILED)
			fail("mmap segment");
	enter = (enter_fn)vdso_sym("__vdso_sgx_enter_enclave");
	if (!enter) {
		fprintf(stderr, "loader: no __vdso_sgx_enter_enclave\n");
		exit(2);
	}
	printf("build: size %#lx\n", size);
}

static int prot_of(const char *s)
{
	int p = 0;

	for (; *s; s++)
		p |= *s == 'r' ? PROT_READ : *s == 'w' ? PROT_WRITE : *s == 'x' ? PROT_EXEC : 0;
	return p;
}

static const char *ops[] = { "nop", "eaccept", "emodpe", "read", "write", "init_tcs", "spin" };

/* "race": a second thread enters while the first is inside a call that does
 * not end (so how fast the CPU spins decides nothing: the bridge stops the
 * program when the second thread enters, else the test times out). */
static int spinner_started;

static void *spinner(void *arg)
{
	struct sgx_enclave_run run;
	struct op op = { 6, 0, 0x7fffffffffffffffUL, 0 };

	memset(&run, 0, sizeof(run));
	run.tcs = base + (unsigned long)arg;
	__atomic_store_n(&spinner_started, 1, __ATOMIC_RELEASE);
	call_enclave((unsigned long)&op, 0, 0, EENTER, 0, 0, &run, enter);
	return NULL;
}

static void syscall_result(int ret)
{
	if (ret)
		printf(" -1 %s\n", ename(errno));
	else
		printf(" 0\n");
}

static void step(char *line)
{
	char cmd[32], arg[32];
	unsigned long off = 0, len = 0, val = 0;

	arg[0] = 0;
	if (sscanf(line, "%31s %lx %31s %lx %lx", cmd, &off, arg, &len, &val) < 1 || cmd[0] == '#')
		return;
	line[strcspn(line, "\n")] = 0;
	printf("%s ->", line);
	if (!strcmp(cmd, "enter")) {
		struct sgx_enclave_run run;
		struct op op = { 0, 0, 0, 0 };
		unsigned int i;
		int ret;

		for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
			if (!strcmp(arg, ops[i]))
				op.op = i;
		op.a = base + len;
		op.b = val;
		memset(&run, 0, sizeof(run));
		run.tcs = base + off;
		ret = call_enclave((unsigned long)&op, 0, 0, EENTER, 0, 0, &run, enter);
		printf(" ret %d function %u vector %u error_code %#x addr %#llx op.ret %#lx\n", ret,
		       run.function, run.exception_vector, run.exception_error_code,
		       run.exception_addr ? run.exception_addr - base : 0, (unsigned long)op.ret);
		return;
	}
	if (!strcmp(cmd, "block")) {
		/* This thread blocks every signal, as runtimes' workers do around
		 * enclave calls: the ENCLUs that follow are still the CPU's. */
		sigset_t all;

		sigfillset(&all);
		printf(" %d\n", pthread_sigmask(SIG_BLOCK, &all, NULL));
		return;
	}
	if (!strcmp(cmd, "race")) {
		struct sgx_enclave_run run;
		struct op op = { 0, 0, 0, 0 };
		pthread_t t;

		pthread_create(&t, NULL, spinner, (void *)off);
		/* Until the spinner is at its ENCLU, then time to get inside. */
		while (!__atomic_load_n(&spinner_started, __ATOMIC_ACQUIRE))
			usleep(1000);
		usleep(200000);
		memset(&run, 0, sizeof(run));
		run.tcs = base + len;
		call_enclave((unsigned long)&op, 0, 0, EENTER, 0, 0, &run, enter);
		pthread_join(t, NULL);
		printf(" both returned\n");
		return;
	}
	sscanf(line, "%31s %lx %lx %31s", cmd, &off, &len, arg);
	if (!strcmp(cmd, "mmap")) {
		void *p = mmap((void *)(base + off), len, prot_of(arg), MAP_SHARED | MAP_FIXED, fd, 0);

		syscall_result(p == MAP_FAILED);
	} else if (!strcmp(cmd, "mprotect")) {
		syscall_result(mprotect((void *)(base + off), len, prot_of(arg)));
	} else if (!strcmp(cmd, "munmap")) {
		syscall_result(munmap((void *)(base + off), len));
	} else if (!strcmp(cmd, "restrict")) {
		struct sgx_enclave_restrict_permissions p = {
			.offset = off, .length = len, .permissions = prot_of(arg) };
		int ret = ioctl(fd, SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS, &p);

		printf(" %d %s result %llu count %#llx\n", ret, ret ? ename(errno) : "-", p.result, p.count);
	} else if (!strcmp(cmd, "modtype")) {
		struct sgx_enclave_modify_types m = {
			.offset = off, .length = len, .page_type = strtoul(arg, NULL, 0) };
		int ret = ioctl(fd, SGX_IOC_ENCLAVE_MODIFY_TYPES, &m);

		printf(" %d %s result %llu count %#llx\n", ret, ret ? ename(errno) : "-", m.result, m.count);
	} else if (!strcmp(cmd, "remove")) {
		struct sgx_enclave_remove_pages r = { .offset = off, .length = len };
		int ret = ioctl(fd, SGX_IOC_ENCLAVE_REMOVE_PAGES, &r);

		printf(" %d %s count %#llx\n", ret, ret ? ename(errno) : "-", r.count);
	} else {
		printf(" unknown step\n");
	}
}

int main(int argc, char **argv)
{
	char line[256];
	FILE *script;

	if (argc != 5) {
		fprintf(stderr, "usage: %s ENCLAVE.elf SIGSTRUCT HEAP_SIZE SCRIPT\n", argv[0]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	build(argv[1], argv[2], strtoul(argv[3], NULL, 0));
	script = fopen(argv[4], "r");
	if (!script)
		fail(argv[4]);
	while (fgets(line, sizeof(line), script))
		step(line);
	return 0;
}
