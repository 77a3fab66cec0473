/* tests/format/test_gguf.c — GGUF reader (model/format/gguf.c) and GGUF -> model
 * description (gguf_model.c), on files written by a small writer in this test:
 * valid v2/v3 models, every metadata type, and each way a file can be broken.
 * Also parses the real vocabulary-only GGUF files in ../shared/tokenizers/gguf-vocab.
 *
 * LMM_GGUF_SEED_DIR=dir: also writes the valid files there (seed corpus for fuzz_gguf). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lmm/error.h"
#include "lmm/gguf.h"
#include "lmm/model.h"
#include "test_util.h"

/* ---- a byte buffer ---------------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} buf;

static void b_put(buf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        b->p = realloc(b->p, cap);
        assert_non_null(b->p);
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void b_le(buf *b, uint64_t v, unsigned n) {
    uint8_t tmp[8];
    for (unsigned i = 0; i < n; i++) tmp[i] = (uint8_t)(v >> (8 * i));
    b_put(b, tmp, n);
}
static void b_u32(buf *b, uint32_t v) { b_le(b, v, 4); }
static void b_u64(buf *b, uint64_t v) { b_le(b, v, 8); }
static void b_strn(buf *b, const void *s, uint64_t len) {
    b_u64(b, len);
    b_put(b, s, (size_t)len);
}
static void b_str(buf *b, const char *s) { b_strn(b, s, strlen(s)); }
static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static uint64_t f64_bits(double f) {
    uint64_t u;
    memcpy(&u, &f, 8);
    return u;
}

/* ---- a GGUF writer ------------------------------------------------------------ */

enum { T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_I64, T_F64 };
enum { G_F32 = 0, G_F16 = 1, G_Q4_0 = 2, G_I32 = 26, G_BF16 = 30 };

#define MAX_T 64

typedef struct {
    buf kv, ti;
    uint64_t n_kv, n_tensors;
    uint64_t data_size;   /* tensor data laid out so far (relative) */
    uint32_t alignment;   /* what the file's padding uses */
    uint64_t data_offset; /* set by gw_finish */
    const char *names[MAX_T];
    uint64_t rel[MAX_T];
} gw;

static void gw_init(gw *w) {
    memset(w, 0, sizeof *w);
    w->alignment = 32;
}
static void gw_free(gw *w) {
    free(w->kv.p);
    free(w->ti.p);
}

static void kv_key(gw *w, const char *key, uint32_t type) {
    b_str(&w->kv, key);
    b_u32(&w->kv, type);
    w->n_kv++;
}
static unsigned scalar_bytes(uint32_t t) {
    static const unsigned sz[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return sz[t];
}
static void kv_scalar(gw *w, const char *key, uint32_t type, uint64_t bits) {
    kv_key(w, key, type);
    b_le(&w->kv, bits, scalar_bytes(type));
}
static void kv_u32(gw *w, const char *key, uint32_t v) { kv_scalar(w, key, T_U32, v); }
static void kv_f32(gw *w, const char *key, float v) { kv_scalar(w, key, T_F32, f32_bits(v)); }
static void kv_str(gw *w, const char *key, const char *v) {
    kv_key(w, key, T_STR);
    b_str(&w->kv, v);
}
/* Array header; the caller appends the elements to w->kv. */
static void kv_arr(gw *w, const char *key, uint32_t elem, uint64_t count) {
    kv_key(w, key, T_ARR);
    b_u32(&w->kv, elem);
    b_u64(&w->kv, count);
}

static uint64_t ggml_nbytes(uint32_t type, uint32_t n_dims, const uint64_t *ne) {
    uint64_t n = 1;
    for (uint32_t i = 0; i < n_dims; i++) n *= ne[i];
    switch (type) {
    case G_F32: case G_I32: return n * 4;
    case G_F16: case G_BF16: return n * 2;
    case G_Q4_0: return n / 32 * 18;
    default: return 0;
    }
}

/* Tensor info with explicit fields (no data accounting). */
static void gw_tensor_raw(gw *w, const char *name, uint32_t type, uint32_t n_dims, const uint64_t *ne, uint64_t offset) {
    b_str(&w->ti, name);
    b_u32(&w->ti, n_dims);
    for (uint32_t i = 0; i < n_dims; i++) b_u64(&w->ti, ne[i]);
    b_u32(&w->ti, type);
    b_u64(&w->ti, offset);
    w->n_tensors++;
}

/* Appends a tensor with its data placed at the next aligned offset. */
static void gw_tensor(gw *w, const char *name, uint32_t type, uint32_t n_dims, const uint64_t *ne) {
    uint64_t off = (w->data_size + w->alignment - 1) / w->alignment * w->alignment;
    assert_true(w->n_tensors < MAX_T);
    w->names[w->n_tensors] = name;
    w->rel[w->n_tensors] = off;
    gw_tensor_raw(w, name, type, n_dims, ne, off);
    w->data_size = off + ggml_nbytes(type, n_dims, ne);
}

static void gw_tensor2(gw *w, const char *name, uint32_t type, uint64_t ne0, uint64_t ne1) {
    uint64_t ne[2] = {ne0, ne1};
    gw_tensor(w, name, type, ne1 ? 2 : 1, ne);
}

/* Header + metadata + tensor infos + padding + data. The file ends where the last
 * tensor's data ends, so every shorter prefix is invalid. */
static buf gw_finish(gw *w, uint32_t version) {
    buf b = {0};
    b_put(&b, "GGUF", 4);
    b_u32(&b, version);
    b_u64(&b, w->n_tensors);
    b_u64(&b, w->n_kv);
    b_put(&b, w->kv.p, w->kv.n);
    b_put(&b, w->ti.p, w->ti.n);
    if (w->n_tensors) {
        while (b.n % w->alignment) b_put(&b, "", 1);
        w->data_offset = b.n;
        for (uint64_t i = 0; i < w->data_size; i++) {
            uint8_t byte = (uint8_t)(i * 7 + 1);
            b_put(&b, &byte, 1);
        }
    }
    return b;
}

/* ---- a tiny model --------------------------------------------------------------- */

#define DIM 8
#define HIDDEN 16
#define LAYERS 2
#define HEADS 2
#define KV_HEADS 1
#define HEAD_DIM 4
#define VOCAB 10
#define CTX 64

typedef struct {
    uint32_t version;
    const char *arch;
    uint32_t alignment;     /* 0: no general.alignment key */
    bool untied, bias, rope_freqs, vocab_key;
    uint32_t q_type;        /* ggml type of the attn_q matrices */
    const char *skip;       /* tensor left out */
    const char *skip_key;   /* metadata key left out */
    void (*extra_kv)(gw *w);
    void (*extra_tensors)(gw *w);
} model_spec;

static model_spec spec_default(void) {
    model_spec s = {.version = 3, .arch = "llama", .q_type = G_BF16};
    return s;
}

static void arch_kv_u32(gw *w, const model_spec *s, const char *suffix, uint32_t v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", s->arch, suffix);
    if (s->skip_key && strcmp(s->skip_key, key) == 0) return;
    kv_u32(w, key, v);
}

static void model_tensor(gw *w, const model_spec *s, const char *name, uint32_t type, uint64_t ne0, uint64_t ne1) {
    if (s->skip && strcmp(s->skip, name) == 0) return;
    gw_tensor2(w, name, type, ne0, ne1);
}

static char names_pool[MAX_T][64];

/* Builds the model into w (not finished). */
static void model_build(gw *w, const model_spec *s) {
    gw_init(w);
    if (s->alignment) w->alignment = s->alignment;
    kv_str(w, "general.architecture", s->arch);
    kv_str(w, "general.name", "test model");
    if (s->alignment) kv_u32(w, "general.alignment", s->alignment);
    arch_kv_u32(w, s, "context_length", CTX);
    arch_kv_u32(w, s, "embedding_length", DIM);
    arch_kv_u32(w, s, "block_count", LAYERS);
    arch_kv_u32(w, s, "feed_forward_length", HIDDEN);
    arch_kv_u32(w, s, "attention.head_count", HEADS);
    arch_kv_u32(w, s, "attention.head_count_kv", KV_HEADS);
    char key[128];
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", s->arch);
    kv_f32(w, key, 1e-6f);
    snprintf(key, sizeof key, "%s.rope.freq_base", s->arch);
    kv_f32(w, key, 500000.0f);
    if (s->vocab_key) arch_kv_u32(w, s, "vocab_size", VOCAB);
    kv_str(w, "tokenizer.ggml.model", "llama");
    kv_arr(w, "tokenizer.ggml.tokens", T_STR, VOCAB);
    for (int i = 0; i < VOCAB; i++) {
        char tok[8];
        snprintf(tok, sizeof tok, "t%d", i);
        b_str(&w->kv, tok);
    }
    kv_u32(w, "tokenizer.ggml.bos_token_id", 7);
    kv_u32(w, "tokenizer.ggml.eos_token_id", 8);
    if (s->extra_kv) s->extra_kv(w);

    int k = 0;
#define NAME(fmt, l) (snprintf(names_pool[k], sizeof names_pool[k], fmt, l), names_pool[k++])
    model_tensor(w, s, "token_embd.weight", G_F16, DIM, VOCAB);
    if (s->rope_freqs) model_tensor(w, s, "rope_freqs.weight", G_F32, HEAD_DIM / 2, 0);
    for (int l = 0; l < LAYERS; l++) {
        model_tensor(w, s, NAME("blk.%d.attn_norm.weight", l), G_F32, DIM, 0);
        model_tensor(w, s, NAME("blk.%d.attn_q.weight", l), s->q_type, DIM, HEADS * HEAD_DIM);
        model_tensor(w, s, NAME("blk.%d.attn_k.weight", l), G_F32, DIM, KV_HEADS * HEAD_DIM);
        model_tensor(w, s, NAME("blk.%d.attn_v.weight", l), G_F32, DIM, KV_HEADS * HEAD_DIM);
        if (s->bias) {
            model_tensor(w, s, NAME("blk.%d.attn_q.bias", l), G_F32, HEADS * HEAD_DIM, 0);
            model_tensor(w, s, NAME("blk.%d.attn_k.bias", l), G_F32, KV_HEADS * HEAD_DIM, 0);
            model_tensor(w, s, NAME("blk.%d.attn_v.bias", l), G_F32, KV_HEADS * HEAD_DIM, 0);
        }
        model_tensor(w, s, NAME("blk.%d.attn_output.weight", l), G_F32, HEADS * HEAD_DIM, DIM);
        model_tensor(w, s, NAME("blk.%d.ffn_norm.weight", l), G_F32, DIM, 0);
        model_tensor(w, s, NAME("blk.%d.ffn_gate.weight", l), G_F16, DIM, HIDDEN);
        model_tensor(w, s, NAME("blk.%d.ffn_up.weight", l), G_F16, DIM, HIDDEN);
        model_tensor(w, s, NAME("blk.%d.ffn_down.weight", l), G_F16, HIDDEN, DIM);
    }
#undef NAME
    model_tensor(w, s, "output_norm.weight", G_F32, DIM, 0);
    if (s->untied) model_tensor(w, s, "output.weight", G_F32, DIM, VOCAB);
    if (s->extra_tensors) s->extra_tensors(w);
}

static buf model_file(const model_spec *s, gw *w) {
    model_build(w, s);
    return gw_finish(w, s->version);
}

/* ---- helpers ----------------------------------------------------------------------- */

static char g_tmpdir[512];
static int g_tmp_counter;

static const char *write_tmp(const buf *b, char *path, size_t cap) {
    snprintf(path, cap, "%s/f%d.gguf", g_tmpdir, g_tmp_counter++);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b->p, 1, b->n, f), b->n);
    assert_int_equal(fclose(f), 0);
    return path;
}

