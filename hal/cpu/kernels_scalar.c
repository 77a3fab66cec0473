/* hal/cpu/kernels_scalar.c — the reference path: plain C, one element at a time,
 * fmaf() for every fused multiply-add. Defines the results the SIMD paths must
 * reproduce bit for bit; runs on any CPU. */
#include <math.h>
#include <string.h>

#include "hal/cpu/hal_cpu.h"

static float dot_f32(const float *a, const float *b, size_t n) {
    float s[16] = {0};
    for (size_t k = 0; k < n; k++) s[k % 16] = fmaf(a[k], b[k], s[k % 16]);
    for (int l = 0; l < 8; l++) s[l] += s[l + 8];
    for (int l = 0; l < 4; l++) s[l] += s[l + 4];
    for (int l = 0; l < 2; l++) s[l] += s[l + 2];
    return s[0] + s[1];
}

#define HAL_DOT dot_f32
#include "hal/cpu/pointwise.h"

/* One weight element widened exactly to FP32. */
static inline float w_at(const void *row, lmm_dtype wt, size_t k) {
    const unsigned char *p = (const unsigned char *)row;
    uint16_t h;
    switch (wt) {
    case LMM_DTYPE_F16:
        memcpy(&h, p + 2 * k, 2);
        return lmm_f16_to_f32(h);
    case LMM_DTYPE_BF16:
        memcpy(&h, p + 2 * k, 2);
        return lmm_bf16_to_f32(h);
    default: {
        float f;
        memcpy(&f, p + 4 * k, 4);
        return f;
    }
    }
}

static void matmul_rows(const hal_mm *m, size_t r0, size_t r1) {
    const size_t esz = lmm_dtype_size(m->wt);
    for (size_t i = r0; i < r1; i++) {
        const unsigned char *row = (const unsigned char *)m->W + i * m->n_in * esz;
        for (size_t t = 0; t < m->n_tok; t++) {
            const float *x = m->x + t * m->n_in;
            float s[16] = {0};
            for (size_t k = 0; k < m->n_in; k++)
                s[k % 16] = fmaf(w_at(row, m->wt, k), x[k], s[k % 16]);
            float v = pw_reduce16(s);
            if (m->bias) v += m->bias[i];
            m->y[t * m->n_out + i] = v;
        }
    }
}

const hal_kernels hal_kernels_scalar = {
    .dot_f32 = dot_f32,
    .matmul_rows = matmul_rows,
    .expf_ = pw_expf,
    .softmax = pw_softmax,
    .silu_mul = pw_silu_mul,
    .attention_head = pw_attention_head,
    .attention_scores = pw_attention_scores,
    .attention_acc = pw_attention_acc,
};
