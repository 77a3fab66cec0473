/* bench/probe.h — the physical limits a benchmark compares against, measured in the
 * same run: memory read bandwidth (a plain read of the same bytes) and FP32 FMA peak. */
#ifndef LMM_BENCH_PROBE_H
#define LMM_BENCH_PROBE_H

#include <stddef.h>
#include <stdint.h>

/* Reads `bytes` bytes of buf with n_threads threads (each a contiguous share, widest
 * vector loads the CPU has); returns seconds taken. */
double probe_read_seconds(const void *buf, size_t bytes, int n_threads);
/* FP32 FMA peak of n_threads threads in GFLOP/s (independent FMA chains, widest vectors). */
double probe_fma_peak_gflops(int n_threads);
/* Monotonic clock in seconds. */
double probe_now(void);
/* Median of n values (sorts v in place). */
double probe_median(double *v, size_t n);

/* ISA-specific inner loops (probe_avx2.c / probe_avx512.c). */
uint64_t probe_read_avx512(const void *buf, size_t bytes);
uint64_t probe_read_avx2(const void *buf, size_t bytes);
float probe_fma_avx512(uint64_t iters);
float probe_fma_avx2(uint64_t iters);

#endif
