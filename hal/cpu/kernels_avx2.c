/* hal/cpu/kernels_avx2.c — the AVX2 path (AVX2 + FMA + F16C).
 *
 * A dot product's 16 partial sums live in two ymm registers: lanes 0-7 and
 * lanes 8-15 of lmm/hal.h (element k goes to lane k % 16), one vfmadd per
 * element as in the scalar path's fmaf. The last n % 16 elements are loaded
 * into zero-filled registers and merged with a blend, so lanes past the end
 * are left exactly as they were. Same reduction tree, same exact widening of
 * F16 (vcvtph2ps) and BF16 (shift by 16): the same bits as every other path.
 *
 * Matrix products: a micro-kernel of T tokens x R rows (2*T*R ymm accumulators). */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "hal/cpu/hal_cpu.h"

#define AI static inline __attribute__((always_inline))

typedef struct {
    __m256 lo, hi; /* lanes 0-7, 8-15 */
} v16;

/* The tree of lmm/hal.h: s[l]+=s[l+8]; s[l]+=s[l+4]; s[l]+=s[l+2]; s[0]+s[1]. */
AI float reduce16(v16 v) {
    __m256 s8 = _mm256_add_ps(v.lo, v.hi);
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
    return _mm_cvtss_f32(s1);
}

AI __m256 bf16x8(__m128i h) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* 16 weights from p (element k of a row), widened exactly. */
AI v16 ldw(const unsigned char *p, lmm_dtype wt) {
    v16 r;
    if (wt == LMM_DTYPE_F16) {
        r.lo = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
        r.hi = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 16)));
    } else if (wt == LMM_DTYPE_BF16) {
        r.lo = bf16x8(_mm_loadu_si128((const __m128i *)p));
        r.hi = bf16x8(_mm_loadu_si128((const __m128i *)(p + 16)));
    } else {
        r.lo = _mm256_loadu_ps((const float *)p);
        r.hi = _mm256_loadu_ps((const float *)p + 8);
    }
    return r;
}

/* Lane masks for the last rem (1..15) elements: all-ones where lane < rem. */
typedef struct {
    __m256i lo, hi;
} m16;

AI m16 tail_mask(size_t rem) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i r = _mm256_set1_epi32((int)rem);
    m16 m = {_mm256_cmpgt_epi32(r, idx),
             _mm256_cmpgt_epi32(r, _mm256_add_epi32(idx, _mm256_set1_epi32(8)))};
    return m;
}

AI v16 ldf_mask(const float *p, m16 m) {
    v16 r = {_mm256_maskload_ps(p, m.lo), _mm256_maskload_ps(p + 8, m.hi)};
    return r;
}

/* Tail weights: only rem elements are read, the rest are 0. */
AI v16 ldw_tail(const unsigned char *p, lmm_dtype wt, size_t rem, m16 m) {
    if (wt == LMM_DTYPE_F32) return ldf_mask((const float *)p, m);
    uint16_t buf[16] = {0};
    memcpy(buf, p, rem * 2);
    return ldw((const unsigned char *)buf, wt);
}

