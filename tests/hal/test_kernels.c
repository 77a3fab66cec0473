/* tests/hal/test_kernels.c — the kernels of lmm/hal.h against independent
 * references of their documented order of operations (bit for bit), and the
 * exactness contract: the same bits on every ISA path, for any thread count,
 * and for a batch of tokens as for the tokens one at a time. Also lmm_expf's
 * accuracy against double exp, FP16/BF16 conversions and the thread pool. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lmm/dtype.h"
#include "lmm/hal.h"

/* ---- helpers -------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd32(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
/* A float in +-[2^-8, 2^8): varied exponents make rounding order visible. */
static float rnd_f(void) {
    float m = (float)(rnd32() & 0xffffff) / 16777216.0f + 0.5f; /* [0.5, 1.5) */
    int e = (int)(rnd32() % 17) - 8;
    float v = ldexpf(m, e);
    return (rnd32() & 1) ? -v : v;
}
static void fill(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = rnd_f();
}

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Fails with the first differing element. */
static void assert_same(const float *want, const float *got, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++) {
        if (bits(want[i]) != bits(got[i])) {
            print_error("%s: element %zu differs: want %a (0x%08x) got %a (0x%08x)\n", what, i,
                        (double)want[i], bits(want[i]), (double)got[i], bits(got[i]));
            fail();
        }
    }
}

/* The ISA paths this CPU can run (prints the ones it skips, once). */
static int isas[3];
static int n_isas;
static void find_isas(void) {
    if (n_isas) return;
    for (int i = LMM_ISA_SCALAR; i <= LMM_ISA_AVX512; i++) {
        if (i <= (int)lmm_hal_isa_best())
            isas[n_isas++] = i;
        else
            fprintf(stderr, "SKIP: ISA path %s: this CPU lacks it\n", lmm_hal_isa_name((lmm_isa)i));
    }
}
static void set_isa(int isa) { assert_int_equal(lmm_hal_isa_set((lmm_isa)isa), 0); }

/* ---- independent references ----------------------------------------------- */

/* lmm/hal.h: lane l sums elements l, l+16, ... with fmaf from +0; then the tree. */
static float ref_dot(const float *a, const float *b, size_t n) {
    float lane[16];
    for (size_t l = 0; l < 16; l++) {
        float s = 0.0f;
        for (size_t k = l; k < n; k += 16) s = fmaf(a[k], b[k], s);
        lane[l] = s;
    }
    float h8[8], h4[4], h2[2];
    for (int l = 0; l < 8; l++) h8[l] = lane[l] + lane[l + 8];
    for (int l = 0; l < 4; l++) h4[l] = h8[l] + h8[l + 4];
    for (int l = 0; l < 2; l++) h2[l] = h4[l] + h4[l + 2];
    return h2[0] + h2[1];
}

/* FP16 decoded arithmetically (not by bit surgery): (-1)^s * m * 2^(e-25). */
static float ref_f16(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    float v;
    if (e == 31) v = m ? NAN : INFINITY;
    else if (e == 0) v = ldexpf((float)m, -24);
    else v = ldexpf((float)(m + 1024), e - 25);
    return s ? -v : v;
}
static float ref_bf16(uint16_t h) { return from_bits((uint32_t)h << 16); }

static const lmm_dtype dtypes[3] = {LMM_DTYPE_F32, LMM_DTYPE_F16, LMM_DTYPE_BF16};

/* A random weight matrix [rows][n] of type t at byte offset `off` of a fresh
 * buffer (unaligned when off is odd); `wide` receives the exact FP32 values. */
static unsigned char *make_weights(lmm_dtype t, size_t rows, size_t n, size_t off,
                                   const void **w, float *wide) {
    size_t esz = lmm_dtype_size(t);
    unsigned char *buf = malloc(rows * n * esz + off + 64);
    assert_non_null(buf);
    unsigned char *p = buf + off;
    for (size_t i = 0; i < rows * n; i++) {
        if (t == LMM_DTYPE_F32) {
            float f = rnd_f();
            memcpy(p + 4 * i, &f, 4);
            wide[i] = f;
        } else if (t == LMM_DTYPE_F16) {
            uint16_t h;
            do h = (uint16_t)rnd32(); while (((h >> 10) & 31) == 31); /* any finite, subnormals too */
            memcpy(p + 2 * i, &h, 2);
            wide[i] = ref_f16(h);
        } else {
            uint16_t h = lmm_f32_to_bf16(rnd_f());
            memcpy(p + 2 * i, &h, 2);
            wide[i] = ref_bf16(h);
        }
    }
    *w = p;
    return buf;
}

