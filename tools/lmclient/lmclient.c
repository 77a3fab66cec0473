/* tools/lmclient/lmclient.c — attach to a running process group and generate.
 *
 *   lmclient --endpoint ENDPOINT --prompt TEXT [--max-tokens N] [--temperature T]
 *            [--top-k K] [--top-p P] [--repeat-penalty R] [--seed S]
 *            [--dump-logits FILE] [--timeout S] [--json] [--verbose]
 *
 * A ZeroMQ DEALER to the scheduler's client endpoint (`lmlaunch up --endpoint ...`):
 * HELLO, GENERATE, then the text of each TOKEN printed as it arrives, until DONE.
 * --dump-logits asks for the logits in every TOKEN and writes them raw (float32,
 * little-endian, n_vocab per sampling step, the same layout as `lmlaunch run`).
 * Several clients may be attached at once; each gets its own stream.
 *
 * Exit status: 0 done; 1 the scheduler did not answer in time, refused, or failed (one
 * line saying which); 2 bad command line; 130 interrupted (the request is cancelled). */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lmm/client.h"
#include "lmm/error.h"
#include "lmm/service.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "--dump-logits writes TOKEN.logits as they come (little-endian); this host is not"
#endif

static const char *usage_text =
    "usage: lmclient --endpoint ENDPOINT --prompt TEXT [options]\n"
    "\n"
    "Sends one request to a process group started with `lmlaunch up` and prints the\n"
    "generated text as it arrives.\n"
    "\n"
    "  --endpoint ENDPOINT    the group's client endpoint, e.g. tcp://127.0.0.1:5555\n"
    "  --prompt TEXT          prompt (may be empty)\n"
    "  --max-tokens N         tokens to generate (default: 256, or fewer when the context ends\n"
    "                         first; an N that does not fit the context is refused, see\n"
    "                         --context-shift)\n"
    "  --temperature T        0 = greedy (default 0.8)\n"
    "  --top-k K              0 = off (default 40)\n"
    "  --top-p P              in (0, 1] (default 0.95)\n"
    "  --repeat-penalty R     > 0 (default 1.0)\n"
    "  --seed S               random seed (default: from the clock)\n"
    "  --dump-logits FILE     write the float32 logits of every sampling step, raw\n"
    "  --timeout S            give up when the scheduler is silent this long (default 120;\n"
    "                         the HELLO must be answered within 10 s, or S if less)\n"
    "  --json                 end with one JSON line (text, tokens, counts, speed)\n"
    "  --verbose, -v          one line per token on stderr: the step's total time, compute,\n"
    "                         I/O wait, transfer (the rest) and bytes read\n"
    "  --no-prefix-cache      this request neither reuses nor publishes cached KV (same output)\n"
    "  --context-shift        when the context is full, go on from its first token and last\n"
    "                         half (CHANGES the output; default: stop with \"context\")\n"
    "\n"
    "Exit status: 0 ok, 1 no answer / refused / failed, 2 bad command line, 130 interrupted.\n";

#define HELLO_TIMEOUT_MS 10000

typedef struct {
    lmm_client_sink sink; /* ids, text (streamed to stdout) and the --dump-logits file */
    bool verbose;  /* --verbose: one line of the step's figures per token on stderr */
} client_state;

