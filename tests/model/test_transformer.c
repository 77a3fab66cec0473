/* tests/model/test_transformer.c — the forward pass (lmm/transformer.h).
 *
 *  - stories260K (a real pretrained model) greedy from an empty prompt writes
 *    llama2.c's published story;
 *  - the exactness contract: the logits of a 40-token sequence are bit-identical
 *    (memcmp) for every ISA path, thread count 1/2/3, max_batch 1/64, and prefill
 *    all at once / one token per call / chunks of 7 — on stories260K (GQA, llama2.c)
 *    and on lmsynth models (GGUF F16, safetensors BF16 with NeoX RoPE, qkv bias);
 *  - the same lmsynth weights in GGUF and llama2.c files give bit-identical logits,
 *    in safetensors (NeoX-permuted q/k rows) logits equal within float rounding;
 *  - RoPE tables (scaling rules), and errors (positions beyond the context). */
#include <math.h>
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
#include "lmm/hal.h"
#include "lmm/model.h"
#include "lmm/sampler.h"
#include "lmm/tokenizer.h"
#include "lmm/transformer.h"
#include "model/graph/rope_table.h"
#include "test_util.h"

static const char *k_story =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw "
    "a big, red ball. She wanted to play with it, but it was too high.";

#define SEQ_LEN 40

/* ---- helpers ------------------------------------------------------------------ */

static int stories_paths(char *model, size_t mcap, char *tok, size_t tcap) {
    if (!test_shared_file(model, mcap, "models/stories260K/stories260K.bin")) return -1;
    if (!test_shared_file(tok, tcap, "models/stories260K/tok512.bin")) return -1;
    return 0;
}

/* Runs lmsynth; -1 when the tool is missing (the tests skip); a failure fails the test. */
static int run_lmsynth(const char *const *args) {
    int rc = test_run_lmsynth(args);
    if (rc == -2) fail_msg("lmsynth failed");
    return rc;
}

typedef struct {
    lmm_model_desc desc;
    lmm_weights w;
} loaded_model;

static void load_model(loaded_model *m, const char *path) {
    if (lmm_model_desc_open(&m->desc, path)) fail_msg("%s", lmm_error_get());
    if (lmm_weights_load(&m->w, &m->desc)) fail_msg("%s", lmm_error_get());
}

static void free_model(loaded_model *m) {
    lmm_weights_free(&m->w);
    lmm_model_desc_free(&m->desc);
}

static lmm_transformer *make_transformer(const lmm_weights *w, uint32_t n_ctx, uint32_t max_batch, int threads) {
    lmm_transformer_opts o = {n_ctx, max_batch, threads};
    lmm_transformer *t = NULL;
    if (lmm_transformer_init(&t, w, &o)) fail_msg("%s", lmm_error_get());
    return t;
}

static void test_tokens(uint32_t *tok, uint32_t n, uint32_t n_vocab) {
    uint64_t s = 0x853c49e6748fea9bull;
    tok[0] = 1;
    for (uint32_t i = 1; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (uint32_t)((s >> 33) % n_vocab);
    }
}

/* logits[SEQ_LEN][n_vocab] of `tok`, fed `step` tokens per forward call (0: all). */
static void run_sequence(lmm_transformer *t, const uint32_t *tok, uint32_t step, float *logits, size_t n_vocab) {
    if (step == 0) step = SEQ_LEN;
    for (uint32_t p = 0; p < SEQ_LEN; p += step) {
        uint32_t c = SEQ_LEN - p < step ? SEQ_LEN - p : step;
        if (lmm_transformer_forward(t, tok + p, c, p, logits + (size_t)p * n_vocab, 1))
            fail_msg("forward: %s", lmm_error_get());
    }
}

/* ---- stories260K: the published greedy story -------------------------------------- */