/* ---- dot ------------------------------------------------------------------- */

static const size_t sizes[] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14,
                               15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29,
                               30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44,
                               45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59,
                               60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 255, 256, 257, 2051};
#define N_SIZES (sizeof sizes / sizeof sizes[0])

static void test_dot(void **state) {
    (void)state;
    find_isas();
    float *a = malloc(sizeof(float) * 2060), *b = malloc(sizeof(float) * 2060);
    assert_non_null(a);
    assert_non_null(b);
    for (size_t si = 0; si < N_SIZES; si++) {
        size_t n = sizes[si];
        for (int rep = 0; rep < 3; rep++) {
            fill(a, n + 1);
            fill(b, n + 1);
            const float *pa = a + rep, *pb = b + (rep == 1); /* unaligned starts */
            float want = ref_dot(pa, pb, n);
            for (int i = 0; i < n_isas; i++) {
                set_isa(isas[i]);
                float got = lmm_dot_f32(pa, pb, n);
                char what[64];
                snprintf(what, sizeof what, "dot n=%zu isa=%s", n, lmm_hal_isa_name((lmm_isa)isas[i]));
                assert_same(&want, &got, 1, what);
            }
        }
    }
    /* The order is observable: a sum that cancels differently in another order. */
    float x[17] = {0}, y[17];
    for (int i = 0; i < 17; i++) y[i] = 1.0f;
    x[0] = 1e8f; x[16] = 1.0f; x[8] = -1e8f;  /* lane 0: 1e8+1 = 1e8; lane 8: -1e8 */
    for (int i = 0; i < n_isas; i++) {
        set_isa(isas[i]);
        assert_true(lmm_dot_f32(x, y, 17) == 0.0f); /* not 1.0f (the left-to-right sum) */
    }
    /* Lanes past the end are left alone: products that underflow to -0 keep every
     * lane at -0, so the sum is -0; adding fma(0, 0, s) to the tail lanes gives +0. */
    float tiny_a[40], tiny_b[40];
    for (int i = 0; i < 40; i++) {
        tiny_a[i] = -0x1p-80f;
        tiny_b[i] = 0x1p-80f;
    }
    for (size_t n = 1; n <= 40; n++) {
        float want = ref_dot(tiny_a, tiny_b, n);
        assert_true(want == 0.0f && (n < 16) == !signbit(want)); /* all 16 lanes -0 from n = 16 */
        for (int i = 0; i < n_isas; i++) {
            set_isa(isas[i]);
            float got = lmm_dot_f32(tiny_a, tiny_b, n);
            assert_same(&want, &got, 1, "dot of underflowing products (-0)");
            float w1[40];
            for (int k = 0; k < 40; k++) w1[k] = -0x1p-80f;
            float y[1];
            lmm_matmul(NULL, y, tiny_b, w1, LMM_DTYPE_F32, NULL, 1, n, 1);
            assert_same(&want, y, 1, "matmul of underflowing products (-0)");
        }
    }
    free(a);
    free(b);
}

/* ---- matmul ---------------------------------------------------------------- */

/* y[t][i] via ref_dot of the exactly widened rows. */
static void ref_matmul(float *y, const float *x, const float *wide, const float *bias,
                       size_t n_out, size_t n_in, size_t n_tok) {
    for (size_t t = 0; t < n_tok; t++)
        for (size_t i = 0; i < n_out; i++) {
            float v = ref_dot(wide + i * n_in, x + t * n_in, n_in);
            if (bias) v = v + bias[i];
            y[t * n_out + i] = v;
        }
}

