/* bench/probe_avx512.c — AVX-512 inner loops of the limit probes (compiled with -mavx512f). */
#include <immintrin.h>

#include "probe.h"

uint64_t probe_read_avx512(const void *buf, size_t bytes) {
    const unsigned char *p = (const unsigned char *)buf;
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 256 <= bytes; i += 256) {
        a0 = _mm512_xor_si512(a0, _mm512_loadu_si512((const void *)(p + i)));
        a1 = _mm512_xor_si512(a1, _mm512_loadu_si512((const void *)(p + i + 64)));
        a2 = _mm512_xor_si512(a2, _mm512_loadu_si512((const void *)(p + i + 128)));
        a3 = _mm512_xor_si512(a3, _mm512_loadu_si512((const void *)(p + i + 192)));
    }
    a0 = _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3));
    uint64_t r = (uint64_t)_mm512_reduce_add_epi64(a0);
    for (; i < bytes; i++) r += p[i];
    return r;
}

/* 24 independent 16-lane FMA chains: enough to cover FMA latency x 2 ports. */
float probe_fma_avx512(uint64_t iters) {
    __m512 acc[24];
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (int j = 0; j < 24; j++) acc[j] = _mm512_set1_ps((float)j);
    for (uint64_t i = 0; i < iters; i++) {
        for (int j = 0; j < 24; j++) acc[j] = _mm512_fmadd_ps(acc[j], m, c);
    }
    __m512 s = acc[0];
    for (int j = 1; j < 24; j++) s = _mm512_add_ps(s, acc[j]);
    return _mm512_reduce_add_ps(s);
}
