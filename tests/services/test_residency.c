/* tests/services/test_residency.c — the scheduler's residency plan, access predictor,
 * adaptive prefetch depth, and the layout helpers the scheduler and compute workers share
 * (services/scheduler/residency.c, predictor.c; services/compute/group_layout.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../services/compute/group_layout.h"
#include "../../services/scheduler/predictor.h"
#include "../../services/scheduler/residency.h"
#include "lmm/error.h"

#define MIB (1024ull * 1024ull)

static lmm_residency_opts opts(uint64_t budget, uint32_t n) {
    lmm_residency_opts o = {.budget = budget, .slot_bytes = 32 * MIB, .other_bytes = 100 * MIB, .n_pieces = n};
    return o;
}

/* Exactly n_pinned of n, spaced evenly: gaps between pinned pieces differ by at most 1. */
static void test_spread(void **state) {
    (void)state;
    for (uint32_t n = 1; n <= 40; n++)
        for (uint32_t p = 0; p <= n; p++) {
            uint32_t count = 0, last = UINT32_MAX, min_gap = UINT32_MAX, max_gap = 0;
            for (uint32_t i = 0; i < n; i++) {
                if (!lmm_residency_spread(i, n, p)) continue;
                count++;
                if (last != UINT32_MAX) {
                    uint32_t g = i - last;
                    if (g < min_gap) min_gap = g;
                    if (g > max_gap) max_gap = g;
                }
                last = i;
            }
            assert_int_equal(count, p);
            if (count >= 3) assert_true(max_gap - min_gap <= 1);
        }
}

static void test_all_resident(void **state) {
    (void)state;
    lmm_residency r;
    lmm_residency_opts o = opts(0, 10); /* no budget */
    assert_int_equal(lmm_residency_plan(&r, &o), 0);
    assert_int_equal(r.n_pinned, 10);
    assert_int_equal(r.n_stream, 0);
    assert_int_equal(r.full_budget, 100 * MIB + 11 * 32 * MIB);
    assert_int_equal(r.min_budget, 100 * MIB + 3 * 32 * MIB);
    for (uint32_t i = 0; i < 10; i++) {
        assert_int_equal(r.pinned[i], 1);
        assert_int_equal(r.slot[i], i);
    }
    lmm_residency_free(&r);
    o = opts(100 * MIB + 11 * 32 * MIB, 10); /* exactly enough */
    assert_int_equal(lmm_residency_plan(&r, &o), 0);
    assert_int_equal(r.n_pinned, 10);
    lmm_residency_free(&r);
}

/* Every budget from all-resident down to the minimum: the plan fits the budget, pins as
 * much as fits beside 2 streaming slots, and pinned slots are numbered in cycle order. */
static void test_budgets(void **state) {
    (void)state;
    const uint32_t n = 12;
    for (uint64_t slots = 3; slots <= n + 1; slots++) {
        lmm_residency r;
        lmm_residency_opts o = opts(100 * MIB + slots * 32 * MIB + 5, n);
        assert_int_equal(lmm_residency_plan(&r, &o), 0);
        assert_true(r.used_bytes <= o.budget);
        if (slots == n + 1) {
            assert_int_equal(r.n_pinned, n);
            assert_int_equal(r.n_stream, 0);
        } else {
            assert_int_equal(r.n_stream, 2);
            assert_int_equal(r.n_pinned, slots - 3);
        }
        uint32_t next = 0, rank = 0;
        for (uint32_t i = 0; i < n; i++) {
            if (r.pinned[i]) {
                assert_int_equal(r.slot[i], next++);
                assert_int_equal(r.stream_rank[i], UINT32_MAX);
            } else {
                assert_int_equal(r.slot[i], UINT32_MAX);
                assert_int_equal(r.stream_rank[i], rank++);
            }
        }
        assert_int_equal(next, r.n_pinned);
        lmm_residency_free(&r);
    }
}

static void test_too_small(void **state) {
    (void)state;
    lmm_residency r;
    lmm_residency_opts o = opts(100 * MIB + 3 * 32 * MIB - 1, 12);
    assert_int_equal(lmm_residency_plan(&r, &o), -1);
    const char *e = lmm_error_get();
    assert_non_null(strstr(e, "too small"));
    assert_non_null(strstr(e, "at least 196.0 MiB")); /* 100 + 3 * 32 */
    o = opts(100 * MIB + 3 * 32 * MIB, 12);
    assert_int_equal(lmm_residency_plan(&r, &o), 0);
    assert_int_equal(r.n_pinned, 0);
    assert_int_equal(r.n_stream, 2);
    lmm_residency_free(&r);
    /* more streaming slots asked for */
    o = opts(100 * MIB + 9 * 32 * MIB, 12);
    o.stream_slots = 4;
    assert_int_equal(lmm_residency_plan(&r, &o), 0);
    assert_int_equal(r.n_stream, 4);
    assert_int_equal(r.n_pinned, 4);
    lmm_residency_free(&r);
}

