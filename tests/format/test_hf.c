/* tests/format/test_hf.c — the Hugging Face reader (config.json + safetensors).
 * Small models are written here (config through json-c, safetensors headers built
 * as json-c objects so that a test can corrupt one field), then read back: names,
 * shapes, dtypes, offsets (checked by reading values), hyper-parameters, and every
 * malformed input fails with a message naming the cause. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../model/format/hf.h"
#include "../../model/format/safetensors.h"
#include "lmm/dtype.h"
#include "lmm/error.h"
#include "lmm/model.h"
#include "test_util.h"

/* ---- the test model ------------------------------------------------------------
 * hidden 8, intermediate 12, 2 layers, 2 heads of 4, 1 KV head (GQA), vocab 16. */

enum { DIM = 8, HIDDEN = 12, LAYERS = 2, HEADS = 2, KV = 1, HD = 4, VOCAB = 16, MAXPOS = 64 };

typedef struct {
    char hf[96];
    char canon[96];     /* "" when the reader must ignore it */
    char dtype[8];
    int nd;
    uint64_t shape[2];
    int shard;          /* 0 or 1 when sharded */
} ttensor;

typedef struct {
    ttensor t[64];
    int n;
} tlist;

typedef struct {
    const char *arch;
    const char *const *dtypes;  /* cycled over the tensors; NULL: all F32 */
    int tied;                   /* config tie_word_embeddings */
    int write_lm_head;
    int bias;                   /* q/k/v biases */
    int sharded;
    int skip_up1;               /* leave out model.layers.1.mlp.up_proj.weight */
} mopts;

static const char *const f32_only[] = {"F32", NULL};
static const char *const mixed[] = {"F16", "BF16", "F32", NULL};

static void add_t(tlist *L, const mopts *o, const char *hf, const char *canon, int nd, uint64_t d0, uint64_t d1) {
    ttensor *t = &L->t[L->n];
    memset(t, 0, sizeof *t);
    snprintf(t->hf, sizeof t->hf, "%s", hf);
    snprintf(t->canon, sizeof t->canon, "%s", canon);
    const char *const *dt = o->dtypes ? o->dtypes : f32_only;
    int k = 0;
    while (dt[k]) k++;
    snprintf(t->dtype, sizeof t->dtype, "%s", dt[L->n % k]);
    t->nd = nd;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->shard = o->sharded ? L->n % 2 : 0;
    L->n++;
}

static void build_list(tlist *L, const mopts *o) {
    memset(L, 0, sizeof *L);
    add_t(L, o, "model.embed_tokens.weight", "token_embd.weight", 2, VOCAB, DIM);
    for (int l = 0; l < LAYERS; l++) {
        char hf[96], cn[96];
#define T(hfs, cns, nd, a, b)                                          \
    do {                                                              \
        snprintf(hf, sizeof hf, "model.layers.%d." hfs, l);           \
        if (cns[0]) snprintf(cn, sizeof cn, "blk.%d." cns, l);        \
        else cn[0] = '\0';                                            \
        add_t(L, o, hf, cn, nd, a, b);                                \
    } while (0)
        T("input_layernorm.weight", "attn_norm.weight", 1, DIM, 0);
        T("self_attn.q_proj.weight", "attn_q.weight", 2, HEADS * HD, DIM);
        T("self_attn.k_proj.weight", "attn_k.weight", 2, KV * HD, DIM);
        T("self_attn.v_proj.weight", "attn_v.weight", 2, KV * HD, DIM);
        if (o->bias) {
            T("self_attn.q_proj.bias", "attn_q.bias", 1, HEADS * HD, 0);
            T("self_attn.k_proj.bias", "attn_k.bias", 1, KV * HD, 0);
            T("self_attn.v_proj.bias", "attn_v.bias", 1, KV * HD, 0);
        }
        T("self_attn.o_proj.weight", "attn_output.weight", 2, DIM, HEADS * HD);
        T("self_attn.rotary_emb.inv_freq", "", 1, HD / 2, 0);
        T("post_attention_layernorm.weight", "ffn_norm.weight", 1, DIM, 0);
        T("mlp.gate_proj.weight", "ffn_gate.weight", 2, HIDDEN, DIM);
        if (!(o->skip_up1 && l == 1)) T("mlp.up_proj.weight", "ffn_up.weight", 2, HIDDEN, DIM);
        T("mlp.down_proj.weight", "ffn_down.weight", 2, DIM, HIDDEN);
#undef T
    }
    add_t(L, o, "model.norm.weight", "output_norm.weight", 1, DIM, 0);
    if (o->write_lm_head) add_t(L, o, "lm_head.weight", "output.weight", 2, VOCAB, DIM);
}

/* Value of element j of tensor k: multiples of 1/4 in [-30, 32.5], exact in F16/BF16. */
static float tval(int k, uint64_t j) { return (float)((k * 37 + (int)(j % 1000)) % 251) * 0.25f - 30.0f; }

static size_t esize(const char *dtype) { return strcmp(dtype, "F32") == 0 ? 4 : 2; }

static uint64_t tcount(const ttensor *t) { return t->shape[0] * (t->nd == 2 ? t->shape[1] : 1); }

/* ---- writers --------------------------------------------------------------------- */

typedef void (*mutate_fn)(json_object *root, void *ctx);

static json_object *jint_array2(uint64_t a, uint64_t b, int n) {
    json_object *arr = json_object_new_array();
    json_object_array_add(arr, json_object_new_int64((int64_t)a));
    if (n == 2) json_object_array_add(arr, json_object_new_int64((int64_t)b));
    return arr;
}

static void write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len) assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* A safetensors file from a header text and data bytes (header length as given). */
static void write_st_raw(const char *path, uint64_t n, const char *header, size_t header_len, const void *data,
                         size_t data_len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)(n >> (8 * i));
    assert_int_equal(fwrite(le, 1, 8, f), 8);
    if (header_len) assert_int_equal(fwrite(header, 1, header_len, f), header_len);
    if (data_len) assert_int_equal(fwrite(data, 1, data_len, f), data_len);
    assert_int_equal(fclose(f), 0);
}

