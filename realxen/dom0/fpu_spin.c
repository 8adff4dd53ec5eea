/*
 * The real-Xen bed's FPU check (realxen/): loads a pattern of its own
 * into xmm0..xmm7, spins with no system call (so only preemption and
 * vCPU switches take the CPU away), and checks every register still
 * holds it. Run in dom0 while a domU runs it as init: if Xen's FPU
 * switching leaks one domain's registers into the other, this sees it.
 *
 * usage: fpu_spin SECONDS   (as PID 1: spins until the domain dies)
 * prints "fpu_spin: rounds R bad B"; exits 1 if B > 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int secs = argc > 1 ? atoi(argv[1]) : 0;
    if (getpid() == 1) {
        secs = 1 << 30;
        printf("fpu_spin: spinning as init\n");
        fflush(stdout);
    }
    unsigned long long pattern[2], out[8][2];
    unsigned long long seed = (unsigned long long)getpid() * 0x9e3779b97f4a7c15ULL;
    pattern[0] = seed ^ 0x1111111111111111ULL;
    pattern[1] = ~seed;
    long rounds = 0, bad = 0;
    time_t end = time(NULL) + secs;
    while (time(NULL) < end) {
        __asm__ volatile(
            "movdqu (%0), %%xmm0\n\t"
            "movdqa %%xmm0, %%xmm1\n\tmovdqa %%xmm0, %%xmm2\n\tmovdqa %%xmm0, %%xmm3\n\t"
            "movdqa %%xmm0, %%xmm4\n\tmovdqa %%xmm0, %%xmm5\n\tmovdqa %%xmm0, %%xmm6\n\t"
            "movdqa %%xmm0, %%xmm7\n\t"
            "mov $20000000, %%ecx\n1:\tdec %%ecx\n\tjnz 1b\n\t"
            "movdqu %%xmm0, 0(%1)\n\tmovdqu %%xmm1, 16(%1)\n\tmovdqu %%xmm2, 32(%1)\n\t"
            "movdqu %%xmm3, 48(%1)\n\tmovdqu %%xmm4, 64(%1)\n\tmovdqu %%xmm5, 80(%1)\n\t"
            "movdqu %%xmm6, 96(%1)\n\tmovdqu %%xmm7, 112(%1)\n\t"
            : : "r"(pattern), "r"(out)
            : "ecx", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7");
        for (int r = 0; r < 8; r++)
            if (memcmp(out[r], pattern, sizeof pattern))
                bad++;
        rounds++;
    }
    printf("fpu_spin: rounds %ld bad %ld\n", rounds, bad);
    return bad != 0;
}
