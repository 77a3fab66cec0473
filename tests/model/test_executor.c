/* tests/model/test_executor.c — the plan (lmm/plan.h) and the executor (lmm/executor.h).
 *
 *  - plan: segments cover every byte of every matrix exactly once, in row order; slot
 *    offsets are 4 KiB aligned and packed; no piece exceeds piece_bytes or slot_bytes;
 *    pieces never span two layers; big matrices split, small ones share; a piece size
 *    below the minimum is refused with a message that gives the minimum;
 *  - bit identity (memcmp of logits) against lmm_transformer_forward, for: the resident,
 *    naive (buffered and O_DIRECT) and mmap sources; piece sizes from the minimum (a row
 *    or two per piece) to unlimited; a layer split 0..k + k..L with x handed over, for
 *    every k; 3 sequences interleaved in one batch vs each alone; 1 and 2 threads;
 *    embedding rows given by the caller — on stories260K and lmsynth models (GGUF F16,
 *    safetensors BF16 NeoX, q/k/v biases with an untied output, F32 with wide rows);
 *  - the piece contract: each step acquires the executor's pieces once each, in plan
 *    order, one held at a time, each released; a source error comes out of
 *    lmm_executor_step with its message, every acquired piece released, and the step
 *    can be run again;
 *  - batch checks (sequence order, gaps, ranges) and init checks. */
#include <errno.h>
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
#include "lmm/model.h"
#include "lmm/plan.h"
#include "lmm/transformer.h"
#include "test_util.h"

#define SEQ_LEN 24
#define N_SEQS 3
#define MAX_BATCH 8
static const uint32_t k_seq_len[N_SEQS] = {SEQ_LEN, SEQ_LEN - 7, SEQ_LEN - 3};

/* ---- models ------------------------------------------------------------------------------- */

static char g_dir[512];
static int g_have_synth;

enum { M_STORIES, M_F16, M_BF16, M_BIAS, M_WIDE, M_COUNT };
static const char *k_model_name[M_COUNT] = {"stories260K", "tiny-f16.gguf (4 layers)", "tiny-bf16 safetensors",
                                            "tiny-bias.gguf (untied)", "wide-f32.gguf"};

/* Path of model m, or NULL (skipped) when it cannot be had. */
static const char *model_path(int m, char *buf, size_t cap) {
    if (m == M_STORIES) return test_shared_file(buf, cap, "models/stories260K/stories260K.bin");
    if (!g_have_synth) return NULL;
    static const char *files[M_COUNT] = {NULL, "tiny-f16.gguf", "tiny-bf16", "tiny-bias.gguf", "wide-f32.gguf"};
    snprintf(buf, cap, "%s/%s", g_dir, files[m]);
    return buf;
}

static int setup_models(void **state) {
    (void)state;
    if (!test_tmpdir(g_dir, sizeof g_dir)) return -1;
    char p[1024], q[1024];
    snprintf(p, sizeof p, "%s/tiny-f16.gguf", g_dir);
    const char *a1[] = {"--shape", "tiny", "--format", "gguf", "--dtype", "f16", "--layers", "4", "--out", p, NULL};
    if (test_run_lmsynth(a1)) return 0; /* tests that need them skip */
    snprintf(p, sizeof p, "%s/tiny-bf16", g_dir);
    const char *a2[] = {"--shape", "tiny", "--format", "safetensors", "--dtype", "bf16", "--out", p, NULL};
    snprintf(q, sizeof q, "%s/tiny-bias.gguf", g_dir);
    const char *a3[] = {"--shape", "tiny", "--format", "gguf", "--qkv-bias", "--untied", "--seed", "5", "--out",
                        q, NULL};
    if (test_run_lmsynth(a2) || test_run_lmsynth(a3)) return -1;
    /* rows of 4400 bytes (ffn_down): at the minimum piece size a piece holds a row or two */
    snprintf(p, sizeof p, "%s/wide-f32.gguf", g_dir);
    const char *a4[] = {"--shape", "tiny", "--format", "gguf", "--dtype", "f32", "--dim", "128", "--hidden", "1100",
                        "--layers", "3", "--heads", "4", "--kv-heads", "2", "--vocab", "300", "--seed", "9",
                        "--out", p, NULL};
    if (test_run_lmsynth(a4)) return -1;
    g_have_synth = 1;
    return 0;
}

