/* Masks and the older signal calls under sgxsim exec, whose preload traps
 * ENCLU and the executable's CPUIDs (patched into UD2) through SIGILL and
 * SIGSEGV and so keeps the program's mask for those two aside (a virtual
 * mask).  Each mode prints what the kernel decides, so that the test
 * compares a run under sgxsim exec with a run without it; CPUID (a SIGILL
 * trap under sgxsim exec) stands for any trapped instruction.
 *
 *   sigmask worker    a thread that blocks every signal executes CPUID
 *   sigmask inherit   threads (pthread_create, with and without an
 *                     attribute's mask) and a fork()'s child inherit the mask
 *   sigmask fault     every signal blocked: CPUID runs, then a fault kills
 *   sigmask pending   SIGSEGV sent while blocked (raise, kill, twice) waits
 *                     (sigpending) and is delivered when unblocked, by
 *                     sigprocmask, sigsetmask and siglongjmp; SIG_IGN
 *                     discards it
 *   sigmask process   a SIGSEGV sent to the process goes to a thread that does
 *                     not block it, else waits for the first that unblocks it
 *   sigmask handler   a handler's sa_mask (SIGUSR1's, SIGSEGV's) applies to
 *                     SIGILL and SIGSEGV too; what the handler writes into
 *                     uc_sigmask is the mask after it returns (SIGUSR1's, and
 *                     a SIGSEGV handler that fixes its fault); siglongjmp out
 *                     of it restores the mask sigsetjmp saved
 *   sigmask calls     signal, bsd_signal, sysv_signal, sigset (SIG_HOLD too),
 *                     sighold, sigrelse, sigignore, siginterrupt, sigblock,
 *                     sigsetmask, siggetmask on SIGILL, SIGSEGV and SIGUSR1:
 *                     the dispositions and masks they leave; a handler set by
 *                     sysv_signal or sigset does not take the CPUID's trap
 *   sigmask enclu     a thread that blocks every signal executes a bare
 *                     ENCLU (EREPORT outside an enclave): the CPU executes it,
 *                     and its #GP's SIGSEGV, blocked, kills
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* The old calls are what this tests. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
/* glibc declares it only for some feature levels. */
extern sighandler_t bsd_signal(int, sighandler_t);

static sigjmp_buf back;
static volatile int count, code, masked_ill, masked_segv, masked_usr1, before_segv, in_tid;
static char *hole;

static unsigned int cpuid_12(void)
{
	unsigned int a, b, c, d;

	__cpuid_count(0x12, 0, a, b, c, d);
	return a ^ b ^ c ^ d;
}

static void mask(const char *what)
{
	sigset_t now;

	sigprocmask(SIG_BLOCK, NULL, &now);
	printf("%s: ill %d segv %d usr1 %d usr2 %d\n", what, sigismember(&now, SIGILL),
	       sigismember(&now, SIGSEGV), sigismember(&now, SIGUSR1), sigismember(&now, SIGUSR2));
}

static void pending(const char *what)
{
	sigset_t p;

	sigpending(&p);
	printf("%s: pending segv %d count %d code %d\n", what, sigismember(&p, SIGSEGV), count, code);
}

static void block(int how, int a, int b)
{
	sigset_t s;

	sigemptyset(&s);
	if (a)
		sigaddset(&s, a);
	if (b)
		sigaddset(&s, b);
	sigprocmask(how, &s, NULL);
}

static void counting(int sig, siginfo_t *si, void *uc)
{
	sigset_t now;

	(void)sig;
	(void)uc;
	count++;
	code = si->si_code;
	in_tid = (int)syscall(SYS_gettid);
	sigprocmask(SIG_BLOCK, NULL, &now);
	masked_segv = sigismember(&now, SIGSEGV);
}

static void on(int sig, void (*fn)(int, siginfo_t *, void *), int flags, int m1, int m2)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = fn;
	sa.sa_flags = SA_SIGINFO | flags;
	sigemptyset(&sa.sa_mask);
	if (m1)
		sigaddset(&sa.sa_mask, m1);
	if (m2)
		sigaddset(&sa.sa_mask, m2);
	sigaction(sig, &sa, NULL);
}

/* -- worker, inherit, fault ------------------------------------------------------------ */

static unsigned int unblocked_cpuid;

