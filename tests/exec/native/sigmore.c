/* More of what the kernel decides about signals, each mode run with and
 * without sgxsim exec (tests/exec/test_bridge.py compares the two outputs).
 * Each prints only what the kernel decides, never a count that depends on
 * timing. */
#define _GNU_SOURCE
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <setjmp.h>
#include <stdint.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

/* -- race: sigaction() in one thread while another's handlers run ----------- */

#define RACE_ROUNDS 150000
static volatile long bad;
static volatile int stop;
static struct sigaction same;

static void checked(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if ((unsigned long)si < 4096 || si->si_signo != sig)
		bad++;
}

/* The same action installed again and again: natively every delivery runs
 * it, with its siginfo. */
static void *rearm(void *arg)
{
	int sig = *(int *)arg;

	while (!stop)
		sigaction(sig, &same, NULL);
	return NULL;
}

static void race(int sig)
{
	pthread_t t;
	long i;

	memset(&same, 0, sizeof(same));
	same.sa_sigaction = checked;
	same.sa_flags = SA_SIGINFO;
	sigemptyset(&same.sa_mask);
	sigaction(sig, &same, NULL);
	bad = 0;
	stop = 0;
	pthread_create(&t, NULL, rearm, &sig);
	for (i = 0; i < RACE_ROUNDS; i++)
		raise(sig);
	stop = 1;
	pthread_join(t, NULL);
	printf("signal %d raised %d times while re-installed: bad %ld\n", sig, RACE_ROUNDS, bad);
}

/* -- notify: SIGEV_THREAD functions, run in threads glibc makes ------------- */

static volatile int notified;
static volatile unsigned int max_leaf;
static volatile unsigned long notify_mask;

static void notify_fn(union sigval v)
{
	unsigned int a, b, c, d;
	sigset_t now;

	__cpuid_count(0, 0, a, b, c, d);	/* patched into UD2 under sgxsim */
	max_leaf = a;
	pthread_sigmask(SIG_BLOCK, NULL, &now);
	notify_mask = now.__val[0] & ((1UL << (SIGILL - 1)) | (1UL << (SIGSEGV - 1)));
	__atomic_store_n(&notified, v.sival_int, __ATOMIC_RELEASE);
}

static void wait_notified(const char *what, int value)
{
	int ms;

	for (ms = 0; ms < 5000 && __atomic_load_n(&notified, __ATOMIC_ACQUIRE) != value; ms++)
		usleep(1000);
	printf("%s: notified %d, CPUID ran %d, ill/segv blocked %#lx\n", what,
	       notified == value, max_leaf != 0, notify_mask);
}

static void notify(void)
{
	struct sigevent ev;
	struct itimerspec its;
	struct mq_attr attr;
	char name[64];
	timer_t t;
	mqd_t mq;

	memset(&ev, 0, sizeof(ev));
	ev.sigev_notify = SIGEV_THREAD;
	ev.sigev_notify_function = notify_fn;
	ev.sigev_value.sival_int = 1;
	if (timer_create(CLOCK_MONOTONIC, &ev, &t) < 0) {
		perror("timer_create");
		return;
	}
	memset(&its, 0, sizeof(its));
	its.it_value.tv_nsec = 1000000;
	timer_settime(t, 0, &its, NULL);
	wait_notified("timer", 1);
	timer_delete(t);

	snprintf(name, sizeof(name), "/sgxsim-sigmore-%d", (int)getpid());
	memset(&attr, 0, sizeof(attr));
	attr.mq_maxmsg = 1;
	attr.mq_msgsize = 8;
	mq = mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0600, &attr);
	if (mq == (mqd_t)-1) {
		printf("mq_open: %s\n", strerror(errno));	/* no mqueue here: the same both ways */
		return;
	}
	mq_unlink(name);
	max_leaf = 0;
	notify_mask = 0;
	ev.sigev_value.sival_int = 2;
	if (mq_notify(mq, &ev) < 0)
		perror("mq_notify");
	mq_send(mq, "x", 1, 0);
	wait_notified("mq_notify", 2);
	mq_close(mq);
}