static int teardown_models(void **state) {
    (void)state;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

typedef struct {
    lmm_model_desc desc;
    lmm_weights w;
    size_t V;
    uint32_t L;
    uint32_t *tok[N_SEQS];  /* [k_seq_len[s]] tokens of each sequence */
    float *ref[N_SEQS];     /* [k_seq_len[s]][V] lmm_transformer_forward logits, each sequence alone */
} model;

static void seq_tokens(uint32_t *tok, uint32_t n, uint32_t n_vocab, uint64_t seed) {
    uint64_t s = 0x853c49e6748fea9bull ^ seed;
    tok[0] = 1 % n_vocab;
    for (uint32_t i = 1; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (uint32_t)((s >> 33) % n_vocab);
    }
}

static void model_load(model *m, const char *path) {
    memset(m, 0, sizeof *m);
    if (lmm_model_desc_open(&m->desc, path)) fail_msg("%s", lmm_error_get());
    if (lmm_weights_load(&m->w, &m->desc)) fail_msg("%s", lmm_error_get());
    m->V = m->desc.hp.n_vocab;
    m->L = m->desc.hp.n_layers;
    lmm_transformer_opts o = {SEQ_LEN, 64, 1};
    lmm_transformer *t = NULL;
    if (lmm_transformer_init(&t, &m->w, &o)) fail_msg("%s", lmm_error_get());
    for (int s = 0; s < N_SEQS; s++) {
        m->tok[s] = malloc(k_seq_len[s] * sizeof(uint32_t));
        m->ref[s] = malloc(k_seq_len[s] * m->V * sizeof(float));
        assert_non_null(m->tok[s]);
        assert_non_null(m->ref[s]);
        seq_tokens(m->tok[s], k_seq_len[s], (uint32_t)m->V, (uint64_t)s * 977);
        if (lmm_transformer_forward(t, m->tok[s], k_seq_len[s], 0, m->ref[s], 1)) fail_msg("%s", lmm_error_get());
    }
    lmm_transformer_free(t);
}

static void model_free(model *m) {
    for (int s = 0; s < N_SEQS; s++) {
        free(m->tok[s]);
        free(m->ref[s]);
    }
    lmm_weights_free(&m->w);
    lmm_model_desc_free(&m->desc);
}

/* ---- plan ------------------------------------------------------------------------------------ */

static void check_plan(const lmm_model_desc *d, const lmm_plan *p, const char *what) {
    assert_int_equal(p->n_matrices, d->hp.n_layers * LMM_MAT_PER_LAYER + 1);
    uint64_t weight = 0;
    /* every matrix: segments consecutive, rows [0, rows) exactly once, bytes where the tensor is */
    for (uint32_t mi = 0; mi < p->n_matrices; mi++) {
        const lmm_plan_matrix *m = &p->matrices[mi];
        const lmm_tensor_desc *t = &d->tensors[m->tensor];
        assert_true(m->n_segments >= 1);
        assert_int_equal(m->rows * m->row_bytes, t->nbytes);
        uint64_t r = 0;
        for (uint32_t s = m->first_segment; s < m->first_segment + m->n_segments; s++) {
            const lmm_plan_segment *g = &p->segments[s];
            assert_int_equal(g->matrix, mi);
            assert_int_equal(g->tensor, m->tensor);
            assert_int_equal(g->file, t->file);
            assert_int_equal(g->row_begin, r);
            assert_true(g->row_end > g->row_begin);
            assert_int_equal(g->file_offset, t->offset + g->row_begin * m->row_bytes);
            assert_int_equal(g->nbytes, (g->row_end - g->row_begin) * m->row_bytes);
            assert_int_equal(p->pieces[g->piece].layer, m->layer);
            r = g->row_end;
            weight += g->nbytes;
        }
        assert_int_equal(r, m->rows);
        /* each matrix tensor appears once */
        for (uint32_t mj = 0; mj < mi; mj++) assert_int_not_equal(p->matrices[mj].tensor, m->tensor);
    }
    assert_int_equal(weight, p->weight_bytes);
    /* pieces: segments in order, packed at 4 KiB aligned offsets, within piece_bytes and slot_bytes */
    uint32_t seg = 0;
    uint64_t max_bytes = 0;
    for (uint32_t i = 0; i < p->n_pieces; i++) {
        const lmm_plan_piece *pc = &p->pieces[i];
        assert_int_equal(pc->first_segment, seg);
        assert_true(pc->n_segments >= 1);
        uint64_t at = 0, data = 0;
        for (uint32_t s = pc->first_segment; s < pc->first_segment + pc->n_segments; s++) {
            const lmm_plan_segment *g = &p->segments[s];
            assert_int_equal(g->piece, i);
            assert_int_equal(g->slot_offset % 4096, 0);
            assert_int_equal(g->slot_offset, at);
            assert_int_equal(lmm_plan_segment_data_offset(g), g->slot_offset + g->file_offset % 4096);
            at += lmm_plan_span(g->file_offset, g->nbytes);
            assert_true(lmm_plan_segment_data_offset(g) + g->nbytes <= at);
            data += g->nbytes;
        }
        assert_int_equal(pc->bytes, at);
        assert_int_equal(pc->data_bytes, data);
        assert_true(pc->bytes <= p->piece_bytes);
        assert_true(pc->bytes <= p->slot_bytes);
        if (pc->bytes > max_bytes) max_bytes = pc->bytes;
        if (i > 0) assert_true(pc->layer >= p->pieces[i - 1].layer);
        seg += pc->n_segments;
    }
    assert_int_equal(seg, p->n_segments);
    assert_int_equal(max_bytes, p->slot_bytes);
    /* layer ranges */
    for (uint32_t l = 0; l <= d->hp.n_layers; l++)
        for (uint32_t i = p->layer_pieces[l]; i < p->layer_pieces[l + 1]; i++) assert_int_equal(p->pieces[i].layer, l);
    assert_int_equal(p->layer_pieces[0], 0);
    assert_int_equal(p->layer_pieces[d->hp.n_layers + 1], p->n_pieces);
    uint32_t f, e;
    assert_int_equal(lmm_plan_pieces_of(p, 0, d->hp.n_layers, 1, &f, &e), 0);
    assert_int_equal(f, 0);
    assert_int_equal(e, p->n_pieces);
    assert_int_equal(lmm_plan_pieces_of(p, 1, d->hp.n_layers, 0, &f, &e), 0);
    assert_int_equal(f, p->layer_pieces[1]);
    assert_int_equal(e, p->layer_pieces[d->hp.n_layers]);
    assert_int_equal(lmm_plan_pieces_of(p, 0, 1, 1, &f, &e), -1); /* the head follows the last layer */
    assert_int_equal(lmm_plan_pieces_of(p, 0, d->hp.n_layers + 1, 0, &f, &e), -1);
    /* small tensors and the embedding */
    for (uint32_t i = 0; i < p->n_small; i++) assert_int_equal(d->tensors[p->small[i]].n_dims, 1);
    const lmm_tensor_desc *te = lmm_model_desc_find(d, "token_embd.weight");
    assert_int_equal(p->embd.tensor, (uint32_t)(te - d->tensors));
    assert_int_equal(p->embd.n_rows, d->hp.n_vocab);
    assert_int_equal(p->embd.dim, d->hp.dim);
    assert_int_equal(lmm_plan_embd_offset(p, 3), te->offset + 3 * p->embd.row_bytes);
    (void)what;
}

static void test_plan(void **state) {
    (void)state;
    int ran = 0;
    for (int mi = 0; mi < M_COUNT; mi++) {
        char path[1024];
        if (!model_path(mi, path, sizeof path)) continue;
        lmm_model_desc d;
        if (lmm_model_desc_open(&d, path)) fail_msg("%s", lmm_error_get());
        uint64_t min = lmm_plan_min_piece_bytes(&d);
        assert_true(min >= 4096 && min % 4096 == 0);
        const uint64_t sizes[] = {min, min + 4096, 3 * min, 65536, 0, LMM_PLAN_PIECE_BYTES_MAX};
        uint32_t prev_pieces = UINT32_MAX;
        for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
            lmm_plan p;
            if (lmm_plan_build(&p, &d, sizes[si])) fail_msg("%s", lmm_error_get());
            check_plan(&d, &p, path);
            if (si == 0) {
                /* the minimum: the widest matrix is cut into pieces of a few rows */
                uint32_t split = 0;
                for (uint32_t m = 0; m < p.n_matrices; m++) split += p.matrices[m].n_segments > 1;
                assert_true(split > 0);
                /* wide-f32: ffn_down rows of 4400 bytes, pieces of 12 KiB: one or two rows each */
                if (mi == M_WIDE)
                    for (uint32_t s = 0; s < p.n_segments; s++)
                        if (p.matrices[p.segments[s].matrix].kind == LMM_MAT_FFN_DOWN)
                            assert_true(p.segments[s].row_end - p.segments[s].row_begin <= 2);
            }
            if (sizes[si] == LMM_PLAN_PIECE_BYTES_MAX) {
                /* unlimited: one piece per layer, every matrix one segment */
                assert_int_equal(p.n_pieces, d.hp.n_layers + 1);
                assert_int_equal(p.n_segments, p.n_matrices);
            }
            if (sizes[si] == 65536) {
                /* small matrices share pieces */
                int shared = 0;
                for (uint32_t i = 0; i < p.n_pieces; i++) shared |= p.pieces[i].n_segments > 1;
                assert_true(shared);
            }
            if (sizes[si] != 0 && sizes[si] > 3 * min) assert_true(p.n_pieces <= prev_pieces);
            prev_pieces = p.n_pieces;
            lmm_plan_free(&p);
        }
        /* below the minimum: a clear error with the minimum */
        lmm_plan p;
        assert_int_equal(lmm_plan_build(&p, &d, min - 1), -1);
        char want[64];
        snprintf(want, sizeof want, "minimum piece size for this model is %llu bytes", (unsigned long long)min);
        if (!strstr(lmm_error_get(), want)) fail_msg("error does not give the minimum: %s", lmm_error_get());
        assert_int_equal(lmm_plan_build(&p, &d, 1), -1);
        assert_int_equal(lmm_plan_build(&p, &d, LMM_PLAN_PIECE_BYTES_MAX + 1), -1);
        assert_non_null(strstr(lmm_error_get(), "too large"));
        lmm_plan_free(&p); /* safe on a failed build */
        fprintf(stderr, "plan %s: min piece %llu bytes\n", k_model_name[mi], (unsigned long long)min);
        lmm_model_desc_free(&d);
        ran++;
    }
    if (!ran) skip();
}