static void *blocking_worker(void *arg)
{
	sigset_t all;

	(void)arg;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	printf("worker cpuid same %d\n", cpuid_12() == unblocked_cpuid);
	mask("worker");
	return NULL;
}

static void *inheriting(void *arg)
{
	mask(arg);
	printf("%s cpuid same %d\n", (char *)arg, cpuid_12() == unblocked_cpuid);
	return NULL;
}

static void inherit(void)
{
	pthread_attr_t attr;
	pthread_t t;
	sigset_t only;
	int status;
	pid_t pid;

	block(SIG_BLOCK, SIGSEGV, SIGILL);
	block(SIG_BLOCK, SIGUSR1, 0);
	pthread_create(&t, NULL, inheriting, "thread");
	pthread_join(t, NULL);
	pthread_attr_init(&attr);
	sigemptyset(&only);
	sigaddset(&only, SIGSEGV);
	pthread_attr_setsigmask_np(&attr, &only);
	pthread_create(&t, &attr, inheriting, "attr thread");
	pthread_join(t, NULL);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		inheriting("child");
		exit(0);
	}
	waitpid(pid, &status, 0);
	printf("child status %#x\n", status);
}

/* -- pending -------------------------------------------------------------------------- */

static void pending_mode(void)
{
	sigjmp_buf env;

	on(SIGSEGV, counting, 0, 0, 0);
	block(SIG_BLOCK, SIGSEGV, SIGILL);
	raise(SIGSEGV);
	raise(SIGSEGV);		/* a standard signal is pending once */
	printf("cpuid same %d\n", cpuid_12() == unblocked_cpuid);
	pending("raised twice");
	block(SIG_UNBLOCK, SIGSEGV, 0);
	pending("unblocked");
	mask("after");

	block(SIG_BLOCK, SIGSEGV, 0);
	kill(getpid(), SIGSEGV);
	pending("killed");
	sigsetmask(0);
	pending("sigsetmask(0)");

	if (!sigsetjmp(env, 1)) {
		block(SIG_BLOCK, SIGSEGV, 0);
		raise(SIGSEGV);
		pending("raised before siglongjmp");
		siglongjmp(env, 1);
	}
	pending("siglongjmp");

	block(SIG_BLOCK, SIGSEGV, 0);
	raise(SIGSEGV);
	pending("raised");
	signal(SIGSEGV, SIG_IGN);
	pending("SIG_IGN");
	on(SIGSEGV, counting, 0, 0, 0);
	block(SIG_UNBLOCK, SIGSEGV, 0);
	pending("unblocked");
}

/* -- process ---------------------------------------------------------------------------- */

static volatile int stage, started;

static void *process_worker(void *arg)
{
	(void)arg;
	started = 1;
	while (stage == 0)
		usleep(1000);		/* the first kill reaches this thread */
	block(SIG_BLOCK, SIGSEGV, 0);
	stage = 2;
	while (stage == 2)
		usleep(1000);
	return NULL;
}

static void process_mode(void)
{
	pthread_t t;
	int main_tid = (int)syscall(SYS_gettid), worker_tid;

	on(SIGSEGV, counting, 0, 0, 0);
	pthread_create(&t, NULL, process_worker, NULL);	/* SIGSEGV not blocked there */
	block(SIG_BLOCK, SIGSEGV, 0);
	while (!started)
		usleep(1000);
	kill(getpid(), SIGSEGV);
	while (count == 0)
		usleep(1000);
	worker_tid = in_tid;
	printf("delivered in the worker %d count %d code %d\n", worker_tid != main_tid, count, code);
	stage = 1;
	while (stage != 2)
		usleep(1000);
	kill(getpid(), SIGSEGV);	/* every thread blocks it */
	usleep(100000);
	pending("both block it");
	block(SIG_UNBLOCK, SIGSEGV, 0);
	printf("delivered in main %d count %d\n", in_tid == main_tid, count);
	stage = 3;
	pthread_join(t, NULL);
}

/* -- handler ----------------------------------------------------------------------------- */

static void usr1(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;

	(void)sig;
	(void)si;
	before_segv = sigismember(&uc->uc_sigmask, SIGSEGV);
	mask("in the SIGUSR1 handler");
	printf("in the SIGUSR1 handler: uc_sigmask segv %d ill %d, cpuid same %d\n", before_segv,
	       sigismember(&uc->uc_sigmask, SIGILL), cpuid_12() == unblocked_cpuid);
	sigaddset(&uc->uc_sigmask, SIGILL);	/* the mask after the handler returns */
	sigaddset(&uc->uc_sigmask, SIGUSR2);
	sigdelset(&uc->uc_sigmask, SIGSEGV);
}

