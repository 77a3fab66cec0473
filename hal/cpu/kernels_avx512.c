/* hal/cpu/kernels_avx512.c — the AVX-512 path (F, BW, VL + FMA, F16C).
 *
 * A dot product is one zmm of 16 partial sums: lane l accumulates elements
 * k = l, l+16, l+32, ... with one vfmadd each (the fmaf of the scalar path).
 * The last n % 16 elements use masked loads and a masked FMA, so lanes past the
 * end are left untouched (not even fma(0,0,s)). The 16 lanes are then added in
 * the tree of lmm/hal.h. F16 is widened with vcvtph2ps, BF16 by a 16-bit shift:
 * both exact, so the products are those of the scalar path.
 *
 * Matrix products use a register-blocked micro-kernel: T tokens x R rows of
 * independent 16-lane accumulators (T*R zmm), each the dot product above. The
 * blocking only changes which dot products run side by side, never the order
 * inside one. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "hal/cpu/hal_cpu.h"

#define AI static inline __attribute__((always_inline))

/* The tree of lmm/hal.h: s[l]+=s[l+8]; s[l]+=s[l+4]; s[l]+=s[l+2]; s[0]+s[1]. */
AI float reduce16(__m512 v) {
    __m256 lo = _mm512_castps512_ps256(v);
    __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    __m256 s8 = _mm256_add_ps(lo, hi);
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
    return _mm_cvtss_f32(s1);
}

/* 16 weights from p (element k of a row), widened exactly. */
AI __m512 ldw(const unsigned char *p, lmm_dtype wt) {
    if (wt == LMM_DTYPE_F16) return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
    if (wt == LMM_DTYPE_BF16)
        return _mm512_castsi512_ps(_mm512_slli_epi32(
            _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
    return _mm512_loadu_ps((const float *)p);
}

/* The same for the lanes of mask m; other lanes are 0 and never read from memory. */
AI __m512 ldw_mask(const unsigned char *p, lmm_dtype wt, __mmask16 m) {
    if (wt == LMM_DTYPE_F16) return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
    if (wt == LMM_DTYPE_BF16)
        return _mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
    return _mm512_maskz_loadu_ps(m, p);
}

static float dot_f32(const float *a, const float *b, size_t n) {
    __m512 acc = _mm512_setzero_ps();
    size_t k = 0;
    for (; k + 16 <= n; k += 16)
        acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + k), _mm512_loadu_ps(b + k), acc);
    if (k < n) {
        const __mmask16 m = (__mmask16)((1u << (n - k)) - 1);
        acc = _mm512_mask3_fmadd_ps(_mm512_maskz_loadu_ps(m, a + k),
                                    _mm512_maskz_loadu_ps(m, b + k), acc, m);
    }
    return reduce16(acc);
}

/* out[d] = sum over t increasing of fma(p[t], v[t][d], .) from out[d]; 64 values of d
 * per pass kept in registers, each lane its own chain in the order of the scalar loop. */
static void attn_acc(float *out, const float *p, const float *v, size_t n_keys, size_t hd,
                     size_t stride) {
    size_t d = 0;
    for (; d + 64 <= hd; d += 64) {
        __m512 a0 = _mm512_loadu_ps(out + d), a1 = _mm512_loadu_ps(out + d + 16),
               a2 = _mm512_loadu_ps(out + d + 32), a3 = _mm512_loadu_ps(out + d + 48);
        for (size_t t = 0; t < n_keys; t++) {
            const float *vr = v + t * stride + d;
            const __m512 pt = _mm512_set1_ps(p[t]);
            a0 = _mm512_fmadd_ps(pt, _mm512_loadu_ps(vr), a0);
            a1 = _mm512_fmadd_ps(pt, _mm512_loadu_ps(vr + 16), a1);
            a2 = _mm512_fmadd_ps(pt, _mm512_loadu_ps(vr + 32), a2);
            a3 = _mm512_fmadd_ps(pt, _mm512_loadu_ps(vr + 48), a3);
        }
        _mm512_storeu_ps(out + d, a0);
        _mm512_storeu_ps(out + d + 16, a1);
        _mm512_storeu_ps(out + d + 32, a2);
        _mm512_storeu_ps(out + d + 48, a3);
    }
    for (; d < hd; d += 16) {
        const __mmask16 m = hd - d >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (hd - d)) - 1);
        __m512 a = _mm512_maskz_loadu_ps(m, out + d);
        for (size_t t = 0; t < n_keys; t++)
            a = _mm512_fmadd_ps(_mm512_set1_ps(p[t]), _mm512_maskz_loadu_ps(m, v + t * stride + d), a);
        _mm512_mask_storeu_ps(out + d, m, a);
    }
}