/* ---- running executors ---------------------------------------------------------------------- */

typedef enum { SRC_RESIDENT, SRC_NAIVE, SRC_NAIVE_DIRECT, SRC_MMAP } src_kind;
static const char *k_src_name[] = {"resident", "naive", "naive-O_DIRECT", "mmap"};
#define PB_MIN 1ull   /* piece_bytes: the model's minimum */
#define NO_SPLIT UINT32_MAX

typedef struct {
    src_kind src;
    uint64_t piece_bytes;   /* PB_MIN, 0 (default) or a size */
    uint32_t split;         /* NO_SPLIT, or k: executors [0, k) and [k, L) + head */
    int threads;
    int n_seqs;             /* 1: sequence 0 alone; 3: all interleaved */
    int explicit_embd;      /* the caller gives embedding row pointers */
} config;

typedef struct {
    lmm_small_tensors small;
    lmm_weight_source src;
    lmm_executor *ex;
} stage;

/* Creates the source of kind k; returns -1 (and skips nothing) only for O_DIRECT where
 * the file system refuses it. */
static int make_source(lmm_weight_source *s, src_kind k, const lmm_plan *p, const model *m) {
    switch (k) {
    case SRC_RESIDENT: return lmm_source_resident_init(s, p, &m->w);
    case SRC_NAIVE: return lmm_source_naive_init(s, p, MAX_BATCH, 0);
    case SRC_NAIVE_DIRECT: return lmm_source_naive_init(s, p, MAX_BATCH, 1);
    case SRC_MMAP: return lmm_source_mmap_init(s, p);
    }
    return -1;
}

/* Runs the configuration; out[s]: [k_seq_len[s]][V]. Returns -1 when the source kind is
 * not available here (O_DIRECT refused). */