static void save_seed(const buf *b, const char *name) {
    const char *dir = getenv("LMM_GGUF_SEED_DIR");
    if (!dir || !*dir) return;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(b->p, 1, b->n, f);
    fclose(f);
}

#define expect_error(rc, word) expect_error_at((rc), (word), __FILE__, __LINE__)
static void expect_error_at(int rc, const char *word, const char *file, int line) {
    const char *m = lmm_error_get();
    if (rc != -1) {
        print_error("expected failure with '%s', got rc=%d\n", word, rc);
        _fail(file, line);
    }
    if (!strstr(m, word)) {
        print_error("error '%s' lacks '%s'\n", m, word);
        _fail(file, line);
    }
}

/* Parses b from memory; expects failure with WORD in the message. */
static void mem_fails(const buf *b, const char *word) {
    lmm_gguf *g = (lmm_gguf *)1;
    lmm_error_clear();
    int rc = lmm_gguf_open_memory(&g, b->p, b->n, "t.gguf");
    expect_error(rc, word);
    assert_null(g);
}

/* Writes b to a file; expects lmm_model_desc_open_gguf to fail with WORD. */
static void desc_fails(const buf *b, const char *word) {
    char path[1024];
    write_tmp(b, path, sizeof path);
    lmm_model_desc d;
    lmm_error_clear();
    int rc = lmm_model_desc_open_gguf(&d, path);
    expect_error(rc, word);
    lmm_model_desc_free(&d);
}

static void patch_u32(buf *b, size_t at, uint32_t v) {
    for (int i = 0; i < 4; i++) b->p[at + i] = (uint8_t)(v >> (8 * i));
}
static void patch_u64(buf *b, size_t at, uint64_t v) {
    for (int i = 0; i < 8; i++) b->p[at + i] = (uint8_t)(v >> (8 * i));
}

/* ---- valid files ---------------------------------------------------------------------- */

static void check_tensor(const lmm_model_desc *d, const gw *w, const char *name, lmm_dtype dt, uint64_t r0,
                         uint64_t r1) {
    const lmm_tensor_desc *t = lmm_model_desc_find(d, name);
    if (!t) fail_msg("tensor %s missing", name);
    assert_int_equal(t->dtype, dt);
    assert_int_equal(t->n_dims, r1 ? 2 : 1);
    assert_int_equal(t->shape[0], r0);
    if (r1) assert_int_equal(t->shape[1], r1);
    assert_int_equal(t->file, 0);
    uint64_t rel = UINT64_MAX;
    for (uint64_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->names[i], name) == 0) rel = w->rel[i];
    assert_int_equal(t->offset, w->data_offset + rel);
    assert_int_equal(t->nbytes, (r1 ? r0 * r1 : r0) * lmm_dtype_size(dt));
}