/* s[t] = dot(q, k row t) * scale, four keys side by side (four accumulators,
 * each the dot product of dot_f32 in its order). */
static void attn_scores(float *s, const float *q, const float *k, size_t n_keys, size_t hd,
                        size_t stride, float scale) {
    size_t t = 0;
    const size_t hd16 = hd / 16 * 16;
    const __mmask16 mk = (__mmask16)((1u << (hd - hd16)) - 1);
    for (; t + 4 <= n_keys; t += 4) {
        const float *k0 = k + t * stride, *k1 = k0 + stride, *k2 = k1 + stride, *k3 = k2 + stride;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (size_t d = 0; d < hd16; d += 16) {
            const __m512 qv = _mm512_loadu_ps(q + d);
            a0 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k0 + d), a0);
            a1 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k1 + d), a1);
            a2 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k2 + d), a2);
            a3 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k3 + d), a3);
        }
        if (mk) {
            const __m512 qv = _mm512_maskz_loadu_ps(mk, q + hd16);
            a0 = _mm512_mask3_fmadd_ps(qv, _mm512_maskz_loadu_ps(mk, k0 + hd16), a0, mk);
            a1 = _mm512_mask3_fmadd_ps(qv, _mm512_maskz_loadu_ps(mk, k1 + hd16), a1, mk);
            a2 = _mm512_mask3_fmadd_ps(qv, _mm512_maskz_loadu_ps(mk, k2 + hd16), a2, mk);
            a3 = _mm512_mask3_fmadd_ps(qv, _mm512_maskz_loadu_ps(mk, k3 + hd16), a3, mk);
        }
        s[t] = reduce16(a0) * scale;
        s[t + 1] = reduce16(a1) * scale;
        s[t + 2] = reduce16(a2) * scale;
        s[t + 3] = reduce16(a3) * scale;
    }
    for (; t < n_keys; t++) s[t] = dot_f32(q, k + t * stride, hd) * scale;
}

#define HAL_DOT dot_f32
#define HAL_ATTN_SCORES attn_scores
#define HAL_ATTN_ACC attn_acc
#include "hal/cpu/pointwise.h"

/* T tokens (t0..) x R rows (i0..), elements [k0, k1) of the dot products
 * y[t][i] = dot(W row i, x[t]) (split == 0: the whole of k, acc_io unused). The
 * accumulators start at +0 when k0 == 0, else come from acc_io (and go back
 * there); when k1 == n_in they are reduced, biased and
 * stored to y. Splitting k this way only stores and reloads the exact partial
 * sums: the sequence of operations of each dot product is unchanged. */
AI void ukernel(const hal_mm *m, lmm_dtype wt, size_t i0, size_t t0, const int T, const int R,
                const int split, size_t k0, size_t k1, __m512 *acc_io) {
    const size_t esz = wt == LMM_DTYPE_F32 ? 4 : 2;
    const size_t n = m->n_in;
    const unsigned char *w[6];
    const float *x[4];
    __m512 acc[4][6];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) w[r] = (const unsigned char *)m->W + (i0 + (size_t)r) * n * esz;
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
        x[t] = m->x + (t0 + (size_t)t) * n;
