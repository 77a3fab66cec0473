/* tests/format/test_llama2c.c — the llama2.c checkpoint reader: the real stories260K
 * checkpoint, synthetic version 0 and version 1 files written here in the order
 * llama2.c's export.py writes them, truncation at every length and absurd headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../model/format/llama2c.h"
#include "lmm/error.h"
#include "lmm/model.h"
#include "test_util.h"

/* ---- a tiny checkpoint writer --------------------------------------------
 * Every float of the file after the header is its own index (0, 1, 2, ...), so a
 * tensor's first value says where it starts; the writer records where each named
 * array begins, independently of the reader's layout code. */

typedef struct {
    char name[64];
    uint32_t first, count;  /* in floats after the header */
} rec;

typedef struct {
    FILE *f;
    uint32_t next;
    rec recs[256];
    int n;
} writer;

static void emit(writer *w, const char *name, uint32_t count) {
    if (name) {
        rec *r = &w->recs[w->n++];
        snprintf(r->name, sizeof r->name, "%s", name);
        r->first = w->next;
        r->count = count;
    }
    for (uint32_t i = 0; i < count; i++) {
        float v = (float)w->next++;
        assert_int_equal(fwrite(&v, 4, 1, w->f), 1);
    }
}

typedef struct {
    int32_t dim, hidden, layers, heads, kv_heads, vocab, seq;
} params;

static const params tiny = {8, 12, 2, 2, 1, 16, 4};

static void emit_stacked(writer *w, const params *p, const char *suffix, uint32_t count) {
    char name[64];
    for (int l = 0; l < p->layers; l++) {
        snprintf(name, sizeof name, "blk.%d.%s", l, suffix);
        emit(w, name, count);
    }
}

/* Writes a checkpoint; returns its size. version 0 or 1. */
static long write_ckpt(const char *path, int version, const params *p, int shared, writer *w) {
    memset(w, 0, sizeof *w);
    w->f = fopen(path, "wb");
    assert_non_null(w->f);
    uint32_t dim = (uint32_t)p->dim, hidden = (uint32_t)p->hidden, hs = dim / (uint32_t)p->heads;
    uint32_t kv = (uint32_t)p->kv_heads * hs, vocab = (uint32_t)p->vocab;
    if (version == 0) {
        int32_t hdr[7] = {p->dim, p->hidden, p->layers, p->heads, p->kv_heads, shared ? p->vocab : -p->vocab, p->seq};
        fwrite(hdr, 4, 7, w->f);
        emit(w, "token_embd.weight", vocab * dim);
        emit_stacked(w, p, "attn_norm.weight", dim);
        emit_stacked(w, p, "attn_q.weight", dim * dim);
        emit_stacked(w, p, "attn_k.weight", kv * dim);
        emit_stacked(w, p, "attn_v.weight", kv * dim);
        emit_stacked(w, p, "attn_output.weight", dim * dim);
        emit_stacked(w, p, "ffn_norm.weight", dim);
        emit_stacked(w, p, "ffn_gate.weight", hidden * dim);
        emit_stacked(w, p, "ffn_down.weight", dim * hidden);
        emit_stacked(w, p, "ffn_up.weight", hidden * dim);
        emit(w, "output_norm.weight", dim);
        emit(w, NULL, (uint32_t)p->seq * hs / 2); /* freq_cis_real */
        emit(w, NULL, (uint32_t)p->seq * hs / 2); /* freq_cis_imag */
        if (!shared) emit(w, "output.weight", vocab * dim);
    } else {
        unsigned char hdr[256] = {0};
        uint32_t magic = 0x616b3432u;
        int32_t ints[8] = {1, p->dim, p->hidden, p->layers, p->heads, p->kv_heads, p->vocab, p->seq};
        memcpy(hdr, &magic, 4);
        memcpy(hdr + 4, ints, sizeof ints);
        hdr[36] = (unsigned char)(shared ? 1 : 0);
        fwrite(hdr, 1, sizeof hdr, w->f);
        emit_stacked(w, p, "attn_norm.weight", dim);
        emit_stacked(w, p, "ffn_norm.weight", dim);
        emit(w, "output_norm.weight", dim);
        emit(w, "token_embd.weight", vocab * dim);
        emit_stacked(w, p, "attn_q.weight", dim * dim);
        emit_stacked(w, p, "attn_k.weight", kv * dim);
        emit_stacked(w, p, "attn_v.weight", kv * dim);
        emit_stacked(w, p, "attn_output.weight", dim * dim);
        emit_stacked(w, p, "ffn_gate.weight", hidden * dim);
        emit_stacked(w, p, "ffn_down.weight", dim * hidden);
        emit_stacked(w, p, "ffn_up.weight", hidden * dim);
        if (!shared) emit(w, "output.weight", vocab * dim);
    }
    long size = ftell(w->f);
    assert_int_equal(fclose(w->f), 0);
    w->f = NULL;
    return size;
}