static void test_valid_v3_llama(void **state) {
    (void)state;
    model_spec s = spec_default();
    s.rope_freqs = true;
    gw w;
    buf b = model_file(&s, &w);
    save_seed(&b, "llama_v3.gguf");
    char path[1024];
    write_tmp(&b, path, sizeof path);

    lmm_model_desc d;
    if (lmm_model_desc_open(&d, path)) fail_msg("%s", lmm_error_get());
    assert_int_equal(d.format, LMM_FORMAT_GGUF);
    assert_int_equal(d.arch, LMM_ARCH_LLAMA);
    assert_string_equal(d.arch_name, "llama");
    const lmm_hparams *h = &d.hp;
    assert_int_equal(h->n_vocab, VOCAB);
    assert_int_equal(h->dim, DIM);
    assert_int_equal(h->hidden_dim, HIDDEN);
    assert_int_equal(h->n_layers, LAYERS);
    assert_int_equal(h->n_heads, HEADS);
    assert_int_equal(h->n_kv_heads, KV_HEADS);
    assert_int_equal(h->head_dim, HEAD_DIM);
    assert_int_equal(h->max_seq_len, CTX);
    assert_true(h->norm_eps == 1e-6f);
    assert_true(h->rope_theta == 500000.0f);
    assert_int_equal(h->rope_layout, LMM_ROPE_INTERLEAVED);
    assert_int_equal(h->rope_scaling, LMM_ROPE_SCALING_NONE);
    assert_true(h->tied_embeddings);
    assert_false(h->qkv_bias);
    assert_int_equal(d.bos_id, 7);
    assert_int_equal(d.eos_id, 8);
    assert_int_equal(d.n_files, 1);
    assert_string_equal(d.files[0], path);
    assert_int_equal(d.file_sizes[0], b.n);
    assert_int_equal(d.n_tensors, w.n_tensors);
    assert_non_null(d.gguf);
    assert_int_equal(lmm_gguf_version(d.gguf), 3);
    assert_int_equal(lmm_gguf_data_offset(d.gguf), w.data_offset);
    assert_true(lmm_gguf_find_key(d.gguf, "tokenizer.ggml.tokens") >= 0);

    check_tensor(&d, &w, "token_embd.weight", LMM_DTYPE_F16, VOCAB, DIM);
    check_tensor(&d, &w, "rope_freqs.weight", LMM_DTYPE_F32, HEAD_DIM / 2, 0);
    check_tensor(&d, &w, "blk.1.attn_q.weight", LMM_DTYPE_BF16, HEADS * HEAD_DIM, DIM);
    check_tensor(&d, &w, "blk.0.attn_k.weight", LMM_DTYPE_F32, KV_HEADS * HEAD_DIM, DIM);
    check_tensor(&d, &w, "blk.0.attn_output.weight", LMM_DTYPE_F32, DIM, HEADS * HEAD_DIM);
    check_tensor(&d, &w, "blk.1.ffn_down.weight", LMM_DTYPE_F16, DIM, HIDDEN);
    check_tensor(&d, &w, "blk.1.ffn_gate.weight", LMM_DTYPE_F16, HIDDEN, DIM);
    check_tensor(&d, &w, "output_norm.weight", LMM_DTYPE_F32, DIM, 0);
    assert_null(lmm_model_desc_find(&d, "output.weight"));
    lmm_model_desc_free(&d);

    /* The same bytes from memory give the same table. */
    lmm_gguf *g;
    if (lmm_gguf_open_memory(&g, b.p, b.n, "mem.gguf")) fail_msg("%s", lmm_error_get());
    assert_string_equal(lmm_gguf_name(g), "mem.gguf");
    assert_int_equal(lmm_gguf_file_size(g), b.n);
    assert_int_equal(lmm_gguf_n_tensors(g), w.n_tensors);
    assert_int_equal(lmm_gguf_alignment(g), 32);
    int64_t ti = lmm_gguf_find_tensor(g, "blk.0.ffn_down.weight");
    assert_true(ti >= 0);
    const lmm_gguf_tensor *t = lmm_gguf_tensor_at(g, (uint64_t)ti);
    assert_int_equal(t->ne[0], HIDDEN);
    assert_int_equal(t->ne[1], DIM);
    assert_int_equal(t->ggml_type, G_F16);
    assert_int_equal(lmm_gguf_find_tensor(g, "nope"), -1);
    assert_null(lmm_gguf_tensor_at(g, w.n_tensors));
    lmm_gguf_free(g);
    gw_free(&w);
    free(b.p);
}

static void test_valid_v2_qwen2(void **state) {
    (void)state;
    model_spec s = spec_default();
    s.version = 2;
    s.arch = "qwen2";
    s.bias = true;
    s.untied = true;
    s.vocab_key = true;
    s.alignment = 64;
    s.q_type = G_F32;
    gw w;
    buf b = model_file(&s, &w);
    save_seed(&b, "qwen2_v2.gguf");
    char path[1024];
    write_tmp(&b, path, sizeof path);
    lmm_model_desc d;
    if (lmm_model_desc_open_gguf(&d, path)) fail_msg("%s", lmm_error_get());
    assert_int_equal(d.arch, LMM_ARCH_QWEN2);
    assert_int_equal(d.hp.rope_layout, LMM_ROPE_NEOX);
    assert_true(d.hp.qkv_bias);
    assert_false(d.hp.tied_embeddings);
    assert_int_equal(lmm_gguf_version(d.gguf), 2);
    assert_int_equal(lmm_gguf_alignment(d.gguf), 64);
    assert_int_equal(lmm_gguf_data_offset(d.gguf) % 64, 0);
    check_tensor(&d, &w, "output.weight", LMM_DTYPE_F32, VOCAB, DIM);
    check_tensor(&d, &w, "blk.1.attn_k.bias", LMM_DTYPE_F32, KV_HEADS * HEAD_DIM, 0);
    for (uint32_t i = 0; i < d.n_tensors; i++) assert_int_equal(d.tensors[i].offset % 64, 0);
    lmm_model_desc_free(&d);
    gw_free(&w);
    free(b.p);
}

static void test_llama_bias_and_scaling(void **state) {
    (void)state;
    /* Llama with q/k/v bias tensors: qkv_bias follows blk.0.attn_q.bias. */
    model_spec s = spec_default();
    s.bias = true;
    gw w;
    buf b = model_file(&s, &w);
    char path[1024];
    write_tmp(&b, path, sizeof path);
    lmm_model_desc d;
    if (lmm_model_desc_open_gguf(&d, path)) fail_msg("%s", lmm_error_get());
    assert_true(d.hp.qkv_bias);
    lmm_model_desc_free(&d);
    gw_free(&w);
    free(b.p);
}

static void kv_linear(gw *w) {
    kv_str(w, "llama.rope.scaling.type", "linear");
    kv_f32(w, "llama.rope.scaling.factor", 4.0f);
}
static void kv_yarn(gw *w) {
    kv_str(w, "llama.rope.scaling.type", "yarn");
    kv_f32(w, "llama.rope.scaling.factor", 4.0f);
}
static void kv_head_dim(gw *w) {
    kv_u32(w, "llama.attention.key_length", 8);
    kv_u32(w, "llama.rope.dimension_count", 8);
}
static void kv_partial_rope(gw *w) {
    kv_u32(w, "llama.attention.key_length", HEAD_DIM);
    kv_u32(w, "llama.rope.dimension_count", 2);
}

