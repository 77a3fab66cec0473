/* hal/cpu/kernels.c — the public kernels of lmm/hal.h: argument handling, the
 * split of matrix products into row chunks over the thread pool, and dispatch
 * to the table of the current ISA path (hal_cpu.h). The order of floating-point
 * operations is fixed by the ISA files, never by the split: a row is computed
 * whole by one thread, and each (token, row) output is one dot product. */
#include <math.h>

#include "hal/cpu/hal_cpu.h"
#include "lmm/error.h"

float lmm_dot_f32(const float *a, const float *b, size_t n) {
    return hal_kernels_current()->dot_f32(a, b, n);
}

typedef struct {
    hal_mm m;
    void (*rows)(const hal_mm *m, size_t r0, size_t r1);
} mm_job;

static void mm_range(void *arg, size_t begin, size_t end) {
    const mm_job *j = (const mm_job *)arg;
    j->rows(&j->m, begin, end);
}

void lmm_matmul(lmm_threadpool *p, float *y, const float *x, const void *W, lmm_dtype wt,
                const float *bias, size_t n_out, size_t n_in, size_t n_tok) {
    if (n_out == 0 || n_tok == 0) return;
    const size_t esz = lmm_dtype_size(wt);
    if (esz == 0) { /* a caller bug: nothing sensible to compute */
        lmm_error_set("lmm_matmul: invalid weight dtype %d", (int)wt);
        return;
    }
    mm_job j = {
        .m = {.y = y, .x = x, .W = W, .bias = bias, .wt = wt,
              .n_out = n_out, .n_in = n_in, .n_tok = n_tok},
        .rows = hal_kernels_current()->matmul_rows,
    };
    /* Row chunks: small enough that a slower core simply takes fewer of them,
     * large enough that the claim (one atomic) is noise. Multiples of 12 rows
     * keep the register blocks of the prefill kernel full. */
    const size_t row_bytes = n_in * esz * (n_tok < 8 ? n_tok : 8);
    size_t chunk = row_bytes ? (size_t)(256 * 1024) / row_bytes : n_out;
    if (chunk < 12) chunk = 12;
    if (chunk > 96) chunk = 96;
    chunk = chunk / 12 * 12;
    const int nt = lmm_threadpool_size(p);
    /* few rows: make sure every thread gets work */
    while (chunk > 12 && n_out / chunk < (size_t)nt * 4) chunk -= 12;
    lmm_threadpool_for(p, n_out, chunk, mm_range, &j);
}

void lmm_rmsnorm(float *out, const float *x, const float *w, size_t n, float eps) {
    const float ss = lmm_dot_f32(x, x, n);
    const float r = 1.0f / sqrtf(ss / (float)n + eps);
    for (size_t i = 0; i < n; i++) out[i] = (x[i] * r) * w[i];
}

void lmm_softmax(float *x, size_t n) { hal_kernels_current()->softmax(x, n); }

void lmm_silu_mul(float *gate, const float *up, size_t n) {
    hal_kernels_current()->silu_mul(gate, up, n);
}

float lmm_expf(float x) { return hal_kernels_current()->expf_(x); }

void lmm_rope(float *vec, size_t n_heads, size_t head_dim, const float *cos_sin, int neox) {
    const size_t half = head_dim / 2;
    for (size_t h = 0; h < n_heads; h++) {
        float *v = vec + h * head_dim;
        for (size_t i = 0; i < half; i++) {
            const float c = cos_sin[2 * i], s = cos_sin[2 * i + 1];
            float *pa = neox ? &v[i] : &v[2 * i];
            float *pb = neox ? &v[i + half] : &v[2 * i + 1];
            const float a = *pa, b = *pb;
            /* two roundings each (products, then the sum); -ffp-contract=off keeps it so */
            const float ac = a * c, bs = b * s, as = a * s, bc = b * c;
            *pa = ac - bs;
            *pb = as + bc;
        }
    }
}

void lmm_attention_head(float *out, const float *q, const float *k_cache, const float *v_cache,
                        size_t n_keys, size_t head_dim, size_t kv_stride, float scale,
                        float *scratch) {
    hal_kernels_current()->attention_head(out, q, k_cache, v_cache, n_keys, head_dim, kv_stride,
                                          scale, scratch);
}

void lmm_attention_scores(float *s, const float *q, const float *k_cache, size_t n_keys, size_t head_dim,
                          size_t kv_stride, float scale) {
    hal_kernels_current()->attention_scores(s, q, k_cache, n_keys, head_dim, kv_stride, scale);
}

void lmm_attention_acc(float *out, const float *p, const float *v_cache, size_t n_keys, size_t head_dim,
                       size_t kv_stride) {
    hal_kernels_current()->attention_acc(out, p, v_cache, n_keys, head_dim, kv_stride);
}
