/* sgxsim's vDSO image: __vdso_sgx_enter_enclave with the documented ABI of
 * Linux's vDSO (Documentation/arch/x86/sgx.rst, <asm/sgx.h>):
 *
 *   int __vdso_sgx_enter_enclave(unsigned long rdi, unsigned long rsi,
 *                                unsigned long rdx, unsigned int function,
 *                                unsigned long r8, unsigned long r9,
 *                                struct sgx_enclave_run *run);
 *
 * RDI, RSI, RDX, R8 and R9 reach the enclave untouched; FUNCTION is EENTER or
 * ERESUME; RUN carries the TCS, receives the exit leaf or the exception, and
 * may name a user handler that is called after every exit and whose positive
 * return value is the next leaf.
 *
 * The single ENCLU below is both EENTER/ERESUME and the asynchronous exit
 * pointer.  It traps on the real CPU (SIGILL without SGX, SIGSEGV with it);
 * the preload library's handlers serve it from the model.  When the data page before the image
 * (sgxsim_vvar, vdso.lds) holds an address, the code jumps there instead of
 * executing the ENCLU: the preload library's direct entry, which sends the
 * server the same request without the signal.  The exception table (section
 * sgxsim_extable) tells the server where the kernel's vDSO fixup sends a
 * fault taken there: to the report path, with the vector in RDI, the error
 * code in RSI and the address in RDX.
 *
 * Written for sgxsim from the ABI description; no kernel code.
 */
	.set	OFF_TCS, 0
	.set	OFF_FUNCTION, 8
	.set	OFF_VECTOR, 12
	.set	OFF_ERRCODE, 14
	.set	OFF_ADDR, 16
	.set	OFF_HANDLER, 24
	.set	OFF_RESERVED, 40
	.set	RUN_SIZE, 256
	.set	LEAF_EENTER, 2
	.set	LEAF_ERESUME, 3
	.set	LEAF_EEXIT, 4
	.set	EINVAL, 22

	.text
	.globl	__vdso_sgx_enter_enclave
	.type	__vdso_sgx_enter_enclave, @function
__vdso_sgx_enter_enclave:
	.cfi_startproc
	pushq	%rbp
	.cfi_def_cfa_offset 16
	.cfi_offset %rbp, -16
	movq	%rsp, %rbp
	.cfi_def_cfa_register %rbp
	pushq	%rbx
	.cfi_offset %rbx, -24
	movl	%ecx, %eax

.Lnext_leaf:
	/* Only EENTER and ERESUME may be asked for. */
	leal	-LEAF_EENTER(%rax), %r11d
	cmpl	$(LEAF_ERESUME - LEAF_EENTER), %r11d
	ja	.Leinval

	/* The run struct is the 7th argument, above the return address. */
	movq	16(%rbp), %rcx
	/* Its reserved bytes must be zero. */
	leaq	OFF_RESERVED(%rcx), %r11
.Lcheck_reserved:
	cmpq	$0, (%r11)
	jne	.Leinval
	addq	$8, %r11
	leaq	RUN_SIZE(%rcx), %rbx
	cmpq	%rbx, %r11
	jb	.Lcheck_reserved

	movq	OFF_TCS(%rcx), %rbx	/* RBX: TCS */
	leaq	.Lenclu(%rip), %rcx	/* RCX: AEP, this very ENCLU */
	/* sgxsim: when the data page names a direct entry to the server, the
	 * ENCLU is handed to it there, every register and flag as they are at
	 * the ENCLU (the flags are kept around the test), instead of trapping.
	 * The server executes it as the ENCLU at .Lenclu either way. */
	pushfq
	cmpq	$0, sgxsim_vvar(%rip)
	jne	.Ldirect
	popfq
.Lenclu:
	enclu

	/* EEXIT to the address EENTER left in RCX lands here. */
	movq	16(%rbp), %rbx
	movl	$LEAF_EEXIT, OFF_FUNCTION(%rbx)

.Lexited:
	cmpq	$0, OFF_HANDLER(%rbx)
	jne	.Lcall_handler
	xorl	%eax, %eax
.Lreturn:
	popq	%rbx
	popq	%rbp
	.cfi_def_cfa %rsp, 8
	ret
	.cfi_def_cfa %rbp, 16

.Ldirect:
	popfq
	jmp	*sgxsim_vvar(%rip)

.Leinval:
	movl	$-EINVAL, %eax
	jmp	.Lreturn

	/* A fault at the ENCLU that the kernel fixed up: report it. */
.Lreport:
	movq	16(%rbp), %rbx
	movl	%eax, OFF_FUNCTION(%rbx)
	movw	%di, OFF_VECTOR(%rbx)
	movw	%si, OFF_ERRCODE(%rbx)
	movq	%rdx, OFF_ADDR(%rbx)
	jmp	.Lexited

	/* handler(rdi, rsi, rdx, rsp at exit, r8, r9, run) */
.Lcall_handler:
	movq	%rsp, %rcx
	movq	%rbx, %rax		/* run */
	movq	%rsp, %rbx
	andq	$15, %rbx		/* how far RSP is from 16-byte alignment */
	andq	$-16, %rsp
	subq	$8, %rsp
	pushq	%rax			/* run: the 7th argument, on the stack */
	cld
	movq	OFF_HANDLER(%rax), %rax
	lfence
	call	*%rax
	leaq	16(%rsp,%rbx), %rsp
	testl	%eax, %eax
	jle	.Lreturn
	jmp	.Lnext_leaf
	.cfi_endproc
	.size	__vdso_sgx_enter_enclave, .-__vdso_sgx_enter_enclave

	/* (ENCLU address, fixup address), relative to each field, as the
	 * kernel's vDSO exception table is. */
	.section sgxsim_extable, "a"
	.balign 4
	.long	.Lenclu - .
	.long	.Lreport - .
