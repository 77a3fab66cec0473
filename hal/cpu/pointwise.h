/* hal/cpu/pointwise.h — the element-wise kernels (exp, softmax, SiLU, the
 * attention of one head) written once, in plain C with explicit fmaf(), and
 * included by every ISA file. Each file compiles them with its own flags
 * (fmaf becomes one instruction where -mfma is on, a correctly rounded libm call
 * otherwise); the order of operations is the same text everywhere, so the
 * results are the same bits on every path.
 *
 * The including file defines HAL_DOT(a, b, n): its fixed-order dot product, and
 * may define HAL_ATTN_SCORES(s, q, k, n_keys, head_dim, kv_stride, scale):
 * s[t] = HAL_DOT(q, k[t], head_dim) * scale, several keys at once, and
 * HAL_ATTN_ACC(out, p, v, n_keys, head_dim, kv_stride): the weighted sum of value
 * rows accumulated into out (out[d] = fmaf(p[t], v[t][d], out[d]) for t increasing,
 * starting from out's values), vectorised over d. */
#ifndef LMM_HAL_POINTWISE_H
#define LMM_HAL_POINTWISE_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float pw_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* exp(x) for float, ~1 ulp (see docs/exactness.md):
 *   k = nearest integer to x*log2(e)        (one fmaf + the 1.5*2^23 rounding trick)
 *   r = x - k*ln2                            (Cody-Waite: ln2 = L_hi + L_lo; the
 *                                             first fmaf is exact)
 *   p = e^r on |r| <= 0.35, Taylor degree 7, Horner with fmaf
 *   result = p * 2^k                         (two exact-then-one-rounding multiplies
 *                                             when the result is subnormal) */
static inline float pw_expf(float x) {
    if (x != x) return x + x; /* NaN */
    if (x > 89.0f) return INFINITY;
    if (x < -104.0f) return 0.0f;
    const float shifter = 0x1.8p23f;
    float kf = fmaf(x, 0x1.715476p+0f, shifter) - shifter; /* round(x / ln2) */
    float r = fmaf(-kf, 0x1.62e430p-1f, x);                  /* exact */
    r = fmaf(-kf, -0x1.05c610p-29f, r);
    float p = 0x1.a01a02p-13f;           /* 1/5040 */
    p = fmaf(p, r, 0x1.6c16c2p-10f);     /* 1/720 */
    p = fmaf(p, r, 0x1.111112p-7f);      /* 1/120 */
    p = fmaf(p, r, 0x1.555556p-5f);      /* 1/24 */
    p = fmaf(p, r, 0x1.555556p-3f);      /* 1/6 */
    p = fmaf(p, r, 0x1.000000p-1f);      /* 1/2 */
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    int k = (int)kf; /* -150 .. 129 */
    if (k > 127) return (p * pw_from_bits((uint32_t)(127 + 127) << 23)) * 2.0f;
    if (k < -125) /* p * 2^(k+100) is exact, then one rounding into the subnormals */
        return (p * pw_from_bits((uint32_t)(k + 100 + 127) << 23)) * 0x1p-100f;
    return p * pw_from_bits((uint32_t)(k + 127) << 23);
}

/* Softmax in place: m = max (first element, then x[i] > m); e = exp(x - m);
 * s = e[0] + e[1] + ... in index order from +0; x = e / s. */
static inline void pw_softmax(float *x, size_t n) {
    if (n == 0) return;
    float m = x[0];
    for (size_t i = 1; i < n; i++)
        if (x[i] > m) m = x[i];
    float s = 0.0f;
    for (size_t i = 0; i < n; i++) {
        x[i] = pw_expf(x[i] - m);
        s += x[i];
    }
    for (size_t i = 0; i < n; i++) x[i] = x[i] / s;
}

static inline void pw_silu_mul(float *gate, const float *up, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float g = gate[i];
        gate[i] = (g / (1.0f + pw_expf(-g))) * up[i];
    }
}

/* s[t] = dot(q, k row t) * scale for t < n_keys. Each score depends only on its own
 * key row, so the keys may come in any number of calls (blocks of positions). */
static inline void pw_attention_scores(float *s, const float *q, const float *k_cache, size_t n_keys,
                                       size_t head_dim, size_t kv_stride, float scale) {
#ifdef HAL_ATTN_SCORES
    HAL_ATTN_SCORES(s, q, k_cache, n_keys, head_dim, kv_stride, scale);
#else
    for (size_t t = 0; t < n_keys; t++) s[t] = HAL_DOT(q, k_cache + t * kv_stride, head_dim) * scale;
#endif
}

/* out[d] = fmaf(p[t], v[t][d], out[d]) for t increasing: ACCUMULATES into out (the
 * caller starts it at +0). Keys split over several calls in position order give the
 * same bits as one call: only the exact partial sums are stored and reloaded. */
static inline void pw_attention_acc(float *out, const float *p, const float *v_cache, size_t n_keys,
                                    size_t head_dim, size_t kv_stride) {
#ifdef HAL_ATTN_ACC
    HAL_ATTN_ACC(out, p, v_cache, n_keys, head_dim, kv_stride);
#else
    for (size_t t = 0; t < n_keys; t++) {
        const float *v = v_cache + t * kv_stride;
        const float pt = p[t];
        for (size_t d = 0; d < head_dim; d++) out[d] = fmaf(pt, v[d], out[d]);
    }
#endif
}

/* out[d] = sum over t of fmaf(p[t], v[t][d], acc), t increasing, acc from +0: the
 * scores, the softmax, the weighted sum (the three steps the paged KV path also runs). */
static inline void pw_attention_head(float *out, const float *q, const float *k_cache,
                                     const float *v_cache, size_t n_keys, size_t head_dim,
                                     size_t kv_stride, float scale, float *scratch) {
    pw_attention_scores(scratch, q, k_cache, n_keys, head_dim, kv_stride, scale);
    pw_softmax(scratch, n_keys);
    for (size_t d = 0; d < head_dim; d++) out[d] = 0.0f;
    pw_attention_acc(out, scratch, v_cache, n_keys, head_dim, kv_stride);
}

/* The fixed reduction tree of 16 partial sums (lmm/hal.h). s is clobbered. */
static inline float pw_reduce16(float *s) {
    for (int l = 0; l < 8; l++) s[l] += s[l + 8];
    for (int l = 0; l < 4; l++) s[l] += s[l + 4];
    for (int l = 0; l < 2; l++) s[l] += s[l + 2];
    return s[0] + s[1];
}

#endif
