/*
 * sgxsim's own test enclave (x86-64, GNU as).  One ecall = one op: RDI points
 * at an op struct in untrusted memory, { u64 type; u64 a; u64 b; u64 ret;
 * u8 out[32] }.  Two TCS, each with its own SSA frame, stack and GS base.
 */
	.intel_syntax noprefix

	.macro ENCLU
	.byte 0x0f, 0x01, 0xd7
	.endm

	.equ EEXIT, 4
	.equ EACCEPT, 5
	.equ EMODPE, 6
	.equ EREPORT, 0
	.equ EGETKEY, 1
	.equ EACCEPTCOPY, 7

	.macro TCS ossa, ogsbase
	.quad 0			/* STATE */
	.quad 0			/* FLAGS */
	.quad \ossa		/* OSSA */
	.long 0			/* CSSA */
	.long 1			/* NSSA */
	.quad entry		/* OENTRY */
	.quad 0			/* AEP */
	.quad 0			/* OFSBASE */
	.quad \ogsbase		/* OGSBASE */
	.long 0xffffffff	/* FSLIMIT */
	.long 0xffffffff	/* GSLIMIT */
	.fill 4024, 1, 0
	.endm

	.section .tcs, "aw"
	.globl tcs1, tcs2
tcs1:	TCS ssa1, tls1
tcs2:	TCS ssa2, tls2

	.text
	.globl entry, body, op_compute, op_touch
/* EENTER: RBX = the TCS, RCX = the address after EENTER, RDI = the op. */
entry:
	lea	rax, [rip + __encl_base]
	mov	rdx, rbx
	sub	rdx, rax		/* 0 for TCS1, 0x1000 for TCS2 */
	lea	rax, [rip + stack1_top]
	add	rax, rdx		/* stack2_top = stack1_top + 0x1000 */
	xchg	rsp, rax
	push	rax			/* the untrusted stack */
	push	rcx			/* where EEXIT returns */
	call	body
	pop	rbx
	pop	rax
	mov	rsp, rax
	mov	eax, EEXIT
	ENCLU

body:
	mov	rax, [rdi]
	cmp	rax, (optable_end - optable) / 4
	jae	1f
	lea	rcx, [rip + optable]
	movsxd	rdx, dword ptr [rcx + rax * 4]
	add	rdx, rcx
	jmp	rdx
1:	ret

optable:
	.long op_compute - optable	/* 0 */
	.long op_touch - optable	/* 1 */
	.long op_put - optable		/* 2 */
	.long op_get - optable		/* 3 */
	.long op_eaccept - optable	/* 4 */
	.long op_emodpe - optable	/* 5 */
	.long op_egetkey - optable	/* 6 */
	.long op_ereport - optable	/* 7 */
	.long op_tls - optable		/* 8 */
	.long op_syscall - optable	/* 9 */
	.long op_int80 - optable	/* 10 */
	.long op_cpuid - optable	/* 11 */
	.long op_badleaf - optable	/* 12 */
	.long op_ud2 - optable		/* 13 */
	.long op_divzero - optable	/* 14 */
	.long op_eacceptcopy - optable	/* 15 */
	.long op_hlt - optable		/* 16 */
optable_end:

/* ret = a loop of b iterations of 4 instructions */
op_compute:
	mov	rcx, [rdi + 16]
	mov	rax, [rdi + 8]
2:	add	rax, rcx
	xor	rax, 0x5a
	dec	rcx
	jnz	2b
	mov	[rdi + 24], rax
	ret

/* b iterations of 6 instructions from a: a load and a store in one of 8 pages */
op_touch:
	mov	rcx, [rdi + 16]
	mov	rax, [rdi + 8]
	lea	rsi, [rip + buffer]
	xor	edx, edx
2:	add	rax, [rsi + rdx]
	mov	[rsi + rdx], rax
	add	rdx, 4096
	and	rdx, 0x7fff
	dec	rcx
	jnz	2b
	mov	[rdi + 24], rax
	ret