static void test_matmul_ref(void **state) {
    (void)state;
    find_isas();
    lmm_threadpool *pools[3] = {NULL, lmm_threadpool_create(2), lmm_threadpool_create(3)};
    assert_non_null(pools[1]);
    assert_non_null(pools[2]);
    static const size_t n_ins[] = {0, 1, 3, 15, 16, 17, 31, 33, 47, 64, 70, 255, 256, 257, 2051};
    static const size_t n_outs[] = {1, 5, 7, 13, 37};
    static const size_t n_toks[] = {1, 2, 5};
    for (int di = 0; di < 3; di++) {
        lmm_dtype dt = dtypes[di];
        for (size_t a = 0; a < sizeof n_ins / sizeof *n_ins; a++) {
            size_t n_in = n_ins[a];
            for (size_t o = 0; o < sizeof n_outs / sizeof *n_outs; o++) {
                size_t n_out = n_outs[o];
                size_t n_tok = n_toks[(a + o) % 3];
                float *wide = malloc(sizeof(float) * n_out * n_in);
                float *x = malloc(sizeof(float) * n_tok * n_in + 4);
                float *bias = malloc(sizeof(float) * n_out);
                float *want = malloc(sizeof(float) * n_tok * n_out);
                float *got = malloc(sizeof(float) * n_tok * n_out);
                const void *w;
                unsigned char *wbuf = make_weights(dt, n_out, n_in, 1 + o % 3, &w, wide);
                fill(x, n_tok * n_in + 1);
                fill(bias, n_out);
                const float *xin = x + (o & 1); /* unaligned inputs too */
                const float *bs = (a & 1) ? bias : NULL;
                ref_matmul(want, xin, wide, bs, n_out, n_in, n_tok);
                for (int i = 0; i < n_isas; i++) {
                    set_isa(isas[i]);
                    for (int p = 0; p < 3; p++) {
                        memset(got, 0xff, sizeof(float) * n_tok * n_out);
                        lmm_matmul(pools[p], got, xin, w, dt, bs, n_out, n_in, n_tok);
                        char what[128];
                        snprintf(what, sizeof what, "matmul %s %zux%zu tok=%zu bias=%d isa=%s threads=%d",
                                 lmm_dtype_name(dt), n_out, n_in, n_tok, bs != NULL,
                                 lmm_hal_isa_name((lmm_isa)isas[i]), p + 1);
                        assert_same(want, got, n_tok * n_out, what);
                    }
                }
                free(wbuf);
                free(wide);
                free(x);
                free(bias);
                free(want);
                free(got);
            }
        }
    }
    lmm_threadpool_free(pools[1]);
    lmm_threadpool_free(pools[2]);
}

/* A batch of n_tok tokens gives, bit for bit, what n_tok single-token calls give;
 * on every path and thread count (a bigger matrix: many chunks, odd rows, k
 * blocks with a tail). */
static void test_matmul_batch(void **state) {
    (void)state;
    find_isas();
    lmm_threadpool *pools[3] = {lmm_threadpool_create(1), lmm_threadpool_create(2),
                                lmm_threadpool_create(3)};
    /* 70 tokens: more than one token block of the prefill kernel */
    static const size_t toks[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 17, 70};
    const size_t n_out = 301, n_in = 2051, max_tok = 70;
    float *wide = malloc(sizeof(float) * n_out * n_in);
    float *x = malloc(sizeof(float) * max_tok * n_in);
    float *bias = malloc(sizeof(float) * n_out);
    float *single = malloc(sizeof(float) * max_tok * n_out);
    float *got = malloc(sizeof(float) * max_tok * n_out);
    float *ref1 = malloc(sizeof(float) * n_out);
    fill(x, max_tok * n_in);
    fill(bias, n_out);
    for (int di = 0; di < 3; di++) {
        lmm_dtype dt = dtypes[di];
        const void *w;
        unsigned char *wbuf = make_weights(dt, n_out, n_in, 3, &w, wide);
        /* the reference: single tokens, scalar path, one thread; checked once against ref_dot */
        set_isa(LMM_ISA_SCALAR);
        for (size_t t = 0; t < max_tok; t++)
            lmm_matmul(NULL, single + t * n_out, x + t * n_in, w, dt, bias, n_out, n_in, 1);
        ref_matmul(ref1, x + 5 * n_in, wide, bias, n_out, n_in, 1);
        assert_same(ref1, single + 5 * n_out, n_out, "matmul single token vs reference");
        for (int i = 0; i < n_isas; i++) {
            set_isa(isas[i]);
            for (int p = 0; p < 3; p++) {
                for (size_t ti = 0; ti < sizeof toks / sizeof *toks; ti++) {
                    size_t nt = toks[ti];
                    lmm_matmul(pools[p], got, x, w, dt, bias, n_out, n_in, nt);
                    char what[128];
                    snprintf(what, sizeof what, "matmul %s batch of %zu vs single, isa=%s threads=%d",
                             lmm_dtype_name(dt), nt, lmm_hal_isa_name((lmm_isa)isas[i]), p + 1);
                    assert_same(single, got, nt * n_out, what);
                }
            }
        }
        free(wbuf);
    }
    for (int p = 0; p < 3; p++) lmm_threadpool_free(pools[p]);
    free(wide);
    free(x);
    free(bias);
    free(single);
    free(got);
    free(ref1);
}

