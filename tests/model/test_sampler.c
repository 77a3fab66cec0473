/* tests/model/test_sampler.c — the token sampler (lmm/sampler.h): greedy ties,
 * seeds, top-k/top-p against greedy, the repetition penalty, and that draws follow
 * the softmax distribution. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lmm/hal.h"
#include "lmm/sampler.h"

#define V 1000

/* Deterministic pseudo-random logits in [-8, 8), with some exact ties. */
static void fill_logits(float *l, uint32_t n, uint64_t seed) {
    uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
    for (uint32_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        l[i] = (float)((s >> 40) % 4096) / 256.0f - 8.0f;
    }
}

static uint32_t ref_argmax(const float *l, uint32_t n) {
    uint32_t b = 0;
    for (uint32_t i = 1; i < n; i++)
        if (l[i] > l[b]) b = i;
    return b;
}

static lmm_sampler *make(uint32_t n, float temp, uint32_t top_k, float top_p, float pen, uint64_t seed) {
    lmm_sampler_opts o;
    lmm_sampler_opts_default(&o);
    o.temperature = temp;
    o.top_k = top_k;
    o.top_p = top_p;
    o.repeat_penalty = pen;
    o.seed = seed;
    lmm_sampler *s = NULL;
    assert_int_equal(lmm_sampler_init(&s, n, &o), 0);
    return s;
}

static void test_greedy_ties_lowest_id(void **state) {
    (void)state;
    float l[16] = {0};
    lmm_sampler *s = make(16, 0.0f, 0, 1.0f, 1.0f, 1);
    assert_int_equal(lmm_sampler_sample(s, l), 0); /* all equal */
    for (int i = 0; i < 16; i++) l[i] = -1.0f;
    l[7] = 3.0f;
    l[3] = 3.0f;
    l[12] = 3.0f;
    assert_int_equal(lmm_sampler_sample(s, l), 3);
    lmm_sampler_free(s);
}

static void draw_sequence(uint64_t seed, uint32_t *out, int n) {
    lmm_sampler *s = make(V, 1.0f, 0, 1.0f, 1.0f, seed);
    float base[V], l[V];
    fill_logits(base, V, 5);
    for (uint32_t i = 0; i < V; i++) base[i] *= 0.25f; /* flat enough that draws vary */
    for (int k = 0; k < n; k++) {
        memcpy(l, base, sizeof l);
        out[k] = lmm_sampler_sample(s, l);
    }
    lmm_sampler_free(s);
}

static void test_seed_determinism(void **state) {
    (void)state;
    uint32_t a[200], b[200], c[200];
    draw_sequence(42, a, 200);
    draw_sequence(42, b, 200);
    draw_sequence(43, c, 200);
    assert_memory_equal(a, b, sizeof a);
    assert_true(memcmp(a, c, sizeof a) != 0);
}

static void test_top_k1_and_tiny_top_p_are_greedy(void **state) {
    (void)state;
    float base[V], l[V];
    const float temps[] = {0.1f, 0.8f, 1.0f, 3.0f};
    for (uint64_t trial = 0; trial < 50; trial++) {
        fill_logits(base, V, 100 + trial);
        if (trial % 5 == 0) base[V - 1] = base[ref_argmax(base, V)]; /* a tie at the top */
        uint32_t want = ref_argmax(base, V);
        for (size_t ti = 0; ti < sizeof temps / sizeof *temps; ti++) {
            lmm_sampler *k1 = make(V, temps[ti], 1, 1.0f, 1.0f, trial);
            lmm_sampler *p0 = make(V, temps[ti], 0, 1e-6f, 1.0f, trial);      /* no top-k: prefiltered path */
            lmm_sampler *p40 = make(V, temps[ti], 40, 1e-6f, 1.0f, trial);    /* after top-k */
            memcpy(l, base, sizeof l);
            assert_int_equal(lmm_sampler_sample(k1, l), want);
            memcpy(l, base, sizeof l);
            assert_int_equal(lmm_sampler_sample(p0, l), want);
            memcpy(l, base, sizeof l);
            assert_int_equal(lmm_sampler_sample(p40, l), want);
            lmm_sampler_free(k1);
            lmm_sampler_free(p0);
            lmm_sampler_free(p40);
        }
    }
}