static void test_rope_options(void **state) {
    (void)state;
    model_spec s = spec_default();
    s.extra_kv = kv_linear;
    gw w;
    buf b = model_file(&s, &w);
    char path[1024];
    write_tmp(&b, path, sizeof path);
    lmm_model_desc d;
    if (lmm_model_desc_open_gguf(&d, path)) fail_msg("%s", lmm_error_get());
    assert_int_equal(d.hp.rope_scaling, LMM_ROPE_SCALING_LINEAR);
    assert_true(d.hp.rope_factor == 4.0f);
    lmm_model_desc_free(&d);
    gw_free(&w);
    free(b.p);

    s.extra_kv = kv_yarn;
    b = model_file(&s, &w);
    desc_fails(&b, "rope scaling 'yarn' is not supported");
    gw_free(&w);
    free(b.p);

    /* key_length 8 != dim/heads: the q matrices no longer match. */
    s.extra_kv = kv_head_dim;
    b = model_file(&s, &w);
    desc_fails(&b, "blk.0.attn_q.weight");
    gw_free(&w);
    free(b.p);

    s.extra_kv = kv_partial_rope;
    b = model_file(&s, &w);
    desc_fails(&b, "partial rotary");
    gw_free(&w);
    free(b.p);
}

/* ---- every metadata type -------------------------------------------------------------- */

static buf metadata_file(void) {
    gw w;
    gw_init(&w);
    kv_scalar(&w, "t.u8", T_U8, 200);
    kv_scalar(&w, "t.i8", T_I8, (uint8_t)-100);
    kv_scalar(&w, "t.u16", T_U16, 60000);
    kv_scalar(&w, "t.i16", T_I16, (uint16_t)-30000);
    kv_scalar(&w, "t.u32", T_U32, 4000000000u);
    kv_scalar(&w, "t.i32", T_I32, (uint32_t)-2000000000);
    kv_scalar(&w, "t.f32", T_F32, f32_bits(1.5f));
    kv_scalar(&w, "t.bool", T_BOOL, 1);
    kv_scalar(&w, "t.bool0", T_BOOL, 0);
    kv_key(&w, "t.str", T_STR);
    b_strn(&w.kv, "a\0b\xff\"\n", 6);
    kv_str(&w, "t.empty", "");
    kv_scalar(&w, "t.u64", T_U64, (1ull << 63) + 5);
    kv_scalar(&w, "t.i64", T_I64, (uint64_t)(-(INT64_C(1) << 62)));
    kv_scalar(&w, "t.f64", T_F64, f64_bits(0.1));
    kv_str(&w, "t.utf8", "caf\xc3\xa9 \xe2\x82\xac");

    kv_arr(&w, "a.u8", T_U8, 3);
    b_le(&w.kv, 1, 1), b_le(&w.kv, 2, 1), b_le(&w.kv, 255, 1);
    kv_arr(&w, "a.i8", T_I8, 2);
    b_le(&w.kv, (uint8_t)-1, 1), b_le(&w.kv, 5, 1);
    kv_arr(&w, "a.u16", T_U16, 1);
    b_le(&w.kv, 65535, 2);
    kv_arr(&w, "a.i16", T_I16, 1);
    b_le(&w.kv, (uint16_t)-300, 2);
    kv_arr(&w, "a.u32", T_U32, 2);
    b_u32(&w.kv, 7), b_u32(&w.kv, 4294967295u);
    kv_arr(&w, "a.i32", T_I32, 2);
    b_u32(&w.kv, (uint32_t)-7), b_u32(&w.kv, 7);
    kv_arr(&w, "a.f32", T_F32, 2);
    b_u32(&w.kv, f32_bits(0.5f)), b_u32(&w.kv, f32_bits(-2.0f));
    kv_arr(&w, "a.bool", T_BOOL, 3);
    b_le(&w.kv, 1, 1), b_le(&w.kv, 0, 1), b_le(&w.kv, 1, 1);
    kv_arr(&w, "a.str", T_STR, 3);
    b_str(&w.kv, "x"), b_str(&w.kv, ""), b_str(&w.kv, "\xe2\x82\xac");
    kv_arr(&w, "a.u64", T_U64, 1);
    b_u64(&w.kv, UINT64_MAX);
    kv_arr(&w, "a.i64", T_I64, 1);
    b_u64(&w.kv, (uint64_t)INT64_MIN);
    kv_arr(&w, "a.f64", T_F64, 1);
    b_u64(&w.kv, f64_bits(1e300));
    kv_arr(&w, "a.empty", T_U32, 0);
    /* [[1, 2], [3]] of i32 */
    kv_arr(&w, "a.nested", T_ARR, 2);
    b_u32(&w.kv, T_I32), b_u64(&w.kv, 2), b_u32(&w.kv, 1), b_u32(&w.kv, 2);
    b_u32(&w.kv, T_I32), b_u64(&w.kv, 1), b_u32(&w.kv, 3);
    /* [["p"], []] of strings */
    kv_arr(&w, "a.nested_str", T_ARR, 2);
    b_u32(&w.kv, T_STR), b_u64(&w.kv, 1), b_str(&w.kv, "p");
    b_u32(&w.kv, T_STR), b_u64(&w.kv, 0);
    /* [[[7]]] */
    kv_arr(&w, "a.nested3", T_ARR, 1);
    b_u32(&w.kv, T_ARR), b_u64(&w.kv, 1);
    b_u32(&w.kv, T_U8), b_u64(&w.kv, 1), b_le(&w.kv, 7, 1);
    kv_arr(&w, "a.big", T_I32, 100);
    for (int i = 0; i < 100; i++) b_u32(&w.kv, (uint32_t)i);
    kv_arr(&w, "a.bigstr", T_STR, 20);
    for (int i = 0; i < 20; i++) b_str(&w.kv, "s");
    buf b = gw_finish(&w, 3);
    gw_free(&w);
    return b;
}

static void fmt_is(const lmm_gguf *g, const char *key, const char *want) {
    char out[256];
    int64_t i = lmm_gguf_find_key(g, key);
    assert_true(i >= 0);
    assert_int_equal(lmm_gguf_value_format(g, (uint64_t)i, out, sizeof out), 0);
    assert_string_equal(out, want);
}