#pragma GCC unroll 8
        for (int r = 0; r < R; r++)
            acc[t][r] = !split || k0 == 0 ? _mm512_setzero_ps()
                                          : _mm512_load_ps((const float *)&acc_io[t * R + r]);
    }
    size_t k = k0;
    for (; k + 16 <= k1; k += 16) {
        __m512 xv[4];
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) xv[t] = _mm512_loadu_ps(x[t] + k);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const __m512 wv = ldw(w[r] + k * esz, wt);
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) acc[t][r] = _mm512_fmadd_ps(wv, xv[t], acc[t][r]);
        }
    }
    if (k < k1) {
        const __mmask16 mk = (__mmask16)((1u << (k1 - k)) - 1);
        __m512 xv[4];
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) xv[t] = _mm512_maskz_loadu_ps(mk, x[t] + k);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const __m512 wv = ldw_mask(w[r] + k * esz, wt, mk);
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) acc[t][r] = _mm512_mask3_fmadd_ps(wv, xv[t], acc[t][r], mk);
        }
    }
    if (split && k1 < n) {
#pragma GCC unroll 8
        for (int t = 0; t < T; t++)
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) _mm512_store_ps((float *)&acc_io[t * R + r], acc[t][r]);
        return;
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

/* The same for 4 tokens x 6 rows whose weights [k0, k1) were packed by pack6()
 * as FP32 in wp[(k - k0) / 16][6][16] (one 16-lane vector per row and step). */
AI void ukernel_packed(const hal_mm *m, const float *wp, size_t i0, size_t t0, size_t k0,
                       size_t k1, __m512 *acc_io) {
    const size_t n = m->n_in;
    const float *x[4];
    __m512 acc[4][6];
#pragma GCC unroll 8
    for (int t = 0; t < 4; t++) {
        x[t] = m->x + (t0 + (size_t)t) * n;
#pragma GCC unroll 8
        for (int r = 0; r < 6; r++)
            acc[t][r] = k0 == 0 ? _mm512_setzero_ps() : _mm512_load_ps((const float *)&acc_io[t * 6 + r]);
    }
    size_t k = k0;
    for (; k + 16 <= k1; k += 16, wp += 96) {
        __m512 xv[4];
#pragma GCC unroll 8
        for (int t = 0; t < 4; t++) xv[t] = _mm512_loadu_ps(x[t] + k);
#pragma GCC unroll 8
        for (int r = 0; r < 6; r++) {
            const __m512 wv = _mm512_load_ps(wp + 16 * r);
#pragma GCC unroll 8
            for (int t = 0; t < 4; t++) acc[t][r] = _mm512_fmadd_ps(wv, xv[t], acc[t][r]);
        }
    }
    if (k < k1) {
        const __mmask16 mk = (__mmask16)((1u << (k1 - k)) - 1);
        __m512 xv[4];
#pragma GCC unroll 8
        for (int t = 0; t < 4; t++) xv[t] = _mm512_maskz_loadu_ps(mk, x[t] + k);
#pragma GCC unroll 8
        for (int r = 0; r < 6; r++) {
            const __m512 wv = _mm512_load_ps(wp + 16 * r);
#pragma GCC unroll 8
            for (int t = 0; t < 4; t++) acc[t][r] = _mm512_mask3_fmadd_ps(wv, xv[t], acc[t][r], mk);
        }
    }
    if (k1 < n) {
#pragma GCC unroll 8
        for (int t = 0; t < 4; t++)
#pragma GCC unroll 8
            for (int r = 0; r < 6; r++) _mm512_store_ps((float *)&acc_io[t * 6 + r], acc[t][r]);
        return;
    }
#pragma GCC unroll 8
    for (int t = 0; t < 4; t++) {
        float *y = m->y + (t0 + (size_t)t) * m->n_out + i0;
#pragma GCC unroll 8
        for (int r = 0; r < 6; r++) {
            float v = reduce16(acc[t][r]);
            if (m->bias) v += m->bias[i0 + (size_t)r];
            y[r] = v;
        }
    }
}

/* Widens rows i0..i0+5, elements [k0, k1), into wp[step][6][16] (tail zero-filled). */
AI void pack6(const hal_mm *m, lmm_dtype wt, size_t i0, size_t k0, size_t k1, float *wp) {
    const size_t esz = wt == LMM_DTYPE_F32 ? 4 : 2;
    const unsigned char *w0 = (const unsigned char *)m->W + i0 * m->n_in * esz;
    size_t k = k0;
    for (; k + 16 <= k1; k += 16, wp += 96)
#pragma GCC unroll 8
        for (int r = 0; r < 6; r++)
            _mm512_store_ps(wp + 16 * r, ldw(w0 + ((size_t)r * m->n_in + k) * esz, wt));
    if (k < k1) {
        const __mmask16 mk = (__mmask16)((1u << (k1 - k)) - 1);
#pragma GCC unroll 8
        for (int r = 0; r < 6; r++)
            _mm512_store_ps(wp + 16 * r, ldw_mask(w0 + ((size_t)r * m->n_in + k) * esz, wt, mk));
    }
}

