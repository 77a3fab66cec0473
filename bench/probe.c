/* bench/probe.c — memory-read and FMA-peak probes, run on n threads at once. */
#include "probe.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

#include "lmm/hal.h"

double probe_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double probe_median(double *v, size_t n) {
    if (n == 0) return 0.0;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* The read probe hands out 4 MiB chunks through an atomic counter, as the engine's
 * thread pool does: a static split would wait on the slower core whenever a neighbour
 * process runs, and measure the neighbour instead of the memory. */
#define PROBE_CHUNK ((size_t)4 << 20)

typedef struct {
    const unsigned char *buf;
    size_t bytes;
    atomic_size_t *next;   /* next chunk index (read probe) */
    uint64_t iters;
    volatile uint64_t sink;
} probe_job;

static uint64_t read_range(const unsigned char *p, size_t n) {
    lmm_isa isa = lmm_hal_isa_best();
    if (isa == LMM_ISA_AVX512) return probe_read_avx512(p, n);
    if (isa == LMM_ISA_AVX2) return probe_read_avx2(p, n);
    uint64_t r = 0;
    for (size_t i = 0; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        r ^= v;
    }
    return r;
}

static void *read_thread(void *arg) {
    probe_job *j = arg;
    uint64_t r = 0;
    for (;;) {
        size_t c = atomic_fetch_add(j->next, 1);
        size_t begin = c * PROBE_CHUNK;
        if (begin >= j->bytes) break;
        size_t n = j->bytes - begin < PROBE_CHUNK ? j->bytes - begin : PROBE_CHUNK;
        r ^= read_range(j->buf + begin, n);
    }
    j->sink = r;
    return NULL;
}

static void *fma_thread(void *arg) {
    probe_job *j = arg;
    lmm_isa isa = lmm_hal_isa_best();
    float r = isa == LMM_ISA_AVX512 ? probe_fma_avx512(j->iters) : probe_fma_avx2(j->iters);
    j->sink = (uint64_t)r;
    return NULL;
}

static double run_threads(void *(*fn)(void *), probe_job *jobs, int n) {
    pthread_t th[64];
    double t0 = probe_now();
    for (int i = 1; i < n; i++) pthread_create(&th[i], NULL, fn, &jobs[i]);
    fn(&jobs[0]);
    for (int i = 1; i < n; i++) pthread_join(th[i], NULL);
    return probe_now() - t0;
}

double probe_read_seconds(const void *buf, size_t bytes, int n_threads) {
    probe_job jobs[64];
    if (n_threads < 1) n_threads = 1;
    if (n_threads > 64) n_threads = 64;
    atomic_size_t next;
    atomic_init(&next, 0);
    for (int i = 0; i < n_threads; i++) {
        jobs[i].buf = (const unsigned char *)buf;
        jobs[i].bytes = bytes;
        jobs[i].next = &next;
    }
    return run_threads(read_thread, jobs, n_threads);
}

double probe_fma_peak_gflops(int n_threads) {
    probe_job jobs[64];
    if (n_threads < 1) n_threads = 1;
    if (n_threads > 64) n_threads = 64;
    lmm_isa isa = lmm_hal_isa_best();
    if (isa == LMM_ISA_SCALAR) return 0.0;
    const uint64_t iters = 20u * 1000u * 1000u;
    double flops_per_iter = isa == LMM_ISA_AVX512 ? 24.0 * 16.0 * 2.0 : 12.0 * 8.0 * 2.0;
    double best = 0.0;
    for (int rep = 0; rep < 3; rep++) {
        for (int i = 0; i < n_threads; i++) jobs[i].iters = iters;
        double s = run_threads(fma_thread, jobs, n_threads);
        double g = flops_per_iter * (double)iters * n_threads / s * 1e-9;
        if (g > best) best = g;
    }
    return best;
}
