/* The program's own SIGSEGV and SIGILL stay its own under sgxsim exec, whose
 * preload library traps ENCLU through both signals (SIGILL on a CPU without
 * SGX, SIGSEGV on one with SGX).
 *
 *   segv handler  a fault at an unmapped address reaches the program's
 *                 SA_SIGINFO handler with its address, its sa_mask and the
 *                 signal blocked; SA_RESETHAND resets it
 *   segv dfl      the same fault with no handler: dies of SIGSEGV
 *   segv ign      the same fault with SIGSEGV ignored: dies of SIGSEGV
 *   segv enclu    a bare ENCLU (EREPORT) outside any enclave: the model's
 *                 CPU refuses it and the program's handler gets the signal,
 *                 at the ENCLU
 *   segv thread   "enclu" in a second thread: the trap handlers have a
 *                 stack of their own there too (the handler is on it);
 *                 "thrd": the thread made by C11 thrd_create()
 *   segv raise    SIGSEGV sent by raise() with no handler: dies of it;
 *                 "raise-ign": ignored, so discarded, and a handler
 *                 installed afterwards still gets a real fault
 *   segv badframe a handler that spoils its signal frame: rt_sigreturn's
 *                 SIGSEGV kills (it is no fault that recurs)
 *   segv ownstack the program's own alternate stack, the page below it
 *                 unlocked by its SIGSEGV handler on demand: works
 *   segv nx       an ENCLU's bytes in a page that is not executable, called:
 *                 the fetch faults, the program's (the CPU ran no ENCLU);
 *                 "xo": in an execute-only page, it is the model's
 *   segv siginfo-ign  SA_SIGINFO with SIG_IGN: a sent SIGSEGV is ignored
 *   segv nested   the same ENCLU inside the program's SIGSEGV handler,
 *                 installed with SA_NODEFER as SGX runtimes install theirs:
 *                 still the model's, and its signal reaches the handler again;
 *                 "nested-defer" without SA_NODEFER: SIGSEGV is blocked in
 *                 the handler, so the ENCLU's fault kills the program
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <threads.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

static sigjmp_buf back;
static volatile int depth;

/* ENCLU[EREPORT] outside any enclave, at enclu_site (one copy: not inlined). */
extern const char enclu_site[];

static __attribute__((noinline)) void enclu_ereport(void)
{
	__asm__ volatile("enclu_site: .byte 0x0f, 0x01, 0xd7"
			 : : "a"(0L), "b"(0L), "c"(0L), "d"(0L) : "memory");
}

static void nested(int sig, siginfo_t *si, void *ucv)
{
	(void)si;
	(void)ucv;
	if (depth++ == 0)
		enclu_ereport();	/* the model's #GP comes back here */
	siglongjmp(back, sig);
}
static volatile int blocked_self, blocked_usr1;
static volatile long got_addr, got_code, got_ip;

static volatile int on_altstack;

static void handler(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	sigset_t now;
	stack_t ss;

	on_altstack = sigaltstack(NULL, &ss) == 0 && (ss.ss_flags & SS_ONSTACK);

	sigprocmask(SIG_BLOCK, NULL, &now);
	blocked_self = sigismember(&now, sig);
	blocked_usr1 = sigismember(&now, SIGUSR1);
	got_addr = (long)si->si_addr;
	got_code = si->si_code;
	got_ip = (long)uc->uc_mcontext.gregs[REG_RIP];
	siglongjmp(back, sig);
}

static void install(int sig, int flags)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = handler;
	sa.sa_flags = SA_SIGINFO | flags;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR1);
	sigaction(sig, &sa, NULL);
}

static void spoil_frame(int sig, siginfo_t *si, void *ucv)
{
	(void)sig;
	(void)si;
	((ucontext_t *)ucv)->uc_mcontext.fpregs = (void *)0x10;
}

static char *below;

static void unlock_below(int sig, siginfo_t *si, void *ucv)
{
	(void)sig;
	(void)si;
	(void)ucv;
	mprotect(below, 4096, PROT_READ | PROT_WRITE);
}

/* The bare ENCLU with the program's handlers for both trap signals; what
 * the handler got, and (``stack``) whether it ran on an alternate stack. */
static void bare_enclu(int stack)
{
	int sig;

	install(SIGSEGV, 0);
	install(SIGILL, 0);
	sig = sigsetjmp(back, 1);
	if (!sig)
		enclu_ereport();
	printf("signal %d code %ld at_enclu %d", sig, got_code, got_ip == (long)enclu_site);
	if (stack)
		printf(" onstack %d", on_altstack);
	printf("\n");
}