AI v16 fma16(v16 a, v16 b, v16 c) {
    v16 r = {_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
    return r;
}

/* Lanes of m take fma(a, b, c); the others keep c. */
AI v16 fma16_mask(v16 a, v16 b, v16 c, m16 m) {
    v16 f = fma16(a, b, c);
    v16 r = {_mm256_blendv_ps(c.lo, f.lo, _mm256_castsi256_ps(m.lo)),
             _mm256_blendv_ps(c.hi, f.hi, _mm256_castsi256_ps(m.hi))};
    return r;
}

static float dot_f32(const float *a, const float *b, size_t n) {
    v16 acc = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    size_t k = 0;
    for (; k + 16 <= n; k += 16)
        acc = fma16(ldw((const unsigned char *)(a + k), LMM_DTYPE_F32),
                    ldw((const unsigned char *)(b + k), LMM_DTYPE_F32), acc);
    if (k < n) {
        const m16 m = tail_mask(n - k);
        acc = fma16_mask(ldf_mask(a + k, m), ldf_mask(b + k, m), acc, m);
    }
    return reduce16(acc);
}

/* out[d] = sum over t increasing of fma(p[t], v[t][d], .) from out[d]; 32 values of d
 * per pass kept in registers, each lane its own chain in the order of the scalar loop. */
static void attn_acc(float *out, const float *p, const float *v, size_t n_keys, size_t hd,
                     size_t stride) {
    size_t d = 0;
    for (; d + 32 <= hd; d += 32) {
        __m256 a0 = _mm256_loadu_ps(out + d), a1 = _mm256_loadu_ps(out + d + 8),
               a2 = _mm256_loadu_ps(out + d + 16), a3 = _mm256_loadu_ps(out + d + 24);
        for (size_t t = 0; t < n_keys; t++) {
            const float *vr = v + t * stride + d;
            const __m256 pt = _mm256_set1_ps(p[t]);
            a0 = _mm256_fmadd_ps(pt, _mm256_loadu_ps(vr), a0);
            a1 = _mm256_fmadd_ps(pt, _mm256_loadu_ps(vr + 8), a1);
            a2 = _mm256_fmadd_ps(pt, _mm256_loadu_ps(vr + 16), a2);
            a3 = _mm256_fmadd_ps(pt, _mm256_loadu_ps(vr + 24), a3);
        }
        _mm256_storeu_ps(out + d, a0);
        _mm256_storeu_ps(out + d + 8, a1);
        _mm256_storeu_ps(out + d + 16, a2);
        _mm256_storeu_ps(out + d + 24, a3);
    }
    for (; d + 8 <= hd; d += 8) {
        __m256 a = _mm256_loadu_ps(out + d);
        for (size_t t = 0; t < n_keys; t++)
            a = _mm256_fmadd_ps(_mm256_set1_ps(p[t]), _mm256_loadu_ps(v + t * stride + d), a);
        _mm256_storeu_ps(out + d, a);
    }
    for (; d < hd; d++) {
        float a = out[d];
        for (size_t t = 0; t < n_keys; t++) a = fmaf(p[t], v[t * stride + d], a);
        out[d] = a;
    }
}

/* s[t] = dot(q, k row t) * scale, two keys side by side (each accumulator the
 * dot product of dot_f32 in its order). */
static void attn_scores(float *s, const float *q, const float *k, size_t n_keys, size_t hd,
                        size_t stride, float scale) {
    size_t t = 0;
    const size_t hd16 = hd / 16 * 16;
    for (; t + 2 <= n_keys; t += 2) {
        const float *k0 = k + t * stride, *k1 = k0 + stride;
        v16 a0 = {_mm256_setzero_ps(), _mm256_setzero_ps()}, a1 = a0;
        for (size_t d = 0; d < hd16; d += 16) {
            const v16 qv = ldw((const unsigned char *)(q + d), LMM_DTYPE_F32);
            a0 = fma16(qv, ldw((const unsigned char *)(k0 + d), LMM_DTYPE_F32), a0);
            a1 = fma16(qv, ldw((const unsigned char *)(k1 + d), LMM_DTYPE_F32), a1);
        }
        if (hd16 < hd) {
            const m16 m = tail_mask(hd - hd16);
            const v16 qv = ldf_mask(q + hd16, m);
            a0 = fma16_mask(qv, ldf_mask(k0 + hd16, m), a0, m);
            a1 = fma16_mask(qv, ldf_mask(k1 + hd16, m), a1, m);
        }
        s[t] = reduce16(a0) * scale;
        s[t + 1] = reduce16(a1) * scale;
    }
    for (; t < n_keys; t++) s[t] = dot_f32(q, k + t * stride, hd) * scale;
}

#define HAL_DOT dot_f32
#define HAL_ATTN_SCORES attn_scores
#define HAL_ATTN_ACC attn_acc
#include "hal/cpu/pointwise.h"

/* T tokens (t0..) x R rows (i0..): y[t][i] = dot(W row i, x[t]) (+ bias[i]). */
AI void ukernel(const hal_mm *m, lmm_dtype wt, size_t i0, size_t t0, const int T, const int R) {
    const size_t esz = wt == LMM_DTYPE_F32 ? 4 : 2;
    const size_t n = m->n_in;
    const unsigned char *w[4];
    const float *x[2];
    v16 acc[2][4];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) w[r] = (const unsigned char *)m->W + (i0 + (size_t)r) * n * esz;
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
        x[t] = m->x + (t0 + (size_t)t) * n;
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) acc[t][r].lo = acc[t][r].hi = _mm256_setzero_ps();
    }
    size_t k = 0;
    for (; k + 16 <= n; k += 16) {
        v16 xv[2];
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) xv[t] = ldw((const unsigned char *)(x[t] + k), LMM_DTYPE_F32);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const v16 wv = ldw(w[r] + k * esz, wt);
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) acc[t][r] = fma16(wv, xv[t], acc[t][r]);
        }
    }
    if (k < n) {
        const m16 mk = tail_mask(n - k);
        v16 xv[2];
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) xv[t] = ldf_mask(x[t] + k, mk);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const v16 wv = ldw_tail(w[r] + k * esz, wt, n - k, mk);
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) acc[t][r] = fma16_mask(wv, xv[t], acc[t][r], mk);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
        float *y = m->y + (t0 + (size_t)t) * m->n_out + i0;
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            float v = reduce16(acc[t][r]);
            if (m->bias) v += m->bias[i0 + (size_t)r];
            y[r] = v;
        }
    }
}