/* ---- exp, softmax, silu, rmsnorm, rope, attention --------------------------- */

/* Distance in units in the last place of the float nearest to exp(x). */
static double ulp_err(float got, double want) {
    float near = (float)want;
    if (isinf(near) || near == 0.0f) {
        /* compare against the neighbours in float space */
        if (got == near) return 0.0;
    }
    double u;
    if (near == 0.0f) u = ldexp(1.0, -149);
    else {
        int e;
        frexp((double)near, &e);
        u = ldexp(1.0, (e - 24 < -149) ? -149 : e - 24);
        if (isinf(near)) u = ldexp(1.0, 104);
    }
    return fabs((double)got - want) / u;
}

static void test_expf(void **state) {
    (void)state;
    find_isas();
    double worst = 0;
    float worst_x = 0;
    size_t count = 0;
    /* every 61st float bit pattern over [-104, 89], both signs */
    for (uint32_t u = 0; u < 0x42b20000u; u += 61) {
        for (int sgn = 0; sgn < 2; sgn++) {
            float x = from_bits(u | (sgn ? 0x80000000u : 0));
            if (x < -104.0f) continue;
            set_isa(LMM_ISA_SCALAR);
            float got = lmm_expf(x);
            double err = ulp_err(got, exp((double)x));
            if (err > worst) {
                worst = err;
                worst_x = x;
            }
            count++;
            if ((count & 255) == 0) /* the other paths: same bits */
                for (int i = 1; i < n_isas; i++) {
                    set_isa(isas[i]);
                    assert_int_equal(bits(lmm_expf(x)), bits(got));
                }
        }
    }
    printf("lmm_expf: %zu points, worst %.3f ulp at %a\n", count, worst, (double)worst_x);
    assert_true(worst <= 2.0);
    for (int i = 0; i < n_isas; i++) {
        set_isa(isas[i]);
        assert_true(isnan(lmm_expf(NAN)));
        assert_true(lmm_expf(-INFINITY) == 0.0f && !signbit(lmm_expf(-INFINITY)));
        assert_true(isinf(lmm_expf(INFINITY)) && lmm_expf(INFINITY) > 0);
        assert_true(lmm_expf(0.0f) == 1.0f);
        assert_true(lmm_expf(-0.0f) == 1.0f);
        assert_true(isinf(lmm_expf(88.8f)));
        assert_true(isinf(lmm_expf(1000.0f)));
        assert_true(lmm_expf(88.72283f) == expf(88.72283f)); /* just below overflow: finite */
        assert_true(isfinite(lmm_expf(88.72283f)));
        assert_true(lmm_expf(-103.0f) > 0.0f);       /* subnormal, not flushed */
        assert_true(lmm_expf(-104.0f) == 0.0f);
        assert_true(lmm_expf(-1000.0f) == 0.0f);
        assert_true(lmm_expf(1e-10f) == 1.0f);
        assert_true(lmm_expf(1.0f) == (float)exp(1.0));
        assert_true(lmm_expf(-1.0f) == (float)exp(-1.0));
    }
}

