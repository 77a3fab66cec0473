/* launch/config_cmd.c — the configuration file in lmlaunch: `lmlaunch check CONFIG`,
 * `--config FILE` for run/up (command-line flags override the file), and the KV budget
 * turned into the number of sequences decoded at once (lmm/config.h, docs/operations.md).
 *
 * Every problem is printed as one line "FILE:LINE: [section] key: problem" on stderr. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "lmlaunch.h"
#include "lmm/config.h"
#include "lmm/error.h"
#include "lmm/model.h"
#include "lmm/proto.h"

static lmm_config g_cfg; /* its strings back run_args' pointers for the whole run */

static void print_problems(const lmm_config *c) {
    for (unsigned i = 0; i < c->n_problems; i++) fprintf(stderr, "%s\n", c->problems[i].text);
    if (c->n_dropped) fprintf(stderr, "%s: ... and %u more problems\n", c->file, c->n_dropped);
}

static void fmt_size(uint64_t b, char *buf, size_t cap) {
    static const char *const u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int i = 0;
    while (v >= 1024.0 && i < 4) v /= 1024.0, i++;
    snprintf(buf, cap, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

/* Sequences whose KV cache (n_ctx positions each) fits kv_budget: 0 with a reason when
 * not even one fits. */
static uint32_t seqs_for_kv(const lmm_model_desc *d, uint64_t kv_budget, uint32_t ctx, char *why, size_t cap) {
    uint32_t n_ctx = ctx ? ctx : d->hp.max_seq_len;
    uint64_t per_seq = lmm_model_desc_kv_bytes(d, n_ctx);
    if (per_seq == 0) return LMM_PROTO_MAX_SEQS;
    uint64_t n = kv_budget / per_seq;
    if (n == 0) {
        char b1[32], b2[32];
        fmt_size(kv_budget, b1, sizeof b1);
        fmt_size(per_seq, b2, sizeof b2);
        snprintf(why, cap, "%s holds no sequence: one sequence of %u positions needs %s of KV cache", b1, n_ctx, b2);
        return 0;
    }
    return n > LMM_PROTO_MAX_SEQS ? LMM_PROTO_MAX_SEQS : (uint32_t)n;
}

/* The checks that need the model: it opens, and the KV budget holds a sequence. */
static void check_with_model(lmm_config *c, uint32_t ctx) {
    if (!c->model[0]) return;
    lmm_model_desc d;
    if (lmm_model_desc_open(&d, c->model)) {
        lmm_config_add_problem(c, c->line.model, "model", "path", "%s", lmm_error_get());
        return;
    }
    char why[256];
    if (c->kv_budget && !c->kv_disk[0] && seqs_for_kv(&d, c->kv_budget, ctx, why, sizeof why) == 0) /* else spills */
        lmm_config_add_problem(c, c->line.kv, "budget", "live_kv", "%s", why);
    if (c->ctx && d.hp.max_seq_len && c->ctx > d.hp.max_seq_len)
        lmm_config_add_problem(c, c->line.ctx, "budget", "ctx", "%u is more than the model's context (%u)", c->ctx,
                               d.hp.max_seq_len);
    lmm_model_desc_free(&d);
}

/* True when a problem is about the model file itself (then it is not opened). */
static bool model_path_bad(const lmm_config *c) {
    for (unsigned i = 0; i < c->n_problems; i++)
        if (c->line.model ? c->problems[i].line == c->line.model : strstr(c->problems[i].text, "[model] path:") != NULL)
            return true;
    return false;
}

int lmlaunch_check_config(const char *path) {
    lmm_config_opts o = {.require_model = true, .check_model = true, .check_tokenizer = true};
    lmm_config_load(&g_cfg, path, &o);
    if (!model_path_bad(&g_cfg)) check_with_model(&g_cfg, g_cfg.ctx);
    if (g_cfg.n_problems) {
        print_problems(&g_cfg);
        return 1;
    }
    puts("OK");
    return 0;
}

int lmlaunch_apply_config(run_args *a) {
    if (!a->config) return 0;
    /* what a flag replaces is not required or checked */
    lmm_config_opts o = {.require_model = !a->given.model,
                         .check_model = !a->given.model,
                         .check_tokenizer = !a->given.tokenizer};
    lmm_config *c = &g_cfg;
    lmm_config_load(c, a->config, &o);
    if (!a->given.model && !model_path_bad(c)) check_with_model(c, a->given.ctx ? a->ctx : c->ctx);
    if (c->n_problems) {
        print_problems(c);
        return -1;
    }
    if (!a->given.model && c->model[0]) a->model = c->model;
    if (!a->given.tokenizer && c->tokenizer[0]) a->tokenizer = c->tokenizer;
    if (!a->given.mem && c->mem_budget) a->mem_budget = c->mem_budget;
    if (!a->given.kv && c->kv_budget) a->kv_budget = c->kv_budget;
    if (!a->given.ctx && c->ctx) a->ctx = c->ctx;
    if (!a->given.workers && c->line.compute) a->workers = c->compute;
    if (!a->given.threads && c->threads) a->threads = c->threads;
    if (!a->given.endpoint && c->client_ep[0]) a->endpoint = c->client_ep;
    if (c->services_ep[0]) a->services_ep = c->services_ep;
    /* the cache's settings (docs/kv-cache.md); --no-prefix-cache can only turn reuse off */
    if (!a->given.kv_cache && c->kv_cache) a->kv_cache = c->kv_cache;
    if (!a->given.kv_disk && c->kv_disk[0]) a->kv_disk = c->kv_disk;
    if (!a->given.kv_disk_budget && c->kv_disk_budget) a->kv_disk_budget = c->kv_disk_budget;
    if (c->line.prefix_cache && !c->prefix_cache) a->no_prefix_cache = true;
    return 0;
}

int lmlaunch_size_kv(run_args *a) {
    if (!a->kv_budget) return 0;
    lmm_model_desc d;
    if (lmm_model_desc_open(&d, a->model)) {
        fprintf(stderr, "lmlaunch: %s\n", lmm_error_get());
        return -1;
    }
    char why[256];
    uint32_t n = seqs_for_kv(&d, a->kv_budget, a->ctx, why, sizeof why);
    lmm_model_desc_free(&d);
    if (a->kv_disk && !a->in_process) {
        /* the live KV beyond kv_budget spills to the disk directory (docs/kv-cache.md,
         * "Long contexts"): a sequence need not fit; kv_budget still sets how many decode */
        a->kv_spill_ram = a->kv_budget;
        a->max_seqs = n ? n : 1;
        return 0;
    }
    if (n == 0) {
        if (!a->given.kv && g_cfg.line.kv)
            fprintf(stderr, "%s:%d: [budget] live_kv: %s\n", g_cfg.file, g_cfg.line.kv, why);
        else fprintf(stderr, "lmlaunch: --kv-budget: %s\n", why);
        return -1;
    }
    a->max_seqs = n;
    return 0;
}