/* *a = b */
op_put:
	mov	rax, [rdi + 16]
	mov	rcx, [rdi + 8]
	mov	[rcx], rax
	ret

/* ret = *a */
op_get:
	mov	rcx, [rdi + 8]
	mov	rax, [rcx]
	mov	[rdi + 24], rax
	ret

/* a SECINFO with FLAGS = b on the stack, 64-byte aligned; RBX = it */
secinfo_on_stack:
	pop	r8
	sub	rsp, 128
	mov	rbx, rsp
	and	rbx, -64
	mov	rax, [rdi + 16]
	mov	[rbx], rax
	xor	eax, eax
	mov	ecx, 1
3:	mov	[rbx + rcx * 8], rax
	inc	ecx
	cmp	ecx, 8
	jb	3b
	jmp	r8

/* ret = EACCEPT(SECINFO.FLAGS = b, page a) */
op_eaccept:
	push	rbx
	call	secinfo_on_stack
	mov	rcx, [rdi + 8]
	mov	eax, EACCEPT
	ENCLU
	mov	[rdi + 24], rax
	add	rsp, 128
	pop	rbx
	ret

/* ret = EACCEPTCOPY(SECINFO.FLAGS = b, page a, from the first buffer page) */
op_eacceptcopy:
	push	rbx
	call	secinfo_on_stack
	mov	rcx, [rdi + 8]
	lea	rdx, [rip + buffer]
	mov	eax, EACCEPTCOPY
	ENCLU
	mov	[rdi + 24], rax
	add	rsp, 128
	pop	rbx
	ret

/* EMODPE(SECINFO.FLAGS = b, page a) */
op_emodpe:
	push	rbx
	call	secinfo_on_stack
	mov	rcx, [rdi + 8]
	mov	eax, EMODPE
	ENCLU
	add	rsp, 128
	pop	rbx
	ret

/* ret = EGETKEY(KEYNAME = a); out[0:16] = the key */
op_egetkey:
	push	rbx
	lea	rbx, [rip + kscratch]
	mov	rax, [rdi + 8]
	mov	[rbx], ax
	lea	rcx, [rbx + 512]
	mov	eax, EGETKEY
	ENCLU
	mov	[rdi + 24], rax
	mov	rax, [rbx + 512]
	mov	[rdi + 32], rax
	mov	rax, [rbx + 520]
	mov	[rdi + 40], rax
	pop	rbx
	ret

/* EREPORT(zero TARGETINFO, zero REPORTDATA); out[0:32] = REPORT.MRENCLAVE */
op_ereport:
	push	rbx
	lea	rbx, [rip + kscratch + 1024]
	lea	rcx, [rbx + 512]
	lea	rdx, [rbx + 1024]
	mov	eax, EREPORT
	ENCLU
	xor	ecx, ecx
4:	mov	rax, [rdx + 64 + rcx * 8]
	mov	[rdi + 32 + rcx * 8], rax
	inc	ecx
	cmp	ecx, 4
	jb	4b
	pop	rbx
	ret

/* ret = the u64 at GS:0 (TCS.OGSBASE: tls1 or tls2) */
op_tls:
	mov	rax, gs:[0]
	mov	[rdi + 24], rax
	ret

op_syscall:
	syscall
	ret

op_int80:
	int	0x80
	ret

op_cpuid:
	mov	eax, 0x12
	xor	ecx, ecx
	cpuid
	ret

op_badleaf:
	mov	eax, 0x20
	ENCLU
	ret

op_ud2:
	ud2
	ret

op_hlt:
	hlt
	ret

op_divzero:
	xor	ecx, ecx
	xor	edx, edx
	mov	eax, 1
	div	rcx
	ret

	.data
	.globl ssa1, ssa2, tls1, tls2, buffer, kscratch
	.balign 4096
ssa1:	.space 4096
ssa2:	.space 4096
	.space 4096
stack1_top:
	.space 4096
tls1:	.quad 0x1111
	.balign 4096
tls2:	.quad 0x2222
	.balign 4096
kscratch:
	.space 4096
buffer:	.space 8 * 4096
