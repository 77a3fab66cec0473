/* tests/model/test_kv_spill.c — the paged live KV of the executor (docs/kv-cache.md,
 * "Long contexts: live KV spill").
 *
 *  - bit identity: 3 sequences of 420, 301 and 233 positions, interleaved row by row in
 *    batches that mix prefill chunks and single steps, give logits memcmp-identical to
 *    the all-in-RAM executor with a RAM budget of a few KV blocks (window of 1 block),
 *    of a dozen (windows of 3, blocks reused across steps) and of a third of the cache
 *    at the default block size, with 1 and 2 threads, on the best ISA path; on the
 *    other paths this CPU has, the smallest budget with 2 threads and the others with 1; two
 *    lmsynth models (head_dim 64: the vector loops; head_dim 16: the tails);
 *  - the spill really happened (blocks read and written) and the KV frames stay
 *    within the budget;
 *  - the fallbacks (buffered I/O where O_DIRECT is refused, pread/pwrite without
 *    io_uring; forced by LMM_KV_SPILL_PLAIN_IO=1), the directory on tmpfs: the same bits;
 *  - KV export / import with spill on: kv_read gives the all-in-RAM executor's bytes,
 *    kv_write into another sequence then gives the logits of recomputation;
 *  - errors: a spill directory that cannot hold a file is named in the message; a
 *    budget below two blocks, or a budget without a directory, is refused. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "lmm/error.h"
#include "lmm/executor.h"
#include "lmm/hal.h"
#include "lmm/model.h"
#include "lmm/plan.h"
#include "lmm/transformer.h"
#include "test_util.h"

#if defined(__SANITIZE_ADDRESS__)
#define LMM_TEST_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LMM_TEST_UNDER_ASAN 1
#endif
#endif
#ifndef LMM_TEST_UNDER_ASAN
#define LMM_TEST_UNDER_ASAN 0
#endif

#define N_SEQS 3
#define MAX_CHUNK 24
#define MAX_BATCH (N_SEQS * MAX_CHUNK)
#define N_CTX 448
static const uint32_t k_len[N_SEQS] = {420, 301, 233};
/* chunk sizes taken in turn: prefill chunks and single steps */
static const uint32_t k_chunks[] = {13, 1, 1, 7, 1, 21, 3, 1, 1, 9} /* 21: two passes of rows */;
#define N_CHUNKS (sizeof k_chunks / sizeof *k_chunks)

static char g_dir[512];
static int g_have_models;

enum { M_HD64, M_HD16, M_COUNT };
static const char *k_file[M_COUNT] = {"hd64-f16.gguf", "hd16-f32.gguf"};