/* -- eintr: SIGSEGV sent to a thread in read() or nanosleep() -------------- */

static int pipefd[2];
static volatile int handled;

static void plain_segv(int sig)
{
	(void)sig;
	handled++;
}

/* SIGSEGV to the main thread, then a byte into the pipe. */
static void *segv_then_byte(void *arg)
{
	usleep(100000);
	pthread_kill(*(pthread_t *)arg, SIGSEGV);
	usleep(100000);
	if (write(pipefd[1], "x", 1) != 1)
		perror("write");
	return NULL;
}

static void read_one(const char *what)
{
	pthread_t self = pthread_self(), t;
	ssize_t n;
	char c;

	pthread_create(&t, NULL, segv_then_byte, &self);
	n = read(pipefd[0], &c, 1);
	printf("%s: read returned %zd (%s), handler ran %d\n", what, n,
	       n < 0 ? strerror(errno) : "data", handled);
	pthread_join(t, NULL);
}

static void eintr(void)
{
	sigset_t segv;

	if (pipe(pipefd))
		return;
	signal(SIGSEGV, plain_segv);	/* BSD's: SA_RESTART */
	read_one("handled");		/* restarted after the handler */
	sigemptyset(&segv);
	sigaddset(&segv, SIGSEGV);
	sigprocmask(SIG_BLOCK, &segv, NULL);
	read_one("blocked");		/* only pending: the read goes on */
	sigprocmask(SIG_UNBLOCK, &segv, NULL);
	printf("unblocked: handler ran %d\n", handled);
}

/* -- create: a SIGSEGV sent to a new thread that inherits it blocked ------- */

static __thread volatile int in_start;
static volatile int early;
static int sent;		/* the creator has sent this round's SIGSEGV */

static void early_segv(int sig)
{
	(void)sig;
	handled++;
	if (!in_start)
		early++;
}

static void *unblock_later(void *arg)
{
	sigset_t segv;

	(void)arg;
	in_start = 1;
	/* Unblock only once the signal was sent (a fixed sleep lost a round
	 * when the creator was descheduled for longer than the sleep). */
	while (!__atomic_load_n(&sent, __ATOMIC_ACQUIRE))
		sched_yield();
	sigemptyset(&segv);
	sigaddset(&segv, SIGSEGV);
	pthread_sigmask(SIG_UNBLOCK, &segv, NULL);	/* only now may it run */
	return NULL;
}

static void create(void)
{
	sigset_t segv;
	int i;

	signal(SIGSEGV, early_segv);
	sigemptyset(&segv);
	sigaddset(&segv, SIGSEGV);
	pthread_sigmask(SIG_BLOCK, &segv, NULL);
	for (i = 0; i < 100; i++) {
		pthread_t t;

		__atomic_store_n(&sent, 0, __ATOMIC_RELEASE);
		pthread_create(&t, NULL, unblock_later, NULL);
		pthread_kill(t, SIGSEGV);
		__atomic_store_n(&sent, 1, __ATOMIC_RELEASE);
		pthread_join(t, NULL);
	}
	printf("100 threads: handler ran %d times, %d before the start routine\n", handled, early);
}

/* -- zombie: kill(SIGSEGV) after the main thread's pthread_exit() ---------- */