static float read_f32_at(const char *path, uint64_t off) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseeko(f, (off_t)off, SEEK_SET), 0);
    float v;
    assert_int_equal(fread(&v, 4, 1, f), 1);
    fclose(f);
    return v;
}

/* Every recorded array is a tensor at the right place, and nothing else is. */
static void check_against_writer(const lmm_model_desc *d, const writer *w, const char *path, uint64_t header) {
    assert_int_equal(d->n_tensors, (uint32_t)w->n);
    for (int i = 0; i < w->n; i++) {
        const lmm_tensor_desc *t = lmm_model_desc_find(d, w->recs[i].name);
        if (!t) fail_msg("missing tensor %s", w->recs[i].name);
        assert_int_equal(t->dtype, LMM_DTYPE_F32);
        assert_int_equal(t->offset, header + 4ull * w->recs[i].first);
        assert_int_equal(t->nbytes, 4ull * w->recs[i].count);
        assert_true(read_f32_at(path, t->offset) == (float)w->recs[i].first);
        assert_true(read_f32_at(path, t->offset + t->nbytes - 4) == (float)(w->recs[i].first + w->recs[i].count - 1));
    }
}

static void check_tiny_hparams(const lmm_model_desc *d, int shared) {
    assert_int_equal(d->format, LMM_FORMAT_LLAMA2C);
    assert_int_equal(d->arch, LMM_ARCH_LLAMA);
    assert_int_equal(d->hp.dim, 8);
    assert_int_equal(d->hp.hidden_dim, 12);
    assert_int_equal(d->hp.n_layers, 2);
    assert_int_equal(d->hp.n_heads, 2);
    assert_int_equal(d->hp.n_kv_heads, 1);
    assert_int_equal(d->hp.head_dim, 4);
    assert_int_equal(d->hp.n_vocab, 16);
    assert_int_equal(d->hp.max_seq_len, 4);
    assert_int_equal(d->hp.tied_embeddings, shared);
    assert_int_equal(d->hp.rope_layout, LMM_ROPE_INTERLEAVED);
    assert_true(d->hp.rope_theta == 10000.0f);
    assert_true(d->hp.norm_eps == 1e-5f);
    assert_false(d->hp.qkv_bias);
    assert_int_equal(d->bos_id, 1);
    assert_int_equal(d->eos_id, 2);
    const lmm_tensor_desc *t = lmm_model_desc_find(d, "blk.1.attn_k.weight");
    assert_non_null(t);
    assert_int_equal(t->n_dims, 2);
    assert_int_equal(t->shape[0], 4);
    assert_int_equal(t->shape[1], 8);
    t = lmm_model_desc_find(d, "blk.0.ffn_down.weight");
    assert_non_null(t);
    assert_int_equal(t->shape[0], 8);
    assert_int_equal(t->shape[1], 12);
    assert_int_equal(lmm_model_desc_find(d, "output.weight") != NULL, !shared);
}

/* ---- the real model ---------------------------------------------------------- */