static int setup(void **state) {
    (void)state;
    if (!test_tmpdir(g_dir, sizeof g_dir)) return -1;
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", g_dir, k_file[M_HD64]);
    const char *a1[] = {"--shape", "tiny", "--format", "gguf", "--dtype", "f16", "--dim", "256", "--hidden", "320",
                        "--layers", "2", "--heads", "4", "--kv-heads", "2", "--vocab", "300", "--seq", "640",
                        "--seed", "11", "--out", p, NULL};
    if (test_run_lmsynth(a1)) return 0; /* the tests skip */
    snprintf(p, sizeof p, "%s/%s", g_dir, k_file[M_HD16]);
    const char *a2[] = {"--shape", "tiny", "--format", "gguf", "--dtype", "f32", "--layers", "3", "--vocab", "260",
                        "--seq", "640", "--seed", "12", "--out", p, NULL};
    if (test_run_lmsynth(a2)) return -1;
    g_have_models = 1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- a model and its executors ------------------------------------------------------------ */

typedef struct {
    lmm_model_desc desc;
    lmm_weights w;
    lmm_plan plan;
    lmm_small_tensors small;
    lmm_weight_source src;
    size_t V;
    uint32_t L;
    uint32_t *tok[N_SEQS];  /* [k_len[s]] */
} model;

static void seq_tokens(uint32_t *tok, uint32_t n, uint32_t n_vocab, uint64_t seed) {
    uint64_t s = 0x853c49e6748fea9bull ^ seed;
    tok[0] = 1 % n_vocab;
    for (uint32_t i = 1; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (uint32_t)((s >> 33) % n_vocab);
    }
}

static int model_load(model *m, int mi) {
    if (!g_have_models) return -1;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", g_dir, k_file[mi]);
    memset(m, 0, sizeof *m);
    if (lmm_model_desc_open(&m->desc, path) || lmm_weights_load(&m->w, &m->desc) ||
        lmm_plan_build(&m->plan, &m->desc, 16384) ||
        lmm_small_tensors_read(&m->small, &m->desc, 0, m->desc.hp.n_layers, 1) ||
        lmm_source_resident_init(&m->src, &m->plan, &m->w))
        fail_msg("%s", lmm_error_get());
    m->V = m->desc.hp.n_vocab;
    m->L = m->desc.hp.n_layers;
    for (int s = 0; s < N_SEQS; s++) {
        m->tok[s] = malloc(k_len[s] * sizeof(uint32_t));
        assert_non_null(m->tok[s]);
        seq_tokens(m->tok[s], k_len[s], (uint32_t)m->V, (uint64_t)s * 131 + 7);
    }
    return 0;
}

static void model_free(model *m) {
    for (int s = 0; s < N_SEQS; s++) free(m->tok[s]);
    lmm_source_free(&m->src);
    lmm_small_tensors_free(&m->small);
    lmm_plan_free(&m->plan);
    lmm_weights_free(&m->w);
    lmm_model_desc_free(&m->desc);
}

/* Bytes of one KV block of B positions, as the executor rounds it (4 KiB). */
static uint64_t block_bytes(const model *m, uint32_t B) {
    uint64_t b = (uint64_t)B * m->desc.hp.n_kv_heads * m->desc.hp.head_dim * sizeof(float);
    return (b + 4095) / 4096 * 4096;
}

static lmm_executor *exec_new(const model *m, int threads, uint64_t kv_ram, const char *dir, uint32_t B) {
    lmm_executor_opts o = {.layer_begin = 0, .layer_end = m->L, .head = 1, .max_batch = MAX_BATCH,
                           .max_seqs = N_SEQS, .n_ctx = N_CTX, .n_threads = threads,
                           .kv_ram_bytes = kv_ram, .kv_spill_dir = dir, .kv_block = B};
    lmm_executor *ex = NULL;
    if (lmm_executor_init(&ex, &m->plan, &m->small, &m->src, &o)) fail_msg("%s", lmm_error_get());
    return ex;
}

/* Runs the three sequences from position `from` (each) to their ends, round by round:
 * in round r sequence s takes a chunk of k_chunks[(r + 3s) % N_CHUNKS] rows, and the
 * rows of the sequences are interleaved one by one in the batch. out[s]: [k_len[s]][V]. */
static void run_all(lmm_executor *ex, const model *m, uint32_t from, float **out) {
    uint32_t next[N_SEQS], seq[MAX_BATCH], pos[MAX_BATCH], tok[MAX_BATCH];
    float *lg = malloc((size_t)MAX_BATCH * m->V * sizeof(float));
    assert_non_null(lg);
    for (int s = 0; s < N_SEQS; s++) next[s] = from;
    for (uint32_t r = 0;; r++) {
        uint32_t take[N_SEQS], left = 0, n = 0;
        for (int s = 0; s < N_SEQS; s++) {
            uint32_t c = k_chunks[(r + 3u * (uint32_t)s) % N_CHUNKS];
            take[s] = k_len[s] - next[s] < c ? k_len[s] - next[s] : c;
            left += take[s];
        }
        if (!left) break;
        for (uint32_t i = 0; i < MAX_CHUNK; i++)
            for (int s = 0; s < N_SEQS; s++)
                if (i < take[s]) {
                    seq[n] = (uint32_t)s;
                    pos[n] = next[s] + i;
                    tok[n] = m->tok[s][next[s] + i];
                    n++;
                }
        lmm_executor_batch b = {.n = n, .seq = seq, .pos = pos, .tokens = tok, .logits = lg};
        if (lmm_executor_step(ex, &b)) fail_msg("%s", lmm_error_get());
        for (uint32_t i = 0; i < n; i++)
            memcpy(out[seq[i]] + (size_t)pos[i] * m->V, lg + (size_t)i * m->V, m->V * sizeof(float));
        for (int s = 0; s < N_SEQS; s++) next[s] += take[s];
    }
    free(lg);
}

static void logits_alloc(const model *m, float **out) {
    for (int s = 0; s < N_SEQS; s++) {
        out[s] = calloc((size_t)k_len[s] * m->V, sizeof(float));
        assert_non_null(out[s]);
    }
}

static void logits_free(float **out) {
    for (int s = 0; s < N_SEQS; s++) free(out[s]);
}

/* ---- bit identity ---------------------------------------------------------------------------- */

static void check_model(int mi) {
    model m;
    if (model_load(&m, mi)) skip();
    float *ref[N_SEQS], *got[N_SEQS];
    logits_alloc(&m, ref);
    logits_alloc(&m, got);
    lmm_isa best = lmm_hal_isa_best();
    assert_int_equal(lmm_hal_isa_set(best), 0);
    lmm_executor *ex = exec_new(&m, 1, 0, NULL, 0);
    assert_int_equal(lmm_executor_kv_spill_stats(ex, NULL, NULL, NULL), 0);
    run_all(ex, &m, 0, ref);
    lmm_executor_free(ex);

    const size_t kv_dim = (size_t)m.desc.hp.n_kv_heads * m.desc.hp.head_dim;
    const uint64_t full = 2ull * N_SEQS * m.L * N_CTX * kv_dim * sizeof(float);
    struct {
        uint32_t B;
        uint64_t ram;
        const char *what;
    } cfg[] = {{8, 4 * block_bytes(&m, 8), "4 blocks of 8"},
               {8, 13 * block_bytes(&m, 8), "13 blocks of 8"},
               {0, full / 3, "a third, default blocks"}};
    for (int isa = LMM_ISA_SCALAR; isa <= (int)best; isa++) {
        assert_int_equal(lmm_hal_isa_set((lmm_isa)isa), 0);
        for (int threads = 1; threads <= 2; threads++)
            for (size_t c = 0; c < sizeof cfg / sizeof *cfg; c++) {
                /* every budget and thread count on the best path; one of each on the others
                 * (the kernels' own test checks the paths against each other) */
                if (isa != (int)best && (c != 0) != (threads == 1)) continue;
#if LMM_TEST_UNDER_ASAN
                /* under the sanitizers (10-20x slower) the memory checks are the point:
                 * the best path, each budget once, the smallest with 2 threads */
                if (isa != (int)best || (threads == 2) != (c == 0)) continue;
#endif
                ex = exec_new(&m, threads, cfg[c].ram, g_dir, cfg[c].B);
                size_t ram;
                uint64_t rd, wr;
                run_all(ex, &m, 0, got);
                assert_int_equal(lmm_executor_kv_spill_stats(ex, &ram, &rd, &wr), 1);
                fprintf(stderr, "%s, %s, %d thread(s), budget %s (%llu of %llu bytes): %zu bytes of frames, "
                                "%llu blocks read, %llu written\n",
                        k_file[mi], lmm_hal_isa_name((lmm_isa)isa), threads, cfg[c].what,
                        (unsigned long long)cfg[c].ram, (unsigned long long)full, ram, (unsigned long long)rd,
                        (unsigned long long)wr);
                assert_true(ram <= cfg[c].ram);
                assert_true(rd > 0 && wr > 0);
                for (int s = 0; s < N_SEQS; s++)
                    if (memcmp(ref[s], got[s], (size_t)k_len[s] * m.V * sizeof(float)))
                        fail_msg("%s: ISA %s, %d thread(s), budget %s: sequence %d differs from the all-in-RAM "
                                 "logits",
                                 k_file[mi], lmm_hal_isa_name((lmm_isa)isa), threads, cfg[c].what, s);
                lmm_executor_free(ex);
            }
    }
    assert_int_equal(lmm_hal_isa_set(best), 0);
    logits_free(ref);
    logits_free(got);
    model_free(&m);
}

static void test_spill_hd64(void **state) {
    (void)state;
    check_model(M_HD64);
}

static void test_spill_hd16(void **state) {
    (void)state;
    check_model(M_HD16);
}

/* ---- KV export / import -------------------------------------------------------------------- */

static void test_spill_kv_export(void **state) {
    (void)state;
    model m;
    if (model_load(&m, M_HD16)) skip();
    float *ref[N_SEQS], *got[N_SEQS];
    logits_alloc(&m, ref);
    logits_alloc(&m, got);
    lmm_executor *ram = exec_new(&m, 2, 0, NULL, 0);
    lmm_executor *sp = exec_new(&m, 2, 5 * block_bytes(&m, 8), g_dir, 8);
    run_all(ram, &m, 0, ref);
    run_all(sp, &m, 0, got);
    /* kv_read: the same bytes, ranges across block edges */
    const uint32_t P = 203;
    size_t kvb = lmm_executor_kv_bytes(sp, P);
    assert_int_equal(kvb, lmm_executor_kv_bytes(ram, P));
    float *a = malloc(kvb), *b = malloc(kvb);
    assert_non_null(a);
    assert_non_null(b);
    for (int s = 0; s < N_SEQS; s++) {
        assert_int_equal(lmm_executor_kv_read(ram, (uint32_t)s, 5, 5 + P, a), 0);
        assert_int_equal(lmm_executor_kv_read(sp, (uint32_t)s, 5, 5 + P, b), 0);
        assert_memory_equal(a, b, kvb);
    }
    /* kv_write: sequence 0's first 203 positions into sequence 2 (in two parts), then
     * the rest of sequence 0's tokens as sequence 2: the logits of sequence 0 */
    const uint32_t H = 77;
    assert_int_equal(lmm_executor_kv_read(sp, 0, 0, H, a), 0);
    assert_int_equal(lmm_executor_kv_write(sp, 2, 0, H, a), 0);
    assert_int_equal(lmm_executor_kv_read(ram, 0, H, P, a), 0);
    assert_int_equal(lmm_executor_kv_write(sp, 2, H, P, a), 0);
    assert_int_equal(lmm_executor_seq_len(sp, 2), P);
    float *lg = malloc((size_t)MAX_CHUNK * m.V * sizeof(float));
    assert_non_null(lg);
    uint32_t pos[MAX_CHUNK], seq[MAX_CHUNK];
    for (uint32_t p = P; p < k_len[0]; p += MAX_CHUNK - 5) {
        uint32_t n = k_len[0] - p < MAX_CHUNK - 5 ? k_len[0] - p : MAX_CHUNK - 5;
        for (uint32_t i = 0; i < n; i++) pos[i] = p + i, seq[i] = 2;
        lmm_executor_batch bt = {.n = n, .seq = seq, .pos = pos, .tokens = m.tok[0] + p, .logits = lg};
        if (lmm_executor_step(sp, &bt)) fail_msg("%s", lmm_error_get());
        assert_memory_equal(lg, ref[0] + (size_t)p * m.V, (size_t)n * m.V * sizeof(float));
    }
    /* the checks of the all-in-RAM path hold too */
    lmm_executor_seq_truncate(sp, 1, 4);
    assert_int_equal(lmm_executor_kv_read(sp, 1, 0, 8, a), -1);
    assert_non_null(strstr(lmm_error_get(), "valid"));
    assert_int_equal(lmm_executor_kv_write(sp, 1, 8, 16, a), -1);
    assert_non_null(strstr(lmm_error_get(), "gap"));
    free(lg);
    free(a);
    free(b);
    lmm_executor_free(ram);
    lmm_executor_free(sp);
    logits_free(ref);
    logits_free(got);
    model_free(&m);
}

/* ---- the fallbacks: buffered I/O (a file system that refuses O_DIRECT) and pread/pwrite
 * (no io_uring), forced by LMM_KV_SPILL_PLAIN_IO=1; the directory on tmpfs ------------- */

static void test_spill_buffered(void **state) {
    (void)state;
    char dir[64] = "/dev/shm/lmmspill.XXXXXX";
    if (access("/dev/shm", W_OK) != 0 || !mkdtemp(dir)) {
        fprintf(stderr, "SKIP: no writable /dev/shm\n");
        skip();
    }
    model m;
    if (model_load(&m, M_HD16)) {
        rmdir(dir);
        skip();
    }
    float *ref[N_SEQS], *got[N_SEQS];
    logits_alloc(&m, ref);
    logits_alloc(&m, got);
    lmm_executor *ex = exec_new(&m, 2, 0, NULL, 0);
    run_all(ex, &m, 0, ref);
    lmm_executor_free(ex);
    setenv("LMM_KV_SPILL_PLAIN_IO", "1", 1);
    ex = exec_new(&m, 2, 6 * block_bytes(&m, 8), dir, 8);
    unsetenv("LMM_KV_SPILL_PLAIN_IO");
    run_all(ex, &m, 0, got);
    uint64_t rd, wr;
    assert_int_equal(lmm_executor_kv_spill_stats(ex, NULL, &rd, &wr), 1);
    assert_true(rd > 0 && wr > 0);
    lmm_executor_free(ex);
    for (int s = 0; s < N_SEQS; s++) assert_memory_equal(ref[s], got[s], (size_t)k_len[s] * m.V * sizeof(float));
    assert_int_equal(rmdir(dir), 0); /* empty: the spill file is gone */
    logits_free(ref);
    logits_free(got);
    model_free(&m);
}

/* ---- errors ---------------------------------------------------------------------------------- */

static void test_spill_errors(void **state) {
    (void)state;
    model m;
    if (model_load(&m, M_HD16)) skip();
    lmm_executor_opts o = {.layer_begin = 0, .layer_end = m.L, .head = 1, .max_batch = 4, .max_seqs = 2,
                           .n_ctx = N_CTX, .n_threads = 1, .kv_ram_bytes = 4 * block_bytes(&m, 8),
                           .kv_spill_dir = NULL, .kv_block = 8};
    lmm_executor *ex = NULL;
    /* a budget below the cache and no directory */
    assert_int_equal(lmm_executor_init(&ex, &m.plan, &m.small, &m.src, &o), -1);
    assert_non_null(strstr(lmm_error_get(), "no spill directory"));
    /* a directory under a regular file: not even root can create it */
    char bad[1024];
    snprintf(bad, sizeof bad, "%s/%s/spill", g_dir, k_file[M_HD16]);
    o.kv_spill_dir = bad;
    assert_int_equal(lmm_executor_init(&ex, &m.plan, &m.small, &m.src, &o), -1);
    fprintf(stderr, "expected error: %s\n", lmm_error_get());
    assert_non_null(strstr(lmm_error_get(), bad));
    snprintf(bad, sizeof bad, "%s/no-such-dir", g_dir);
    assert_int_equal(lmm_executor_init(&ex, &m.plan, &m.small, &m.src, &o), -1);
    assert_non_null(strstr(lmm_error_get(), bad));
    /* a budget of less than two blocks */
    o.kv_spill_dir = g_dir;
    o.kv_ram_bytes = block_bytes(&m, 8) + 100;
    assert_int_equal(lmm_executor_init(&ex, &m.plan, &m.small, &m.src, &o), -1);
    assert_non_null(strstr(lmm_error_get(), "fewer than 2"));
    /* a budget the whole cache fits in: all in RAM, no spill file */
    o.kv_ram_bytes = 1ull << 40;
    o.kv_spill_dir = NULL;
    assert_int_equal(lmm_executor_init(&ex, &m.plan, &m.small, &m.src, &o), 0);
    assert_int_equal(lmm_executor_kv_spill_stats(ex, NULL, NULL, NULL), 0);
    lmm_executor_free(ex);
    /* the spill file is gone as soon as it is open: nothing left in the directory */
    o.kv_ram_bytes = 4 * block_bytes(&m, 8);
    o.kv_spill_dir = g_dir;
    assert_int_equal(lmm_executor_init(&ex, &m.plan, &m.small, &m.src, &o), 0);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -q '^live-'", g_dir);
    assert_int_not_equal(system(cmd), 0);
    lmm_executor_free(ex);
    model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spill_hd64),
        cmocka_unit_test(test_spill_hd16),
        cmocka_unit_test(test_spill_kv_export),
        cmocka_unit_test(test_spill_buffered),
        cmocka_unit_test(test_spill_errors),
    };
    const char *filter = getenv("LMM_TEST_FILTER"); /* e.g. "test_spill_kv*" under a sanitizer */
    if (filter && *filter) cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, setup, teardown);
}