static void *enclu_thread(void *arg)
{
	(void)arg;
	bare_enclu(1);
	return NULL;
}

static int enclu_thrd(void *arg)
{
	enclu_thread(arg);
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "handler";
	/* An address that is mapped nowhere: a page unmapped again. */
	char *hole = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct sigaction now;
	int sig;

	munmap(hole, 4096);
	if (!strcmp(mode, "thrd")) {
		thrd_t t;

		thrd_create(&t, enclu_thrd, NULL);
		thrd_join(t, NULL);
		return 0;
	}
	if (!strcmp(mode, "thread")) {
		pthread_t t;

		pthread_create(&t, NULL, enclu_thread, NULL);
		pthread_join(t, NULL);
		return 0;
	}
	if (!strcmp(mode, "badframe") || !strcmp(mode, "ownstack")) {
		struct sigaction sa;
		stack_t ss;

		memset(&sa, 0, sizeof(sa));
		sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
		if (!strcmp(mode, "badframe")) {
			sa.sa_sigaction = spoil_frame;
			sigaction(SIGUSR1, &sa, NULL);
			raise(SIGUSR1);
			return 3;	/* not reached */
		}
		below = mmap(NULL, 4096 + 65536, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		mprotect(below, 4096, PROT_NONE);
		ss.ss_sp = below + 4096;
		ss.ss_size = 65536;
		ss.ss_flags = 0;
		sigaltstack(&ss, NULL);
		sa.sa_sigaction = unlock_below;
		sigaction(SIGSEGV, &sa, NULL);
		below[100] = 1;
		printf("ok %d\n", below[100]);
		return 0;
	}
	if (!strcmp(mode, "nx") || !strcmp(mode, "xo")) {
		unsigned char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		p[0] = 0x0f; p[1] = 0x01; p[2] = 0xd7; p[3] = 0xc3;	/* enclu; ret */
		if (!strcmp(mode, "xo"))
			mprotect(p, 4096, PROT_EXEC);
		install(SIGSEGV, 0);
		install(SIGILL, 0);
		sig = sigsetjmp(back, 1);
		if (!sig)
			__asm__ volatile("call *%0" : : "r"(p), "a"(0L), "b"(0L), "c"(0L), "d"(0L)
					 : "memory");
		printf("signal %d code %ld addr_is_page %d at_page %d\n", sig, got_code,
		       got_addr == (long)p, got_ip == (long)p);
		return 0;
	}
	if (!strcmp(mode, "siginfo-ign")) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = SIG_IGN;	/* the same storage as sa_sigaction */
		sa.sa_flags = SA_SIGINFO;
		sigaction(SIGSEGV, &sa, NULL);
		raise(SIGSEGV);
		printf("ignored\n");
		return 0;
	}
	if (!strcmp(mode, "raise")) {
		raise(SIGSEGV);
		return 3;	/* not reached: the default action kills */
	}
	if (!strcmp(mode, "raise-ign")) {
		signal(SIGSEGV, SIG_IGN);
		raise(SIGSEGV);
		install(SIGSEGV, 0);
		sig = sigsetjmp(back, 1);
		if (!sig)
			return *(volatile char *)hole;
		printf("ignored, then signal %d addr_ok %d\n", sig, got_addr == (long)hole);
		return 0;
	}
	if (!strcmp(mode, "dfl") || !strcmp(mode, "ign")) {
		signal(SIGSEGV, !strcmp(mode, "ign") ? SIG_IGN : SIG_DFL);
		return *(volatile char *)hole;
	}
	if (!strcmp(mode, "enclu")) {
		bare_enclu(0);
		return 0;
	}
	if (!strcmp(mode, "nested") || !strcmp(mode, "nested-defer")) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = nested;
		sa.sa_flags = SA_SIGINFO | (strcmp(mode, "nested") ? 0 : SA_NODEFER);
		sigaction(SIGSEGV, &sa, NULL);
		sig = sigsetjmp(back, 1);
		if (!sig)
			return *(volatile char *)hole;
		printf("signal %d handler ran %d times\n", sig, depth);
		return 0;
	}
	install(SIGSEGV, SA_RESETHAND);
	sig = sigsetjmp(back, 1);
	if (!sig)
		return *(volatile char *)hole;
	sigaction(SIGSEGV, NULL, &now);
	printf("signal %d addr_ok %d blocked_self %d blocked_usr1 %d reset %d\n", sig,
	       got_addr == (long)hole, blocked_self, blocked_usr1, now.sa_handler == SIG_DFL);
	return 0;
}
