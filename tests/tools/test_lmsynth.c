/* tests/tools/test_lmsynth.c — lmsynth writes models that the format readers accept,
 * with the asked hyper-parameters and dtypes; one seed gives the same weights in
 * every format; same arguments give the same bytes; bad arguments are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lmm/error.h"
#include "lmm/gguf.h"
#include "lmm/model.h"
#include "lmm/tokenizer.h"
#include "test_util.h"

static char g_bin[1024];  /* path of lmsynth */
static char g_tmp[1024];  /* scratch directory of this run */

/* Runs lmsynth with ARGS (a shell word list); stderr goes to ERR (cap bytes). Returns the exit status. */
static int synth(char *err, size_t cap, const char *fmt, ...) {
    char args[2048], cmd[8192], err_path[1100];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(err_path, sizeof err_path, "%s/stderr.txt", g_tmp);
    snprintf(cmd, sizeof cmd, "'%s' %s 2>'%s'", g_bin, args, err_path);
    int st = system(cmd);
    if (err && cap) {
        err[0] = 0;
        FILE *f = fopen(err_path, "rb");
        if (f) {
            size_t n = fread(err, 1, cap - 1, f);
            err[n] = 0;
            fclose(f);
        }
    }
    if (st == -1 || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

static unsigned char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc(n > 0 ? (size_t)n : 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return p;
}

static bool same_file(const char *a, const char *b) {
    size_t na, nb;
    unsigned char *pa = read_file(a, &na), *pb = read_file(b, &nb);
    bool same = pa && pb && na == nb && memcmp(pa, pb, na) == 0;
    free(pa);
    free(pb);
    return same;
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static int group_setup(void **state) {
    (void)state;
    test_bin(g_bin, sizeof g_bin, "lmsynth");
    if (!exists(g_bin)) {
        fprintf(stderr, "lmsynth not found at %s (set LMM_BIN_DIR)\n", g_bin);
        return -1;
    }
    if (!test_tmpdir(g_tmp, sizeof g_tmp)) return -1;
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- every format and dtype opens with the right description -------------- */

typedef struct {
    const char *format, *dtype, *extra;
    lmm_format want_format;
    lmm_arch want_arch;
    lmm_rope_layout want_rope;
    lmm_dtype want_matrix, want_norm;
    uint32_t want_tensors;
    bool want_tied, want_bias;
} format_case;

static const format_case k_cases[] = {
    {"gguf", "f32", "", LMM_FORMAT_GGUF, LMM_ARCH_LLAMA, LMM_ROPE_INTERLEAVED, LMM_DTYPE_F32, LMM_DTYPE_F32, 20, true, false},
    {"gguf", "f16", "", LMM_FORMAT_GGUF, LMM_ARCH_LLAMA, LMM_ROPE_INTERLEAVED, LMM_DTYPE_F16, LMM_DTYPE_F32, 20, true, false},
    {"gguf", "bf16", "", LMM_FORMAT_GGUF, LMM_ARCH_LLAMA, LMM_ROPE_INTERLEAVED, LMM_DTYPE_BF16, LMM_DTYPE_F32, 20, true, false},
    {"gguf", "f32", "--untied", LMM_FORMAT_GGUF, LMM_ARCH_LLAMA, LMM_ROPE_INTERLEAVED, LMM_DTYPE_F32, LMM_DTYPE_F32, 21, false, false},
    {"gguf", "f16", "--qkv-bias --untied", LMM_FORMAT_GGUF, LMM_ARCH_QWEN2, LMM_ROPE_NEOX, LMM_DTYPE_F16, LMM_DTYPE_F32, 27, false, true},
    {"safetensors", "f32", "", LMM_FORMAT_HF, LMM_ARCH_LLAMA, LMM_ROPE_NEOX, LMM_DTYPE_F32, LMM_DTYPE_F32, 20, true, false},
    {"safetensors", "f16", "", LMM_FORMAT_HF, LMM_ARCH_LLAMA, LMM_ROPE_NEOX, LMM_DTYPE_F16, LMM_DTYPE_F16, 20, true, false},
    {"safetensors", "bf16", "--untied", LMM_FORMAT_HF, LMM_ARCH_LLAMA, LMM_ROPE_NEOX, LMM_DTYPE_BF16, LMM_DTYPE_BF16, 21, false, false},
    {"safetensors", "bf16", "--qkv-bias", LMM_FORMAT_HF, LMM_ARCH_QWEN2, LMM_ROPE_NEOX, LMM_DTYPE_BF16, LMM_DTYPE_BF16, 26, true, true},
    {"llama2c", "f32", "", LMM_FORMAT_LLAMA2C, LMM_ARCH_LLAMA, LMM_ROPE_INTERLEAVED, LMM_DTYPE_F32, LMM_DTYPE_F32, 20, true, false},
    {"llama2c", "f32", "--untied", LMM_FORMAT_LLAMA2C, LMM_ARCH_LLAMA, LMM_ROPE_INTERLEAVED, LMM_DTYPE_F32, LMM_DTYPE_F32, 21, false, false},
};

/* Output path for case i: a file, or a directory for safetensors; llama2c gets its own
 * directory because it writes tokenizer.bin beside the model. */
static void case_path(char *buf, size_t cap, size_t i, const format_case *c) {
    if (strcmp(c->format, "llama2c") == 0) {
        char dir[1100];
        snprintf(dir, sizeof dir, "%s/l2c%zu", g_tmp, i);
        mkdir(dir, 0777);
        snprintf(buf, cap, "%s/model.bin", dir);
    } else {
        snprintf(buf, cap, "%s/case%zu.%s", g_tmp, i, strcmp(c->format, "gguf") == 0 ? "gguf" : "hf");
    }
}

static void test_formats(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof k_cases / sizeof k_cases[0]; i++) {
        const format_case *c = &k_cases[i];
        char path[1200], err[4096];
        case_path(path, sizeof path, i, c);
        int rc = synth(err, sizeof err, "--shape tiny --format %s --dtype %s --seed 5 %s --out '%s'", c->format,
                       c->dtype, c->extra, path);
        if (rc != 0) fprintf(stderr, "case %zu (%s %s %s): %s", i, c->format, c->dtype, c->extra, err);
        assert_int_equal(rc, 0);

        lmm_model_desc d;
        if (lmm_model_desc_open(&d, path) != 0) fail_msg("case %zu: %s", i, lmm_error_get());
        const lmm_hparams *h = &d.hp;
        assert_int_equal(d.format, c->want_format);
        assert_int_equal(d.arch, c->want_arch);
        assert_int_equal(h->n_vocab, 512);
        assert_int_equal(h->dim, 64);
        assert_int_equal(h->hidden_dim, 176);
        assert_int_equal(h->n_layers, 2);
        assert_int_equal(h->n_heads, 4);
        assert_int_equal(h->n_kv_heads, 2);
        assert_int_equal(h->head_dim, 16);
        assert_int_equal(h->max_seq_len, 256);
        assert_true(h->norm_eps == 1e-5f);
        assert_true(h->rope_theta == 10000.0f);
        assert_int_equal(h->rope_layout, c->want_rope);
        assert_int_equal(h->rope_scaling, LMM_ROPE_SCALING_NONE);
        assert_int_equal(h->tied_embeddings, c->want_tied);
        assert_int_equal(h->qkv_bias, c->want_bias);
        assert_int_equal(d.bos_id, 1);
        assert_int_equal(d.eos_id, 2);
        assert_int_equal(d.n_tensors, c->want_tensors);
        for (uint32_t t = 0; t < d.n_tensors; t++) {
            const lmm_tensor_desc *td = &d.tensors[t];
            lmm_dtype want = td->n_dims == 1 ? c->want_norm : c->want_matrix;
            if (td->dtype != want)
                fail_msg("case %zu: tensor %s is %s, expected %s", i, td->name, lmm_dtype_name(td->dtype),
                         lmm_dtype_name(want));
        }
        if (c->want_format == LMM_FORMAT_GGUF) {
            /* the embedded tokenizer */
            lmm_gguf_type et;
            uint64_t n;
            assert_non_null(d.gguf);
            assert_int_equal(lmm_gguf_get_arr(d.gguf, "tokenizer.ggml.tokens", &et, &n), 0);
            assert_int_equal(et, LMM_GGUF_STRING);
            assert_int_equal(n, 512);
            const char *s;
            uint64_t len;
            assert_int_equal(lmm_gguf_arr_str(d.gguf, "tokenizer.ggml.tokens", 3, &s, &len), 0);
            assert_string_equal(s, "<0x00>");
            assert_int_equal(lmm_gguf_get_str(d.gguf, "tokenizer.ggml.model", &s, &len), 0);
            assert_string_equal(s, "llama");
            assert_int_equal(lmm_gguf_alignment(d.gguf), 32);
            for (uint64_t t = 0; t < lmm_gguf_n_tensors(d.gguf); t++)
                assert_int_equal(lmm_gguf_tensor_at(d.gguf, t)->offset % 32, 0);
        }
        if (c->want_format == LMM_FORMAT_LLAMA2C) {
            assert_non_null(d.tokenizer_path);
            size_t n = strlen(d.tokenizer_path);
            assert_true(n >= 14 && strcmp(d.tokenizer_path + n - 14, "/tokenizer.bin") == 0);
        }
        lmm_model_desc_free(&d);
    }
}

/* ---- one seed, one model, whatever the format ------------------------------ */

static unsigned char *tensor_bytes(const lmm_model_desc *d, const char *name, size_t *n) {
    const lmm_tensor_desc *t = lmm_model_desc_find(d, name);
    if (!t) return NULL;
    FILE *f = fopen(d->files[t->file], "rb");
    if (!f) return NULL;
    unsigned char *p = malloc(t->nbytes);
    if (p && (fseeko(f, (off_t)t->offset, SEEK_SET) != 0 || fread(p, 1, t->nbytes, f) != t->nbytes)) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *n = t->nbytes;
    return p;
}

/* HF keeps q/k rows in NeoX order: its row h*hd + j*hd/2 + i is the interleaved row h*hd + 2i + j. */
static void neox_rows_to_interleaved(const unsigned char *src, unsigned char *dst, size_t rows, size_t row_bytes,
                                     size_t hd) {
    for (size_t r = 0; r < rows; r++) {
        size_t h = r / hd, k = r % hd, j = k / (hd / 2), i = k % (hd / 2);
        memcpy(dst + (h * hd + 2 * i + j) * row_bytes, src + r * row_bytes, row_bytes);
    }
}

static void test_same_weights_every_format(void **state) {
    (void)state;
    char gg[1200], hf[1200], l2dir[1200], l2[1300];
    snprintf(gg, sizeof gg, "%s/x.gguf", g_tmp);
    snprintf(hf, sizeof hf, "%s/x.hf", g_tmp);
    snprintf(l2dir, sizeof l2dir, "%s/xl2c", g_tmp);
    mkdir(l2dir, 0777);
    snprintf(l2, sizeof l2, "%s/x.bin", l2dir);
    const char *common = "--shape tiny --seed 42 --untied --layers 1";
    assert_int_equal(synth(NULL, 0, "%s --format gguf --out '%s'", common, gg), 0);
    assert_int_equal(synth(NULL, 0, "%s --format safetensors --out '%s'", common, hf), 0);
    assert_int_equal(synth(NULL, 0, "%s --format llama2c --out '%s'", common, l2), 0);
    lmm_model_desc dg, dh, dl;
    if (lmm_model_desc_open(&dg, gg) || lmm_model_desc_open(&dh, hf) || lmm_model_desc_open(&dl, l2))
        fail_msg("%s", lmm_error_get());
    assert_int_equal(dg.n_tensors, dh.n_tensors);
    assert_int_equal(dg.n_tensors, dl.n_tensors);
    for (uint32_t t = 0; t < dg.n_tensors; t++) {
        const lmm_tensor_desc *td = &dg.tensors[t];
        size_t ng, nh, nl;
        unsigned char *pg = tensor_bytes(&dg, td->name, &ng), *ph = tensor_bytes(&dh, td->name, &nh),
                      *pl = tensor_bytes(&dl, td->name, &nl);
        assert_non_null(pg);
        assert_non_null(ph);
        assert_non_null(pl);
        assert_int_equal(ng, nh);
        assert_int_equal(ng, nl);
        if (memcmp(pg, pl, ng) != 0) fail_msg("tensor %s differs between GGUF and llama2.c", td->name);
        if (strstr(td->name, "attn_q.weight") || strstr(td->name, "attn_k.weight")) {
            unsigned char *perm = malloc(nh);
            assert_non_null(perm);
            neox_rows_to_interleaved(ph, perm, td->shape[0], td->shape[1] * 4, dg.hp.head_dim);
            free(ph);
            ph = perm;
        }
        if (memcmp(pg, ph, ng) != 0) fail_msg("tensor %s differs between GGUF and Hugging Face", td->name);
        free(pg);
        free(ph);
        free(pl);
    }
    lmm_model_desc_free(&dg);
    lmm_model_desc_free(&dh);
    lmm_model_desc_free(&dl);
}

/* ---- shape presets and overrides ----------------------------------------------- */

static void test_overrides(void **state) {
    (void)state;
    char path[1200], err[4096];
    snprintf(path, sizeof path, "%s/over.gguf", g_tmp);
    int rc = synth(err, sizeof err, "--shape stories15M --layers 1 --vocab 300 --seq 64 --hidden 96 --kv-heads 2 "
                   "--dtype bf16 --out '%s'", path);
    if (rc) fprintf(stderr, "%s", err);
    assert_int_equal(rc, 0);
    lmm_model_desc d;
    if (lmm_model_desc_open(&d, path)) fail_msg("%s", lmm_error_get());
    assert_int_equal(d.hp.dim, 288);
    assert_int_equal(d.hp.n_heads, 6);
    assert_int_equal(d.hp.head_dim, 48);
    assert_int_equal(d.hp.n_kv_heads, 2);
    assert_int_equal(d.hp.n_layers, 1);
    assert_int_equal(d.hp.n_vocab, 300);
    assert_int_equal(d.hp.max_seq_len, 64);
    assert_int_equal(d.hp.hidden_dim, 96);
    assert_true(d.hp.tied_embeddings);
    lmm_model_desc_free(&d);
}

/* ---- determinism ---------------------------------------------------------------------- */

static void test_same_seed_same_bytes(void **state) {
    (void)state;
    static const char *const k_fmt[] = {"gguf", "safetensors", "llama2c"};
    for (size_t f = 0; f < 3; f++) {
        char p[3][1200], file[3][4096];
        for (int k = 0; k < 3; k++) {
            snprintf(p[k], sizeof p[k], "%s/det_%s_%d", g_tmp, k_fmt[f], k);
            if (f == 2) {
                mkdir(p[k], 0777);
                snprintf(file[k], sizeof file[k], "%s/m.bin", p[k]);
            } else if (f == 1) {
                snprintf(file[k], sizeof file[k], "%s/model.safetensors", p[k]);
            } else {
                snprintf(file[k], sizeof file[k], "%s", p[k]);
            }
            const char *out = f == 2 ? file[k] : p[k];
            unsigned long long seed = k == 2 ? 124 : 123;
            const char *dtype = f == 2 ? "f32" : "f16";
            assert_int_equal(synth(NULL, 0, "--format %s --dtype %s --seed %llu --out '%s'", k_fmt[f], dtype, seed, out),
                             0);
        }
        if (!same_file(file[0], file[1])) fail_msg("%s: same seed gave different bytes", k_fmt[f]);
        if (same_file(file[0], file[2])) fail_msg("%s: different seeds gave the same bytes", k_fmt[f]);
        if (f == 1) {
            char c0[4096], c1[4096];
            snprintf(c0, sizeof c0, "%s/config.json", p[0]);
            snprintf(c1, sizeof c1, "%s/config.json", p[1]);
            assert_true(same_file(c0, c1));
        }
        if (f == 2) {
            char t0[4096], t1[4096];
            snprintf(t0, sizeof t0, "%s/tokenizer.bin", p[0]);
            snprintf(t1, sizeof t1, "%s/tokenizer.bin", p[1]);
            assert_true(same_file(t0, t1));
        }
    }
}

/* ---- the llama2.c tokenizer.bin --------------------------------------------------------- */

static void test_llama2c_tokenizer(void **state) {
    (void)state;
    char dir[1200], model[1300], tok[1300];
    snprintf(dir, sizeof dir, "%s/tokdir", g_tmp);
    mkdir(dir, 0777);
    snprintf(model, sizeof model, "%s/m.bin", dir);
    snprintf(tok, sizeof tok, "%s/tokenizer.bin", dir);
    assert_int_equal(synth(NULL, 0, "--format llama2c --vocab 1000 --out '%s'", model), 0);
    size_t n;
    unsigned char *p = read_file(tok, &n);
    assert_non_null(p);
    int32_t max_len;
    memcpy(&max_len, p, 4);
    size_t off = 4;
    int32_t longest = 0;
    char seen_space_piece = 0;
    for (uint32_t id = 0; id < 1000; id++) {
        float score;
        int32_t len;
        assert_true(off + 8 <= n);
        memcpy(&score, p + off, 4);
        memcpy(&len, p + off + 4, 4);
        off += 8;
        assert_true(len > 0 && off + (size_t)len <= n);
        const char *s = (const char *)p + off;
        if (id == 0) assert_memory_equal(s, "<unk>", 5);
        if (id == 1) assert_memory_equal(s, "\n<s>\n", 5);
        if (id == 2) assert_memory_equal(s, "\n</s>\n", 6);
        if (id == 3 + 0x41) {
            assert_int_equal(len, 6);
            assert_memory_equal(s, "<0x41>", 6);
        }
        if (id >= 259) {
            assert_true(score == 259.0f - (float)id); /* decreasing */
            assert_null(memchr(s, 0xe2, (size_t)len)); /* "▁" was replaced by a space */
            if (s[0] == ' ' && len > 1) seen_space_piece = 1;
        } else {
            assert_true(score == 0.0f);
        }
        if (len > longest) longest = len;
        off += (size_t)len;
    }
    assert_int_equal(off, n);
    assert_int_equal(max_len, longest);
    assert_true(seen_space_piece);
    free(p);
}

/* ---- the vocabularies load and round-trip text ---------------------------------------------- */

static void test_tokenizers_load(void **state) {
    (void)state;
    static const char *const k_fmt[] = {"gguf", "llama2c"};
    static const char k_text[] = "Once upon a time, the little dog saw a big red ball. 42! \xc3\xa9t\xc3\xa9";
    for (size_t f = 0; f < 2; f++) {
        char dir[1200], model[1300];
        snprintf(dir, sizeof dir, "%s/tok_%s", g_tmp, k_fmt[f]);
        mkdir(dir, 0777);
        snprintf(model, sizeof model, "%s/m.%s", dir, f == 0 ? "gguf" : "bin");
        assert_int_equal(synth(NULL, 0, "--format %s --vocab 2000 --layers 1 --out '%s'", k_fmt[f], model), 0);
        lmm_model_desc d;
        lmm_tokenizer *tok;
        if (lmm_model_desc_open(&d, model) || lmm_tokenizer_load_for_model(&tok, &d, NULL))
            fail_msg("%s: %s", k_fmt[f], lmm_error_get());
        assert_int_equal(lmm_tokenizer_vocab_size(tok), 2000);
        assert_int_equal(lmm_tokenizer_bos(tok), 1);
        assert_int_equal(lmm_tokenizer_eos(tok), 2);
        uint32_t ids[256];
        size_t n;
        if (lmm_tokenizer_encode(tok, k_text, sizeof k_text - 1, LMM_TOK_ADD_SPECIAL, ids, 256, &n))
            fail_msg("%s: %s", k_fmt[f], lmm_error_get());
        assert_true(n > 2 && n < sizeof k_text);
        assert_int_equal(ids[0], 1);
        for (size_t i = 0; i < n; i++) assert_true(ids[i] < 2000);
        char out[512];
        size_t len;
        if (lmm_tokenizer_decode(tok, ids, n, out, sizeof out, &len)) fail_msg("%s: %s", k_fmt[f], lmm_error_get());
        if (len != sizeof k_text - 1 || memcmp(out, k_text, len) != 0)
            fail_msg("%s: decode(encode(text)) = '%.*s'", k_fmt[f], (int)len, out);
        lmm_tokenizer_free(tok);
        lmm_model_desc_free(&d);
    }
}

/* ---- bad arguments ------------------------------------------------------------------------ */

static void test_bad_arguments(void **state) {
    (void)state;
    static const struct {
        const char *args, *msg;
    } k_bad[] = {
        {"--shape nope", "unknown shape"},
        {"--dtype f8", "unknown dtype"},
        {"--format onnx", "unknown format"},
        {"--dim abc", "--dim"},
        {"--dim 12x", "--dim"},
        {"--dim -64", "--dim"},
        {"--dim 0", "out of range"},
        {"--layers 99999999999999999999999", "too large"},
        {"--seed -1", "--seed"},
        {"--seed 18446744073709551616", "too large"},
        {"--vocab 10", "out of range"},
        {"--heads 3", "multiple"},
        {"--kv-heads 3", "multiple"},
        {"--kv-heads 8", "multiple"},
        {"--format llama2c --dtype f16", "F32"},
        {"--format llama2c --dtype bf16", "F32"},
        {"--format llama2c --qkv-bias", "bias"},
        {"--bogus", "unknown option"},
        {"--seq", "--seq"}, /* takes "--out" as its value, which is not a number */
        {"stray", "unexpected argument"},
    };
    char out[1200], err[4096];
    snprintf(out, sizeof out, "%s/bad.out", g_tmp);
    for (size_t i = 0; i < sizeof k_bad / sizeof k_bad[0]; i++) {
        int rc = synth(err, sizeof err, "%s --out '%s'", k_bad[i].args, out);
        if (rc == 0 || !strstr(err, "lmsynth: ") || !strstr(err, k_bad[i].msg))
            fail_msg("'%s': exit %d, stderr '%s' (expected a message with '%s')", k_bad[i].args, rc, err, k_bad[i].msg);
        assert_false(exists(out));
    }
    int rc = synth(err, sizeof err, "--out '%s' --seq", out);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(err, "needs a value"));
    rc = synth(err, sizeof err, "--shape tiny");
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(err, "--out"));
    snprintf(out, sizeof out, "%s/no/such/dir/m.gguf", g_tmp);
    rc = synth(err, sizeof err, "--out '%s'", out);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(err, "cannot create"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formats),
        cmocka_unit_test(test_same_weights_every_format),
        cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_same_seed_same_bytes),
        cmocka_unit_test(test_llama2c_tokenizer),
        cmocka_unit_test(test_tokenizers_load),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
