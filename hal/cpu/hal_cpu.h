/* hal/cpu/hal_cpu.h — internal interface between the public kernels (kernels.c)
 * and the per-ISA implementations (kernels_scalar.c, kernels_avx2.c,
 * kernels_avx512.c). Each ISA file fills one table; kernels.c dispatches through
 * the table of the current path. Every entry computes exactly the order of
 * operations written in lmm/hal.h and docs/exactness.md, so the tables are
 * interchangeable bit for bit. */
#ifndef LMM_HAL_CPU_H
#define LMM_HAL_CPU_H

#include <stddef.h>

#include "lmm/hal.h"

/* One matrix product (see lmm_matmul). */
typedef struct {
    float *y;          /* [n_tok][n_out] */
    const float *x;    /* [n_tok][n_in] */
    const void *W;     /* [n_out][n_in] of dtype wt, rows contiguous, maybe unaligned */
    const float *bias; /* [n_out] or NULL */
    lmm_dtype wt;
    size_t n_out, n_in, n_tok;
} hal_mm;

typedef struct {
    /* the fixed-order dot product */
    float (*dot_f32)(const float *a, const float *b, size_t n);
    /* y rows [r0, r1) for every token of m */
    void (*matmul_rows)(const hal_mm *m, size_t r0, size_t r1);
    float (*expf_)(float x);
    void (*softmax)(float *x, size_t n);
    void (*silu_mul)(float *gate, const float *up, size_t n);
    void (*attention_head)(float *out, const float *q, const float *k_cache,
                           const float *v_cache, size_t n_keys, size_t head_dim,
                           size_t kv_stride, float scale, float *scratch);
    void (*attention_scores)(float *s, const float *q, const float *k_cache, size_t n_keys,
                             size_t head_dim, size_t kv_stride, float scale);
    void (*attention_acc)(float *out, const float *p, const float *v_cache, size_t n_keys,
                          size_t head_dim, size_t kv_stride);
} hal_kernels;

extern const hal_kernels hal_kernels_scalar;
#if (defined(__x86_64__) || defined(__i386__)) && defined(LMM_HAL_HAVE_SIMD)
#define LMM_HAL_X86 1
extern const hal_kernels hal_kernels_avx2;
extern const hal_kernels hal_kernels_avx512;
#endif

/* The table of the current path (lmm_hal_isa()). */
const hal_kernels *hal_kernels_current(void);

#endif