static int usage(const char *fmt, const char *arg) {
    fputs("lmclient: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs(" (see lmclient --help)\n", stderr);
    return 2;
}

static int on_token(void *user, const lmm_msg_token *t) {
    client_state *c = user;
    if (c->verbose) lmm_client_print_token_stats(stderr, "lmclient", c->sink.n_ids, t);
    return lmm_client_sink_token(&c->sink, t);
}

static int on_idle(void *user) {
    (void)user;
    return lmm_service_stopping() ? lmm_error_set("interrupted") : 0;
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

int main(int argc, char **argv) {
    const char *endpoint = NULL, *prompt = NULL, *dump = NULL, *v;
    bool json = false, seed_given = false, max_tokens_given = false;
    uint64_t max_tokens = 256, timeout_s = 120, u;
    lmm_msg gen;
    lmm_proto_msg_init(&gen, LMM_MSG_GENERATE);
    lmm_sampler_opts *so = &gen.generate.sampling;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (strcmp(a, "--json") == 0) {
            json = true;
            continue;
        }
        if (strcmp(a, "--no-prefix-cache") == 0) { /* this request: no KV reuse (same output) */
            gen.generate.no_prefix_cache = true;
            continue;
        }
        if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) { /* the step's figures per token */
            gen.generate.stats = true;
            continue;
        }
        if (strcmp(a, "--context-shift") == 0) { /* opt-in, changes the output (docs/kv-cache.md) */
            gen.generate.context_shift = true;
            continue;
        }
        static const char *const flags[] = {"--endpoint", "--prompt", "--max-tokens", "--temperature", "--top-k",
                                            "--top-p", "--repeat-penalty", "--seed", "--dump-logits", "--timeout"};
        size_t k = 0, nf = sizeof flags / sizeof *flags;
        int r = 0;
        for (; k < nf; k++)
            if ((r = lmm_service_flag(argc, argv, &i, flags[k], &v)) != 0) break;
        if (r < 0) return usage("%s", lmm_error_get());
        if (k == nf) return usage("unknown argument '%s'", a);
        char *end;
        float f;
        switch (k) {
        case 0: endpoint = v; break;
        case 1: prompt = v; break;
        case 2:
            if (lmm_service_parse_u64(v, 0, LMM_PROTO_MAX_GEN_TOKENS, &max_tokens)) return usage("--max-tokens: %s", lmm_error_get());
            max_tokens_given = true;
            break;
        case 4:
            if (lmm_service_parse_u64(v, 0, UINT32_MAX, &u)) return usage("--top-k: %s", lmm_error_get());
            so->top_k = (uint32_t)u;
            break;
        case 7:
            if (lmm_service_parse_u64(v, 0, UINT64_MAX, &u)) return usage("--seed: %s", lmm_error_get());
            so->seed = u;
            seed_given = true;
            break;
        case 8: dump = v; break;
        case 9:
            if (lmm_service_parse_u64(v, 1, 86400, &timeout_s)) return usage("--timeout: %s", lmm_error_get());
            break;
        default: /* 3, 5, 6: floats */
            errno = 0;
            f = strtof(v, &end);
            if (!*v || *end || errno || !isfinite(f)) return usage("'%s' is not a finite number", v);
            if (k == 3 && f < 0.0f) return usage("--temperature: '%s' must be >= 0", v);
            if (k == 5 && !(f > 0.0f && f <= 1.0f)) return usage("--top-p: '%s' must be in (0, 1]", v);
            if (k == 6 && !(f > 0.0f)) return usage("--repeat-penalty: '%s' must be > 0", v);
            if (k == 3) so->temperature = f;
            else if (k == 5) so->top_p = f;
            else so->repeat_penalty = f;
            break;
        }
    }
    if (!endpoint) return usage("%s", "--endpoint ENDPOINT is required");
    if (!prompt) return usage("%s", "--prompt TEXT is required");
    if (!seed_given) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        so->seed = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^ ((uint64_t)getpid() << 32);
    }
    gen.generate.req_id = 1;
    gen.generate.prompt = (lmm_proto_bytes){prompt, strlen(prompt)};
    gen.generate.max_tokens = (uint32_t)max_tokens;
    /* the default ends at the end of the context; an explicit N that does not fit is refused */
    gen.generate.max_tokens_default = !max_tokens_given;
    gen.generate.dump_logits = dump != NULL;

    client_state c;
    memset(&c, 0, sizeof c);
    c.sink.out = stdout;
    c.sink.dump_path = dump;
    c.verbose = gen.generate.stats;
    if (dump && !(c.sink.dump = fopen(dump, "wb"))) {
        fprintf(stderr, "lmclient: %s: %s\n", dump, strerror(errno));
        return 1;
    }
    lmm_service_signals_install();
    lmm_service_sock s;
    lmm_msg ack;
    lmm_msg_done done;
    int rc = 1;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (lmm_service_dealer_connect(&s, endpoint, NULL)) {
        fprintf(stderr, "lmclient: %s\n", lmm_error_get());
        goto out_noclose;
    }
    int hello_ms = timeout_s * 1000 < HELLO_TIMEOUT_MS ? (int)timeout_s * 1000 : HELLO_TIMEOUT_MS;
    if (lmm_service_hello(&s, LMM_PROTO_ROLE_CLIENT, "lmclient", hello_ms, &ack)) {
        fprintf(stderr, "lmclient: %s%s\n", lmm_error_get(),
                lmm_service_stopping() ? "" : " (is the group up? see `lmlaunch up`)");
        rc = lmm_service_stopping() ? 130 : 1;
        goto out;
    }
    lmm_client_callbacks cb = {.on_token = on_token, .on_idle = on_idle, .user = &c,
                               .idle_timeout_ms = (int)timeout_s * 1000};
    if (lmm_client_generate(&s, &gen, &cb, &done)) {
        if (c.sink.n_ids) fputc('\n', stdout);
        fprintf(stderr, "lmclient: %s\n", lmm_error_get());
        rc = lmm_service_stopping() ? 130 : 1;
        goto out;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fputc('\n', stdout);
    uint32_t n_gen = done.n_generated < c.sink.n_ids ? done.n_generated : c.sink.n_ids;
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    fprintf(stderr,
            "lmclient: prompt %u tokens; %u generated (%s), %.1f tok/s by the scheduler, %.2f s in all, "
            "%.3f s I/O stall\n",
            done.n_prompt, n_gen, stop_name(done.stop), done.tokens_per_s, secs, done.io_stall_s);
    if (json) {
        json_object *j = json_object_new_object();
        json_object *toks = json_object_new_array();
        /* the text of the EOS step's TOKEN (sent for its logits) is empty */
        for (uint32_t i = 0; i < n_gen; i++) json_object_array_add(toks, json_object_new_int64(c.sink.ids[i]));
        json_object_object_add(j, "text", json_object_new_string_len(c.sink.text ? c.sink.text : "", (int)c.sink.text_len));
        json_object_object_add(j, "tokens", toks);
        json_object_object_add(j, "n_prompt", json_object_new_int64(done.n_prompt));
        json_object_object_add(j, "n_generated", json_object_new_int64(n_gen));
        json_object_object_add(j, "stop", json_object_new_string(stop_name(done.stop)));
        json_object_object_add(j, "tokens_per_s", json_object_new_double(done.tokens_per_s));
        json_object_object_add(j, "io_stall_s", json_object_new_double(done.io_stall_s));
        char seed[32];
        snprintf(seed, sizeof seed, "%" PRIu64, so->seed);
        json_object_object_add(j, "seed", json_object_new_string(seed));
        puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(j);
    }
    rc = 0;
    if (c.sink.dump && fflush(c.sink.dump) != 0) {
        fprintf(stderr, "lmclient: %s: write failed: %s\n", dump, strerror(errno));
        rc = 1;
    }
    if (fflush(stdout) != 0) rc = 1;
out:
    lmm_service_sock_close(&s);
out_noclose:
    lmm_service_ctx_term();
    if (c.sink.dump) fclose(c.sink.dump);
    lmm_client_sink_free(&c.sink);
    return rc;
}