static int run_config(const model *m, const config *c, float **out) {
    lmm_plan plan;
    uint64_t pb = c->piece_bytes == PB_MIN ? lmm_plan_min_piece_bytes(&m->desc) : c->piece_bytes;
    if (lmm_plan_build(&plan, &m->desc, pb)) fail_msg("%s", lmm_error_get());
    int n_st = c->split == NO_SPLIT ? 1 : 2;
    stage st[2];
    memset(st, 0, sizeof st);
    for (int i = 0; i < n_st; i++) {
        uint32_t a = n_st == 1 || i == 0 ? 0 : c->split, b = n_st == 1 || i == 1 ? m->L : c->split;
        int head = i == n_st - 1;
        if (c->src == SRC_RESIDENT) {
            if (lmm_small_tensors_from_weights(&st[i].small, &m->w)) fail_msg("%s", lmm_error_get());
        } else if (lmm_small_tensors_read(&st[i].small, &m->desc, a, b, head)) {
            fail_msg("%s", lmm_error_get());
        }
        if (make_source(&st[i].src, c->src, &plan, m)) {
            if (c->src == SRC_NAIVE_DIRECT && strstr(lmm_error_get(), "O_DIRECT")) {
                fprintf(stderr, "SKIP part: %s\n", lmm_error_get());
                for (int j = 0; j <= i; j++) {
                    lmm_executor_free(st[j].ex);
                    lmm_source_free(&st[j].src);
                    lmm_small_tensors_free(&st[j].small);
                }
                lmm_plan_free(&plan);
                return -1;
            }
            fail_msg("%s", lmm_error_get());
        }
        lmm_executor_opts o = {a, b, head, MAX_BATCH, N_SEQS, SEQ_LEN, c->threads, 0, NULL, 0}; /* [k, k): no layers */
        if (lmm_executor_init(&st[i].ex, &plan, &st[i].small, &st[i].src, &o)) fail_msg("%s", lmm_error_get());
    }

    const uint32_t pat1[] = {7, 1, 3, 8, 2, 5, 1};
    const uint32_t pat3[] = {3, 1, 2, 1, 2};
    uint32_t done[N_SEQS] = {0, 0, 0};
    uint32_t seq[MAX_BATCH], pos[MAX_BATCH], tok[MAX_BATCH];
    const void *rows[MAX_BATCH];
    float *x = malloc(MAX_BATCH * m->desc.hp.dim * sizeof(float));
    float *logits = malloc(MAX_BATCH * m->V * sizeof(float));
    assert_non_null(x);
    assert_non_null(logits);
    for (uint32_t step = 0;; step++) {
        uint32_t quota[N_SEQS] = {0, 0, 0}, n = 0, most = 0;
        for (int s = 0; s < c->n_seqs; s++) {
            uint32_t q = c->n_seqs == 1 ? pat1[step % 7] : pat3[(step + (uint32_t)s) % 5];
            uint32_t left = k_seq_len[s] - done[s];
            quota[s] = q < left ? q : left;
            if (quota[s] > most) most = quota[s];
        }
        if (most == 0) break;
        for (uint32_t r = 0; r < most; r++) /* interleaved token by token */
            for (int s = 0; s < c->n_seqs; s++)
                if (r < quota[s]) {
                    seq[n] = (uint32_t)s;
                    pos[n] = done[s] + r;
                    tok[n] = m->tok[s][pos[n]];
                    n++;
                }
        assert_true(n <= MAX_BATCH);
        if (c->explicit_embd) {
            const lmm_tensor_desc *te = lmm_model_desc_find(&m->desc, "token_embd.weight");
            for (uint32_t i = 0; i < n; i++)
                rows[i] = m->w.data[te - m->desc.tensors] + (uint64_t)tok[i] * (te->nbytes / te->shape[0]);
        }
        for (int i = 0; i < n_st; i++) {
            lmm_executor_batch b = {.n = n, .seq = seq, .pos = pos};
            if (i == 0) {
                b.tokens = tok;
                if (c->explicit_embd) b.embd_rows = rows;
            } else {
                b.x_in = x;
            }
            if (i < n_st - 1) b.x_out = x;
            if (i == n_st - 1) b.logits = logits;
            if (lmm_executor_step(st[i].ex, &b)) fail_msg("step %u: %s", step, lmm_error_get());
        }
        for (uint32_t i = 0; i < n; i++)
            memcpy(out[seq[i]] + (size_t)pos[i] * m->V, logits + (size_t)i * m->V, m->V * sizeof(float));
        for (int s = 0; s < c->n_seqs; s++) done[s] += quota[s];
    }
    for (int s = 0; s < c->n_seqs; s++)
        for (int i = 0; i < n_st; i++) assert_int_equal(lmm_executor_seq_len(st[i].ex, (uint32_t)s), k_seq_len[s]);
    free(x);
    free(logits);
    for (int i = 0; i < n_st; i++) {
        lmm_executor_free(st[i].ex);
        lmm_source_free(&st[i].src);
        lmm_small_tensors_free(&st[i].small);
    }
    lmm_plan_free(&plan);
    return 0;
}