static void test_stories260k(void **state) {
    (void)state;
    char path[2048];
    if (!test_shared_file(path, sizeof path, "models/stories260K/stories260K.bin")) skip();
    lmm_model_desc d;
    if (lmm_model_desc_open_llama2c(&d, path)) fail_msg("%s", lmm_error_get());
    assert_int_equal(d.hp.dim, 64);
    assert_int_equal(d.hp.hidden_dim, 172);
    assert_int_equal(d.hp.n_layers, 5);
    assert_int_equal(d.hp.n_heads, 8);
    assert_int_equal(d.hp.n_kv_heads, 4);
    assert_int_equal(d.hp.head_dim, 8);
    assert_int_equal(d.hp.n_vocab, 512);
    assert_int_equal(d.hp.max_seq_len, 512);
    assert_true(d.hp.tied_embeddings);
    assert_null(lmm_model_desc_find(&d, "output.weight"));
    assert_non_null(d.tokenizer_path);
    assert_non_null(strstr(d.tokenizer_path, "tok512.bin"));
    assert_int_equal(d.n_files, 1);
    assert_int_equal(d.n_tensors, 2 + 9 * 5);

    /* The embedding starts right after the 7-int header: compare raw bytes. */
    const lmm_tensor_desc *emb = lmm_model_desc_find(&d, "token_embd.weight");
    assert_non_null(emb);
    assert_int_equal(emb->offset, 28);
    assert_int_equal(emb->shape[0], 512);
    assert_int_equal(emb->shape[1], 64);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    unsigned char raw[16];
    assert_int_equal(fseek(f, 28, SEEK_SET), 0);
    assert_int_equal(fread(raw, 1, sizeof raw, f), sizeof raw);
    fclose(f);
    float want[4], got[4];
    memcpy(want, raw, sizeof want);
    for (int i = 0; i < 4; i++) got[i] = read_f32_at(path, emb->offset + 4u * (unsigned)i);
    assert_memory_equal(want, got, sizeof want);

    /* The arrays tile the file as run.c maps it: each begins where the previous one
     * ends, in run.c's order, then the two frequency tables fill the rest. */
    static const char *order[] = {"attn_norm", "attn_q", "attn_k",  "attn_v", "attn_output",
                                  "ffn_norm",  "ffn_gate", "ffn_down", "ffn_up"};
    uint64_t off = emb->offset + emb->nbytes;
    for (size_t s = 0; s < sizeof order / sizeof order[0]; s++)
        for (int l = 0; l < 5; l++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, order[s]);
            const lmm_tensor_desc *t = lmm_model_desc_find(&d, name);
            assert_non_null(t);
            if (t->offset != off) fail_msg("%s at %" PRIu64 ", expected %" PRIu64, name, t->offset, off);
            off += t->nbytes;
        }
    const lmm_tensor_desc *norm = lmm_model_desc_find(&d, "output_norm.weight");
    assert_non_null(norm);
    assert_int_equal(norm->offset, off);
    off += norm->nbytes;
    assert_int_equal(off + 2ull * 512 * (8 / 2) * 4, d.file_sizes[0]);
    lmm_model_desc_free(&d);
}

/* ---- synthetic files ----------------------------------------------------------- */

static void run_synthetic(int version, int shared) {
    char dir[256], path[512];
    assert_non_null(test_tmpdir(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/model.bin", dir);
    writer w;
    long size = write_ckpt(path, version, &tiny, shared, &w);
    lmm_model_desc d;
    if (lmm_model_desc_open_llama2c(&d, path)) fail_msg("%s", lmm_error_get());
    check_tiny_hparams(&d, shared);
    check_against_writer(&d, &w, path, version ? 256 : 28);
    assert_int_equal(d.file_sizes[0], (uint64_t)size);
    assert_null(d.tokenizer_path);
    lmm_model_desc_free(&d);
    /* Seed for fuzz_llama2c: the file size (u64 little-endian), then the header. */
    const char *seeds = getenv("LMM_LLAMA2C_SEED_DIR");
    if (seeds && *seeds) {
        char seed[1024];
        unsigned char buf[8 + 256];
        snprintf(seed, sizeof seed, "%s/v%d-%s", seeds, version, shared ? "shared" : "unshared");
        for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)size >> (8 * i));
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        size_t n = fread(buf + 8, 1, version ? 256 : 28, f);
        fclose(f);
        FILE *o = fopen(seed, "wb");
        assert_non_null(o);
        assert_int_equal(fwrite(buf, 1, 8 + n, o), 8 + n);
        fclose(o);
    }
    unlink(path);
    rmdir(dir);
}

static void test_v0_shared(void **state) { (void)state; run_synthetic(0, 1); }
static void test_v0_unshared(void **state) { (void)state; run_synthetic(0, 0); }
static void test_v1_shared(void **state) { (void)state; run_synthetic(1, 1); }
static void test_v1_unshared(void **state) { (void)state; run_synthetic(1, 0); }

static void touch(const char *path) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fclose(f);
}