static void test_metadata_roundtrip(void **state) {
    (void)state;
    buf b = metadata_file();
    save_seed(&b, "metadata.gguf");
    lmm_gguf *g;
    if (lmm_gguf_open_memory(&g, b.p, b.n, "meta.gguf")) fail_msg("%s", lmm_error_get());
    assert_int_equal(lmm_gguf_n_tensors(g), 0);
    assert_int_equal(lmm_gguf_n_kv(g), 33);
    assert_string_equal(lmm_gguf_key_at(g, 0), "t.u8");
    assert_null(lmm_gguf_key_at(g, 33));
    assert_int_equal(lmm_gguf_type_at(g, (uint64_t)lmm_gguf_find_key(g, "t.i16")), LMM_GGUF_I16);
    assert_int_equal(lmm_gguf_type_at(g, (uint64_t)lmm_gguf_find_key(g, "a.nested")), LMM_GGUF_ARRAY);
    assert_int_equal(lmm_gguf_find_key(g, "nope"), -1);

    uint64_t u64;
    uint32_t u32;
    int64_t i64;
    double f;
    bool bl;
    const char *s;
    uint64_t len;
    assert_int_equal(lmm_gguf_get_u64(g, "t.u8", &u64), 0);
    assert_int_equal(u64, 200);
    assert_int_equal(lmm_gguf_get_u32(g, "t.u16", &u32), 0);
    assert_int_equal(u32, 60000);
    assert_int_equal(lmm_gguf_get_u32(g, "t.u32", &u32), 0);
    assert_int_equal(u32, 4000000000u);
    assert_int_equal(lmm_gguf_get_i64(g, "t.i8", &i64), 0);
    assert_int_equal(i64, -100);
    assert_int_equal(lmm_gguf_get_i64(g, "t.i16", &i64), 0);
    assert_int_equal(i64, -30000);
    assert_int_equal(lmm_gguf_get_i64(g, "t.i32", &i64), 0);
    assert_int_equal(i64, -2000000000);
    assert_int_equal(lmm_gguf_get_i64(g, "t.i64", &i64), 0);
    assert_true(i64 == -(INT64_C(1) << 62));
    assert_int_equal(lmm_gguf_get_u64(g, "t.u64", &u64), 0);
    assert_true(u64 == (1ull << 63) + 5);
    assert_int_equal(lmm_gguf_get_f64(g, "t.f32", &f), 0);
    assert_true(f == 1.5);
    assert_int_equal(lmm_gguf_get_f64(g, "t.f64", &f), 0);
    assert_true(f == 0.1);
    assert_int_equal(lmm_gguf_get_f64(g, "t.u32", &f), 0);   /* exact integer */
    assert_true(f == 4000000000.0);
    assert_int_equal(lmm_gguf_get_bool(g, "t.bool", &bl), 0);
    assert_true(bl);
    assert_int_equal(lmm_gguf_get_bool(g, "t.bool0", &bl), 0);
    assert_false(bl);
    assert_int_equal(lmm_gguf_get_str(g, "t.str", &s, &len), 0);
    assert_int_equal(len, 6);
    assert_memory_equal(s, "a\0b\xff\"\n", 6);
    assert_int_equal(s[6], 0);
    assert_int_equal(lmm_gguf_get_str(g, "t.empty", &s, &len), 0);
    assert_int_equal(len, 0);
    assert_string_equal(s, "");

    /* Lossy or wrong-type conversions fail with the key named. */
    expect_error(lmm_gguf_get_u32(g, "t.u64", &u32), "'t.u64'");
    expect_error(lmm_gguf_get_u32(g, "t.u64", &u32), "too large");
    expect_error(lmm_gguf_get_u64(g, "t.i8", &u64), "negative");
    expect_error(lmm_gguf_get_i64(g, "t.u64", &i64), "does not fit");
    expect_error(lmm_gguf_get_f64(g, "t.u64", &f), "not exactly representable");
    expect_error(lmm_gguf_get_u64(g, "t.f32", &u64), "has type f32, expected an integer");
    expect_error(lmm_gguf_get_str(g, "t.u8", &s, &len), "has type u8, expected string");
    expect_error(lmm_gguf_get_bool(g, "t.u8", &bl), "expected bool");
    expect_error(lmm_gguf_get_f64(g, "t.str", &f), "expected a number");
    expect_error(lmm_gguf_get_u64(g, "missing.key", &u64), "'missing.key' not found");

    /* _opt: 1 when absent (out untouched), 0 when read, -1 on a type error. */
    u32 = 12345;
    assert_int_equal(lmm_gguf_get_u32_opt(g, "missing", &u32), 1);
    assert_int_equal(u32, 12345);
    assert_int_equal(lmm_gguf_get_u32_opt(g, "t.u8", &u32), 0);
    assert_int_equal(u32, 200);
    assert_int_equal(lmm_gguf_get_u32_opt(g, "t.str", &u32), -1);
    assert_int_equal(lmm_gguf_get_u64_opt(g, "missing", &u64), 1);
    assert_int_equal(lmm_gguf_get_f64_opt(g, "missing", &f), 1);
    assert_int_equal(lmm_gguf_get_f64_opt(g, "t.f64", &f), 0);
    assert_int_equal(lmm_gguf_get_bool_opt(g, "missing", &bl), 1);
    assert_int_equal(lmm_gguf_get_bool_opt(g, "t.bool", &bl), 0);
    assert_int_equal(lmm_gguf_get_str_opt(g, "missing", &s, &len), 1);
    assert_int_equal(lmm_gguf_get_str_opt(g, "t.utf8", &s, NULL), 0);
    assert_string_equal(s, "caf\xc3\xa9 \xe2\x82\xac");

    /* Arrays of every element type. */
    static const struct {
        const char *key;
        lmm_gguf_type elem;
        uint64_t count;
    } arrays[] = {{"a.u8", LMM_GGUF_U8, 3},     {"a.i8", LMM_GGUF_I8, 2},       {"a.u16", LMM_GGUF_U16, 1},
                  {"a.i16", LMM_GGUF_I16, 1},   {"a.u32", LMM_GGUF_U32, 2},     {"a.i32", LMM_GGUF_I32, 2},
                  {"a.f32", LMM_GGUF_F32, 2},   {"a.bool", LMM_GGUF_BOOL, 3},   {"a.str", LMM_GGUF_STRING, 3},
                  {"a.u64", LMM_GGUF_U64, 1},   {"a.i64", LMM_GGUF_I64, 1},     {"a.f64", LMM_GGUF_F64, 1},
                  {"a.empty", LMM_GGUF_U32, 0}, {"a.nested", LMM_GGUF_ARRAY, 2}, {"a.big", LMM_GGUF_I32, 100}};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) {
        lmm_gguf_type et;
        uint64_t n;
        assert_int_equal(lmm_gguf_get_arr(g, arrays[i].key, &et, &n), 0);
        assert_int_equal(et, arrays[i].elem);
        assert_int_equal(n, arrays[i].count);
    }
    assert_int_equal(lmm_gguf_arr_i64(g, "a.u8", 2, &i64), 0);
    assert_int_equal(i64, 255);
    assert_int_equal(lmm_gguf_arr_i64(g, "a.i8", 0, &i64), 0);
    assert_int_equal(i64, -1);
    assert_int_equal(lmm_gguf_arr_i64(g, "a.u16", 0, &i64), 0);
    assert_int_equal(i64, 65535);
    assert_int_equal(lmm_gguf_arr_i64(g, "a.i16", 0, &i64), 0);
    assert_int_equal(i64, -300);
    assert_int_equal(lmm_gguf_arr_i64(g, "a.u32", 1, &i64), 0);
    assert_int_equal(i64, 4294967295u);
    assert_int_equal(lmm_gguf_arr_i64(g, "a.i32", 0, &i64), 0);
    assert_int_equal(i64, -7);
    assert_int_equal(lmm_gguf_arr_i64(g, "a.i64", 0, &i64), 0);
    assert_true(i64 == INT64_MIN);
    assert_int_equal(lmm_gguf_arr_i64(g, "a.big", 99, &i64), 0);
    assert_int_equal(i64, 99);
    expect_error(lmm_gguf_arr_i64(g, "a.u64", 0, &i64), "does not fit");
    expect_error(lmm_gguf_arr_i64(g, "a.f32", 0, &i64), "expected integers");
    expect_error(lmm_gguf_arr_i64(g, "a.bool", 0, &i64), "expected integers");
    assert_int_equal(lmm_gguf_arr_f64(g, "a.f32", 1, &f), 0);
    assert_true(f == -2.0);
    assert_int_equal(lmm_gguf_arr_f64(g, "a.f64", 0, &f), 0);
    assert_true(f == 1e300);
    assert_int_equal(lmm_gguf_arr_f64(g, "a.i32", 0, &f), 0);
    assert_true(f == -7.0);
    expect_error(lmm_gguf_arr_f64(g, "a.str", 0, &f), "expected numbers");
    assert_int_equal(lmm_gguf_arr_str(g, "a.str", 2, &s, &len), 0);
    assert_int_equal(len, 3);
    assert_string_equal(s, "\xe2\x82\xac");
    assert_int_equal(lmm_gguf_arr_str(g, "a.str", 1, &s, &len), 0);
    assert_int_equal(len, 0);
    expect_error(lmm_gguf_arr_str(g, "a.str", 3, &s, &len), "out of range");
    expect_error(lmm_gguf_arr_str(g, "a.u8", 0, &s, &len), "expected strings");
    expect_error(lmm_gguf_arr_i64(g, "a.empty", 0, &i64), "out of range");
    expect_error(lmm_gguf_get_arr(g, "t.u8", NULL, NULL), "expected array");

    /* Rendering. */
    fmt_is(g, "t.u8", "200");
    fmt_is(g, "t.i8", "-100");
    fmt_is(g, "t.f32", "1.5");
    fmt_is(g, "t.bool", "true");
    fmt_is(g, "t.str", "\"a\\x00b\\xff\\\"\\n\"");
    fmt_is(g, "t.utf8", "\"caf\xc3\xa9 \xe2\x82\xac\"");
    fmt_is(g, "a.str", "[\"x\", \"\", \"\xe2\x82\xac\"]");
    fmt_is(g, "a.bool", "[true, false, true]");
    fmt_is(g, "a.nested", "[[1, 2], [3]]");
    fmt_is(g, "a.nested_str", "[[\"p\"], []]");
    fmt_is(g, "a.nested3", "[[[7]]]");
    fmt_is(g, "a.empty", "[]");
    fmt_is(g, "a.big", "[100 x i32]");
    fmt_is(g, "a.bigstr", "[20 strings]");
    char small[8];
    assert_int_equal(lmm_gguf_value_format(g, (uint64_t)lmm_gguf_find_key(g, "a.u32"), small, sizeof small), 0);
    assert_true(strlen(small) < sizeof small);
    expect_error(lmm_gguf_value_format(g, 33, small, sizeof small), "out of range");
    lmm_gguf_free(g);
    free(b.p);
}