static void ref_softmax(float *x, size_t n) {
    float m = x[0];
    for (size_t i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
    float s = 0.0f;
    for (size_t i = 0; i < n; i++) {
        x[i] = lmm_expf(x[i] - m);
        s = s + x[i];
    }
    for (size_t i = 0; i < n; i++) x[i] = x[i] / s;
}

static void test_pointwise(void **state) {
    (void)state;
    find_isas();
    float *x = malloc(sizeof(float) * 4100), *w = malloc(sizeof(float) * 4100);
    float *want = malloc(sizeof(float) * 4100), *got = malloc(sizeof(float) * 4100);
    float *up = malloc(sizeof(float) * 4100);
    for (size_t si = 1; si < N_SIZES; si++) {
        size_t n = sizes[si];
        fill(x, n);
        fill(w, n);
        fill(up, n);
        for (size_t i = 0; i < n; i++) x[i] *= 8.0f; /* logits up to +-2048: exp range */
        /* softmax */
        set_isa(LMM_ISA_SCALAR);
        memcpy(want, x, n * sizeof(float));
        ref_softmax(want, n);
        for (int i = 0; i < n_isas; i++) {
            set_isa(isas[i]);
            memcpy(got, x, n * sizeof(float));
            lmm_softmax(got, n);
            assert_same(want, got, n, "softmax");
        }
        /* silu */
        set_isa(LMM_ISA_SCALAR);
        for (size_t i = 0; i < n; i++) want[i] = (x[i] / (1.0f + lmm_expf(-x[i]))) * up[i];
        for (int i = 0; i < n_isas; i++) {
            set_isa(isas[i]);
            memcpy(got, x, n * sizeof(float));
            lmm_silu_mul(got, up, n);
            assert_same(want, got, n, "silu_mul");
        }
        /* rmsnorm */
        {
            float r = 1.0f / sqrtf(ref_dot(x, x, n) / (float)n + 1e-5f);
            for (size_t i = 0; i < n; i++) want[i] = (x[i] * r) * w[i];
        }
        for (int i = 0; i < n_isas; i++) {
            set_isa(isas[i]);
            lmm_rmsnorm(got, x, w, n, 1e-5f);
            assert_same(want, got, n, "rmsnorm");
        }
    }
    free(x);
    free(w);
    free(want);
    free(got);
    free(up);
}

static void test_rope(void **state) {
    (void)state;
    const size_t heads = 3, hd = 64;
    float v[3 * 64], want[3 * 64], got[3 * 64], cs[64];
    fill(v, heads * hd);
    for (size_t i = 0; i < hd / 2; i++) {
        float a = (float)i * 0.37f + 0.1f;
        cs[2 * i] = cosf(a);
        cs[2 * i + 1] = sinf(a);
    }
    for (int neox = 0; neox < 2; neox++) {
        for (size_t h = 0; h < heads; h++)
            for (size_t i = 0; i < hd / 2; i++) {
                size_t ia = h * hd + (neox ? i : 2 * i), ib = h * hd + (neox ? i + hd / 2 : 2 * i + 1);
                float a = v[ia], b = v[ib], c = cs[2 * i], s = cs[2 * i + 1];
                float p1 = a * c, p2 = b * s, p3 = a * s, p4 = b * c;
                want[ia] = p1 - p2;
                want[ib] = p3 + p4;
            }
        memcpy(got, v, sizeof v);
        lmm_rope(got, heads, hd, cs, neox);
        assert_same(want, got, heads * hd, neox ? "rope neox" : "rope interleaved");
    }
}

static void test_attention(void **state) {
    (void)state;
    find_isas();
    static const size_t keys[] = {1, 2, 7, 33, 130};
    static const size_t hds[] = {8, 13, 64, 80, 100, 128};
    const size_t stride_extra = 5;
    for (size_t ki = 0; ki < sizeof keys / sizeof *keys; ki++)
        for (size_t hi = 0; hi < sizeof hds / sizeof *hds; hi++) {
            size_t nk = keys[ki], hd = hds[hi], stride = hd + stride_extra;
            float *q = malloc(sizeof(float) * hd), *kc = malloc(sizeof(float) * nk * stride);
            float *vc = malloc(sizeof(float) * nk * stride), *sc = malloc(sizeof(float) * nk);
            float *want = malloc(sizeof(float) * hd), *got = malloc(sizeof(float) * hd);
            fill(q, hd);
            fill(kc, nk * stride);
            fill(vc, nk * stride);
            const float scale = 1.0f / sqrtf((float)hd);
            set_isa(LMM_ISA_SCALAR);
            for (size_t t = 0; t < nk; t++) sc[t] = ref_dot(q, kc + t * stride, hd) * scale;
            ref_softmax(sc, nk);
            for (size_t d = 0; d < hd; d++) {
                float acc = 0.0f;
                for (size_t t = 0; t < nk; t++) acc = fmaf(sc[t], vc[t * stride + d], acc);
                want[d] = acc;
            }
            for (int i = 0; i < n_isas; i++) {
                set_isa(isas[i]);
                float *scratch = malloc(sizeof(float) * nk);
                lmm_attention_head(got, q, kc, vc, nk, hd, stride, scale, scratch);
                assert_same(want, got, hd, "attention_head");
                /* the same in blocks of positions (the paged live KV): scores block by
                 * block, one softmax, values block by block accumulating into out */
                static const size_t blocks[] = {1, 3, 16};
                for (size_t bi = 0; bi < sizeof blocks / sizeof *blocks; bi++) {
                    const size_t B = blocks[bi];
                    for (size_t t0 = 0; t0 < nk; t0 += B)
                        lmm_attention_scores(scratch + t0, q, kc + t0 * stride, nk - t0 < B ? nk - t0 : B, hd,
                                             stride, scale);
                    lmm_softmax(scratch, nk);
                    for (size_t d = 0; d < hd; d++) got[d] = 0.0f;
                    for (size_t t0 = 0; t0 < nk; t0 += B)
                        lmm_attention_acc(got, scratch + t0, vc + t0 * stride, nk - t0 < B ? nk - t0 : B, hd, stride);
                    assert_same(want, got, hd, "attention in blocks");
                }
                free(scratch);
            }
            free(q); free(kc); free(vc); free(sc); free(want); free(got);
        }
}

/* ---- conversions ------------------------------------------------------------ */

static void test_conversions(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = lmm_f16_to_f32((uint16_t)h);
        int is_nan = ((h >> 10) & 31) == 31 && (h & 1023);
        if (is_nan) {
            assert_true(isnan(f));
            assert_true(isnan(lmm_f16_to_f32(lmm_f32_to_f16(f))));
        } else {
            assert_int_equal(bits(f), bits(ref_f16((uint16_t)h))); /* exact widening */
            assert_int_equal(lmm_f32_to_f16(f), h);                /* round trip */
        }
        float g = lmm_bf16_to_f32((uint16_t)h);
        if (isnan(g)) assert_true(isnan(lmm_bf16_to_f32(lmm_f32_to_bf16(g))));
        else assert_int_equal(lmm_f32_to_bf16(g), h);
    }
    /* round to nearest, ties to even */
    assert_int_equal(lmm_f32_to_f16(1.0f + ldexpf(1.0f, -11)), 0x3c00);      /* tie -> even */
    assert_int_equal(lmm_f32_to_f16(1.0f + 3 * ldexpf(1.0f, -11)), 0x3c02);  /* tie -> even (up) */
    assert_int_equal(lmm_f32_to_f16(65520.0f), 0x7c00);                      /* overflow */
    assert_int_equal(lmm_f32_to_bf16(from_bits(0x3f808000u)), 0x3f80);        /* tie -> even */
    assert_int_equal(lmm_f32_to_bf16(from_bits(0x3f818000u)), 0x3f82);
    /* row widening, unaligned source */
    unsigned char raw[2 * 40 + 1];
    float dst[40];
    for (int i = 0; i < 40; i++) {
        uint16_t h = (uint16_t)(0x3c00 + i * 37);
        memcpy(raw + 1 + 2 * i, &h, 2);
    }
    lmm_dtype_row_to_f32(dst, raw + 1, LMM_DTYPE_F16, 40);
    for (int i = 0; i < 40; i++) assert_true(dst[i] == ref_f16((uint16_t)(0x3c00 + i * 37)));
}