static void segv(int sig, siginfo_t *si, void *ucv)
{
	(void)si;
	(void)ucv;
	count++;
	mask("in the SIGSEGV handler");
	printf("in the SIGSEGV handler: cpuid same %d\n", cpuid_12() == unblocked_cpuid);
	siglongjmp(back, sig);
}

static char *locked;

/* A fault it fixes: the access runs again after it returns, with the mask
 * it leaves in uc_sigmask. */
static void unlock(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;

	(void)sig;
	(void)si;
	mprotect(locked, 4096, PROT_READ | PROT_WRITE);
	sigaddset(&uc->uc_sigmask, SIGSEGV);
	sigaddset(&uc->uc_sigmask, SIGUSR2);
}

static void handler_mode(void)
{
	struct sigaction sa;
	sigjmp_buf env;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = usr1;
	sa.sa_flags = SA_SIGINFO;
	sigfillset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	block(SIG_BLOCK, SIGSEGV, 0);
	raise(SIGUSR1);
	mask("after the SIGUSR1 handler");
	printf("after the SIGUSR1 handler: cpuid same %d\n", cpuid_12() == unblocked_cpuid);
	block(SIG_UNBLOCK, SIGILL, SIGUSR2);

	on(SIGSEGV, segv, 0, SIGILL, 0);
	if (!sigsetjmp(back, 1))
		*(volatile char *)hole = 1;
	mask("after siglongjmp");
	if (!sigsetjmp(back, 1))
		*(volatile char *)hole = 1;
	printf("faults %d\n", count);

	block(SIG_BLOCK, SIGSEGV, 0);
	if (!sigsetjmp(env, 1)) {
		block(SIG_UNBLOCK, SIGSEGV, 0);
		block(SIG_BLOCK, SIGILL, 0);
		siglongjmp(env, 1);
	}
	mask("siglongjmp to a mask with SIGSEGV");

	block(SIG_UNBLOCK, SIGSEGV, 0);
	locked = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	on(SIGSEGV, unlock, 0, 0, 0);
	locked[0] = 1;
	mask("after a SIGSEGV handler that blocks SIGSEGV in uc_sigmask");
	printf("then: cpuid same %d\n", cpuid_12() == unblocked_cpuid);
}

/* -- calls --------------------------------------------------------------------------------- */

static void plain(int sig)
{
	(void)sig;
	count++;
}

static void plain_jump(int sig)
{
	sigset_t now;

	count++;
	sigprocmask(SIG_BLOCK, NULL, &now);
	masked_segv = sigismember(&now, SIGSEGV);
	siglongjmp(back, sig);
}

static void action(const char *what, int sig)
{
	struct sigaction a;

	sigaction(sig, NULL, &a);
	printf("%s: %s flags %#x mask %#lx restorer %d\n", what,
	       a.sa_handler == SIG_DFL ? "SIG_DFL" : a.sa_handler == SIG_IGN ? "SIG_IGN" : "handler",
	       (unsigned int)a.sa_flags, *(unsigned long *)&a.sa_mask, a.sa_restorer != NULL);
}

static const char *disp(sighandler_t h)
{
	return h == SIG_DFL ? "SIG_DFL" : h == SIG_IGN ? "SIG_IGN" : h == SIG_HOLD ? "SIG_HOLD" :
	       h == SIG_ERR ? "SIG_ERR" : h == plain ? "plain" : "other";
}