static void test_tokenizer_lookup(void **state) {
    (void)state;
    char dir[256], path[512], tok[512], tokv[512];
    assert_non_null(test_tmpdir(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/m.bin", dir);
    snprintf(tok, sizeof tok, "%s/tokenizer.bin", dir);
    snprintf(tokv, sizeof tokv, "%s/tok16.bin", dir);
    writer w;
    write_ckpt(path, 0, &tiny, 1, &w);
    lmm_model_desc d;
    touch(tokv);
    assert_int_equal(lmm_model_desc_open_llama2c(&d, path), 0);
    assert_string_equal(d.tokenizer_path, tokv);
    lmm_model_desc_free(&d);
    touch(tok);
    assert_int_equal(lmm_model_desc_open_llama2c(&d, path), 0);
    assert_string_equal(d.tokenizer_path, tok);
    lmm_model_desc_free(&d);
    unlink(tok);
    unlink(tokv);
    unlink(path);
    rmdir(dir);
}

/* Every shorter file fails with "truncated" and never crashes. */
static void run_truncation(int version, int shared) {
    char dir[256], path[512];
    assert_non_null(test_tmpdir(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/model.bin", dir);
    writer w;
    long size = write_ckpt(path, version, &tiny, shared, &w);
    for (long len = size - 1; len >= 0; len--) {
        assert_int_equal(truncate(path, len), 0);
        lmm_model_desc d;
        lmm_error_clear();
        if (lmm_model_desc_open_llama2c(&d, path) == 0) fail_msg("length %ld of %ld accepted", len, size);
        if (!strstr(lmm_error_get(), "truncated")) fail_msg("length %ld: %s", len, lmm_error_get());
        if (len >= (version ? 256 : 28)) {
            char want[128];
            snprintf(want, sizeof want, "header implies %ld bytes, file has %ld", size, len);
            if (!strstr(lmm_error_get(), want)) fail_msg("length %ld: %s", len, lmm_error_get());
        }
    }
    unlink(path);
    rmdir(dir);
}

static void test_truncated_v0(void **state) { (void)state; run_truncation(0, 0); }
static void test_truncated_v1(void **state) { (void)state; run_truncation(1, 1); }

/* ---- absurd headers (in memory, with a made-up file size) -------------------- */

static int try_header(const unsigned char *hdr, size_t len, uint64_t file_size) {
    lmm_llama2c_header h;
    lmm_model_desc d;
    lmm_model_desc_init(&d);
    lmm_error_clear();
    int rc = lmm_llama2c_parse_header(&h, hdr, len, file_size, "x.bin");
    if (rc == 0) rc = lmm_llama2c_build(&d, &h, "x.bin", file_size);
    lmm_model_desc_free(&d);
    return rc;
}

static void expect_v0(const int32_t v[7], uint64_t file_size, const char *msg) {
    unsigned char hdr[28];
    memcpy(hdr, v, sizeof hdr);
    if (try_header(hdr, sizeof hdr, file_size) == 0) fail_msg("accepted header expected to fail with '%s'", msg);
    if (!strstr(lmm_error_get(), msg)) fail_msg("expected '%s', got: %s", msg, lmm_error_get());
    assert_non_null(strstr(lmm_error_get(), "x.bin"));
}

static void test_bad_headers_v0(void **state) {
    (void)state;
    const uint64_t big = UINT64_MAX;
    /* dim, hidden, layers, heads, kv_heads, vocab, seq */
    expect_v0((int32_t[]){-8, 12, 2, 2, 1, 16, 4}, big, "dim = -8 must be positive");
    expect_v0((int32_t[]){8, 0, 2, 2, 1, 16, 4}, big, "hidden_dim = 0 must be positive");
    expect_v0((int32_t[]){8, 12, 0, 2, 1, 16, 4}, big, "n_layers = 0 must be positive");
    expect_v0((int32_t[]){8, 12, 2, -2, 1, 16, 4}, big, "n_heads = -2 must be positive");
    expect_v0((int32_t[]){8, 12, 2, 2, 0, 16, 4}, big, "n_kv_heads = 0 must be positive");
    expect_v0((int32_t[]){8, 12, 2, 2, 1, 16, -1}, big, "seq_len = -1 must be positive");
    expect_v0((int32_t[]){8, 12, 2, 2, 1, 0, 4}, big, "vocab_size = 0 is invalid");
    expect_v0((int32_t[]){8, 12, 2, 2, 1, INT32_MIN, 4}, big, "vocab_size = -2147483648 is invalid");
    expect_v0((int32_t[]){8, 12, 2, 3, 1, 16, 4}, big, "dim (8) is not a multiple of n_heads (3)");
    expect_v0((int32_t[]){8, 12, 2, 2, 4, 16, 4}, big, "n_kv_heads (4) must divide n_heads (2)");
    expect_v0((int32_t[]){12, 12, 2, 4, 3, 16, 4}, big, "n_kv_heads (3) must divide n_heads (4)");
    expect_v0((int32_t[]){6, 12, 2, 2, 1, 16, 4}, big, "head size 3 must be even");
    /* Beyond the engine's limits: rejected from the header, before any table is built. */
    expect_v0((int32_t[]){INT32_MAX - 3, INT32_MAX, INT32_MAX, 2, 1, INT32_MAX, INT32_MAX}, big,
              "dim = 2147483644 is out of range");
    expect_v0((int32_t[]){1 << 21, 12, 2, 2, 1, 16, 4}, big, "dim = 2097152 is out of range");
    expect_v0((int32_t[]){8, 12, 100000, 2, 1, 16, 4}, big, "n_layers = 100000 is out of range [1, 4096]");
    expect_v0((int32_t[]){8, 12, 2, 2, 1, -(1 << 25), 4}, big, "vocab_size = 33554432 is out of range");
    expect_v0((int32_t[]){8, 12, 2, 8192, 1, 16, 4}, big, "n_heads = 8192 is out of range");
    expect_v0((int32_t[]){8, 12, 2, 2, 1, 16, 1 << 25}, big, "seq_len = 33554432 is out of range");
    /* Huge but within the limits: the file would have to be petabytes long. */
    expect_v0((int32_t[]){1 << 20, 1 << 20, 1 << 10, 2, 1, 1 << 24, 1 << 24}, 1000, "truncated: header implies");
    /* Version 2 and unknown versions. */
    unsigned char hdr[256] = {0};
    uint32_t magic = 0x616b3432u;
    int32_t ver = 2;
    memcpy(hdr, &magic, 4);
    memcpy(hdr + 4, &ver, 4);
    assert_int_equal(try_header(hdr, sizeof hdr, 1 << 20), -1);
    assert_non_null(strstr(lmm_error_get(), "quantized llama2.c checkpoints (version 2) are not supported yet"));
    ver = 7;
    memcpy(hdr + 4, &ver, 4);
    assert_int_equal(try_header(hdr, sizeof hdr, 1 << 20), -1);
    assert_non_null(strstr(lmm_error_get(), "unknown llama2.c checkpoint version 7"));
}

/* The layout's own overflow checks, for headers that did not come through the parser. */
static void test_layout_overflow(void **state) {
    (void)state;
    lmm_llama2c_header h = {.version = 0, .dim = INT32_MAX - 3, .hidden_dim = INT32_MAX, .n_layers = INT32_MAX,
                            .n_heads = 2, .n_kv_heads = 1, .vocab_size = INT32_MAX, .seq_len = INT32_MAX,
                            .shared_classifier = true, .header_bytes = 28};
    lmm_model_desc d;
    lmm_model_desc_init(&d);
    assert_int_equal(lmm_llama2c_build(&d, &h, "x.bin", UINT64_MAX), -1);
    assert_non_null(strstr(lmm_error_get(), "x.bin: llama2.c header: the sizes it implies overflow 64 bits"));
    lmm_model_desc_free(&d);
}

static void test_bad_headers_v1(void **state) {
    (void)state;
    unsigned char hdr[256] = {0};
    uint32_t magic = 0x616b3432u;
    int32_t ints[8] = {1, 8, 12, 2, 2, 1, -16, 4};
    memcpy(hdr, &magic, 4);
    memcpy(hdr + 4, ints, sizeof ints);
    assert_int_equal(try_header(hdr, sizeof hdr, UINT64_MAX), -1);
    assert_non_null(strstr(lmm_error_get(), "vocab_size = -16 must be positive"));
    ints[6] = 16;
    memcpy(hdr + 4, ints, sizeof ints);
    hdr[36] = 2;
    assert_int_equal(try_header(hdr, sizeof hdr, UINT64_MAX), -1);
    assert_non_null(strstr(lmm_error_get(), "shared_classifier = 2 must be 0 or 1"));
    hdr[36] = 1;
    assert_int_equal(try_header(hdr, 200, UINT64_MAX), -1);
    assert_non_null(strstr(lmm_error_get(), "truncated"));
    assert_int_equal(try_header(hdr, sizeof hdr, 300), -1);
    assert_non_null(strstr(lmm_error_get(), "truncated: header implies"));
    assert_int_equal(try_header(hdr, sizeof hdr, UINT64_MAX), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories260k),    cmocka_unit_test(test_v0_shared),
        cmocka_unit_test(test_v0_unshared),    cmocka_unit_test(test_v1_shared),
        cmocka_unit_test(test_v1_unshared),    cmocka_unit_test(test_tokenizer_lookup),
        cmocka_unit_test(test_truncated_v0),   cmocka_unit_test(test_truncated_v1),
        cmocka_unit_test(test_bad_headers_v0), cmocka_unit_test(test_bad_headers_v1),
        cmocka_unit_test(test_layout_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