/* Writes the tensors of `shard` (-1: all) of L as one safetensors file. */
static void write_st(const char *path, const tlist *L, int shard, mutate_fn mut, void *ctx) {
    json_object *h = json_object_new_object();
    json_object *meta = json_object_new_object();
    json_object_object_add(meta, "format", json_object_new_string("pt"));
    json_object_object_add(h, "__metadata__", meta);
    size_t total = 0;
    for (int k = 0; k < L->n; k++) {
        const ttensor *t = &L->t[k];
        if (shard >= 0 && t->shard != shard) continue;
        uint64_t nb = tcount(t) * esize(t->dtype);
        json_object *e = json_object_new_object();
        json_object_object_add(e, "dtype", json_object_new_string(t->dtype));
        json_object_object_add(e, "shape", jint_array2(t->shape[0], t->shape[1], t->nd));
        json_object_object_add(e, "data_offsets", jint_array2(total, total + nb, 2));
        json_object_object_add(h, t->hf, e);
        total += nb;
    }
    if (mut) mut(h, ctx);
    const char *text = json_object_to_json_string_ext(h, JSON_C_TO_STRING_PLAIN);
    size_t tl = strlen(text), padded = (tl + 7) / 8 * 8;
    char *hdr = malloc(padded);
    assert_non_null(hdr);
    memcpy(hdr, text, tl);
    memset(hdr + tl, ' ', padded - tl);
    unsigned char *data = malloc(total ? total : 1);
    assert_non_null(data);
    size_t off = 0;
    for (int k = 0; k < L->n; k++) {
        const ttensor *t = &L->t[k];
        if (shard >= 0 && t->shard != shard) continue;
        for (uint64_t j = 0; j < tcount(t); j++) {
            float v = tval(k, j);
            if (strcmp(t->dtype, "F32") == 0) {
                memcpy(data + off, &v, 4);
                off += 4;
            } else {
                uint16_t u = strcmp(t->dtype, "F16") == 0 ? lmm_f32_to_f16(v) : lmm_f32_to_bf16(v);
                memcpy(data + off, &u, 2);
                off += 2;
            }
        }
    }
    write_st_raw(path, padded, hdr, padded, data, total);
    free(hdr);
    free(data);
    json_object_put(h);
}

static json_object *make_config(const mopts *o) {
    json_object *c = json_object_new_object();
    json_object *archs = json_object_new_array();
    json_object_array_add(archs, json_object_new_string(o->arch ? o->arch : "LlamaForCausalLM"));
    json_object_object_add(c, "architectures", archs);
    json_object_object_add(c, "model_type", json_object_new_string("llama"));
    json_object_object_add(c, "hidden_size", json_object_new_int(DIM));
    json_object_object_add(c, "intermediate_size", json_object_new_int(HIDDEN));
    json_object_object_add(c, "num_hidden_layers", json_object_new_int(LAYERS));
    json_object_object_add(c, "num_attention_heads", json_object_new_int(HEADS));
    json_object_object_add(c, "num_key_value_heads", json_object_new_int(KV));
    json_object_object_add(c, "vocab_size", json_object_new_int(VOCAB));
    json_object_object_add(c, "max_position_embeddings", json_object_new_int(MAXPOS));
    json_object_object_add(c, "rms_norm_eps", json_object_new_double(1e-6));
    json_object_object_add(c, "rope_theta", json_object_new_double(500000.0));
    json_object_object_add(c, "hidden_act", json_object_new_string("silu"));
    json_object_object_add(c, "tie_word_embeddings", json_object_new_boolean(o->tied));
    json_object_object_add(c, "bos_token_id", json_object_new_int(5));
    json_object *eos = json_object_new_array();
    json_object_array_add(eos, json_object_new_int(7));
    json_object_array_add(eos, json_object_new_int(8));
    json_object_object_add(c, "eos_token_id", eos);
    json_object_object_add(c, "rope_scaling", NULL);
    json_object_object_add(c, "torch_dtype", json_object_new_string("bfloat16"));
    return c;
}