/* The dense predictor: the streamed pieces, in cycle order, cycle after cycle; the k-th
 * access is (cycle k / S, rank k % S) — what a compute worker derives on its own. */
static void test_predictor(void **state) {
    (void)state;
    const uint8_t streamed[7] = {1, 0, 1, 1, 0, 0, 1};
    const uint32_t order[4] = {0, 2, 3, 6};
    lmm_predictor *p;
    assert_int_equal(lmm_predictor_create_dense(&p, streamed, 7), 0);
    lmm_access a[3];
    for (uint64_t k = 0; k < 30;) {
        uint32_t got = lmm_predictor_next(p, a, 3);
        assert_int_equal(got, 3);
        for (uint32_t i = 0; i < got; i++, k++) {
            assert_int_equal(a[i].piece, order[k % 4]);
            assert_int_equal(a[i].cycle, k / 4);
        }
        lmm_predictor_observe(p, k / 4);
    }
    lmm_predictor_free(p);
    const uint8_t none[3] = {0, 0, 0};
    assert_int_equal(lmm_predictor_create_dense(&p, none, 3), 0);
    assert_int_equal(lmm_predictor_next(p, a, 3), 0);
    lmm_predictor_free(p);
}

static void test_depth(void **state) {
    (void)state;
    lmm_prefetch_depth d;
    lmm_prefetch_depth_init(&d, 4);
    assert_int_equal(lmm_prefetch_depth_get(&d), 4); /* unmeasured: as deep as possible */
    for (int i = 0; i < 50; i++) {
        lmm_prefetch_depth_read(&d, 100.0);
        lmm_prefetch_depth_compute(&d, 1000.0);
    }
    assert_int_equal(lmm_prefetch_depth_get(&d), 1); /* reads 10x faster than compute */
    for (int i = 0; i < 50; i++) lmm_prefetch_depth_read(&d, 2500.0);
    assert_int_equal(lmm_prefetch_depth_get(&d), 3); /* 2.5x slower: 3 in flight */
    for (int i = 0; i < 50; i++) lmm_prefetch_depth_read(&d, 100000.0);
    assert_int_equal(lmm_prefetch_depth_get(&d), 4); /* capped at the streaming slots */
}

static void test_layout(void **state) {
    (void)state;
    /* layer split: even, contiguous, covering */
    for (uint32_t L = 1; L <= 9; L++)
        for (uint32_t W = 1; W <= L; W++) {
            uint32_t at = 0, lo = UINT32_MAX, hi = 0;
            for (uint32_t w = 0; w < W; w++) {
                uint32_t b, e;
                lmm_group_layers(L, W, w, &b, &e);
                assert_int_equal(b, at);
                assert_true(e > b);
                if (e - b < lo) lo = e - b;
                if (e - b > hi) hi = e - b;
                at = e;
            }
            assert_int_equal(at, L);
            assert_true(hi - lo <= 1);
        }
    /* packing: each range widened to 4 KiB, data at slot_offset + offset % 4096 */
    const uint64_t off[3] = {100, 8192, 4095}, len[3] = {3000, 10, 2}; /* [100, 3100): one block; [4095, 4097): two */
    uint64_t so[3];
    assert_int_equal(lmm_group_pack(off, len, 3, so), 4096 + 4096 + 8192);
    assert_int_equal(so[0], 0);
    assert_int_equal(so[1], 4096);
    assert_int_equal(so[2], 8192);
    /* distinct tokens in order of first appearance */
    const uint32_t toks[8] = {5, 9, 5, 5, 1, 9, 7, 1};
    uint32_t distinct[8], row_of[8], hash[16];
    uint32_t nd = lmm_group_distinct(toks, 8, distinct, row_of, hash, lmm_group_hash_cap(8));
    assert_int_equal(nd, 4);
    const uint32_t want_d[4] = {5, 9, 1, 7}, want_r[8] = {0, 1, 0, 0, 2, 1, 3, 2};
    assert_memory_equal(distinct, want_d, sizeof want_d);
    assert_memory_equal(row_of, want_r, sizeof want_r);
    /* tags keep their kinds apart */
    assert_int_equal(lmm_tag_kind(lmm_tag_pinned(7)), LMM_TAG_PINNED);
    assert_int_equal(lmm_tag_kind(lmm_tag_stream(1ull << 40, 7)), LMM_TAG_STREAM);
    assert_int_equal(lmm_tag_kind(lmm_tag_embd(3)), LMM_TAG_EMBD);
    assert_true(lmm_tag_embd(UINT64_MAX) != LMM_TAG_SMALL);
    assert_true(lmm_tag_stream(3, 7) != lmm_tag_stream(4, 7));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spread),    cmocka_unit_test(test_all_resident), cmocka_unit_test(test_budgets),
        cmocka_unit_test(test_too_small), cmocka_unit_test(test_predictor),    cmocka_unit_test(test_depth),
        cmocka_unit_test(test_layout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