static void test_repetition_penalty(void **state) {
    (void)state;
    float l[16];
    for (int i = 0; i < 16; i++) l[i] = 0.5f;
    l[5] = 2.0f;
    l[6] = -1.0f;
    l[9] = 4.0f;
    lmm_sampler_opts o;
    lmm_sampler_opts_default(&o);
    o.temperature = 0.0f;
    o.repeat_penalty = 2.0f;
    o.repeat_last_n = 3;
    lmm_sampler *s = NULL;
    assert_int_equal(lmm_sampler_init(&s, 16, &o), 0);
    lmm_sampler_accept(s, 9);  /* falls out of the window of 3 */
    lmm_sampler_accept(s, 5);
    lmm_sampler_accept(s, 6);
    lmm_sampler_accept(s, 5);  /* twice in the window: penalised once */
    assert_int_equal(lmm_sampler_sample(s, l), 9);
    assert_true(l[5] == 1.0f);   /* positive: divided */
    assert_true(l[6] == -2.0f);  /* negative: multiplied */
    assert_true(l[9] == 4.0f);   /* outside the window: untouched */
    assert_true(l[0] == 0.5f);
    lmm_sampler_free(s);

    /* the penalty can change the greedy choice */
    for (int i = 0; i < 16; i++) l[i] = 0.0f;
    l[2] = 3.0f;
    l[4] = 2.0f;
    s = make(16, 0.0f, 0, 1.0f, 2.0f, 1);
    lmm_sampler_accept(s, 2);
    assert_int_equal(lmm_sampler_sample(s, l), 4);
    lmm_sampler_free(s);
}

/* Draws follow softmax(logits / T) restricted by top-k. */
static void test_distribution(void **state) {
    (void)state;
    const float logits[4] = {1.0f, 0.0f, 2.0f, -1.0f};
    const int draws = 40000;
    int count[4] = {0};
    lmm_sampler *s = make(4, 1.0f, 3, 1.0f, 1.0f, 7);
    for (int k = 0; k < draws; k++) {
        float l[4];
        memcpy(l, logits, sizeof l);
        count[lmm_sampler_sample(s, l)]++;
    }
    lmm_sampler_free(s);
    double z = exp(1.0) + exp(0.0) + exp(2.0);
    const double p[4] = {exp(1.0) / z, exp(0.0) / z, exp(2.0) / z, 0.0};
    assert_int_equal(count[3], 0); /* cut by top-k = 3 */
    for (int i = 0; i < 3; i++) {
        double sd = sqrt(draws * p[i] * (1 - p[i]));
        assert_true(fabs(count[i] - draws * p[i]) < 5 * sd);
    }
}

/* Top-p keeps the smallest ranked set with at least p of the mass. */
static void test_top_p_nucleus(void **state) {
    (void)state;
    /* probabilities 0.5, 0.3, 0.2 (as logits of their logs) */
    const float logits[3] = {logf(0.5f), logf(0.3f), logf(0.2f)};
    int seen[3] = {0};
    lmm_sampler *s = make(3, 1.0f, 0, 0.7f, 1.0f, 11); /* 0.5 < 0.7 <= 0.8: ids 0 and 1 */
    for (int k = 0; k < 5000; k++) {
        float l[3];
        memcpy(l, logits, sizeof l);
        seen[lmm_sampler_sample(s, l)]++;
    }
    lmm_sampler_free(s);
    assert_true(seen[0] > 0 && seen[1] > 0);
    assert_int_equal(seen[2], 0);
}

/* Ties at the top-k boundary go to the lower ids. */
static void test_top_k_ties(void **state) {
    (void)state;
    const float logits[6] = {1.0f, 3.0f, 0.0f, 3.0f, 3.0f, 3.0f};
    int seen[6] = {0};
    lmm_sampler *s = make(6, 1.0f, 2, 1.0f, 1.0f, 5);
    for (int k = 0; k < 2000; k++) {
        float l[6];
        memcpy(l, logits, sizeof l);
        seen[lmm_sampler_sample(s, l)]++;
    }
    lmm_sampler_free(s);
    assert_true(seen[1] > 0 && seen[3] > 0);
    assert_int_equal(seen[0] + seen[2] + seen[4] + seen[5], 0);
}

static void test_bad_options(void **state) {
    (void)state;
    lmm_sampler_opts o;
    lmm_sampler *s = NULL;
    lmm_sampler_opts_default(&o);
    o.top_p = 0.0f;
    assert_int_equal(lmm_sampler_init(&s, 10, &o), -1);
    lmm_sampler_opts_default(&o);
    o.temperature = -1.0f;
    assert_int_equal(lmm_sampler_init(&s, 10, &o), -1);
    lmm_sampler_opts_default(&o);
    o.repeat_penalty = 0.0f;
    assert_int_equal(lmm_sampler_init(&s, 10, &o), -1);
    assert_int_equal(lmm_sampler_init(&s, 0, NULL), -1);
    assert_null(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_ties_lowest_id),
        cmocka_unit_test(test_seed_determinism),
        cmocka_unit_test(test_top_k1_and_tiny_top_p_are_greedy),
        cmocka_unit_test(test_repetition_penalty),
        cmocka_unit_test(test_distribution),
        cmocka_unit_test(test_top_p_nucleus),
        cmocka_unit_test(test_top_k_ties),
        cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