/* ---- thread pool ------------------------------------------------------------- */

typedef struct {
    _Atomic unsigned *hits;
    size_t chunk;
    _Atomic int bad;
} tp_arg;

static void tp_fn(void *vp, size_t b, size_t e) {
    tp_arg *a = (tp_arg *)vp;
    if (e <= b || e - b > a->chunk) atomic_store(&a->bad, 1);
    for (size_t i = b; i < e; i++) atomic_fetch_add(&a->hits[i], 1);
}

static void test_threadpool(void **state) {
    (void)state;
    for (int nt = 1; nt <= 4; nt++) {
        lmm_threadpool *p = lmm_threadpool_create(nt);
        assert_non_null(p);
        assert_int_equal(lmm_threadpool_size(p), nt);
        static const size_t ns[] = {1, 2, 3, 17, 100, 1000, 4099};
        static const size_t chunks[] = {1, 3, 16, 64, 5000};
        const int reps = 200;
        for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
            for (size_t c = 0; c < sizeof chunks / sizeof *chunks; c++) {
                size_t n = ns[a];
                _Atomic unsigned *hits = calloc(n, sizeof *hits);
                tp_arg arg = {.hits = hits, .chunk = chunks[c]};
                atomic_init(&arg.bad, 0);
                for (int r = 0; r < reps; r++)
                    lmm_threadpool_for(p, n, chunks[c], tp_fn, &arg);
                assert_int_equal(atomic_load(&arg.bad), 0);
                for (size_t i = 0; i < n; i++) assert_int_equal(atomic_load(&hits[i]), reps);
                free((void *)hits);
            }
        lmm_threadpool_free(p);
    }
    assert_null(lmm_threadpool_create(0));
    /* NULL pool runs on the caller */
    _Atomic unsigned hits[10] = {0};
    tp_arg arg = {.hits = hits, .chunk = 4};
    atomic_init(&arg.bad, 0);
    lmm_threadpool_for(NULL, 10, 4, tp_fn, &arg);
    for (int i = 0; i < 10; i++) assert_int_equal(atomic_load(&hits[i]), 1);
    assert_int_equal(lmm_threadpool_size(NULL), 1);
}