AI void rows_wt(const hal_mm *m, size_t r0, size_t r1, lmm_dtype wt) {
    const size_t xbytes = m->n_in * sizeof(float);
    size_t tb = xbytes ? (size_t)(256 * 1024) / xbytes : m->n_tok;
    tb = tb < 2 ? 2 : tb / 2 * 2;
    for (size_t tb0 = 0; tb0 < m->n_tok; tb0 += tb) {
        const size_t tb1 = m->n_tok - tb0 < tb ? m->n_tok : tb0 + tb;
        size_t i = r0;
        if (tb1 - tb0 == 1) { /* one token: the GEMV kernel, 4 rows at once */
            for (; i + 4 <= r1; i += 4) ukernel(m, wt, i, tb0, 1, 4);
        } else {
            for (; i + 3 <= r1; i += 3) {
                size_t t = tb0;
                for (; t + 2 <= tb1; t += 2) ukernel(m, wt, i, t, 2, 3);
                for (; t < tb1; t++) ukernel(m, wt, i, t, 1, 3);
            }
        }
        for (; i < r1; i++) {
            size_t t = tb0;
            for (; t + 2 <= tb1; t += 2) ukernel(m, wt, i, t, 2, 1);
            for (; t < tb1; t++) ukernel(m, wt, i, t, 1, 1);
        }
    }
}

static void rows_f32(const hal_mm *m, size_t r0, size_t r1) { rows_wt(m, r0, r1, LMM_DTYPE_F32); }
static void rows_f16(const hal_mm *m, size_t r0, size_t r1) { rows_wt(m, r0, r1, LMM_DTYPE_F16); }
static void rows_bf16(const hal_mm *m, size_t r0, size_t r1) { rows_wt(m, r0, r1, LMM_DTYPE_BF16); }

static void matmul_rows(const hal_mm *m, size_t r0, size_t r1) {
    switch (m->wt) {
    case LMM_DTYPE_F16: rows_f16(m, r0, r1); break;
    case LMM_DTYPE_BF16: rows_bf16(m, r0, r1); break;
    default: rows_f32(m, r0, r1); break;
    }
}

const hal_kernels hal_kernels_avx2 = {
    .dot_f32 = dot_f32,
    .matmul_rows = matmul_rows,
    .expf_ = pw_expf,
    .softmax = pw_softmax,
    .silu_mul = pw_silu_mul,
    .attention_head = pw_attention_head,
    .attention_scores = pw_attention_scores,
    .attention_acc = pw_attention_acc,
};