enum { TB = 64, KB = 512 }; /* most tokens per block, k block (elements) */

/* Rows [r0, r1) for all tokens, with weights of the constant type wt.
 * Tokens go in blocks whose inputs stay in L2 (at most TB, fewer for long rows).
 * Within a block, each 6-row group is multiplied with the 4-token groups of the
 * block; when several 4-token groups share the rows, k is cut in blocks of KB so
 * that the rows' weights stay in L1 (widened once into wpack when there are many
 * groups), and each group's 24 partial sums are parked in acc between k blocks.
 * Leftover tokens (1-3) and rows (1-5) use smaller blocks of the same kernel. One
 * token (decode) is the case "no 4-token group, 1 leftover": 6 rows at a time. */
AI void rows_wt(const hal_mm *m, size_t r0, size_t r1, lmm_dtype wt) {
    const size_t n = m->n_in;
    size_t tb = n ? (size_t)(768 * 1024) / (n * sizeof(float)) / 4 * 4 : TB;
    tb = tb < 4 ? 4 : tb > TB ? TB : tb;
    __m512 acc[TB / 4][24];                     /* [4-token group][t*6 + r] */
    _Alignas(64) float wpack[KB / 16 * 6 * 16]; /* [KB/16][6 rows][16] */
    for (size_t tb0 = 0; tb0 < m->n_tok; tb0 += tb) {
        const size_t tb1 = m->n_tok - tb0 < tb ? m->n_tok : tb0 + tb;
        const size_t t4 = tb0 + (tb1 - tb0) / 4 * 4; /* end of the full 4-token groups */
        const size_t groups = (t4 - tb0) / 4;
        size_t i = r0;
        for (; i + 6 <= r1; i += 6) {
            if (groups == 1) {
                ukernel(m, wt, i, tb0, 4, 6, 0, 0, n, NULL);
            } else if (groups > 1) {
                for (size_t k0 = 0;; k0 += KB) {
                    const size_t k1 = n - k0 < KB ? n : k0 + KB;
                    if (groups >= 4) { /* enough reuse to pay for widening once */
                        pack6(m, wt, i, k0, k1, wpack);
                        for (size_t t = tb0; t < t4; t += 4)
                            ukernel_packed(m, wpack, i, t, k0, k1, acc[(t - tb0) / 4]);
                    } else {
                        for (size_t t = tb0; t < t4; t += 4)
                            ukernel(m, wt, i, t, 4, 6, 1, k0, k1, acc[(t - tb0) / 4]);
                    }
                    if (k1 == n) break;
                }
            }
            switch (tb1 - t4) {
            case 1: ukernel(m, wt, i, t4, 1, 6, 0, 0, n, NULL); break;
            case 2: ukernel(m, wt, i, t4, 2, 6, 0, 0, n, NULL); break;
            case 3: ukernel(m, wt, i, t4, 3, 6, 0, 0, n, NULL); break;
            default: break;
            }
        }
        for (; i < r1; i++) {
            for (size_t t = tb0; t < t4; t += 4) ukernel(m, wt, i, t, 4, 1, 0, 0, n, NULL);
            for (size_t t = t4; t < tb1; t++) ukernel(m, wt, i, t, 1, 1, 0, 0, n, NULL);
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

const hal_kernels hal_kernels_avx512 = {
    .dot_f32 = dot_f32,
    .matmul_rows = matmul_rows,
    .expf_ = pw_expf,
    .softmax = pw_softmax,
    .silu_mul = pw_silu_mul,
    .attention_head = pw_attention_head,
    .attention_scores = pw_attention_scores,
    .attention_acc = pw_attention_acc,
};