static void check_config(const model *m, const config *c, const char *model_name) {
    float *out[N_SEQS];
    for (int s = 0; s < N_SEQS; s++) {
        out[s] = malloc(k_seq_len[s] * m->V * sizeof(float));
        assert_non_null(out[s]);
        memset(out[s], 0xff, k_seq_len[s] * m->V * sizeof(float));
    }
    if (run_config(m, c, out) == 0) {
        for (int s = 0; s < c->n_seqs; s++)
            for (size_t i = 0; i < k_seq_len[s] * m->V; i++)
                if (memcmp(&out[s][i], &m->ref[s][i], sizeof(float)) != 0)
                    fail_msg("%s: source %s piece_bytes %llu (1: the minimum) split %d threads %d seqs %d embd %d: "
                             "sequence %d token %zu logit %zu: %.9g != %.9g",
                             model_name, k_src_name[c->src], (unsigned long long)c->piece_bytes,
                             c->split == NO_SPLIT ? -1 : (int)c->split, c->threads, c->n_seqs, c->explicit_embd, s,
                             i / m->V, i % m->V, (double)out[s][i], (double)m->ref[s][i]);
    }
    for (int s = 0; s < N_SEQS; s++) free(out[s]);
}

static void check_model(int mi) {
    char path[1024];
    if (!model_path(mi, path, sizeof path)) skip();
    model m;
    model_load(&m, path);
    int runs = 0;
    const config base[] = {
        {SRC_RESIDENT, LMM_PLAN_PIECE_BYTES_MAX, NO_SPLIT, 1, 1, 0},
        {SRC_RESIDENT, PB_MIN, NO_SPLIT, 2, 1, 0},
        {SRC_RESIDENT, 65536, NO_SPLIT, 1, 1, 1},
        {SRC_NAIVE, PB_MIN, NO_SPLIT, 1, 1, 0},
        {SRC_NAIVE, 0, NO_SPLIT, 2, 1, 0},
        {SRC_NAIVE_DIRECT, 65536, NO_SPLIT, 2, 1, 0},
        {SRC_MMAP, PB_MIN, NO_SPLIT, 2, 1, 0},
        {SRC_MMAP, 0, NO_SPLIT, 1, 1, 1},
        /* three sequences interleaved in every batch */
        {SRC_RESIDENT, PB_MIN, NO_SPLIT, 1, 3, 0},
        {SRC_RESIDENT, 0, NO_SPLIT, 2, 3, 0},
        {SRC_NAIVE, 65536, NO_SPLIT, 2, 3, 1},
        {SRC_MMAP, PB_MIN, NO_SPLIT, 1, 3, 0},
    };
    for (size_t i = 0; i < sizeof base / sizeof *base; i++, runs++) check_config(&m, &base[i], k_model_name[mi]);
    /* every layer split, x handed from one executor to the next */
    for (uint32_t k = 0; k <= m.L; k++) {
        const src_kind kinds[] = {SRC_NAIVE, SRC_RESIDENT, SRC_MMAP};
        config c = {kinds[k % 3], k % 2 ? PB_MIN : 0, k, 1 + (int)(k % 2), 1, 0};
        check_config(&m, &c, k_model_name[mi]);
        c.n_seqs = 3;
        c.threads = 3 - c.threads;
        check_config(&m, &c, k_model_name[mi]);
        runs += 2;
    }
    fprintf(stderr, "%s: %d executor configurations bit-identical with lmm_transformer_forward\n", k_model_name[mi],
            runs);
    model_free(&m);
}

static void test_exec_stories260k(void **state) {
    (void)state;
    check_model(M_STORIES);
}
static void test_exec_f16(void **state) {
    (void)state;
    check_model(M_F16);
}
static void test_exec_bf16(void **state) {
    (void)state;
    check_model(M_BF16);
}
static void test_exec_bias(void **state) {
    (void)state;
    check_model(M_BIAS);
}
static void test_exec_wide(void **state) {
    (void)state;
    check_model(M_WIDE);
}

/* ---- the piece contract and source errors ---------------------------------------------- */

/* Wraps a source: logs acquires and releases, can fail the acquire of one piece. */
typedef struct {
    lmm_weight_source inner;
    int64_t fail_piece;       /* -1: never */
    uint32_t log[4096];       /* acquired pieces, in order */
    uint32_t n_acq, n_rel;
    int held;                 /* pieces held now */
    int max_held;
    int bad_release;
} spy_src;

static const void *spy_acquire(void *ctx, uint32_t piece) {
    spy_src *s = ctx;
    if ((int64_t)piece == s->fail_piece) {
        lmm_error_set("injected read error on this piece");
        return NULL;
    }
    const void *b = s->inner.acquire(s->inner.ctx, piece);
    if (!b) return NULL;
    if (s->n_acq < 4096) s->log[s->n_acq] = piece;
    s->n_acq++;
    if (++s->held > s->max_held) s->max_held = s->held;
    return b;
}

static void spy_release(void *ctx, uint32_t piece) {
    spy_src *s = ctx;
    if (s->held <= 0 || s->log[s->n_acq - 1] != piece) s->bad_release = 1;
    s->held--;
    s->n_rel++;
    s->inner.release(s->inner.ctx, piece);
}

static int spy_embd(void *ctx, const uint32_t *tokens, uint32_t n, const void **rows) {
    spy_src *s = ctx;
    return s->inner.embd_rows(s->inner.ctx, tokens, n, rows);
}