static void test_stories260k_greedy(void **state) {
    (void)state;
    char model[2048], tokp[2048];
    if (stories_paths(model, sizeof model, tokp, sizeof tokp)) skip();
    loaded_model m;
    load_model(&m, model);
    lmm_tokenizer *tok = NULL;
    if (lmm_tokenizer_load_for_model(&tok, &m.desc, tokp)) fail_msg("%s", lmm_error_get());
    lmm_transformer *t = make_transformer(&m.w, 0, 0, 2);
    assert_int_equal(lmm_transformer_n_ctx(t), m.desc.hp.max_seq_len);
    lmm_sampler_opts so;
    lmm_sampler_opts_default(&so);
    so.temperature = 0.0f;
    lmm_sampler *s = NULL;
    assert_int_equal(lmm_sampler_init(&s, m.desc.hp.n_vocab, &so), 0);

    size_t n_vocab = m.desc.hp.n_vocab;
    float *logits = malloc(n_vocab * sizeof *logits);
    char text[8192];
    size_t len = 0;
    uint32_t prev = lmm_tokenizer_bos(tok), pos = 0;
    for (; pos < 200; pos++) {
        assert_int_equal(lmm_transformer_forward(t, &prev, 1, pos, logits, 0), 0);
        uint32_t next = lmm_sampler_sample(s, logits);
        if (next == lmm_tokenizer_bos(tok) || next == lmm_tokenizer_eos(tok)) break;
        size_t n = 0;
        assert_int_equal(lmm_tokenizer_decode_token(tok, prev, next, text + len, sizeof text - len - 1, &n), 0);
        len += n;
        prev = next;
    }
    text[len] = '\0';
    fprintf(stderr, "stories260K: %s\n", text);
    if (strncmp(text, k_story, strlen(k_story)) != 0) fail_msg("got: %s", text);

    free(logits);
    lmm_sampler_free(s);
    lmm_transformer_free(t);
    lmm_tokenizer_free(tok);
    free_model(&m);
}

/* ---- the bit-identity matrix ------------------------------------------------------------ */

static void check_bit_identity(const char *path) {
    loaded_model m;
    load_model(&m, path);
    size_t V = m.desc.hp.n_vocab;
    uint32_t tok[SEQ_LEN];
    test_tokens(tok, SEQ_LEN, (uint32_t)V);
    float *ref = malloc(SEQ_LEN * V * sizeof(float));
    float *got = malloc(SEQ_LEN * V * sizeof(float));
    float *last = malloc(V * sizeof(float));
    assert_non_null(ref);
    assert_non_null(got);
    assert_non_null(last);

    lmm_isa best = lmm_hal_isa_best();
    assert_int_equal(lmm_hal_isa_set(LMM_ISA_SCALAR), 0);
    lmm_transformer *t0 = make_transformer(&m.w, SEQ_LEN, 64, 1);
    run_sequence(t0, tok, 0, ref, V);
    lmm_transformer_free(t0);
    for (size_t i = 0; i < SEQ_LEN * V; i++)
        if (!isfinite(ref[i])) fail_msg("%s: logit %zu is not finite", path, i);

    const int threads[] = {1, 2, 3};
    const uint32_t batches[] = {1, 64};
    const uint32_t steps[] = {0, 1, 7};
    int runs = 0;
    for (size_t ti = 0; ti < 3; ti++)
        for (size_t bi = 0; bi < 2; bi++) {
            lmm_transformer *t = make_transformer(&m.w, SEQ_LEN, batches[bi], threads[ti]);
            for (int isa = LMM_ISA_SCALAR; isa <= LMM_ISA_AVX512; isa++) {
                if (lmm_hal_isa_set((lmm_isa)isa) != 0) {
                    if (ti == 0 && bi == 0)
                        fprintf(stderr, "SKIP part: ISA %s not available on this CPU\n", lmm_hal_isa_name((lmm_isa)isa));
                    continue;
                }
                for (size_t si = 0; si < 3; si++) {
                    memset(got, 0xff, SEQ_LEN * V * sizeof(float));
                    run_sequence(t, tok, steps[si], got, V);
                    for (size_t i = 0; i < SEQ_LEN * V; i++)
                        if (memcmp(&got[i], &ref[i], sizeof(float)) != 0)
                            fail_msg("%s: isa %s threads %d max_batch %u step %u: token %zu logit %zu: %.9g != %.9g",
                                     path, lmm_hal_isa_name((lmm_isa)isa), threads[ti], batches[bi], steps[si],
                                     i / V, i % V, (double)got[i], (double)ref[i]);
                    runs++;
                }
                /* only the last token's logits */
                if (lmm_transformer_forward(t, tok, SEQ_LEN, 0, last, 0)) fail_msg("%s", lmm_error_get());
                assert_memory_equal(last, ref + (SEQ_LEN - 1) * V, V * sizeof(float));
            }
            lmm_transformer_free(t);
        }
    fprintf(stderr, "%s: %d configurations bit-identical\n", path, runs);
    assert_int_equal(lmm_hal_isa_set(best), 0);
    free(ref);
    free(got);
    free(last);
    free_model(&m);
}