static void *pausing(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

/* Blocks SIGSEGV and sends it to the process: only the pausing thread,
 * not the exited main thread, can take it. */
static void *killing(void *arg)
{
	sigset_t segv;
	int i, ms, lost = 0;

	(void)arg;
	sigemptyset(&segv);
	sigaddset(&segv, SIGSEGV);
	pthread_sigmask(SIG_BLOCK, &segv, NULL);
	usleep(100000);		/* main has left */
	for (i = 0; i < 20; i++) {
		int before = handled;

		kill(getpid(), SIGSEGV);
		for (ms = 0; ms < 2000 && handled == before; ms++)
			usleep(1000);
		lost += handled == before;
	}
	printf("20 kill(SIGSEGV) after main's pthread_exit: %d lost\n", lost);
	exit(0);
}

static void zombie(void)
{
	pthread_t a, b;

	signal(SIGSEGV, plain_segv);
	pthread_create(&a, NULL, killing, NULL);
	pthread_create(&b, NULL, pausing, NULL);
	pthread_exit(NULL);
}

/* -- vfork: the child's signal calls are its own ---------------------------- */

static sigjmp_buf back;

static void jump_back(int sig)
{
	(void)sig;
	siglongjmp(back, 1);
}

static void vfork_mode(void)
{
	sigset_t segv, now;
	pid_t pid;
	int st;

	signal(SIGSEGV, jump_back);
	pid = vfork();
	if (pid == 0) {
		/* What a child sets up before exec (CPython's subprocess does). */
		sigemptyset(&segv);
		sigaddset(&segv, SIGSEGV);
		sigprocmask(SIG_BLOCK, &segv, NULL);
		signal(SIGSEGV, SIG_DFL);
		execl("/bin/true", "true", (char *)NULL);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	sigprocmask(SIG_BLOCK, NULL, &now);
	printf("parent after the vfork child: segv blocked %d, handler kept %d\n",
	       sigismember(&now, SIGSEGV), signal(SIGSEGV, jump_back) == jump_back);
	if (sigsetjmp(back, 1) == 0)
		*(volatile int *)0 = 1;
	printf("the parent's fault reached its handler\n");
}

/* -- plain3: a handler without SA_SIGINFO gets the ucontext too ------------- */

static volatile int saw_uc = -1;

static void three(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;

	/* Without SA_SIGINFO the kernel does not fill the siginfo in: only
	 * where it is, and the ucontext, are the kernel's. */
	saw_uc = (uintptr_t)si > 4096 && (uintptr_t)uc > 4096 &&
		 uc->uc_mcontext.gregs[REG_RSP] > 4096 && !sigismember(&uc->uc_sigmask, sig);
}

static void plain3(void)
{
	static const int sigs[] = { SIGUSR1, SIGSEGV };
	unsigned int i;

	for (i = 0; i < 2; i++) {
		saw_uc = -1;
		signal(sigs[i], (sighandler_t)(void (*)(void))three);
		raise(sigs[i]);
		printf("signal %d: plain handler saw siginfo and ucontext %d\n", sigs[i], saw_uc);
	}
}

/* -- oldact: the old action after SA_RESETHAND fired ----------------------- */

static void nothing(int sig)
{
	(void)sig;
}

static void oldact(void)
{
	static const int sigs[] = { SIGUSR1, SIGSEGV, SIGILL };
	struct sigaction a, o;
	unsigned int i;

	for (i = 0; i < 3; i++) {
		memset(&a, 0, sizeof(a));
		a.sa_handler = nothing;
		a.sa_flags = SA_RESETHAND | SA_RESTART | SA_ONSTACK;
		sigemptyset(&a.sa_mask);
		sigaddset(&a.sa_mask, SIGSEGV);
		sigaddset(&a.sa_mask, SIGUSR2);
		sigaction(sigs[i], &a, NULL);
		raise(sigs[i]);
		memset(&o, 0xaa, sizeof(o));
		sigaction(sigs[i], NULL, &o);
		printf("signal %d after SA_RESETHAND: handler %s flags %#x mask %#lx\n", sigs[i],
		       o.sa_handler == SIG_DFL ? "SIG_DFL" : "other", o.sa_flags,
		       o.sa_mask.__val[0]);
	}
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "race";

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(mode, "race")) {
		race(SIGSEGV);
		race(SIGUSR1);
	} else if (!strcmp(mode, "notify")) {
		notify();
	} else if (!strcmp(mode, "eintr")) {
		eintr();
	} else if (!strcmp(mode, "create")) {
		create();
	} else if (!strcmp(mode, "zombie")) {
		zombie();
	} else if (!strcmp(mode, "vfork")) {
		vfork_mode();
	} else if (!strcmp(mode, "plain3")) {
		plain3();
	} else if (!strcmp(mode, "oldact")) {
		oldact();
	} else {
		fprintf(stderr, "unknown mode %s\n", mode);
		return 2;
	}
	return 0;
}
