/* hal/cpu/isa.c — which kernel path runs: CPU feature detection (cpuid + the OS's
 * saved register state), the LMM_ISA environment override and lmm_hal_isa_set().
 * All paths give the same bits; the choice only changes speed. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hal/cpu/hal_cpu.h"
#include "lmm/error.h"

#ifdef LMM_HAL_X86
#include <cpuid.h>

static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static lmm_isa detect(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return LMM_ISA_SCALAR;
    const int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1,
              f16c = (c >> 29) & 1;
    if (!osxsave || !avx) return LMM_ISA_SCALAR;
    const uint64_t xcr0 = xgetbv0();
    if ((xcr0 & 0x6) != 0x6) return LMM_ISA_SCALAR; /* OS does not save ymm */
    if (__get_cpuid_max(0, NULL) < 7) return LMM_ISA_SCALAR;
    __cpuid_count(7, 0, a, b, c, d);
    const int avx2 = (b >> 5) & 1, avx512f = (b >> 16) & 1, avx512bw = (b >> 30) & 1,
              avx512vl = (b >> 31) & 1;
    if (!(avx2 && fma && f16c)) return LMM_ISA_SCALAR;
    if (avx512f && avx512bw && avx512vl && (xcr0 & 0xe6) == 0xe6) return LMM_ISA_AVX512;
    return LMM_ISA_AVX2;
}
#else
static lmm_isa detect(void) { return LMM_ISA_SCALAR; }
#endif

/* -1: not chosen yet. Relaxed atomics: the value is set at start-up or by tests. */
static _Atomic int g_best = -1;
static _Atomic int g_current = -1;

lmm_isa lmm_hal_isa_best(void) {
    int b = atomic_load_explicit(&g_best, memory_order_relaxed);
    if (b < 0) {
        b = (int)detect();
        atomic_store_explicit(&g_best, b, memory_order_relaxed);
    }
    return (lmm_isa)b;
}

const char *lmm_hal_isa_name(lmm_isa isa) {
    switch (isa) {
    case LMM_ISA_SCALAR: return "scalar";
    case LMM_ISA_AVX2: return "avx2";
    case LMM_ISA_AVX512: return "avx512";
    default: return "?";
    }
}

int lmm_hal_isa_parse(const char *s, lmm_isa *out) {
    for (int i = LMM_ISA_SCALAR; i <= LMM_ISA_AVX512; i++) {
        if (s && strcasecmp(s, lmm_hal_isa_name((lmm_isa)i)) == 0) {
            *out = (lmm_isa)i;
            return 0;
        }
    }
    return lmm_error_set("unknown ISA '%s' (expected scalar, avx2 or avx512)", s ? s : "");
}

int lmm_hal_isa_set(lmm_isa isa) {
    if ((int)isa < LMM_ISA_SCALAR || (int)isa > LMM_ISA_AVX512)
        return lmm_error_set("lmm_hal_isa_set: invalid ISA %d", (int)isa);
    if (isa > lmm_hal_isa_best())
        return lmm_error_set("lmm_hal_isa_set: this CPU does not support %s (best: %s)",
                             lmm_hal_isa_name(isa), lmm_hal_isa_name(lmm_hal_isa_best()));
    atomic_store_explicit(&g_current, (int)isa, memory_order_relaxed);
    return 0;
}

lmm_isa lmm_hal_isa(void) {
    int c = atomic_load_explicit(&g_current, memory_order_relaxed);
    if (c < 0) {
        lmm_isa isa = lmm_hal_isa_best();
        const char *env = getenv("LMM_ISA");
        lmm_isa want;
        /* An unknown or unsupported LMM_ISA falls back to the best path. */
        if (env && *env && lmm_hal_isa_parse(env, &want) == 0 && want <= isa) isa = want;
        c = (int)isa;
        atomic_store_explicit(&g_current, c, memory_order_relaxed);
    }
    return (lmm_isa)c;
}

const hal_kernels *hal_kernels_current(void) {
    switch (lmm_hal_isa()) {
#ifdef LMM_HAL_X86
    case LMM_ISA_AVX512: return &hal_kernels_avx512;
    case LMM_ISA_AVX2: return &hal_kernels_avx2;
#endif
    default: return &hal_kernels_scalar;
    }
}
