/* CPUID leaf 0x12 and leaf 7 as the program sees them. */
#include <cpuid.h>
#include <stdio.h>

int main(void)
{
	unsigned int a, b, c, d, sub;

	__cpuid_count(7, 0, a, b, c, d);
	printf("7.0 sgx=%u sgx_lc=%u\n", (b >> 2) & 1, (c >> 30) & 1);
	for (sub = 0; sub < 4; sub++) {
		__cpuid_count(0x12, sub, a, b, c, d);
		printf("12.%u %#x %#x %#x %#x\n", sub, a, b, c, d);
	}
	return 0;
}