static void test_piece_contract(void **state) {
    (void)state;
    char path[1024];
    if (!model_path(M_F16, path, sizeof path)) skip();
    model m;
    model_load(&m, path);
    lmm_plan plan;
    if (lmm_plan_build(&plan, &m.desc, 16384)) fail_msg("%s", lmm_error_get());
    spy_src spy;
    memset(&spy, 0, sizeof spy);
    spy.fail_piece = -1;
    /* naive: a slot-shaped source without segment_data */
    assert_int_equal(lmm_source_naive_init(&spy.inner, &plan, MAX_BATCH, 0), 0);
    lmm_weight_source src = {&spy, spy_acquire, spy_release, NULL, spy_embd, NULL};
    lmm_small_tensors small;
    assert_int_equal(lmm_small_tensors_read(&small, &m.desc, 1, m.L, 1), 0);
    lmm_executor *ex = NULL;
    lmm_executor_opts o = {1, m.L, 1, MAX_BATCH, 1, SEQ_LEN, 2, 0, NULL, 0};
    /* a range starting at layer 1 takes x, not tokens */
    assert_int_equal(lmm_executor_init(&ex, &plan, &small, &src, &o), 0);
    uint32_t first, end;
    lmm_executor_pieces(ex, &first, &end);
    assert_int_equal(first, plan.layer_pieces[1]);
    assert_int_equal(end, plan.n_pieces);
    assert_true(end - first > 8);

    /* the x of layer 0 for tokens 0..3 of sequence 0, from a layer-0 executor */
    lmm_small_tensors small0;
    lmm_weight_source res;
    lmm_executor *ex0 = NULL;
    assert_int_equal(lmm_small_tensors_read(&small0, &m.desc, 0, 1, 0), 0);
    assert_int_equal(lmm_source_resident_init(&res, &plan, &m.w), 0);
    lmm_executor_opts o0 = {0, 1, 0, MAX_BATCH, 1, SEQ_LEN, 1, 0, NULL, 0};
    assert_int_equal(lmm_executor_init(&ex0, &plan, &small0, &res, &o0), 0);
    uint32_t pos[4] = {0, 1, 2, 3};
    float *x = malloc(4 * m.desc.hp.dim * sizeof(float));
    float *logits = malloc(4 * m.V * sizeof(float));
    lmm_executor_batch b0 = {.n = 4, .pos = pos, .tokens = m.tok[0], .x_out = x};
    assert_int_equal(lmm_executor_step(ex0, &b0), 0);

    /* one step: every piece once, in plan order, one at a time */
    lmm_executor_batch b = {.n = 4, .pos = pos, .x_in = x, .logits = logits};
    assert_int_equal(lmm_executor_step(ex, &b), 0);
    assert_int_equal(spy.n_acq, end - first);
    assert_int_equal(spy.n_rel, spy.n_acq);
    for (uint32_t i = 0; i < spy.n_acq; i++) assert_int_equal(spy.log[i], first + i);
    assert_int_equal(spy.max_held, 1);
    assert_false(spy.bad_release);
    assert_memory_equal(logits, m.ref[0], 4 * m.V * sizeof(float));
    /* logits of no token: the head's pieces are still walked */
    uint8_t none[4] = {0, 0, 0, 0};
    spy.n_acq = spy.n_rel = 0;
    lmm_executor_batch bn = {.n = 4, .pos = pos, .x_in = x, .want_logits = none};
    assert_int_equal(lmm_executor_step(ex, &bn), 0);
    assert_int_equal(spy.n_acq, end - first);

    /* a source error: out of the step with its message, everything released */
    spy.fail_piece = first + (end - first) / 2;
    spy.n_acq = spy.n_rel = 0;
    assert_int_equal(lmm_executor_step(ex, &b), -1);
    char want[64];
    snprintf(want, sizeof want, "piece %u", (unsigned)spy.fail_piece);
    assert_non_null(strstr(lmm_error_get(), want));
    assert_non_null(strstr(lmm_error_get(), "injected read error"));
    assert_int_equal(spy.n_rel, spy.n_acq);
    assert_int_equal(spy.held, 0);
    assert_int_equal(lmm_executor_seq_len(ex, 0), 0); /* the step's positions are not in the cache */
    /* and the step runs again */
    spy.fail_piece = -1;
    memset(logits, 0, 4 * m.V * sizeof(float));
    assert_int_equal(lmm_executor_step(ex, &b), 0);
    assert_memory_equal(logits, m.ref[0], 4 * m.V * sizeof(float));
    assert_int_equal(lmm_executor_seq_len(ex, 0), 4);

    lmm_executor_free(ex0);
    lmm_small_tensors_free(&small0);
    free(x);
    free(logits);
    lmm_executor_free(ex);
    lmm_small_tensors_free(&small);
    lmm_source_free(&spy.inner);
    lmm_source_free(&res);
    lmm_plan_free(&plan);
    model_free(&m);
}

/* ---- KV export / import (the cache service's blocks, docs/kv-cache.md) ----------------- */

/* Runs tokens [p0, p1) of m->tok[0] as sequence `seq` in chunks of `chunk`; logits of
 * every token into logits[p][V]. */
static void run_chunks(lmm_executor *ex, const model *m, uint32_t seq, uint32_t p0, uint32_t p1, uint32_t chunk,
                       float *logits) {
    uint32_t pos[MAX_BATCH], sq[MAX_BATCH];
    for (uint32_t p = p0; p < p1; p += chunk) {
        uint32_t n = p1 - p < chunk ? p1 - p : chunk;
        for (uint32_t i = 0; i < n; i++) pos[i] = p + i, sq[i] = seq;
        lmm_executor_batch b = {.n = n, .seq = sq, .pos = pos, .tokens = m->tok[0] + p,
                                .logits = logits + (size_t)p * m->V};
        if (lmm_executor_step(ex, &b)) fail_msg("%s", lmm_error_get());
    }
}

/* A block of K/V computed in any chunking is the same bits; written into another
 * sequence it gives the logits of recomputation, bit for bit. */
