/* tests/golden/test_golden.c — the engine against golden logits from an independent
 * PyTorch float32 reference (tests/golden/gen_golden.py; data in tests/golden/data/).
 *
 * For every entry of data/manifest.json: open the model (GGUF, Hugging Face directory or
 * llama2.c checkpoint), load it, feed the prompt, then the golden tokens one at a time.
 * At every step max|engine - torch| <= 1e-5 * max|torch| and the engine's argmax is the
 * golden greedy token. Then the same sequence again as one batched forward call with
 * all logits, against the same rows. Override the data directory with LMM_GOLDEN_DIR. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmm/error.h"
#include "lmm/model.h"
#include "lmm/transformer.h"
#include "test_util.h"

#define GOLDEN_TOL_REL 1e-5
#define MAX_PROMPT 64

typedef struct {
    char name[128];
    char model[2048];        /* full path (entries with "model") */
    char shared_rel[256];    /* path under ../shared (entries with "shared_model"): skip when absent */
    int shared;
    char format[32];
    char tokens_path[2048], logits_path[2048];
    uint32_t prompt[MAX_PROMPT];
    uint32_t n_prompt, n_steps, n_vocab;
} golden_entry;

static char g_dir[1024];

static const char *golden_dir(void) {
    const char *env = getenv("LMM_GOLDEN_DIR");
    if (env && *env) {
        snprintf(g_dir, sizeof g_dir, "%s", env);
    } else {
        const char *src = getenv("LMM_SOURCE_DIR");
        snprintf(g_dir, sizeof g_dir, "%s/tests/golden/data", src && *src ? src : ".");
    }
    return g_dir;
}

static void *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = malloc(n > 0 ? (size_t)n : 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *size = n > 0 ? (size_t)n : 0;
    return p;
}

static lmm_format format_of(const char *s) {
    if (strcmp(s, "gguf") == 0) return LMM_FORMAT_GGUF;
    if (strcmp(s, "safetensors") == 0) return LMM_FORMAT_HF;
    return LMM_FORMAT_LLAMA2C;
}

static uint32_t argmax(const float *x, uint32_t n) {
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* max|a - ref| / max|ref| over one row */
static double row_error(const float *a, const float *ref, uint32_t n) {
    double err = 0.0, scale = 0.0;
    for (uint32_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)ref[i]);
        if (!(d <= err)) err = d; /* NaN propagates as a failure */
        if (fabs((double)ref[i]) > scale) scale = fabs((double)ref[i]);
    }
    return err / scale;
}

static void check_row(const golden_entry *e, const char *pass, uint32_t step, const float *got, const float *want,
                      double *worst) {
    double err = row_error(got, want, e->n_vocab);
    if (!(err <= GOLDEN_TOL_REL))
        fail_msg("%s (%s): step %u: max|engine - torch| = %.3g * max|torch| (tolerance %.0e)", e->name, pass, step,
                 err, GOLDEN_TOL_REL);
    if (err > *worst) *worst = err;
}

static void test_entry(void **state) {
    const golden_entry *e = *state;
    char buf[2100];
    if (e->shared && !test_shared_file(buf, sizeof buf, e->shared_rel)) {
        skip();
        return;
    }
    const char *model = e->shared ? buf : e->model;
    size_t ntok_bytes, nlog_bytes;
    uint32_t *tokens = read_all(e->tokens_path, &ntok_bytes);
    float *golden = read_all(e->logits_path, &nlog_bytes);
    if (!tokens || !golden) fail_msg("%s: cannot read %s or %s", e->name, e->tokens_path, e->logits_path);
    assert_int_equal(ntok_bytes, (size_t)e->n_steps * 4);
    assert_int_equal(nlog_bytes, (size_t)(e->n_steps + 1) * e->n_vocab * 4);

    lmm_model_desc d;
    if (lmm_model_desc_open(&d, model)) fail_msg("%s: %s", e->name, lmm_error_get());
    assert_int_equal(d.format, format_of(e->format));
    assert_int_equal(d.hp.n_vocab, e->n_vocab);
    lmm_weights w;
    if (lmm_weights_load(&w, &d)) fail_msg("%s: %s", e->name, lmm_error_get());
    uint32_t n_seq = e->n_prompt + e->n_steps;
    lmm_transformer_opts o = {.n_ctx = n_seq, .max_batch = 0, .n_threads = 1};
    lmm_transformer *t;
    if (lmm_transformer_init(&t, &w, &o)) fail_msg("%s: %s", e->name, lmm_error_get());

    /* Pass 1: the prompt, then one golden token per call. */
    float *logits = malloc((size_t)n_seq * e->n_vocab * sizeof *logits); /* [n_seq][n_vocab] */
    assert_non_null(logits);
    double worst = 0.0;
    if (lmm_transformer_forward(t, e->prompt, e->n_prompt, 0, logits, 0))
        fail_msg("%s: %s", e->name, lmm_error_get());
    for (uint32_t s = 0;; s++) {
        check_row(e, "step by step", s, logits, golden + (size_t)s * e->n_vocab, &worst);
        if (s == e->n_steps) break;
        uint32_t am = argmax(logits, e->n_vocab);
        if (am != tokens[s])
            fail_msg("%s: step %u: engine's argmax is %u, torch's greedy token is %u", e->name, s, am, tokens[s]);
        if (lmm_transformer_forward(t, &tokens[s], 1, e->n_prompt + s, logits, 0))
            fail_msg("%s: step %u: %s", e->name, s, lmm_error_get());
    }

    /* Pass 2: the whole sequence in one call (chunked by max_batch), all logits, from position 0. */
    uint32_t *seq = malloc(n_seq * sizeof *seq); /* [n_seq] */
    assert_non_null(seq);
    memcpy(seq, e->prompt, e->n_prompt * sizeof *seq);
    memcpy(seq + e->n_prompt, tokens, e->n_steps * sizeof *seq);
    if (lmm_transformer_forward(t, seq, n_seq, 0, logits, 1)) fail_msg("%s: %s", e->name, lmm_error_get());
    for (uint32_t s = 0; s <= e->n_steps; s++) {
        const float *row = logits + (size_t)(e->n_prompt - 1 + s) * e->n_vocab;
        check_row(e, "batched", s, row, golden + (size_t)s * e->n_vocab, &worst);
        if (s < e->n_steps && argmax(row, e->n_vocab) != tokens[s])
            fail_msg("%s (batched): step %u: argmax %u, golden %u", e->name, s, argmax(row, e->n_vocab), tokens[s]);
    }
    fprintf(stderr, "  %s: %u steps, worst max|engine - torch| / max|torch| = %.2e\n", e->name, e->n_steps, worst);

    free(seq);
    free(logits);
    lmm_transformer_free(t);
    lmm_weights_free(&w);
    lmm_model_desc_free(&d);
    free(tokens);
    free(golden);
}

