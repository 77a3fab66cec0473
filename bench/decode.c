/* bench/decode.c — decode and prefill speed of the in-memory engine beside the
 * physical limits measured in the same run.
 *
 *   bench_decode [--threads N] [--decode-tokens N] [--prefill-tokens N] [--reps N] MODEL...
 *
 * For each model: load the weights, then alternate (reps times) a plain read of the
 * same weight bytes (the memory-bandwidth limit), a decode run and a prefill run, and
 * report medians. decode: one token per forward; the limit is weight_bytes / read time.
 * prefill: prefill-tokens in one forward; compared with the FP32 FMA peak (flops counted
 * as 2 x matrix weights x tokens, attention included). Prints a table, then one JSON line. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmm/error.h"
#include "lmm/model.h"
#include "lmm/transformer.h"
#include "probe.h"

#define MAX_MODELS 8
#define MAX_REPS 16

typedef struct {
    char name[64];
    uint64_t weight_bytes;
    double read_gbps, decode_tok_s, decode_gbps, ratio_decode;
    double prefill_tok_s, prefill_gflops, ratio_prefill;
} bench_row;

/* FLOPs of one prefill of n tokens: matrix products (all rows but the output head,
 * which runs for the last token only) plus attention scores and weighted sums. */
static double prefill_flops(const lmm_model_desc *d, uint32_t n) {
    const lmm_hparams *h = &d->hp;
    double q = (double)h->n_heads * h->head_dim, kv = (double)h->n_kv_heads * h->head_dim;
    double per_layer = h->dim * (q + 2 * kv) + q * h->dim + 3.0 * h->dim * h->hidden_dim;
    double mm = 2.0 * per_layer * h->n_layers * n + 2.0 * h->dim * h->n_vocab;
    double attn = 0.0;
    for (uint32_t t = 0; t < n; t++) attn += 4.0 * q * (t + 1) * h->n_layers;
    return mm + attn;
}