/* ---- broken files ------------------------------------------------------------------- */

static void test_truncated_everywhere(void **state) {
    (void)state;
    model_spec s = spec_default();
    s.bias = true;
    gw w;
    buf b = model_file(&s, &w);
    buf m = metadata_file();
    const buf *files[2] = {&b, &m};
    for (int f = 0; f < 2; f++) {
        const buf *x = files[f];
        lmm_gguf *g;
        assert_int_equal(lmm_gguf_open_memory(&g, x->p, x->n, "full.gguf"), 0);
        lmm_gguf_free(g);
        for (size_t n = 0; n < x->n; n++) {
            /* A heap copy of exactly n bytes, so that ASan catches any read past the cut. */
            uint8_t *cut = malloc(n ? n : 1);
            assert_non_null(cut);
            memcpy(cut, x->p, n);
            lmm_error_clear();
            g = (lmm_gguf *)1;
            int rc = lmm_gguf_open_memory(&g, cut, n, "cut.gguf");
            if (rc != -1) fail_msg("prefix of %zu of %zu bytes was accepted", n, x->n);
            assert_null(g);
            assert_non_null(strstr(lmm_error_get(), "cut.gguf: "));
            free(cut);
        }
    }
    /* Through the file reader too, at a spread of cut points. */
    for (size_t n = 0; n < b.n; n += 97) {
        buf cut = {b.p, n, n};
        char path[1024];
        write_tmp(&cut, path, sizeof path);
        lmm_gguf *g;
        lmm_error_clear();
        assert_int_equal(lmm_gguf_open(&g, path), -1);
        assert_non_null(strstr(lmm_error_get(), path));
        unlink(path);
    }
    free(m.p);
    gw_free(&w);
    free(b.p);
}

static void test_open_errors(void **state) {
    (void)state;
    lmm_gguf *g;
    lmm_error_clear();
    expect_error(lmm_gguf_open(&g, "/nonexistent/x.gguf"), "No such file");
    expect_error(lmm_gguf_open(&g, g_tmpdir), "not a regular file");
    expect_error(lmm_gguf_open_memory(&g, "", 0, "empty.gguf"), "empty.gguf");
    expect_error(lmm_gguf_open_memory(&g, "GG", 2, "two.gguf"), "not a GGUF file");
}

static void test_bad_magic_and_version(void **state) {
    (void)state;
    model_spec s = spec_default();
    gw w;
    buf b = model_file(&s, &w);
    memcpy(b.p, "GGML", 4);
    mem_fails(&b, "not a GGUF file");
    mem_fails(&b, "'GGML'");
    memcpy(b.p, "GGUF", 4);
    patch_u32(&b, 4, 1);
    mem_fails(&b, "version 1 is not supported");
    patch_u32(&b, 4, 99);
    mem_fails(&b, "unsupported GGUF version 99");
    patch_u32(&b, 4, 0x03000000u);
    mem_fails(&b, "big-endian");
    patch_u32(&b, 4, 3);
    lmm_gguf *g;
    assert_int_equal(lmm_gguf_open_memory(&g, b.p, b.n, "ok"), 0);
    lmm_gguf_free(g);
    gw_free(&w);
    free(b.p);
}

static void test_absurd_counts(void **state) {
    (void)state;
    model_spec s = spec_default();
    gw w;
    buf b = model_file(&s, &w);
    patch_u64(&b, 16, 1ull << 60);   /* n_kv */
    mem_fails(&b, "1152921504606846976 metadata entries");
    patch_u64(&b, 16, w.n_kv);
    patch_u64(&b, 8, 1ull << 60);    /* n_tensors */
    mem_fails(&b, "1152921504606846976 tensors");
    patch_u64(&b, 8, UINT64_MAX);
    mem_fails(&b, "tensors");
    /* One more key or tensor than the file holds: fails while reading. */
    patch_u64(&b, 8, w.n_tensors + 1);
    mem_fails(&b, "t.gguf");
    gw_free(&w);
    free(b.p);

    /* An array whose count cannot fit. */
    gw_init(&w);
    kv_arr(&w, "big", T_STR, 1ull << 60);
    b_str(&w.kv, "x");
    b = gw_finish(&w, 3);
    mem_fails(&b, "array of 1152921504606846976 string elements cannot fit");
    gw_free(&w);
    free(b.p);
    gw_init(&w);
    kv_arr(&w, "big", T_U64, 3);   /* 24 bytes needed, 8 present */
    b_u64(&w.kv, 1);
    b = gw_finish(&w, 3);
    mem_fails(&b, "cannot fit");
    gw_free(&w);
    free(b.p);
}

