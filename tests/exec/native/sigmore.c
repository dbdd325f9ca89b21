/* More of what the kernel decides about signals, each mode run with and
 * without sgxsim exec (tests/exec/test_bridge.py compares the two outputs).
 * Each prints only what the kernel decides, never a count that depends on
 * timing. */
#define _GNU_SOURCE
#include <cpuid.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "race";

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(mode, "race")) {
		race(SIGSEGV);
		race(SIGUSR1);
	} else {
		fprintf(stderr, "unknown mode %s\n", mode);
		return 2;
	}
	return 0;
}