static const char *shard_name(int s) { return s == 0 ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors"; }

/* Writes config.json, tokenizer.json and the weights of a model into dir. */
static void write_model(const char *dir, const mopts *o, tlist *L, mutate_fn cfg_mut, mutate_fn st_mut,
                        mutate_fn idx_mut, void *ctx) {
    char path[512];
    build_list(L, o);
    json_object *c = make_config(o);
    if (cfg_mut) cfg_mut(c, ctx);
    const char *text = json_object_to_json_string_ext(c, JSON_C_TO_STRING_PRETTY);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_file(path, text, strlen(text));
    json_object_put(c);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    write_file(path, "{}", 2);
    if (!o->sharded) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        write_st(path, L, -1, st_mut, ctx);
        return;
    }
    json_object *idx = json_object_new_object();
    json_object *meta = json_object_new_object();
    json_object_object_add(meta, "total_size", json_object_new_int(12345));
    json_object_object_add(idx, "metadata", meta);
    json_object *wm = json_object_new_object();
    for (int k = 0; k < L->n; k++)
        json_object_object_add(wm, L->t[k].hf, json_object_new_string(shard_name(L->t[k].shard)));
    json_object_object_add(idx, "weight_map", wm);
    if (idx_mut) idx_mut(idx, ctx);
    text = json_object_to_json_string_ext(idx, JSON_C_TO_STRING_PRETTY);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    write_file(path, text, strlen(text));
    json_object_put(idx);
    for (int s = 0; s < 2; s++) {
        snprintf(path, sizeof path, "%s/%s", dir, shard_name(s));
        write_st(path, L, s, st_mut, ctx);
    }
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void rm_tree(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* ---- checks ----------------------------------------------------------------------- */

static float read_elem(const lmm_model_desc *d, const lmm_tensor_desc *t, uint64_t j) {
    FILE *f = fopen(d->files[t->file], "rb");
    assert_non_null(f);
    size_t es = lmm_dtype_size(t->dtype);
    unsigned char raw[4];
    assert_int_equal(fseeko(f, (off_t)(t->offset + j * es), SEEK_SET), 0);
    assert_int_equal(fread(raw, 1, es, f), es);
    fclose(f);
    float v;
    lmm_dtype_row_to_f32(&v, raw, t->dtype, 1);
    return v;
}

static lmm_dtype parse_dt(const char *s) {
    return strcmp(s, "F32") == 0 ? LMM_DTYPE_F32 : strcmp(s, "F16") == 0 ? LMM_DTYPE_F16 : LMM_DTYPE_BF16;
}

/* Every tensor the reader must keep is there, right, and at bytes holding its values. */
static void check_tensors(const lmm_model_desc *d, const tlist *L, const mopts *o, const char *dir) {
    uint32_t expected = 0;
    for (int k = 0; k < L->n; k++) {
        const ttensor *w = &L->t[k];
        if (!w->canon[0]) {
            continue;
        }
        const lmm_tensor_desc *t = lmm_model_desc_find(d, w->canon);
        if (o->tied && strcmp(w->canon, "output.weight") == 0) {
            assert_null(t);
            continue;
        }
        expected++;
        if (!t) fail_msg("missing %s", w->canon);
        assert_int_equal(t->dtype, parse_dt(w->dtype));
        assert_int_equal(t->n_dims, (uint32_t)w->nd);
        assert_int_equal(t->shape[0], w->shape[0]);
        if (w->nd == 2) assert_int_equal(t->shape[1], w->shape[1]);
        assert_int_equal(t->nbytes, tcount(w) * esize(w->dtype));
        char want[512];
        if (o->sharded) snprintf(want, sizeof want, "%s/%s", dir, shard_name(w->shard));
        else snprintf(want, sizeof want, "%s/model.safetensors", dir);
        assert_string_equal(d->files[t->file], want);
        uint64_t n = tcount(w);
        uint64_t js[3] = {0, 1 % n, n - 1};
        for (int i = 0; i < 3; i++)
            if (read_elem(d, t, js[i]) != tval(k, js[i]))
                fail_msg("%s[%" PRIu64 "] = %g, expected %g", w->canon, js[i], (double)read_elem(d, t, js[i]),
                         (double)tval(k, js[i]));
    }
    assert_int_equal(d->n_tensors, expected);
}

static void check_hparams(const lmm_model_desc *d, const mopts *o) {
    assert_int_equal(d->format, LMM_FORMAT_HF);
    assert_int_equal(d->hp.dim, DIM);
    assert_int_equal(d->hp.hidden_dim, HIDDEN);
    assert_int_equal(d->hp.n_layers, LAYERS);
    assert_int_equal(d->hp.n_heads, HEADS);
    assert_int_equal(d->hp.n_kv_heads, KV);
    assert_int_equal(d->hp.head_dim, HD);
    assert_int_equal(d->hp.n_vocab, VOCAB);
    assert_int_equal(d->hp.max_seq_len, MAXPOS);
    assert_true(d->hp.norm_eps == 1e-6f);
    assert_true(d->hp.rope_theta == 500000.0f);
    assert_int_equal(d->hp.rope_layout, LMM_ROPE_NEOX);
    assert_int_equal(d->hp.tied_embeddings, o->tied);
    assert_int_equal(d->bos_id, 5);
    assert_int_equal(d->eos_id, 7);
    assert_non_null(d->tokenizer_path);
    assert_non_null(strstr(d->tokenizer_path, "/tokenizer.json"));
}

static lmm_model_desc open_ok(const char *path) {
    lmm_model_desc d;
    if (lmm_model_desc_open_hf(&d, path)) fail_msg("open %s: %s", path, lmm_error_get());
    return d;
}

/* Opening fails and the message contains every given fragment. */
static void expect_fail(const char *path, const char *a, const char *b) {
    lmm_model_desc d;
    lmm_error_clear();
    if (lmm_model_desc_open_hf(&d, path) == 0) {
        lmm_model_desc_free(&d);
        fail_msg("%s opened, expected an error containing '%s'", path, a);
    }
    if (a && !strstr(lmm_error_get(), a)) fail_msg("expected '%s' in: %s", a, lmm_error_get());
    if (b && !strstr(lmm_error_get(), b)) fail_msg("expected '%s' in: %s", b, lmm_error_get());
    assert_int_equal(d.n_tensors, 0); /* freed on failure */
}

static void new_dir(char *dir, size_t cap) { assert_non_null(test_tmpdir(dir, cap)); }

/* ---- valid models ------------------------------------------------------------------ */

static void test_single_f32(void **state) {
    (void)state;
    char dir[256], p[512];
    new_dir(dir, sizeof dir);
    mopts o = {.write_lm_head = 1};
    tlist L;
    write_model(dir, &o, &L, NULL, NULL, NULL, NULL);
    /* Every way of naming the model gives the same description. */
    const char *forms[] = {"", "/", "/config.json", "/model.safetensors"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s%s", dir, forms[i]);
        lmm_model_desc d = open_ok(p);
        check_hparams(&d, &o);
        assert_string_equal(d.arch_name, "LlamaForCausalLM");
        assert_int_equal(d.arch, LMM_ARCH_LLAMA);
        assert_false(d.hp.qkv_bias);
        assert_int_equal(d.hp.rope_scaling, LMM_ROPE_SCALING_NONE);
        assert_int_equal(d.n_files, 1);
        check_tensors(&d, &L, &o, dir);
        /* The first tensor's data starts right after the 8-byte length and the header. */
        const lmm_tensor_desc *e = lmm_model_desc_find(&d, "token_embd.weight");
        FILE *f = fopen(d.files[0], "rb");
        uint64_t n = 0;
        unsigned char le[8];
        assert_int_equal(fread(le, 1, 8, f), 8);
        fclose(f);
        for (int b = 7; b >= 0; b--) n = n << 8 | le[b];
        assert_int_equal(e->offset, 8 + n);
        lmm_model_desc_free(&d);
    }
    rm_tree(dir);
}

/* Copies a file (for LMM_HF_SEED_DIR). */
static void copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    if (!in || !out) fail_msg("cannot copy %s to %s", from, to);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
}

static void test_single_mixed_dtypes(void **state) {
    (void)state;
    char dir[256];
    new_dir(dir, sizeof dir);
    mopts o = {.dtypes = mixed, .write_lm_head = 1};
    tlist L;
    write_model(dir, &o, &L, NULL, NULL, NULL, NULL);
    lmm_model_desc d = open_ok(dir);
    check_hparams(&d, &o);
    check_tensors(&d, &L, &o, dir);
    int seen[3] = {0};
    for (uint32_t i = 0; i < d.n_tensors; i++) seen[d.tensors[i].dtype]++;
    assert_true(seen[0] && seen[1] && seen[2]);
    lmm_model_desc_free(&d);
    /* Seeds for fuzz_safetensors and fuzz_hf_config. */
    const char *seeds = getenv("LMM_HF_SEED_DIR");
    if (seeds && *seeds) {
        char from[512], to[1024];
        snprintf(from, sizeof from, "%s/model.safetensors", dir);
        snprintf(to, sizeof to, "%s/model.safetensors", seeds);
        copy_file(from, to);
        snprintf(from, sizeof from, "%s/config.json", dir);
        snprintf(to, sizeof to, "%s/config.json", seeds);
        copy_file(from, to);
    }
    rm_tree(dir);
}

static void test_sharded(void **state) {
    (void)state;
    char dir[256], p[512];
    new_dir(dir, sizeof dir);
    mopts o = {.dtypes = mixed, .write_lm_head = 1, .sharded = 1};
    tlist L;
    write_model(dir, &o, &L, NULL, NULL, NULL, NULL);
    const char *forms[] = {"", "/model.safetensors.index.json", "/model-00002-of-00002.safetensors"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", dir, forms[i]);
        lmm_model_desc d = open_ok(p);
        check_hparams(&d, &o);
        assert_int_equal(d.n_files, 2);
        check_tensors(&d, &L, &o, dir);
        lmm_model_desc_free(&d);
    }
    rm_tree(dir);
}

static void cfg_llama3_scaling(json_object *c, void *ctx) {
    (void)ctx;
    json_object *rs = json_object_new_object();
    json_object_object_add(rs, "rope_type", json_object_new_string("llama3"));
    json_object_object_add(rs, "factor", json_object_new_double(8.0));
    json_object_object_add(rs, "low_freq_factor", json_object_new_double(1.0));
    json_object_object_add(rs, "high_freq_factor", json_object_new_double(4.0));
    json_object_object_add(rs, "original_max_position_embeddings", json_object_new_int(8192));
    json_object_object_add(c, "rope_scaling", rs);
}

static void cfg_linear_scaling(json_object *c, void *ctx) {
    (void)ctx;
    json_object *rs = json_object_new_object();
    json_object_object_add(rs, "type", json_object_new_string("linear"));
    json_object_object_add(rs, "factor", json_object_new_int(2));
    json_object_object_add(c, "rope_scaling", rs);
}

static void test_rope_scaling(void **state) {
    (void)state;
    char dir[256];
    new_dir(dir, sizeof dir);
    mopts o = {.tied = 1};
    tlist L;
    write_model(dir, &o, &L, cfg_llama3_scaling, NULL, NULL, NULL);
    lmm_model_desc d = open_ok(dir);
    assert_int_equal(d.hp.rope_scaling, LMM_ROPE_SCALING_LLAMA3);
    assert_true(d.hp.rope_factor == 8.0f);
    assert_true(d.hp.rope_low_freq_factor == 1.0f);
    assert_true(d.hp.rope_high_freq_factor == 4.0f);
    assert_int_equal(d.hp.rope_orig_max_pos, 8192);
    lmm_model_desc_free(&d);
    rm_tree(dir);

    new_dir(dir, sizeof dir);
    write_model(dir, &o, &L, cfg_linear_scaling, NULL, NULL, NULL);
    d = open_ok(dir);
    assert_int_equal(d.hp.rope_scaling, LMM_ROPE_SCALING_LINEAR);
    assert_true(d.hp.rope_factor == 2.0f);
    lmm_model_desc_free(&d);
    rm_tree(dir);
}

static void test_qwen2_bias_tied(void **state) {
    (void)state;
    char dir[256];
    new_dir(dir, sizeof dir);
    /* Tied, yet lm_head.weight is stored: it must be ignored. */
    mopts o = {.arch = "Qwen2ForCausalLM", .dtypes = mixed, .tied = 1, .write_lm_head = 1, .bias = 1};
    tlist L;
    write_model(dir, &o, &L, NULL, NULL, NULL, NULL);
    lmm_model_desc d = open_ok(dir);
    check_hparams(&d, &o);
    assert_int_equal(d.arch, LMM_ARCH_QWEN2);
    assert_string_equal(d.arch_name, "Qwen2ForCausalLM");
    assert_true(d.hp.qkv_bias);
    assert_true(d.hp.tied_embeddings);
    assert_null(lmm_model_desc_find(&d, "output.weight"));
    const lmm_tensor_desc *b = lmm_model_desc_find(&d, "blk.1.attn_k.bias");
    assert_non_null(b);
    assert_int_equal(b->n_dims, 1);
    assert_int_equal(b->shape[0], KV * HD);
    check_tensors(&d, &L, &o, dir);
    lmm_model_desc_free(&d);
    rm_tree(dir);
}

static void cfg_attention_bias(json_object *c, void *ctx) {
    (void)ctx;
    json_object_object_add(c, "attention_bias", json_object_new_boolean(1));
}

static void test_llama_attention_bias(void **state) {
    (void)state;
    char dir[256];
    new_dir(dir, sizeof dir);
    mopts o = {.tied = 1, .bias = 1};
    tlist L;
    write_model(dir, &o, &L, cfg_attention_bias, NULL, NULL, NULL);
    lmm_model_desc d = open_ok(dir);
    assert_true(d.hp.qkv_bias);
    check_tensors(&d, &L, &o, dir);
    lmm_model_desc_free(&d);
    rm_tree(dir);
    /* Bias tensors with a config that says there are none would be silently wrong. */
    new_dir(dir, sizeof dir);
    write_model(dir, &o, &L, NULL, NULL, NULL, NULL);
    expect_fail(dir, "self_attn.q_proj.bias", "no bias");
    rm_tree(dir);
}

static void cfg_mistral(json_object *c, void *ctx) {
    (void)ctx;
    json_object_object_add(c, "sliding_window", json_object_new_int(16));
    json_object_object_del(c, "num_key_value_heads");
    json_object_object_add(c, "eos_token_id", json_object_new_int(2));
    json_object_object_add(c, "bos_token_id", NULL);
    json_object_object_del(c, "rope_theta");
}

static void test_mistral_defaults(void **state) {
    (void)state;
    char dir[256];
    new_dir(dir, sizeof dir);
    mopts o = {.arch = "MistralForCausalLM", .write_lm_head = 1};
    tlist L;
    write_model(dir, &o, &L, cfg_mistral, NULL, NULL, NULL);
    /* num_key_value_heads defaults to the head count: k/v of 1 head no longer fit. */
    expect_fail(dir, "attn_k.weight", "has shape [4, 8], expected [8, 8]");
    rm_tree(dir);

    /* Parse the config alone for the defaults. */
    json_object *c = make_config(&o);
    cfg_mistral(c, NULL);
    const char *text = json_object_to_json_string(c);
    lmm_model_desc d;
    lmm_model_desc_init(&d);
    if (lmm_hf_parse_config(&d, text, strlen(text), "config.json")) fail_msg("%s", lmm_error_get());
    json_object_put(c);
    assert_int_equal(d.arch, LMM_ARCH_LLAMA);
    assert_int_equal(d.hp.n_kv_heads, HEADS);
    assert_true(d.hp.rope_theta == 10000.0f);
    assert_int_equal(d.hp.max_seq_len, 16); /* capped at the sliding window: exact inside it */
    assert_int_equal(d.bos_id, 1);          /* null keeps the default */
    assert_int_equal(d.eos_id, 2);
    assert_false(d.hp.tied_embeddings);
    lmm_model_desc_free(&d);
}

/* ---- embeddings, missing tensors -------------------------------------------------- */

static void test_tied_untied(void **state) {
    (void)state;
    char dir[256];
    mopts cases[] = {{.tied = 1, .write_lm_head = 0}, {.tied = 0, .write_lm_head = 1}, {.tied = 0, .write_lm_head = 0}};
    for (int i = 0; i < 3; i++) {
        new_dir(dir, sizeof dir);
        tlist L;
        write_model(dir, &cases[i], &L, NULL, NULL, NULL, NULL);
        if (i < 2) {
            lmm_model_desc d = open_ok(dir);
            assert_int_equal(d.hp.tied_embeddings, cases[i].tied);
            assert_int_equal(lmm_model_desc_find(&d, "output.weight") != NULL, !cases[i].tied);
            check_tensors(&d, &L, &cases[i], dir);
            lmm_model_desc_free(&d);
        } else {
            expect_fail(dir, "missing tensor 'output.weight'", NULL);
        }
        rm_tree(dir);
    }
}

static void test_missing_tensor(void **state) {
    (void)state;
    char dir[256];
    new_dir(dir, sizeof dir);
    mopts o = {.tied = 1, .skip_up1 = 1};
    tlist L;
    write_model(dir, &o, &L, NULL, NULL, NULL, NULL);
    expect_fail(dir, "missing tensor 'blk.1.ffn_up.weight'", "model.safetensors");
    rm_tree(dir);
}

static void st_add_obias(json_object *h, void *ctx) {
    (void)ctx;
    json_object *e = json_object_new_object();
    json_object_object_add(e, "dtype", json_object_new_string("F32"));
    json_object_object_add(e, "shape", jint_array2(0, 0, 1));
    json_object_object_add(e, "data_offsets", jint_array2(0, 0, 2));
    json_object_object_add(h, "model.layers.0.self_attn.o_proj.bias", e);
}

static void test_unsupported_tensor(void **state) {
    (void)state;
    char dir[256];
    new_dir(dir, sizeof dir);
    mopts o = {.tied = 1};
    tlist L;
    write_model(dir, &o, &L, NULL, st_add_obias, NULL, NULL);
    expect_fail(dir, "o_proj.bias is not supported", NULL);
    rm_tree(dir);
}

/* ---- corrupt safetensors ----------------------------------------------------------- */

static void test_truncated_every_length(void **state) {
    (void)state;
    char dir[256], p[512];
    new_dir(dir, sizeof dir);
    mopts o = {.dtypes = mixed, .tied = 1};
    tlist L;
    write_model(dir, &o, &L, NULL, NULL, NULL, NULL);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    for (long len = size - 1; len >= 0; len--) {
        assert_int_equal(truncate(p, len), 0);
        expect_fail(dir, "model.safetensors", NULL);
    }
    rm_tree(dir);
}

typedef struct {
    const char *tensor;   /* entry to change */
    const char *field;    /* "dtype", "shape", "data_offsets" */
    json_object *(*make)(void);
} entry_patch;

static void st_patch(json_object *h, void *ctx) {
    const entry_patch *pt = ctx;
    json_object *e;
    if (json_object_object_get_ex(h, pt->tensor, &e)) json_object_object_add(e, pt->field, pt->make());
}

static json_object *offsets_beyond(void) { return jint_array2(0, 1u << 20, 2); }
static json_object *offsets_reversed(void) { return jint_array2(64, 32, 2); }
static json_object *offsets_one_short(void) { return jint_array2(0, 511, 2); }
static json_object *offsets_negative(void) { return jint_array2((uint64_t)-4, 508, 2); }
static json_object *offsets_string(void) { return json_object_new_string("0,512"); }
static json_object *shape_wrong(void) { return jint_array2(16, 7, 2); }
static json_object *shape_negative(void) { return jint_array2(16, (uint64_t)-8, 2); }
static json_object *shape_float(void) {
    json_object *a = json_object_new_array();
    json_object_array_add(a, json_object_new_double(16.0));
    json_object_array_add(a, json_object_new_int(8));
    return a;
}
static json_object *shape_huge(void) {
    json_object *a = json_object_new_array();
    for (int i = 0; i < 4; i++) json_object_array_add(a, json_object_new_int64(INT64_MAX));
    return a;
}
static json_object *shape_i8(void) { return jint_array2(16, 32, 2); } /* 512 bytes as I8 */
static json_object *dtype_q4(void) { return json_object_new_string("Q4_K"); }
static json_object *dtype_int(void) { return json_object_new_int(1); }

static void run_patch(const entry_patch *pt, const char *a, const char *b) {
    char dir[256];
    new_dir(dir, sizeof dir);
    mopts o = {.tied = 1};
    tlist L;
    build_list(&L, &o);
    json_object *c = make_config(&o);
    char p[512];
    snprintf(p, sizeof p, "%s/config.json", dir);
    const char *text = json_object_to_json_string(c);
    write_file(p, text, strlen(text));
    json_object_put(c);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    write_st(p, &L, -1, st_patch, (void *)pt);
    expect_fail(dir, a, b);
    rm_tree(dir);
}

static void test_bad_entries(void **state) {
    (void)state;
    const char *emb = "model.embed_tokens.weight"; /* F32 [16, 8]: 512 bytes at data offset 0 */
    struct {
        entry_patch p;
        const char *a, *b;
    } cases[] = {
        {{emb, "data_offsets", offsets_beyond}, "beyond the end of the data", emb},
        {{emb, "data_offsets", offsets_reversed}, "end before they begin", emb},
        {{emb, "data_offsets", offsets_one_short}, "data_offsets give 511 bytes but shape and dtype F32 need 512", emb},
        {{emb, "data_offsets", offsets_negative}, "not non-negative integers", emb},
        {{emb, "data_offsets", offsets_string}, "\"data_offsets\" is missing", emb},
        {{emb, "shape", shape_wrong}, "need 448", emb},
        {{emb, "shape", shape_negative}, "shape entry 1 is not a non-negative integer", emb},
        {{emb, "shape", shape_float}, "shape entry 0 is not a non-negative integer", emb},
        {{emb, "shape", shape_huge}, "element count overflows", emb},
        {{emb, "dtype", dtype_q4}, "dtype Q4_K is not supported", emb},
        {{emb, "dtype", dtype_int}, "\"dtype\" is missing or not a string", emb},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_patch(&cases[i].p, cases[i].a, cases[i].b);
}

/* I8 / F8 tensors of a consistent size: rejected only because the engine cannot use them. */
static void st_to_i8(json_object *h, void *ctx) {
    json_object *e;
    assert_true(json_object_object_get_ex(h, "model.embed_tokens.weight", &e));
    json_object_object_add(e, "dtype", json_object_new_string(ctx));
    json_object_object_add(e, "shape", shape_i8());
}

static void st_ignored_i64(json_object *h, void *ctx) {
    (void)ctx;
    json_object *e;
    assert_true(json_object_object_get_ex(h, "model.layers.0.self_attn.rotary_emb.inv_freq", &e));
    json_object_object_add(e, "dtype", json_object_new_string("I64"));
    json_object_object_add(e, "shape", jint_array2(1, 0, 1));
}

static void test_unsupported_dtype(void **state) {
    (void)state;
    const char *dtypes[2] = {"I8", "F8_E4M3"};
    const char *names[2] = {"dtype I8 is not supported", "dtype F8_E4M3 is not supported"};
    for (int i = 0; i < 2; i++) {
        char dir[256];
        new_dir(dir, sizeof dir);
        mopts o = {.tied = 1};
        tlist L;
        write_model(dir, &o, &L, NULL, st_to_i8, NULL, (void *)dtypes[i]);
        expect_fail(dir, names[i], "model.embed_tokens.weight");
        rm_tree(dir);
    }
    /* A tensor the reader ignores may have any dtype of the spec. */
    char dir[256];
    new_dir(dir, sizeof dir);
    mopts o = {.tied = 1};
    tlist L;
    write_model(dir, &o, &L, NULL, st_ignored_i64, NULL, NULL);
    lmm_model_desc d = open_ok(dir);
    lmm_model_desc_free(&d);
    rm_tree(dir);
}

static void test_bad_header(void **state) {
    (void)state;
    char dir[256], p[512];
    new_dir(dir, sizeof dir);
    mopts o = {.tied = 1};
    tlist L;
    write_model(dir, &o, &L, NULL, NULL, NULL, NULL);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    static const char data[64];
    /* n: the stored header length (AUTO: the text's length); hl: bytes of text written. */
    const uint64_t AUTO = 1;
    struct {
        uint64_t n;
        const char *hdr;
        size_t hl;
        const char *a;
    } cases[] = {
        {200ull << 20, "{}", 2, "header length 209715200 is absurd"},
        {UINT64_MAX, "{}", 2, "is absurd"},
        {4096, "{}      ", 8, "exceeds the file size"},
        {0, "", 0, "too small"},
        {AUTO, "{\"a\": [1", 0, "not valid JSON"},
        {AUTO, "[1,2,3] ", 0, "header is a JSON array, expected an object"},
        {AUTO, "{}  x   ", 0, "unexpected data after the object"},
        {AUTO, "{}\0", 3, "unexpected data after the object"},
        {AUTO, "{\"a\":1} ", 0, "entry is a int, expected an object"},
        {AUTO, "{\"a\":\0\"b\"}", 10, "not valid JSON"},
        {AUTO, "{\"__metadata__\": 3}", 0, "\"__metadata__\" is a int"},
        {AUTO, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 0, "not an array of 2 integers"},
        {AUTO, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 0, NULL}, /* valid */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t hl = cases[i].hl ? cases[i].hl : strlen(cases[i].hdr);
        uint64_t n = cases[i].n == AUTO ? hl : cases[i].n;
        write_st_raw(p, n, cases[i].hdr, hl, data, sizeof data);
        if (!cases[i].a) {
            lmm_safetensors st;
            if (lmm_safetensors_read(&st, p)) fail_msg("%s", lmm_error_get());
            assert_int_equal(st.n_tensors, 1);
            assert_string_equal(st.tensors[0].name, "a");
            assert_int_equal(st.tensors[0].offset, 8 + n);
            assert_int_equal(st.tensors[0].nbytes, 4);
            lmm_safetensors_free(&st);
            /* Parses, but the model lacks every tensor it needs. */
            expect_fail(dir, "missing tensor 'token_embd.weight'", "model.safetensors");
            continue;
        }
        expect_fail(dir, cases[i].a, "model.safetensors");
    }
    /* The memory parser on the same kind of input, and a valid empty header. */
    lmm_safetensors st;
    unsigned char buf[24] = {8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
    assert_int_equal(lmm_safetensors_parse(&st, buf, 16, 16, "mem"), 0);
    assert_int_equal(st.n_tensors, 0);
    assert_int_equal(st.data_start, 16);
    lmm_safetensors_free(&st);
    assert_int_equal(lmm_safetensors_parse(&st, buf, 12, 16, "mem"), -1);
    assert_non_null(strstr(lmm_error_get(), "truncated"));
    rm_tree(dir);
}

/* ---- config.json ------------------------------------------------------------------- */

typedef struct {
    const char *field;
    json_object *(*make)(void); /* NULL: delete the field */
} cfg_patch;

static void cfg_apply(json_object *c, void *ctx) {
    const cfg_patch *pt = ctx;
    if (pt->make) json_object_object_add(c, pt->field, pt->make());
    else json_object_object_del(c, pt->field);
}

static json_object *j_str(void) { return json_object_new_string("8"); }
static json_object *j_neg(void) { return json_object_new_int(-1); }
static json_object *j_big(void) { return json_object_new_int64(1ll << 40); }
static json_object *j_float(void) { return json_object_new_double(8.5); }
static json_object *j_int(void) { return json_object_new_int(1); }
static json_object *j_gpt2(void) {
    json_object *a = json_object_new_array();
    json_object_array_add(a, json_object_new_string("GPT2LMHeadModel"));
    return a;
}
static json_object *j_empty_arr(void) { return json_object_new_array(); }
static json_object *j_yarn(void) {
    json_object *rs = json_object_new_object();
    json_object_object_add(rs, "rope_type", json_object_new_string("yarn"));
    json_object_object_add(rs, "factor", json_object_new_double(4.0));
    return rs;
}
static json_object *j_llama3_partial(void) {
    json_object *rs = json_object_new_object();
    json_object_object_add(rs, "rope_type", json_object_new_string("llama3"));
    json_object_object_add(rs, "factor", json_object_new_double(8.0));
    return rs;
}
static json_object *j_notype(void) {
    json_object *rs = json_object_new_object();
    json_object_object_add(rs, "factor", json_object_new_double(8.0));
    return rs;
}
static json_object *j_gelu(void) { return json_object_new_string("gelu"); }
static json_object *j_true(void) { return json_object_new_boolean(1); }
static json_object *j_eos_strs(void) {
    json_object *a = json_object_new_array();
    json_object_array_add(a, json_object_new_string("</s>"));
    return a;
}

static void test_config_errors(void **state) {
    (void)state;
    static const char *required[] = {"architectures",       "hidden_size", "intermediate_size",
                                     "num_hidden_layers",   "num_attention_heads", "vocab_size",
                                     "max_position_embeddings", "rms_norm_eps"};
    char dir[256];
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        cfg_patch pt = {required[i], NULL};
        char want[128];
        snprintf(want, sizeof want, "missing field '%s'", required[i]);
        new_dir(dir, sizeof dir);
        mopts o = {.tied = 1};
        tlist L;
        write_model(dir, &o, &L, cfg_apply, NULL, NULL, &pt);
        expect_fail(dir, "config.json", want);
        rm_tree(dir);
    }
    struct {
        cfg_patch p;
        const char *want;
    } cases[] = {
        {{"hidden_size", j_str}, "field 'hidden_size' must be an integer, not string"},
        {{"num_hidden_layers", j_float}, "field 'num_hidden_layers' must be an integer, not double"},
        {{"vocab_size", j_neg}, "field 'vocab_size' = -1 is out of range"},
        {{"intermediate_size", j_big}, "field 'intermediate_size' = 1099511627776 is out of range"},
        {{"num_attention_heads", j_neg}, "num_attention_heads"},
        {{"rms_norm_eps", j_str}, "field 'rms_norm_eps' must be a number, not string"},
        {{"rope_theta", j_gelu}, "field 'rope_theta' must be a number"},
        {{"tie_word_embeddings", j_int}, "field 'tie_word_embeddings' must be true or false"},
        {{"architectures", j_gpt2}, "architecture GPT2LMHeadModel is not supported"},
        {{"architectures", j_empty_arr}, "'architectures' must be a non-empty list"},
        {{"architectures", j_str}, "'architectures' must be a non-empty list"},
        {{"rope_scaling", j_yarn}, "rope_scaling type 'yarn' is not supported"},
        {{"rope_scaling", j_llama3_partial}, "missing field 'rope_scaling.low_freq_factor'"},
        {{"rope_scaling", j_notype}, "rope_scaling' has no 'rope_type'"},
        {{"rope_scaling", j_int}, "field 'rope_scaling' must be an object or null"},
        {{"hidden_act", j_gelu}, "hidden_act gelu is not supported"},
        {{"mlp_bias", j_true}, "mlp_bias = true is not supported"},
        {{"eos_token_id", j_eos_strs}, "field 'eos_token_id' must be an integer"},
        {{"head_dim", j_int}, "head_dim"},   /* head_dim 1: odd, rejected by validation */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        new_dir(dir, sizeof dir);
        mopts o = {.tied = 1};
        tlist L;
        write_model(dir, &o, &L, cfg_apply, NULL, NULL, &cases[i].p);
        expect_fail(dir, cases[i].want, NULL);
        rm_tree(dir);
    }
    /* Not JSON at all, and JSON that is not an object. */
    new_dir(dir, sizeof dir);
    mopts o = {.tied = 1};
    tlist L;
    write_model(dir, &o, &L, NULL, NULL, NULL, NULL);
    char p[512];
    snprintf(p, sizeof p, "%s/config.json", dir);
    write_file(p, "{\"hidden_size\": 8,", 18);
    expect_fail(dir, "config.json", "invalid JSON");
    write_file(p, "[1, 2]", 6);
    expect_fail(dir, "config.json", "expected a JSON object");
    write_file(p, "{} {}", 5);
    expect_fail(dir, "config.json", "unexpected data");
    unlink(p);
    expect_fail(dir, "config.json", "cannot open");
    rm_tree(dir);
}

/* ---- sharded models ---------------------------------------------------------------- */

static void idx_set(json_object *idx, void *ctx) {
    const char *const *kv = ctx; /* tensor, file */
    json_object *wm;
    assert_true(json_object_object_get_ex(idx, "weight_map", &wm));
    json_object_object_add(wm, kv[0], json_object_new_string(kv[1]));
}

static void test_index_errors(void **state) {
    (void)state;
    const char *cases[][3] = {
        {"model.norm.weight", "model-00003-of-00002.safetensors", "shard model-00003-of-00002.safetensors is missing"},
        {"model.norm.weight", "../model-00001-of-00002.safetensors", "not a plain file name"},
        {"model.norm.weight", "sub/model-00001-of-00002.safetensors", "not a plain file name"},
        {"model.norm.weight", "..", "not a plain file name"},
        {"model.norm.weight", "", "not a plain file name"},
        /* Listed in the other shard than the one that holds it. */
        {"model.embed_tokens.weight", "model-00002-of-00002.safetensors", "is listed in shard"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char dir[256];
        new_dir(dir, sizeof dir);
        mopts o = {.tied = 1, .sharded = 1};
        tlist L;
        write_model(dir, &o, &L, NULL, NULL, idx_set, (void *)cases[i]);
        expect_fail(dir, cases[i][2], "model.safetensors.index.json");
        rm_tree(dir);
    }
    /* weight_map missing or of the wrong type; index not JSON. */
    char dir[256], p[512];
    new_dir(dir, sizeof dir);
    mopts o = {.tied = 1, .sharded = 1};
    tlist L;
    write_model(dir, &o, &L, NULL, NULL, NULL, NULL);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    write_file(p, "{\"metadata\": {}}", 16);
    expect_fail(dir, "missing object 'weight_map'", NULL);
    write_file(p, "{\"weight_map\": {\"a\": 3}}", 24);
    expect_fail(dir, "not a plain file name", NULL);
    write_file(p, "{\"weight_map\": ", 15);
    expect_fail(dir, "invalid JSON", "index.json");
    rm_tree(dir);
}

static void test_paths(void **state) {
    (void)state;
    char dir[256], p[512];
    new_dir(dir, sizeof dir);
    expect_fail(dir, "cannot open", "config.json");
    snprintf(p, sizeof p, "%s/nothing", dir);
    expect_fail(p, "cannot open", NULL);
    snprintf(p, sizeof p, "%s/weights.bin", dir);
    write_file(p, "x", 1);
    expect_fail(p, "not a Hugging Face model", NULL);
    mopts o = {.tied = 1};
    tlist L;
    write_model(dir, &o, &L, NULL, NULL, NULL, NULL);
    /* A differently named single file is used when it is what the caller named. */
    char from[512], to[512];
    snprintf(from, sizeof from, "%s/model.safetensors", dir);
    snprintf(to, sizeof to, "%s/weights.safetensors", dir);
    assert_int_equal(rename(from, to), 0);
    expect_fail(dir, "no model.safetensors or model.safetensors.index.json", NULL);
    lmm_model_desc d = open_ok(to);
    assert_string_equal(d.files[0], to);
    assert_non_null(strstr(d.tokenizer_path, "/tokenizer.json"));
    lmm_model_desc_free(&d);
    /* No tokenizer.json: a SentencePiece tokenizer.model is used; neither: NULL. */
    snprintf(from, sizeof from, "%s/tokenizer.json", dir);
    snprintf(p, sizeof p, "%s/tokenizer.model", dir);
    assert_int_equal(rename(from, p), 0);
    d = open_ok(to);
    assert_string_equal(d.tokenizer_path, p);
    lmm_model_desc_free(&d);
    unlink(p);
    d = open_ok(to);
    assert_null(d.tokenizer_path);
    lmm_model_desc_free(&d);
    rm_tree(dir);
}

static void test_map_names(void **state) {
    (void)state;
    char out[LMM_TENSOR_NAME_MAX];
    uint32_t layer;
    assert_int_equal(lmm_hf_map_name("model.layers.17.mlp.down_proj.weight", out, sizeof out, &layer), 1);
    assert_string_equal(out, "blk.17.ffn_down.weight");
    assert_int_equal(layer, 17);
    assert_int_equal(lmm_hf_map_name("lm_head.weight", out, sizeof out, &layer), 1);
    assert_string_equal(out, "output.weight");
    assert_int_equal(layer, UINT32_MAX);
    assert_int_equal(lmm_hf_map_name("model.layers.01.mlp.down_proj.weight", out, sizeof out, &layer), 0);
    assert_int_equal(lmm_hf_map_name("model.layers.x.mlp.down_proj.weight", out, sizeof out, &layer), 0);
    assert_int_equal(lmm_hf_map_name("model.layers.99999999.mlp.down_proj.weight", out, sizeof out, &layer), 0);
    assert_int_equal(lmm_hf_map_name("model.layers.3.self_attn.rotary_emb.inv_freq", out, sizeof out, &layer), 0);
    assert_int_equal(lmm_hf_map_name("model.layers.3.mlp.up_proj.bias", out, sizeof out, &layer), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_f32),
        cmocka_unit_test(test_single_mixed_dtypes),
        cmocka_unit_test(test_sharded),
        cmocka_unit_test(test_rope_scaling),
        cmocka_unit_test(test_qwen2_bias_tied),
        cmocka_unit_test(test_llama_attention_bias),
        cmocka_unit_test(test_mistral_defaults),
        cmocka_unit_test(test_tied_untied),
        cmocka_unit_test(test_missing_tensor),
        cmocka_unit_test(test_unsupported_tensor),
        cmocka_unit_test(test_truncated_every_length),
        cmocka_unit_test(test_bad_entries),
        cmocka_unit_test(test_unsupported_dtype),
        cmocka_unit_test(test_bad_header),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_index_errors),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_map_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