static void test_bad_strings_and_types(void **state) {
    (void)state;
    gw w;
    buf b;
    /* String value length beyond the file. */
    gw_init(&w);
    kv_key(&w, "s", T_STR);
    b_u64(&w.kv, 1000000);
    b_put(&w.kv, "abc", 3);
    b = gw_finish(&w, 3);
    mem_fails(&b, "string length 1000000 is beyond the end of the file");
    gw_free(&w);
    free(b.p);
    /* Key length beyond the file. */
    gw_init(&w);
    b_u64(&w.kv, UINT64_MAX);
    b_put(&w.kv, "keykeykeykeykey", 15);
    w.n_kv = 1;
    b = gw_finish(&w, 3);
    mem_fails(&b, "beyond the end of the file");
    gw_free(&w);
    free(b.p);
    /* Unknown value type, unknown array element type. */
    gw_init(&w);
    kv_key(&w, "x", 13);
    b_u64(&w.kv, 0);
    b = gw_finish(&w, 3);
    mem_fails(&b, "key 'x': unknown value type 13");
    gw_free(&w);
    free(b.p);
    gw_init(&w);
    kv_arr(&w, "x", 200, 1);
    b_u64(&w.kv, 0);
    b = gw_finish(&w, 3);
    mem_fails(&b, "unknown array element type 200");
    gw_free(&w);
    free(b.p);
    /* Bool other than 0/1, as a value and in an array. */
    gw_init(&w);
    kv_scalar(&w, "b", T_BOOL, 2);
    b = gw_finish(&w, 3);
    mem_fails(&b, "bool has value 2");
    gw_free(&w);
    free(b.p);
    gw_init(&w);
    kv_arr(&w, "b", T_BOOL, 2);
    b_le(&w.kv, 1, 1), b_le(&w.kv, 9, 1);
    b = gw_finish(&w, 3);
    mem_fails(&b, "bool element 1 has value 9");
    gw_free(&w);
    free(b.p);
    /* Arrays nested too deep. */
    gw_init(&w);
    kv_arr(&w, "deep", T_ARR, 1);
    for (int i = 0; i < 20; i++) b_u32(&w.kv, T_ARR), b_u64(&w.kv, 1);
    b_u32(&w.kv, T_U8), b_u64(&w.kv, 0);
    b = gw_finish(&w, 3);
    mem_fails(&b, "nested more than");
    gw_free(&w);
    free(b.p);
    /* Duplicate key, NUL in a key. */
    gw_init(&w);
    kv_u32(&w, "k", 1);
    kv_u32(&w, "k", 2);
    b = gw_finish(&w, 3);
    mem_fails(&b, "key 'k' appears twice");
    gw_free(&w);
    free(b.p);
    gw_init(&w);
    b_strn(&w.kv, "a\0b", 3);
    b_u32(&w.kv, T_U8);
    b_le(&w.kv, 0, 1);
    w.n_kv = 1;
    b = gw_finish(&w, 3);
    mem_fails(&b, "NUL");
    gw_free(&w);
    free(b.p);
}

static void kv_align3(gw *w) { kv_u32(w, "general.alignment", 3); }
static void kv_align0(gw *w) { kv_u32(w, "general.alignment", 0); }
static void kv_align_str(gw *w) { kv_str(w, "general.alignment", "32"); }

static void test_bad_alignment(void **state) {
    (void)state;
    model_spec s = spec_default();
    gw w;
    buf b;
    s.extra_kv = kv_align3;
    b = model_file(&s, &w);
    mem_fails(&b, "general.alignment = 3 is not a power of two");
    gw_free(&w);
    free(b.p);
    s.extra_kv = kv_align0;
    b = model_file(&s, &w);
    mem_fails(&b, "general.alignment = 0");
    gw_free(&w);
    free(b.p);
    s.extra_kv = kv_align_str;
    b = model_file(&s, &w);
    mem_fails(&b, "'general.alignment' has type string");
    gw_free(&w);
    free(b.p);
}

static void t_offset_far(gw *w) { gw_tensor_raw(w, "extra", G_F32, 1, (uint64_t[]){4}, 1ull << 20); }
static void t_offset_wrap(gw *w) { gw_tensor_raw(w, "extra", G_F32, 1, (uint64_t[]){4}, UINT64_MAX - 31); }
static void t_offset_edge(gw *w) {
    /* Ends one element past the file's last byte. */
    gw_tensor_raw(w, "extra", G_F32, 1, (uint64_t[]){8}, (w->data_size + 31) / 32 * 32);
}
static void t_misaligned(gw *w) { gw_tensor_raw(w, "extra", G_F32, 1, (uint64_t[]){1}, 4); }
static void t_zero_dim(gw *w) { gw_tensor_raw(w, "extra", G_F32, 2, (uint64_t[]){4, 0}, 0); }
static void t_no_dims(gw *w) { gw_tensor_raw(w, "extra", G_F32, 0, NULL, 0); }
static void t_five_dims(gw *w) { gw_tensor_raw(w, "extra", G_F32, 5, (uint64_t[]){1, 1, 1, 1, 1}, 0); }
static void t_overflow(gw *w) { gw_tensor_raw(w, "extra", G_F32, 2, (uint64_t[]){1ull << 40, 1ull << 40}, 0); }
static void t_huge_dim(gw *w) { gw_tensor_raw(w, "extra", G_F32, 1, (uint64_t[]){UINT64_MAX}, 0); }
static void t_bytes_overflow(gw *w) { gw_tensor_raw(w, "extra", G_F32, 1, (uint64_t[]){1ull << 62}, 0); }
static void t_unknown(gw *w) { gw_tensor_raw(w, "extra", 77, 1, (uint64_t[]){4}, 0); }
static void t_retired(gw *w) { gw_tensor_raw(w, "extra", 4, 1, (uint64_t[]){32}, 0); }
static void t_q4_row(gw *w) { gw_tensor_raw(w, "extra", G_Q4_0, 1, (uint64_t[]){33}, 0); }
static void t_dup(gw *w) { gw_tensor_raw(w, "output_norm.weight", G_F32, 1, (uint64_t[]){8}, 0); }
static void t_empty_name(gw *w) { gw_tensor_raw(w, "", G_F32, 1, (uint64_t[]){8}, 0); }