static uint32_t argmax(const float *x, uint32_t n) {
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static int bench_model(const char *path, int threads, uint32_t n_decode, uint32_t n_prefill, int reps,
                       double fma_peak, bench_row *row) {
    lmm_model_desc d;
    lmm_weights w;
    lmm_transformer *t = NULL;
    if (lmm_model_desc_open(&d, path)) return -1;
    if (lmm_weights_load(&w, &d)) {
        lmm_model_desc_free(&d);
        return -1;
    }
    lmm_transformer_opts o = {.n_ctx = n_prefill + n_decode + 8, .max_batch = n_prefill, .n_threads = threads};
    if (lmm_transformer_init(&t, &w, &o)) {
        lmm_weights_free(&w);
        lmm_model_desc_free(&d);
        return -1;
    }
    uint32_t vocab = d.hp.n_vocab;
    float *logits = malloc((size_t)vocab * sizeof *logits);
    uint32_t *prompt = malloc((size_t)n_prefill * sizeof *prompt);
    for (uint32_t i = 0; i < n_prefill; i++) prompt[i] = (uint32_t)(1 + (i * 7919u) % (vocab - 1));
    double read_s[MAX_REPS], dec_s[MAX_REPS], pre_s[MAX_REPS];
    int rc = 0;
    for (int r = 0; r < reps && rc == 0; r++) {
        read_s[r] = probe_read_seconds(w.blob, w.blob_size, threads);
        /* decode: BOS then greedy steps, median time per step (first step excluded) */
        uint32_t tok = 1;
        double steps[256];
        uint32_t ns = 0;
        for (uint32_t i = 0; i <= n_decode && rc == 0; i++) {
            double t0 = probe_now();
            rc = lmm_transformer_forward(t, &tok, 1, i, logits, 0);
            double dt = probe_now() - t0;
            if (i > 0 && ns < 256) steps[ns++] = dt;
            tok = argmax(logits, vocab);
        }
        dec_s[r] = probe_median(steps, ns);
        double t0 = probe_now();
        if (rc == 0) rc = lmm_transformer_forward(t, prompt, n_prefill, 0, logits, 0);
        pre_s[r] = probe_now() - t0;
    }
    if (rc == 0) {
        snprintf(row->name, sizeof row->name, "%s", strrchr(path, '/') ? strrchr(path, '/') + 1 : path);
        row->weight_bytes = w.blob_size;
        row->read_gbps = (double)w.blob_size / probe_median(read_s, (size_t)reps) * 1e-9;
        double dec = probe_median(dec_s, (size_t)reps);
        row->decode_tok_s = 1.0 / dec;
        row->decode_gbps = (double)w.blob_size / dec * 1e-9;
        row->ratio_decode = row->decode_gbps / row->read_gbps;
        double pre = probe_median(pre_s, (size_t)reps);
        row->prefill_tok_s = n_prefill / pre;
        row->prefill_gflops = prefill_flops(&d, n_prefill) / pre * 1e-9;
        row->ratio_prefill = fma_peak > 0 ? row->prefill_gflops / fma_peak : 0.0;
    }
    free(prompt);
    free(logits);
    lmm_transformer_free(t);
    lmm_weights_free(&w);
    lmm_model_desc_free(&d);
    return rc;
}

int main(int argc, char **argv) {
    int threads = 2, reps = 5;
    uint32_t n_decode = 16, n_prefill = 128;
    const char *models[MAX_MODELS];
    int n_models = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--decode-tokens") && i + 1 < argc) n_decode = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--prefill-tokens") && i + 1 < argc) n_prefill = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (argv[i][0] != '-' && n_models < MAX_MODELS) models[n_models++] = argv[i];
        else {
            fprintf(stderr, "usage: bench_decode [--threads N] [--decode-tokens N] [--prefill-tokens N] [--reps N] MODEL...\n");
            return 2;
        }
    }
    if (n_models == 0 || threads < 1 || reps < 1 || reps > MAX_REPS || n_decode < 2 || n_decode > 255 ||
        n_prefill < 1) {
        fprintf(stderr, "bench_decode: need at least one MODEL; 1 <= reps <= %d; 2 <= decode-tokens <= 255\n", MAX_REPS);
        return 2;
    }
    double fma_peak = probe_fma_peak_gflops(threads);
    bench_row rows[MAX_MODELS];
    for (int m = 0; m < n_models; m++) {
        fprintf(stderr, "bench_decode: %s ...\n", models[m]);
        if (bench_model(models[m], threads, n_decode, n_prefill, reps, fma_peak, &rows[m])) {
            fprintf(stderr, "bench_decode: %s\n", lmm_error_get());
            return 1;
        }
    }
    printf("decode and prefill, %d threads, ISA %s, medians of %d runs; FP32 FMA peak %.1f GFLOP/s\n", threads,
           lmm_hal_isa_name(lmm_hal_isa()), reps, fma_peak);
    printf("%-34s %9s %9s %9s %9s %7s | %9s %9s %7s\n", "model", "GB", "read GB/s", "dec tok/s", "dec GB/s",
           "ratio", "pre tok/s", "GFLOP/s", "ratio");
    json_object *root = json_object_new_object();
    json_object *arr = json_object_new_array();
    json_object_object_add(root, "bench", json_object_new_string("decode"));
    json_object_object_add(root, "threads", json_object_new_int(threads));
    json_object_object_add(root, "isa", json_object_new_string(lmm_hal_isa_name(lmm_hal_isa())));
    json_object_object_add(root, "fma_peak_gflops", json_object_new_double(fma_peak));
    for (int m = 0; m < n_models; m++) {
        bench_row *r = &rows[m];
        printf("%-34s %9.2f %9.2f %9.2f %9.2f %7.3f | %9.1f %9.1f %7.3f\n", r->name, (double)r->weight_bytes * 1e-9,
               r->read_gbps, r->decode_tok_s, r->decode_gbps, r->ratio_decode, r->prefill_tok_s, r->prefill_gflops,
               r->ratio_prefill);
        json_object *o = json_object_new_object();
        json_object_object_add(o, "model", json_object_new_string(r->name));
        json_object_object_add(o, "weight_bytes", json_object_new_int64((int64_t)r->weight_bytes));
        json_object_object_add(o, "read_gbps", json_object_new_double(r->read_gbps));
        json_object_object_add(o, "decode_tok_s", json_object_new_double(r->decode_tok_s));
        json_object_object_add(o, "decode_gbps", json_object_new_double(r->decode_gbps));
        json_object_object_add(o, "ratio_decode_to_bw", json_object_new_double(r->ratio_decode));
        json_object_object_add(o, "prefill_tok_s", json_object_new_double(r->prefill_tok_s));
        json_object_object_add(o, "prefill_gflops", json_object_new_double(r->prefill_gflops));
        json_object_object_add(o, "ratio_prefill_to_fma_peak", json_object_new_double(r->ratio_prefill));
        json_object_array_add(arr, o);
        char key[96];
        snprintf(key, sizeof key, "ratio_decode_to_bw_%d", m);
        json_object_object_add(root, key, json_object_new_double(r->ratio_decode));
        snprintf(key, sizeof key, "ratio_prefill_to_fma_peak_%d", m);
        json_object_object_add(root, key, json_object_new_double(r->ratio_prefill));
    }
    json_object_object_add(root, "models", arr);
    printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
    json_object_put(root);
    return 0;
}
