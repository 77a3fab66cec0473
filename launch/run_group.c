/* launch/run_group.c — `lmlaunch run`: one generation by the process group.
 *
 * Checks the model (fails fast naming it), starts the group (group.c), waits until the
 * scheduler is ready, acts as the client over the client endpoint (GENERATE; prints each
 * TOKEN's text as it arrives; --dump-logits from the TOKENs' logits), then SHUTDOWN and
 * cleanup. Output (stdout text, stderr stats line, --json line) matches
 * `run --in-process`. Once the group is ready, a loader, compute worker or cache that
 * dies is restarted (group_check: backoff, one line on stderr) and the run goes on. The
 * scheduler dying, a service that keeps crashing (the crash-loop limit), a child dying
 * during start-up, Ctrl-C or SIGTERM: everything is stopped and cleaned, one line says
 * why, exit 1 (130 for a signal). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "group.h"
#include "lmlaunch.h"
#include "lmm/client.h"
#include "lmm/error.h"
#include "lmm/hal.h"
#include "lmm/model.h"
#include "lmm/trace.h"

#define SHUTDOWN_GRACE_MS 5000
#define EXIT_SIGNAL 130

int lmlaunch_check_model(const run_args *a, uint32_t *max_seq_len) {
    const char *paths[2] = {a->model, a->tokenizer};
    for (int i = 0; i < 2; i++) {
        if (!paths[i]) continue;
        struct stat st;
        if (stat(paths[i], &st) != 0) {
            fprintf(stderr, "lmlaunch: %s: %s\n", paths[i], strerror(errno));
            return 1;
        }
        if (S_ISDIR(st.st_mode) ? access(paths[i], R_OK | X_OK) != 0 : access(paths[i], R_OK) != 0) {
            fprintf(stderr, "lmlaunch: %s: %s\n", paths[i], strerror(errno));
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            int fd = open(paths[i], O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                fprintf(stderr, "lmlaunch: %s: %s\n", paths[i], strerror(errno));
                return 1;
            }
            close(fd);
        }
    }
    lmm_model_desc d;
    if (lmm_model_desc_open(&d, a->model)) {
        fprintf(stderr, "lmlaunch: %s\n", lmm_error_get());
        return 1;
    }
    if (max_seq_len) *max_seq_len = d.hp.max_seq_len;
    lmm_model_desc_free(&d);
    return 0;
}

/* ---- the client side of the run ------------------------------------------------ */

typedef struct {
    group *g;
    lmm_client_sink sink; /* ids, text (streamed to stdout) and the --dump-logits file */
    double t_start, t_first, t_last;
    uint64_t trace_t0, trace_last; /* µs (lmm/trace.h); 0 when not profiling */
    bool verbose;                  /* --verbose: a line of the step's figures per token */
    int failed_write;
} run_client;

static int on_token(void *user, const lmm_msg_token *t) {
    run_client *c = user;
    double now = lmlaunch_now_s();
    if (c->sink.n_ids == 0) c->t_first = now;
    c->t_last = now;
    if (c->trace_last) { /* one span per token: from the previous token (or the request) to this one */
        uint64_t us = lmm_trace_now_us();
        lmm_trace_complete("client", c->sink.n_ids == 0 ? "first token" : "token", c->trace_last, us, "index",
                           c->sink.n_ids, "id", t->id);
        c->trace_last = us;
    }
    if (c->verbose) lmm_client_print_token_stats(stderr, "lmlaunch", c->sink.n_ids, t);
    return lmm_client_sink_token(&c->sink, t);
}

static int on_idle(void *user) {
    run_client *c = user;
    /* the signal first: Ctrl-C at a terminal also reaches the services, which then exit */
    if (lmm_service_stopping()) return lmm_error_set("interrupted (signal %d)", group_stop_signal());
    if (group_check(c->g) < 0) return -1; /* restarts a dead service; -1: the scheduler, a crash loop */
    return 0;
}

static const char *stop_name(lmm_proto_stop s) {
    switch (s) {
    case LMM_PROTO_STOP_LENGTH: return "max_tokens";
    case LMM_PROTO_STOP_EOS: return "eos";
    case LMM_PROTO_STOP_CONTEXT: return "ctx";
    case LMM_PROTO_STOP_CANCELLED: return "cancelled";
    default: return "?";
    }
}