/* ---- manifest ------------------------------------------------------------------ */

static const char *jstr(json_object *o, const char *key) {
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string)) return NULL;
    return json_object_get_string(v);
}

static int juint(json_object *o, const char *key, uint32_t *out) {
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int)) return -1;
    int64_t x = json_object_get_int64(v);
    if (x < 0 || x > UINT32_MAX) return -1;
    *out = (uint32_t)x;
    return 0;
}

/* Fills *entries from the manifest; -1 with a message on stderr when it is unusable. */
static int load_manifest(golden_entry **entries, size_t *n) {
    const char *dir = golden_dir();
    char path[1100];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    json_object *root = json_object_from_file(path);
    json_object *arr;
    if (!root || !json_object_object_get_ex(root, "entries", &arr) || !json_object_is_type(arr, json_type_array)) {
        fprintf(stderr, "%s: missing or not a golden manifest (%s)\n", path, json_util_get_last_err());
        json_object_put(root);
        return -1;
    }
    size_t count = json_object_array_length(arr);
    golden_entry *es = calloc(count ? count : 1, sizeof *es);
    if (!es) return -1;
    for (size_t i = 0; i < count; i++) {
        json_object *o = json_object_array_get_idx(arr, i), *prompt;
        golden_entry *e = &es[i];
        const char *name = jstr(o, "name"), *model = jstr(o, "model"), *shared = jstr(o, "shared_model");
        const char *format = jstr(o, "format"), *tok = jstr(o, "tokens"), *log = jstr(o, "logits");
        if (!name || !(model || shared) || !format || !tok || !log || juint(o, "n_steps", &e->n_steps) ||
            juint(o, "n_vocab", &e->n_vocab) || !json_object_object_get_ex(o, "prompt", &prompt) ||
            !json_object_is_type(prompt, json_type_array) || json_object_array_length(prompt) == 0 ||
            json_object_array_length(prompt) > MAX_PROMPT) {
            fprintf(stderr, "%s: entry %zu is malformed\n", path, i);
            free(es);
            json_object_put(root);
            return -1;
        }
        snprintf(e->name, sizeof e->name, "golden %s", name);
        e->shared = model == NULL;
        if (model) snprintf(e->model, sizeof e->model, "%s/%s", dir, model);
        else snprintf(e->shared_rel, sizeof e->shared_rel, "%s", shared);
        snprintf(e->format, sizeof e->format, "%s", format);
        snprintf(e->tokens_path, sizeof e->tokens_path, "%s/%s", dir, tok);
        snprintf(e->logits_path, sizeof e->logits_path, "%s/%s", dir, log);
        e->n_prompt = (uint32_t)json_object_array_length(prompt);
        for (uint32_t k = 0; k < e->n_prompt; k++)
            e->prompt[k] = (uint32_t)json_object_get_int64(json_object_array_get_idx(prompt, k));
    }
    json_object_put(root);
    *entries = es;
    *n = count;
    return 0;
}

int main(void) {
    golden_entry *entries;
    size_t n;
    if (load_manifest(&entries, &n) || n == 0) {
        fprintf(stderr, "no golden data: run /usr/bin/python3 tests/golden/gen_golden.py\n");
        return 1;
    }
    struct CMUnitTest *tests = calloc(n, sizeof *tests);
    if (!tests) return 1;
    for (size_t i = 0; i < n; i++) {
        tests[i].name = entries[i].name;
        tests[i].test_func = test_entry;
        tests[i].initial_state = &entries[i];
    }
    int rc = _cmocka_run_group_tests("golden", tests, n, NULL, NULL);
    free(tests);
    free(entries);
    return rc;
}