static void calls(void)
{
	static const int sigs[] = { SIGILL, SIGSEGV, SIGUSR1 };
	char what[64];
	unsigned int i;
	int ret;

	for (i = 0; i < 3; i++) {
		int sig = sigs[i];

		snprintf(what, sizeof(what), "signal %d", sig);
		printf("%s returns %s\n", what, disp(signal(sig, plain)));
		action(what, sig);
		snprintf(what, sizeof(what), "bsd_signal %d", sig);
		printf("%s returns %s\n", what, disp(bsd_signal(sig, SIG_DFL)));
		action(what, sig);
		snprintf(what, sizeof(what), "sysv_signal %d", sig);
		printf("%s returns %s\n", what, disp(sysv_signal(sig, plain)));
		action(what, sig);
		snprintf(what, sizeof(what), "sigset %d", sig);
		printf("%s returns %s\n", what, disp(sigset(sig, plain)));
		action(what, sig);
		printf("sigset %d SIG_HOLD returns %s\n", sig, disp(sigset(sig, SIG_HOLD)));
		printf("sigset %d SIG_HOLD again returns %s\n", sig, disp(sigset(sig, SIG_HOLD)));
		mask("held");
		printf("cpuid same %d\n", cpuid_12() == unblocked_cpuid);
		printf("sigset %d SIG_DFL returns %s\n", sig, disp(sigset(sig, SIG_DFL)));
		mask("released");
		ret = sighold(sig);
		mask("sighold");
		printf("sighold %d sigrelse %d\n", ret, sigrelse(sig));
		mask("sigrelse");
		printf("sigignore %d\n", sigignore(sig));
		action("sigignore", sig);
		printf("siginterrupt %d\n", siginterrupt(sig, 1));
		action("siginterrupt", sig);
		signal(sig, plain);
		action("signal after siginterrupt", sig);
		siginterrupt(sig, 0);
		signal(sig, SIG_DFL);
	}
	printf("sigset 0 returns %s, sysv_signal 65 %s, signal SIG_ERR %s\n", disp(sigset(0, plain)),
	       disp(sysv_signal(65, plain)), disp(signal(SIGUSR1, SIG_ERR)));
	printf("sigblock %#x\n", sigblock(1 << (SIGSEGV - 1) | 1 << (SIGUSR1 - 1)));
	printf("siggetmask %#x\n", siggetmask());
	printf("sigsetmask %#x\n", sigsetmask(1 << (SIGILL - 1)));
	printf("sigsetmask %#x\n", sigsetmask(0));

	/* Handlers set by the older calls do not take the CPUID's trap, and
	 * run with their own semantics. */
	sysv_signal(SIGILL, plain);
	sigset(SIGSEGV, plain_jump);
	printf("sysv_signal'd SIGILL: cpuid same %d count %d\n", cpuid_12() == unblocked_cpuid, count);
	if (!sigsetjmp(back, 1))
		*(volatile char *)hole = 1;
	printf("sigset'd SIGSEGV: count %d blocked in it %d\n", count, masked_segv);
	action("after", SIGSEGV);
	sysv_signal(SIGSEGV, plain_jump);
	if (!sigsetjmp(back, 1))
		*(volatile char *)hole = 1;
	printf("sysv_signal'd SIGSEGV: count %d blocked in it %d\n", count, masked_segv);
	action("reset", SIGSEGV);
}

/* -- enclu ----------------------------------------------------------------------------------- */

static void *enclu_worker(void *arg)
{
	sigset_t all;

	(void)arg;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	on(SIGSEGV, counting, SA_NODEFER, 0, 0);
	printf("enclu\n");
	fflush(stdout);
	__asm__ volatile(".byte 0x0f, 0x01, 0xd7" : : "a"(0L), "b"(0L), "c"(0L), "d"(0L) : "memory");
	printf("survived the ENCLU's fault\n");
	return NULL;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "worker";
	pthread_t t;

	setvbuf(stdout, NULL, _IOLBF, 0);
	hole = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(hole, 4096);
	unblocked_cpuid = cpuid_12();
	if (!strcmp(mode, "worker")) {
		pthread_create(&t, NULL, blocking_worker, NULL);
		pthread_join(t, NULL);
		mask("main");
	} else if (!strcmp(mode, "inherit")) {
		inherit();
	} else if (!strcmp(mode, "fault")) {
		sigset_t all;

		on(SIGSEGV, counting, 0, 0, 0);
		sigfillset(&all);
		sigprocmask(SIG_BLOCK, &all, NULL);
		printf("cpuid same %d\n", cpuid_12() == unblocked_cpuid);
		*(volatile char *)hole = 1;
		printf("survived the fault\n");
	} else if (!strcmp(mode, "pending")) {
		pending_mode();
	} else if (!strcmp(mode, "process")) {
		process_mode();
	} else if (!strcmp(mode, "handler")) {
		handler_mode();
	} else if (!strcmp(mode, "calls")) {
		calls();
	} else if (!strcmp(mode, "enclu")) {
		pthread_create(&t, NULL, enclu_worker, NULL);
		pthread_join(t, NULL);
	}
	return 0;
}