static void test_bad_tensors(void **state) {
    (void)state;
    static const struct {
        void (*add)(gw *w);
        const char *word;
    } cases[] = {
        {t_offset_far, "tensor 'extra': data"},
        {t_offset_far, "beyond the end of the file"},
        {t_offset_wrap, "beyond the end of the file"},
        {t_offset_edge, "beyond the end of the file"},
        {t_misaligned, "offset 4 is not a multiple of the alignment 32"},
        {t_zero_dim, "tensor 'extra': dimension ne[1] is 0"},
        {t_no_dims, "0 dimensions (expected 1 to 4)"},
        {t_five_dims, "5 dimensions"},
        {t_overflow, "element count overflows"},
        {t_huge_dim, "element count overflows"},
        {t_bytes_overflow, "tensor 'extra': byte size overflows"},
        {t_unknown, "tensor 'extra': unknown ggml type 77"},
        {t_retired, "unknown ggml type 4"},
        {t_q4_row, "not a multiple of the Q4_0 block size 32"},
        {t_dup, "tensor 'output_norm.weight' appears twice"},
        {t_empty_name, "empty name"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        model_spec s = spec_default();
        s.extra_tensors = cases[i].add;
        gw w;
        buf b = model_file(&s, &w);
        mem_fails(&b, cases[i].word);
        gw_free(&w);
        free(b.p);
    }
}

static void t_q4(gw *w) { gw_tensor2(w, "extra.weight", G_Q4_0, 64, 2); }
static void t_i32(gw *w) { gw_tensor2(w, "extra.weight", G_I32, 4, 0); }

static void test_model_errors(void **state) {
    (void)state;
    gw w;
    buf b;
    model_spec s = spec_default();
    /* Quantized: the parser accepts it (nbytes from the block size), the model refuses it. */
    s.extra_tensors = t_q4;
    b = model_file(&s, &w);
    lmm_gguf *g;
    if (lmm_gguf_open_memory(&g, b.p, b.n, "q.gguf")) fail_msg("%s", lmm_error_get());
    const lmm_gguf_tensor *t = lmm_gguf_tensor_at(g, (uint64_t)lmm_gguf_find_tensor(g, "extra.weight"));
    assert_int_equal(t->nbytes, 2 * 2 * 18);
    assert_string_equal(lmm_gguf_ggml_type_name(t->ggml_type), "Q4_0");
    assert_true(lmm_gguf_ggml_type_is_quantized(t->ggml_type));
    lmm_gguf_free(g);
    desc_fails(&b, "tensor 'extra.weight' has type Q4_0: quantized types are not supported yet");
    gw_free(&w);
    free(b.p);
    s.extra_tensors = t_i32;
    b = model_file(&s, &w);
    desc_fails(&b, "tensor 'extra.weight' has type I32: not supported");
    gw_free(&w);
    free(b.p);
    s.extra_tensors = NULL;

    /* Missing tensors, missing keys, wrong architecture. */
    s.skip = "blk.1.ffn_up.weight";
    b = model_file(&s, &w);
    desc_fails(&b, "missing tensor 'blk.1.ffn_up.weight'");
    gw_free(&w);
    free(b.p);
    s.skip = "token_embd.weight";
    b = model_file(&s, &w);
    desc_fails(&b, "missing tensor 'token_embd.weight'");
    gw_free(&w);
    free(b.p);
    s.skip = NULL;
    s.skip_key = "llama.block_count";
    b = model_file(&s, &w);
    desc_fails(&b, "metadata key 'llama.block_count' not found");
    gw_free(&w);
    free(b.p);
    s.skip_key = NULL;
    s.arch = "gpt2";
    b = model_file(&s, &w);
    desc_fails(&b, "architecture 'gpt2' is not supported");
    gw_free(&w);
    free(b.p);
    s.arch = "llama";

    /* Vocabulary-only: metadata but no tensors. */
    gw_init(&w);
    kv_str(&w, "general.architecture", "llama");
    kv_arr(&w, "tokenizer.ggml.tokens", T_STR, 1);
    b_str(&w.kv, "a");
    b = gw_finish(&w, 3);
    desc_fails(&b, "no tensors (vocabulary-only GGUF)");
    gw_free(&w);
    free(b.p);
}

/* ---- real files from ../shared ---------------------------------------------------------- */

static void test_shared_vocab_files(void **state) {
    (void)state;
    char dir[1100], shared[1024];
    snprintf(dir, sizeof dir, "%s/tokenizers/gguf-vocab", test_shared_dir(shared, sizeof shared));
    DIR *dp = opendir(dir);
    if (!dp) {
        fprintf(stderr, "SKIP: %s not found (set LMM_SHARED_DIR)\n", dir);
        skip();
    }
    int n_files = 0;
    struct dirent *e;
    while ((e = readdir(dp))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 5, ".gguf") != 0) continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        lmm_gguf *g;
        if (lmm_gguf_open(&g, path)) fail_msg("%s", lmm_error_get());
        assert_int_equal(lmm_gguf_n_tensors(g), 0);
        assert_true(lmm_gguf_version(g) == 2 || lmm_gguf_version(g) == 3);
        lmm_gguf_type et;
        uint64_t count, n;
        if (lmm_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &count)) fail_msg("%s", lmm_error_get());
        assert_int_equal(et, LMM_GGUF_STRING);
        assert_true(count > 0);
        uint64_t total = 0;
        for (uint64_t i = 0; i < count; i++) {
            const char *tok;
            uint64_t tl;
            assert_int_equal(lmm_gguf_arr_str(g, "tokenizer.ggml.tokens", i, &tok, &tl), 0);
            assert_int_equal(tok[tl], 0);
            total += tl;
        }
        assert_true(total > 0);
        /* Every per-token array has one entry per token; {arch}.vocab_size agrees when given. */
        static const char *const per_token[] = {"tokenizer.ggml.scores", "tokenizer.ggml.token_type"};
        for (int k = 0; k < 2; k++)
            if (lmm_gguf_find_key(g, per_token[k]) >= 0) {
                assert_int_equal(lmm_gguf_get_arr(g, per_token[k], NULL, &n), 0);
                assert_int_equal(n, count);
            }
        const char *arch;
        uint64_t vocab;
        char key[128];
        if (lmm_gguf_get_str_opt(g, "general.architecture", &arch, NULL) == 0) {
            snprintf(key, sizeof key, "%s.vocab_size", arch);
            if (lmm_gguf_get_u64_opt(g, key, &vocab) == 0) assert_int_equal(vocab, count);
        }
        /* Every value renders. */
        char text[512];
        for (uint64_t i = 0; i < lmm_gguf_n_kv(g); i++) assert_int_equal(lmm_gguf_value_format(g, i, text, sizeof text), 0);
        lmm_gguf_free(g);
        lmm_model_desc d;
        lmm_error_clear();
        expect_error(lmm_model_desc_open_gguf(&d, path), "no tensors (vocabulary-only GGUF)");
        n_files++;
    }
    closedir(dp);
    assert_true(n_files > 0);
}

/* ---- main ---------------------------------------------------------------------------- */

static void remove_tmpdir(void) {
    DIR *dp = opendir(g_tmpdir);
    if (!dp) return;
    struct dirent *e;
    while ((e = readdir(dp))) {
        if (e->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", g_tmpdir, e->d_name);
        unlink(path);
    }
    closedir(dp);
    rmdir(g_tmpdir);
}

int main(void) {
    if (!test_tmpdir(g_tmpdir, sizeof g_tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_v3_llama),        cmocka_unit_test(test_valid_v2_qwen2),
        cmocka_unit_test(test_llama_bias_and_scaling), cmocka_unit_test(test_rope_options),
        cmocka_unit_test(test_metadata_roundtrip),    cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_open_errors),           cmocka_unit_test(test_bad_magic_and_version),
        cmocka_unit_test(test_absurd_counts),         cmocka_unit_test(test_bad_strings_and_types),
        cmocka_unit_test(test_bad_alignment),         cmocka_unit_test(test_bad_tensors),
        cmocka_unit_test(test_model_errors),          cmocka_unit_test(test_shared_vocab_files),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    remove_tmpdir();
    return rc;
}