static void test_kv_export(void **state) {
    (void)state;
    char path[1024];
    if (!model_path(M_F16, path, sizeof path)) skip();
    model m;
    model_load(&m, path);
    lmm_plan plan;
    if (lmm_plan_build(&plan, &m.desc, 16384)) fail_msg("%s", lmm_error_get());
    lmm_small_tensors small;
    assert_int_equal(lmm_small_tensors_read(&small, &m.desc, 0, m.L, 1), 0);
    lmm_weight_source src;
    assert_int_equal(lmm_source_resident_init(&src, &plan, &m.w), 0);
    lmm_executor *ex = NULL;
    lmm_executor_opts o = {0, m.L, 1, MAX_BATCH, 3, SEQ_LEN, 2, 0, NULL, 0};
    assert_int_equal(lmm_executor_init(&ex, &plan, &small, &src, &o), 0);
    float *lg = malloc((size_t)SEQ_LEN * m.V * sizeof(float));
    assert_non_null(lg);
    const uint32_t P = 16; /* two blocks of 8 */
    size_t kvb = lmm_executor_kv_bytes(ex, P);
    float *a = malloc(kvb), *b = malloc(kvb);
    assert_non_null(a);
    assert_non_null(b);
    run_chunks(ex, &m, 0, 0, SEQ_LEN, 5, lg); /* chunks of 5: across block edges */
    assert_memory_equal(lg, m.ref[0], (size_t)SEQ_LEN * m.V * sizeof(float));
    run_chunks(ex, &m, 1, 0, P, 1, lg);       /* one token at a time */
    assert_int_equal(lmm_executor_kv_read(ex, 0, 0, P, a), 0);
    assert_int_equal(lmm_executor_kv_read(ex, 1, 0, P, b), 0);
    assert_memory_equal(a, b, kvb);
    /* into sequence 2 block by block, then compute only the rest */
    size_t half = lmm_executor_kv_bytes(ex, P / 2);
    float *blk = malloc(half);
    assert_non_null(blk);
    assert_int_equal(lmm_executor_kv_read(ex, 1, 0, P / 2, blk), 0);
    assert_int_equal(lmm_executor_kv_write(ex, 2, 0, P / 2, blk), 0);
    assert_int_equal(lmm_executor_kv_read(ex, 1, P / 2, P, blk), 0);
    assert_int_equal(lmm_executor_kv_write(ex, 2, P / 2, P, blk), 0);
    assert_int_equal(lmm_executor_seq_len(ex, 2), P);
    memset(lg, 0, (size_t)SEQ_LEN * m.V * sizeof(float));
    run_chunks(ex, &m, 2, P, SEQ_LEN, 3, lg);
    assert_memory_equal(lg + (size_t)P * m.V, m.ref[0] + (size_t)P * m.V, (size_t)(SEQ_LEN - P) * m.V * sizeof(float));
    /* bad ranges: beyond what is valid, a gap, beyond the context, a bad sequence */
    lmm_executor_seq_truncate(ex, 1, 4);
    assert_int_equal(lmm_executor_kv_read(ex, 1, 0, 8, blk), -1);
    assert_non_null(strstr(lmm_error_get(), "valid"));
    assert_int_equal(lmm_executor_kv_write(ex, 1, 8, 16, blk), -1);
    assert_non_null(strstr(lmm_error_get(), "gap"));
    assert_int_equal(lmm_executor_kv_write(ex, 1, SEQ_LEN - 2, SEQ_LEN + 6, blk), -1);
    assert_int_equal(lmm_executor_kv_read(ex, 3, 0, 1, blk), -1);
    free(blk);
    free(a);
    free(b);
    free(lg);
    lmm_executor_free(ex);
    lmm_small_tensors_free(&small);
    lmm_source_free(&src);
    lmm_plan_free(&plan);
    model_free(&m);
}

/* ---- batch and init checks -------------------------------------------------------------- */