/* ---- ISA selection ------------------------------------------------------------ */

static void test_isa(void **state) {
    (void)state;
    lmm_isa v;
    assert_int_equal(lmm_hal_isa_parse("AVX2", &v), 0);
    assert_int_equal(v, LMM_ISA_AVX2);
    assert_int_equal(lmm_hal_isa_parse("scalar", &v), 0);
    assert_int_equal(v, LMM_ISA_SCALAR);
    assert_int_equal(lmm_hal_isa_parse("avx512", &v), 0);
    assert_int_equal(v, LMM_ISA_AVX512);
    assert_int_equal(lmm_hal_isa_parse("sse9", &v), -1);
    assert_string_equal(lmm_hal_isa_name(LMM_ISA_AVX512), "avx512");
    assert_int_equal(lmm_hal_isa_set((lmm_isa)7), -1);
    assert_int_equal(lmm_hal_isa_set(LMM_ISA_SCALAR), 0);
    assert_int_equal(lmm_hal_isa(), LMM_ISA_SCALAR);
    assert_int_equal(lmm_hal_isa_set(lmm_hal_isa_best()), 0);
    assert_int_equal(lmm_hal_isa(), lmm_hal_isa_best());
    printf("best ISA path: %s\n", lmm_hal_isa_name(lmm_hal_isa_best()));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_isa),
        cmocka_unit_test(test_dot),
        cmocka_unit_test(test_matmul_ref),
        cmocka_unit_test(test_matmul_batch),
        cmocka_unit_test(test_expf),
        cmocka_unit_test(test_pointwise),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_conversions),
        cmocka_unit_test(test_threadpool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