static uint64_t group_peak_rss(void) {
    struct rusage ru;
    uint64_t self = lmlaunch_peak_rss_bytes(), kids = 0;
    if (getrusage(RUSAGE_CHILDREN, &ru) == 0) kids = (uint64_t)ru.ru_maxrss * 1024u;
    return self > kids ? self : kids; /* the largest process of the group */
}

void lmlaunch_group_opts(const run_args *a, group_opts *o) {
    *o = (group_opts){.model = a->model,
                      .tokenizer = a->tokenizer,
                      .isa = a->isa,
                      .mem_budget = a->mem_budget,
                      .workers = a->workers,
                      .threads = a->threads,
                      .ctx = a->ctx,
                      .services_endpoint = a->services_ep,
                      .max_seqs = a->max_seqs,
                      .kv_ram = a->kv_spill_ram,
                      .no_prefix_cache = a->no_prefix_cache,
                      .kv_cache = a->kv_cache,
                      .kv_disk = a->kv_disk,
                      .kv_disk_budget = a->kv_disk_budget,
                      .kv_transport = a->kv_transport,
                      .start_timeout_ms = a->start_timeout_s * 1000};
}

int lmlaunch_run_group(const run_args *a) {
    uint32_t max_seq = 0;
    if (lmlaunch_check_model(a, &max_seq)) return 1;
    run_client c;
    memset(&c, 0, sizeof c);
    c.sink.out = stdout;
    c.sink.dump_path = a->dump_logits;
    if (a->dump_logits && !(c.sink.dump = fopen(a->dump_logits, "wb"))) {
        fprintf(stderr, "lmlaunch: %s: %s\n", a->dump_logits, strerror(errno));
        return 1;
    }
    group_signals_install();
    if (a->profile && lmm_trace_start("lmlaunch", 0)) {
        fprintf(stderr, "lmlaunch: --profile: %s\n", lmm_error_get());
        if (c.sink.dump) fclose(c.sink.dump);
        return 1;
    }
    group g;
    group_opts o;
    lmlaunch_group_opts(a, &o);
    o.relay_logs = true;
    o.profile = a->profile;
    c.g = &g;
    int rc = 1;
    if (group_start(&g, &o)) {
        fprintf(stderr, "lmlaunch: %s\n", lmm_error_get());
        if (c.sink.dump) fclose(c.sink.dump);
        return 1;
    }
    uint64_t t_ready = lmm_trace_begin();
    if (group_wait_ready(&g, o.start_timeout_ms)) {
        fprintf(stderr, "lmlaunch: %s\n", lmm_error_get());
        rc = lmm_service_stopping() ? EXIT_SIGNAL : 1;
        group_stop(&g, 0);
        goto out;
    }
    lmm_trace_end("launch", "start-up", t_ready, "services", g.n_kids, NULL, 0);
    /* `lmlaunch status --run-dir RUN` and `logs --run-dir RUN` work on a run too */
    if (group_json_write(&g, &o)) fprintf(stderr, "lmlaunch: warning: %s\n", lmm_error_get());

    lmm_msg gen;
    lmm_proto_msg_init(&gen, LMM_MSG_GENERATE);
    gen.generate.req_id = 1;
    gen.generate.prompt = (lmm_proto_bytes){a->prompt, strlen(a->prompt)};
    gen.generate.max_tokens = a->max_tokens;
    /* a default max_tokens ends at the end of the context; an explicit one beyond it is refused */
    gen.generate.max_tokens_default = !a->max_tokens_given;
    gen.generate.context_shift = a->context_shift;
    gen.generate.sampling = a->sampling;
    gen.generate.dump_logits = a->dump_logits != NULL;
    gen.generate.stats = a->verbose;
    c.verbose = a->verbose;
    lmm_client_callbacks cb = {.on_token = on_token, .on_idle = on_idle, .user = &c, .idle_timeout_ms = 0};
    lmm_msg_done done;
    c.t_start = lmlaunch_now_s();
    c.trace_t0 = c.trace_last = lmm_trace_begin();
    int gen_rc = lmm_client_generate(&g.launch, &gen, &cb, &done);
    lmm_trace_end("client", "request", c.trace_t0, "n_prompt", gen_rc ? 0 : done.n_prompt, "n_generated",
                  gen_rc ? (int64_t)c.sink.n_ids : (int64_t)done.n_generated);
    if (gen_rc) {
        if (c.sink.n_ids) fputc('\n', stdout);
        /* The scheduler's error may only echo another service's death ("the peer is
         * gone"), and the client socket may see the scheduler go before SIGCHLD says
         * why: name the service that died first, then what was said. */
        char said[LMM_ERROR_MAX];
        snprintf(said, sizeof said, "%s", lmm_error_get());
        if (g.gave_up)
            fprintf(stderr, "lmlaunch: %s; stopping the group\n", said);
        else if (!lmm_service_stopping() && (strncmp(said, "scheduler: ", 11) == 0 || strstr(said, "went away")) &&
                 group_settle(&g, 1000))
            fprintf(stderr, "lmlaunch: %s; %s\n", lmm_error_get(), said);
        else
            fprintf(stderr, "lmlaunch: %s\n", said);
        rc = lmm_service_stopping() ? EXIT_SIGNAL : 1;
        group_stop(&g, 0);
        goto out;
    }
    fputc('\n', stdout);
    /* the TOKEN of the EOS step (sent for its logits) is not part of the text */
    uint32_t n_gen = done.n_generated < c.sink.n_ids ? done.n_generated : c.sink.n_ids;
    double t_prefill = c.sink.n_ids ? c.t_first - c.t_start : lmlaunch_now_s() - c.t_start;
    double t_decode = c.sink.n_ids > 1 ? c.t_last - c.t_first : 0.0;
    group_stop(&g, SHUTDOWN_GRACE_MS);
    if (c.sink.dump && fflush(c.sink.dump) != 0) {
        fprintf(stderr, "lmlaunch: %s: write failed: %s\n", a->dump_logits, strerror(errno));
        goto out;
    }
    double prefill_tps = t_prefill > 0 ? (double)done.n_prompt / t_prefill : 0.0;
    double decode_tps = t_decode > 0 ? (double)(c.sink.n_ids - 1) / t_decode : 0.0;
    const char *isa_name = lmm_hal_isa_name(lmm_hal_isa());
    int threads = a->threads;
    if (threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }
    uint32_t n_ctx = a->ctx;
    if (!n_ctx) {
        uint64_t want = (uint64_t)done.n_prompt + a->max_tokens;
        n_ctx = want < max_seq ? (uint32_t)want : max_seq;
    }
    fprintf(stderr,
            "lmlaunch: prompt %u tokens, %.1f tok/s prefill; %u generated, %.1f tok/s decode (%s, %d threads, "
            "%u workers)\n",
            done.n_prompt, prefill_tps, n_gen, decode_tps, isa_name, threads, a->workers);
    if (a->json) {
        json_object *j = json_object_new_object();
        json_object *toks = json_object_new_array();
        for (uint32_t i = 0; i < n_gen; i++) json_object_array_add(toks, json_object_new_int64(c.sink.ids[i]));
        json_object_object_add(j, "text", json_object_new_string_len(c.sink.text ? c.sink.text : "", (int)c.sink.text_len));
        json_object_object_add(j, "tokens", toks);
        json_object_object_add(j, "n_prompt", json_object_new_int64(done.n_prompt));
        json_object_object_add(j, "n_generated", json_object_new_int64(n_gen));
        json_object_object_add(j, "stop", json_object_new_string(stop_name(done.stop)));
        json_object_object_add(j, "prefill_tokens_per_s", json_object_new_double(prefill_tps));
        json_object_object_add(j, "decode_tokens_per_s", json_object_new_double(decode_tps));
        /* the scheduler's sum of the workers' waits for streamed weights (0: all resident) */
        json_object_object_add(j, "io_stall_s", json_object_new_double(done.io_stall_s));
        json_object_object_add(j, "io_stall_s_per_token",
                               json_object_new_double(n_gen > 0 ? done.io_stall_s / n_gen : 0.0));
        json_object_object_add(j, "peak_rss_bytes", json_object_new_int64((int64_t)group_peak_rss()));
        json_object_object_add(j, "isa", json_object_new_string(isa_name));
        json_object_object_add(j, "threads", json_object_new_int(threads));
        json_object_object_add(j, "n_ctx", json_object_new_int64(n_ctx));
        char seed[32];
        snprintf(seed, sizeof seed, "%" PRIu64, a->sampling.seed);
        json_object_object_add(j, "seed", json_object_new_string(seed));
        json_object_object_add(j, "mode", json_object_new_string("group"));
        json_object_object_add(j, "workers", json_object_new_int64(a->workers));
        json_object_object_add(j, "mem_budget", json_object_new_int64((int64_t)a->mem_budget));
        puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(j);
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
out:
    if (c.sink.dump) fclose(c.sink.dump);
    lmm_client_sink_free(&c.sink);
    return rc;
}
