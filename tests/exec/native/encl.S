/* sgxsim's native test enclave: one entry point that runs one operation on
 * an op struct in untrusted memory (RDI) and returns with EEXIT.
 *
 *   struct op { u64 op, a, b, ret; }
 *   0 NOP; 1 EACCEPT(page a, SECINFO flags b) -> ret; 2 EMODPE(page a, flags b);
 *   3 READ ret = *(u64 *)a; 4 WRITE *(u64 *)a = b;
 *   5 INIT_TCS: page a becomes a TCS image with OSSA b, NSSA 1, OENTRY encl_entry
 *   6 SPIN: count b down to zero (a long enclave call)
 *
 * Layout (encl.lds): TCS at 0, code at 0x1000, data at 0x2000 (SECINFO
 * scratch), four SSA frames at 0x3000-0x6fff (a reported fault leaves CSSA
 * raised: four allow three), two spare pages at 0x7000 and 0x8000.  The
 * loader adds an unmeasured heap after them.
 */
	.set	OP_NOP, 0
	.set	ENCLU_EEXIT, 4
	.set	ENCLU_EACCEPT, 5
	.set	ENCLU_EMODPE, 6

	.section .tcs, "aw"
	.balign	4096
tcs0:
	.quad	0		/* STATE */
	.quad	0		/* FLAGS */
	.quad	0x3000		/* OSSA */
	.long	0		/* CSSA */
	.long	4		/* NSSA */
	.quad	encl_entry	/* OENTRY (the enclave is linked at 0) */
	.quad	0		/* AEP */
	.quad	0, 0		/* OFSBASE, OGSBASE */
	.long	0xffffffff, 0xffffffff	/* FSLIMIT, GSLIMIT */
	.balign	4096, 0

	/* RBX: a zeroed SECINFO (in the data page) whose flags are op.b; RCX: op.a */
	.macro	secinfo
	leaq	0x2000(%r10), %rbx
	movq	16(%rdi), %rdx
	movq	%rdx, (%rbx)
	.irp	off, 8, 16, 24, 32, 40, 48, 56
	movq	$0, \off(%rbx)
	.endr
	movq	8(%rdi), %rcx
	.endm

	.text
	.globl	encl_entry
encl_entry:
	movq	%rcx, %r11		/* EEXIT returns where EENTER came from */
	leaq	encl_entry(%rip), %r10
	subq	$0x1000, %r10		/* R10: the enclave base */
	movq	(%rdi), %rax
	cmpq	$1, %rax
	je	op_eaccept
	cmpq	$2, %rax
	je	op_emodpe
	cmpq	$3, %rax
	je	op_read
	cmpq	$4, %rax
	je	op_write
	cmpq	$5, %rax
	je	op_init_tcs
	cmpq	$6, %rax
	je	op_spin
	jmp	out

op_eaccept:
	secinfo
	movl	$ENCLU_EACCEPT, %eax
	enclu
	movq	%rax, 24(%rdi)
	jmp	out

op_emodpe:
	secinfo
	movl	$ENCLU_EMODPE, %eax
	enclu
	movq	$0, 24(%rdi)
	jmp	out

op_read:
	movq	8(%rdi), %rax
	movq	(%rax), %rax
	movq	%rax, 24(%rdi)
	jmp	out

op_write:
	movq	8(%rdi), %rax
	movq	16(%rdi), %rdx
	movq	%rdx, (%rax)
	jmp	out

op_init_tcs:
	movq	8(%rdi), %rax
	movq	$0, 0(%rax)
	movq	$0, 8(%rax)
	movq	16(%rdi), %rdx
	movq	%rdx, 16(%rax)		/* OSSA */
	movl	$0, 24(%rax)		/* CSSA */
	movl	$1, 28(%rax)		/* NSSA */
	movq	$0x1000, 32(%rax)	/* OENTRY: encl_entry */
	movq	$0, 40(%rax)
	movq	$0, 48(%rax)
	movq	$0, 56(%rax)
	movl	$0xffffffff, 64(%rax)
	movl	$0xffffffff, 68(%rax)
	jmp	out

op_spin:
	movq	16(%rdi), %rcx
1:	subq	$1, %rcx
	jnz	1b
	jmp	out

out:
	movq	%r11, %rbx
	movl	$ENCLU_EEXIT, %eax
	enclu
	ud2

	.data
	.balign	4096
data:	.fill	4096, 1, 0		/* 0x2000: SECINFO scratch */
ssa:	.fill	16384, 1, 0		/* 0x3000-0x6fff: four SSA frames */
spare:	.fill	8192, 1, 0		/* 0x7000, 0x8000 */
