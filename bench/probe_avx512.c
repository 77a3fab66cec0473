/* bench/probe_avx512.c — AVX-512 inner loops of the limit probes (compiled with -mavx512f). */
#include <immintrin.h>

#include "probe.h"

/* Reads 4 streams at once (the four quarters of the range), as a GEMV over several rows
 * does: one sequential stream per core leaves memory-level parallelism unused and would
 * measure the prefetcher rather than the memory. */
uint64_t probe_read_avx512(const void *buf, size_t bytes) {
    const unsigned char *p = (const unsigned char *)buf;
    const size_t q = bytes / 4 / 128 * 128;
    const unsigned char *s0 = p, *s1 = p + q, *s2 = p + 2 * q, *s3 = p + 3 * q;
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < q; i += 128) {
        a0 = _mm512_xor_si512(a0, _mm512_xor_si512(_mm512_loadu_si512((const void *)(s0 + i)),
                                                   _mm512_loadu_si512((const void *)(s0 + i + 64))));
        a1 = _mm512_xor_si512(a1, _mm512_xor_si512(_mm512_loadu_si512((const void *)(s1 + i)),
                                                   _mm512_loadu_si512((const void *)(s1 + i + 64))));
        a2 = _mm512_xor_si512(a2, _mm512_xor_si512(_mm512_loadu_si512((const void *)(s2 + i)),
                                                   _mm512_loadu_si512((const void *)(s2 + i + 64))));
        a3 = _mm512_xor_si512(a3, _mm512_xor_si512(_mm512_loadu_si512((const void *)(s3 + i)),
                                                   _mm512_loadu_si512((const void *)(s3 + i + 64))));
    }
    a0 = _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3));
    uint64_t r = (uint64_t)_mm512_reduce_add_epi64(a0);
    for (size_t i = 4 * q; i < bytes; i++) r += p[i];
    return r;
}

/* 24 independent 16-lane FMA chains, each a named variable so they stay in registers
 * (an array indexed in a loop may live on the stack and measure load/store instead). */
#define FMA_CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) \
    X(12) X(13) X(14) X(15) X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23)
float probe_fma_avx512(uint64_t iters) {
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
#define DECL(j) __m512 a##j = _mm512_set1_ps((float)(j));
    FMA_CHAINS(DECL)
#undef DECL
    for (uint64_t i = 0; i < iters; i++) {
#define STEP(j) a##j = _mm512_fmadd_ps(a##j, m, c);
        FMA_CHAINS(STEP)
#undef STEP
    }
    __m512 s = _mm512_setzero_ps();
#define SUM(j) s = _mm512_add_ps(s, a##j);
    FMA_CHAINS(SUM)
#undef SUM
    return _mm512_reduce_add_ps(s);
}