static void test_bit_identity_stories260k(void **state) {
    (void)state;
    char model[2048], tokp[2048];
    if (stories_paths(model, sizeof model, tokp, sizeof tokp)) skip();
    check_bit_identity(model);
}

static void test_bit_identity_lmsynth(void **state) {
    (void)state;
    char dir[512], gguf[1024], st[1024], bias[1024];
    assert_non_null(test_tmpdir(dir, sizeof dir));
    snprintf(gguf, sizeof gguf, "%s/tiny-f16.gguf", dir);
    snprintf(st, sizeof st, "%s/tiny-bf16", dir);
    snprintf(bias, sizeof bias, "%s/tiny-bias.gguf", dir);
    const char *a1[] = {"--shape", "tiny", "--format", "gguf", "--dtype", "f16", "--out", gguf, NULL};
    if (run_lmsynth(a1)) {
        rmdir(dir);
        skip();
    }
    check_bit_identity(gguf);
    /* Hugging Face layout: NeoX RoPE, BF16 */
    const char *a2[] = {"--shape", "tiny", "--format", "safetensors", "--dtype", "bf16", "--out", st, NULL};
    run_lmsynth(a2);
    check_bit_identity(st);
    /* q/k/v biases, separate output matrix */
    const char *a3[] = {"--shape", "tiny", "--format", "gguf", "--qkv-bias", "--untied", "--out", bias, NULL};
    run_lmsynth(a3);
    check_bit_identity(bias);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* One set of weights in three files: the engine computes the same function. */
static void test_formats_agree(void **state) {
    (void)state;
    char dir[512], paths[3][1024];
    assert_non_null(test_tmpdir(dir, sizeof dir));
    const char *fmts[3] = {"gguf", "safetensors", "llama2c"};
    const char *names[3] = {"m.gguf", "m-hf", "m.bin"};
    float *logits[3] = {NULL, NULL, NULL};
    size_t V = 0;
    for (int f = 0; f < 3; f++) {
        snprintf(paths[f], sizeof paths[f], "%s/%s", dir, names[f]);
        const char *a[] = {"--shape", "tiny", "--format", fmts[f], "--dtype", "f32", "--seed", "3", "--out", paths[f], NULL};
        if (run_lmsynth(a)) {
            char cmd[1024];
            snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
            assert_int_equal(system(cmd), 0);
            skip();
        }
        loaded_model m;
        load_model(&m, paths[f]);
        V = m.desc.hp.n_vocab;
        uint32_t tok[SEQ_LEN];
        test_tokens(tok, SEQ_LEN, (uint32_t)V);
        logits[f] = malloc(SEQ_LEN * V * sizeof(float));
        lmm_transformer *t = make_transformer(&m.w, SEQ_LEN, 0, 2);
        run_sequence(t, tok, 0, logits[f], V);
        lmm_transformer_free(t);
        free_model(&m);
    }
    /* llama2.c stores q/k rows in the same (interleaved) order as GGUF: same bits. */
    for (size_t i = 0; i < SEQ_LEN * V; i++)
        if (memcmp(&logits[2][i], &logits[0][i], sizeof(float)) != 0)
            fail_msg("llama2c vs gguf: token %zu logit %zu: %.9g != %.9g", i / V, i % V, (double)logits[2][i],
                     (double)logits[0][i]);
    /* Hugging Face stores them permuted for NeoX RoPE: the rotation is the same, but the
     * q.k dot product then sums the head dimensions in another order, so only float
     * rounding may differ (from position 1 on: with one key, attention returns v exactly). */
    double max_err = 0;
    for (size_t i = 0; i < SEQ_LEN * V; i++) {
        double e = fabs((double)logits[1][i] - (double)logits[0][i]);
        if (e > max_err) max_err = e;
        if (e > 1e-4 * (1.0 + fabs((double)logits[0][i])))
            fail_msg("safetensors vs gguf: token %zu logit %zu: %.9g vs %.9g", i / V, i % V, (double)logits[1][i],
                     (double)logits[0][i]);
    }
    fprintf(stderr, "safetensors (NeoX) vs gguf (interleaved): max |diff| %.3g\n", max_err);
    for (int f = 0; f < 3; f++) free(logits[f]);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- errors ------------------------------------------------------------------------------ */

static void test_errors(void **state) {
    (void)state;
    char model[2048], tokp[2048];
    if (stories_paths(model, sizeof model, tokp, sizeof tokp)) skip();
    loaded_model m;
    load_model(&m, model);
    lmm_transformer *t = make_transformer(&m.w, 8, 4, 1);
    float *logits = malloc(m.desc.hp.n_vocab * 8 * sizeof(float));
    uint32_t tok[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    assert_int_equal(lmm_transformer_forward(t, tok, 8, 0, logits, 1), 0);  /* fills the context */
    assert_int_equal(lmm_transformer_forward(t, tok, 1, 8, logits, 0), -1); /* one past it */
    assert_non_null(strstr(lmm_error_get(), "context"));
    assert_int_equal(lmm_transformer_forward(t, tok, 5, 4, logits, 0), -1); /* runs past it */
    assert_non_null(strstr(lmm_error_get(), "beyond the context"));
    assert_int_equal(lmm_transformer_forward(t, tok, 1, UINT32_MAX, logits, 0), -1);
    uint32_t bad = m.desc.hp.n_vocab;
    assert_int_equal(lmm_transformer_forward(t, &bad, 1, 0, logits, 0), -1);
    assert_non_null(strstr(lmm_error_get(), "out of range"));
    assert_int_equal(lmm_transformer_forward(t, tok, 0, 0, logits, 0), -1);
    assert_true(lmm_transformer_state_bytes(t) >= lmm_model_desc_kv_bytes(&m.desc, 8));
    free(logits);
    lmm_transformer_free(t);
    free_model(&m);
}

/* ---- RoPE tables ----------------------------------------------------------------------- */

static void test_rope_table(void **state) {
    (void)state;
    lmm_hparams hp;
    memset(&hp, 0, sizeof hp);
    hp.head_dim = 128;
    hp.rope_theta = 500000.0f;
    /* plain: table = (float)cos/sin(pos * theta^(-2i/d)) */
    enum { CTX = 16 };
    float *a = malloc(CTX * 128 * sizeof(float)), *b = malloc(CTX * 128 * sizeof(float));
    lmm_rope_table_fill(a, &hp, NULL, CTX);
    for (uint32_t pos = 0; pos < CTX; pos++)
        for (uint32_t i = 0; i < 64; i++) {
            double ang = (double)pos * pow(500000.0, -(double)(2 * i) / 128.0);
            assert_true(a[(pos * 64 + i) * 2] == (float)cos(ang));
            assert_true(a[(pos * 64 + i) * 2 + 1] == (float)sin(ang));
        }
    /* LINEAR factor 2: position 2p is plain position p */
    lmm_hparams lin = hp;
    lin.rope_scaling = LMM_ROPE_SCALING_LINEAR;
    lin.rope_factor = 2.0f;
    lmm_rope_table_fill(b, &lin, NULL, CTX);
    for (uint32_t pos = 0; pos < CTX / 2; pos++) assert_memory_equal(b + 2 * pos * 128, a + pos * 128, 128 * sizeof(float));
    /* Llama-3.1 (factor 8, low 1, high 4, original 8192): high frequencies kept, low ones
     * divided by 8, the band between interpolated */
    lmm_hparams l3 = hp;
    l3.rope_scaling = LMM_ROPE_SCALING_LLAMA3;
    l3.rope_factor = 8.0f;
    l3.rope_low_freq_factor = 1.0f;
    l3.rope_high_freq_factor = 4.0f;
    l3.rope_orig_max_pos = 8192;
    int kept = 0, divided = 0, between = 0;
    for (uint32_t i = 0; i < 64; i++) {
        double f = pow(500000.0, -(double)(2 * i) / 128.0), g = lmm_rope_inv_freq(&l3, NULL, i);
        double wavelen = 2 * M_PI / f;
        if (wavelen < 8192.0 / 4.0) {
            assert_true(g == f);
            kept++;
        } else if (wavelen > 8192.0 / 1.0) {
            assert_true(g == f / 8.0);
            divided++;
        } else {
            assert_true(g <= f && g >= f / 8.0);
            between++;
        }
    }
    assert_true(kept > 0 && divided > 0 && between > 0);
    /* GGUF rope_freqs.weight divides the frequencies (and replaces the Llama-3 rule) */
    float factors[64];
    for (int i = 0; i < 64; i++) factors[i] = 1.0f + (float)i;
    for (uint32_t i = 0; i < 64; i++)
        assert_true(lmm_rope_inv_freq(&l3, factors, i) == pow(500000.0, -(double)(2 * i) / 128.0) / (1.0 + i));
    free(a);
    free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rope_table),
        cmocka_unit_test(test_stories260k_greedy),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_bit_identity_stories260k),
        cmocka_unit_test(test_bit_identity_lmsynth),
        cmocka_unit_test(test_formats_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