static void test_batch_errors(void **state) {
    (void)state;
    char path[1024];
    if (!model_path(M_F16, path, sizeof path)) skip();
    model m;
    model_load(&m, path);
    lmm_plan plan;
    assert_int_equal(lmm_plan_build(&plan, &m.desc, 0), 0);
    lmm_small_tensors small;
    lmm_weight_source src;
    assert_int_equal(lmm_small_tensors_from_weights(&small, &m.w), 0);
    assert_int_equal(lmm_source_resident_init(&src, &plan, &m.w), 0);
    lmm_executor *ex = NULL;
    lmm_executor_opts o = {0, m.L, 1, 4, 2, 8, 1, 0, NULL, 0};
    assert_int_equal(lmm_executor_init(&ex, &plan, &small, &src, &o), 0);
    float *logits = malloc(4 * m.V * sizeof(float));
    uint32_t tok[4] = {1, 2, 3, 4}, seq[4] = {0, 0, 0, 0}, pos[4] = {0, 1, 2, 3};
    lmm_executor_batch b = {.n = 4, .seq = seq, .pos = pos, .tokens = tok, .logits = logits};
#define EXPECT_ERR(text)                                                                        \
    do {                                                                                        \
        assert_int_equal(lmm_executor_step(ex, &b), -1);                                        \
        if (!strstr(lmm_error_get(), text)) fail_msg("want '%s' in: %s", text, lmm_error_get()); \
    } while (0)
    b.n = 0;
    EXPECT_ERR("a step of 0 tokens");
    b.n = 5;
    EXPECT_ERR("a step of 5 tokens");
    b.n = 4;
    seq[2] = 2;
    EXPECT_ERR("sequence 2 is out of range");
    seq[2] = 0;
    pos[0] = 1;
    EXPECT_ERR("has 0 positions in the KV cache");
    pos[0] = 0;
    pos[2] = 3;
    EXPECT_ERR("comes at position 3, expected 2");
    pos[2] = 1; /* the same position twice */
    EXPECT_ERR("expected 2");
    pos[2] = 2;
    tok[1] = (uint32_t)m.V;
    EXPECT_ERR("out of range (vocabulary");
    tok[1] = 2;
    b.logits = NULL;
    EXPECT_ERR("no logits buffer");
    b.logits = logits;
    b.tokens = NULL;
    EXPECT_ERR("no input");
    b.tokens = tok;
    assert_int_equal(lmm_executor_seq_len(ex, 0), 0); /* failed checks change nothing */

    /* sequences: two interleaved, seq_len, truncation, rewinding */
    assert_int_equal(lmm_executor_step(ex, &b), 0);
    assert_int_equal(lmm_executor_seq_len(ex, 0), 4);
    uint32_t seq2[4] = {1, 0, 1, 0}, pos2[4] = {0, 4, 1, 5};
    lmm_executor_batch b2 = {.n = 4, .seq = seq2, .pos = pos2, .tokens = tok, .logits = logits};
    assert_int_equal(lmm_executor_step(ex, &b2), 0);
    assert_int_equal(lmm_executor_seq_len(ex, 0), 6);
    assert_int_equal(lmm_executor_seq_len(ex, 1), 2);
    uint32_t pos3[4] = {6, 7, 8, 9};
    lmm_executor_batch b3 = {.n = 4, .pos = pos3, .tokens = tok, .logits = logits};
    b = b3;
    EXPECT_ERR("beyond the context of 8 positions");
    assert_int_equal(lmm_executor_seq_len(ex, 0), 6);
    lmm_executor_seq_truncate(ex, 0, 2);
    assert_int_equal(lmm_executor_seq_len(ex, 0), 2);
    b.pos = pos3;
    pos3[0] = 3;
    EXPECT_ERR("has 2 positions in the KV cache, so position 3");
    pos3[0] = 2, pos3[1] = 3, pos3[2] = 4, pos3[3] = 5;
    assert_int_equal(lmm_executor_step(ex, &b), 0);
    assert_int_equal(lmm_executor_seq_len(ex, 0), 6);
    uint32_t pos4[1] = {1};
    lmm_executor_batch b4 = {.n = 1, .pos = pos4, .tokens = tok, .logits = logits};
    assert_int_equal(lmm_executor_step(ex, &b4), 0); /* rewinding overwrites from there */
    assert_int_equal(lmm_executor_seq_len(ex, 0), 2);
#undef EXPECT_ERR
    lmm_executor_free(ex);

    /* init checks */
    lmm_executor_opts bad = {0, 1, 1, 4, 1, 8, 1, 0, NULL, 0};
    assert_int_equal(lmm_executor_init(&ex, &plan, &small, &src, &bad), -1); /* head not after the last layer */
    assert_non_null(strstr(lmm_error_get(), "head"));
    bad = (lmm_executor_opts){2, 1, 0, 4, 1, 8, 1, 0, NULL, 0};
    assert_int_equal(lmm_executor_init(&ex, &plan, &small, &src, &bad), -1);
    lmm_small_tensors part;
    assert_int_equal(lmm_small_tensors_read(&part, &m.desc, 0, 1, 0), 0);
    lmm_executor_opts o2 = {0, 2, 0, 4, 1, 8, 1, 0, NULL, 0};
    assert_int_equal(lmm_executor_init(&ex, &plan, &part, &src, &o2), -1); /* layer 1's norms were not read */
    assert_non_null(strstr(lmm_error_get(), "layer 1"));
    lmm_executor_opts o3 = {0, 1, 0, 4, 1, 8, 1, 0, NULL, 0};
    assert_int_equal(lmm_executor_init(&ex, &plan, &part, &src, &o3), 0);
    /* a source without embd_rows needs rows or x */
    lmm_executor_free(ex);
    lmm_weight_source nosrc = src;
    nosrc.embd_rows = NULL;
    assert_int_equal(lmm_executor_init(&ex, &plan, &part, &nosrc, &o3), 0);
    float *x = malloc(m.desc.hp.dim * sizeof(float));
    lmm_executor_batch b5 = {.n = 1, .pos = pos4, .tokens = tok, .x_out = x};
    pos4[0] = 0;
    assert_int_equal(lmm_executor_step(ex, &b5), -1);
    assert_non_null(strstr(lmm_error_get(), "cannot fetch embedding rows"));
    lmm_executor_free(ex);
    lmm_small_tensors_free(&part);
    free(x);

    /* the transformer refuses a gap */
    lmm_transformer *t = NULL;
    lmm_transformer_opts to = {8, 4, 1};
    assert_int_equal(lmm_transformer_init(&t, &m.w, &to), 0);
    assert_int_equal(lmm_transformer_forward(t, tok, 2, 0, logits, 0), 0);
    assert_int_equal(lmm_transformer_forward(t, tok, 1, 3, logits, 0), -1);
    assert_non_null(strstr(lmm_error_get(), "gap"));
    assert_int_equal(lmm_transformer_forward(t, tok, 1, 2, logits, 0), 0);
    lmm_transformer_free(t);

    free(logits);
    lmm_source_free(&src);
    lmm_small_tensors_free(&small);
    lmm_plan_free(&plan);
    model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_exec_stories260k),
        cmocka_unit_test(test_exec_f16),
        cmocka_unit_test(test_exec_bf16),
        cmocka_unit_test(test_exec_bias),
        cmocka_unit_test(test_exec_wide),
        cmocka_unit_test(test_piece_contract),
        cmocka_unit_test(test_kv_export),
        cmocka_unit_test(test_batch_errors),
    };
    return cmocka_run_group_tests(tests, setup_models, teardown_models);
}
