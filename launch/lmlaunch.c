/* launch/lmlaunch.c — the command users run.
 *
 * Now: `lmlaunch run`, the in-process engine: open a model, tokenize the prompt,
 * prefill it in one forward pass, then sample and print tokens as they come.
 * Later issues add the process-group subcommands (up, down, status, ...).
 *
 * Exit status: 0 done; 1 the model, tokenizer or run failed (one line naming the
 * cause); 2 bad command line. */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lmm/error.h"
#include "lmm/hal.h"
#include "lmm/model.h"
#include "lmm/sampler.h"
#include "lmm/tokenizer.h"
#include "lmm/transformer.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "--dump-logits writes the host's floats; it assumes a little-endian host"
#endif

#define EXIT_USAGE 2
#define MAX_TOKENS_LIMIT (1u << 24)

static const char *usage_text =
    "usage: lmlaunch run --model PATH [options]\n"
    "       lmlaunch --help\n"
    "\n"
    "Runs a model in this process: prefills the prompt, then prints the generated text\n"
    "(not the prompt) as it comes, until EOS or --max-tokens.\n"
    "\n"
    "  --model PATH           GGUF file, Hugging Face directory, or llama2.c .bin\n"
    "  --tokenizer PATH       tokenizer file (default: the one the model carries or sits beside)\n"
    "  --prompt TEXT          prompt (default: empty, i.e. just BOS)\n"
    "  --max-tokens N         tokens to generate (default 256)\n"
    "  --temperature T        0 = greedy (default 0.8)\n"
    "  --top-k K              0 = off (default 40)\n"
    "  --top-p P              in (0, 1]; 1 = off (default 0.95)\n"
    "  --repeat-penalty R     > 0; 1 = off (default 1.0), over the last 64 tokens\n"
    "  --seed S               random seed (default: from the clock; printed with --json)\n"
    "  --threads N            compute threads (default: online CPUs)\n"
    "  --ctx N                context positions (default: prompt + max-tokens, at most the model's)\n"
    "  --isa NAME             scalar, avx2 or avx512 (default: the best this CPU has)\n"
    "  --dump-logits FILE     write the float32 logits of every sampling step, raw little-endian\n"
    "  --json                 end with one JSON line of results and speeds\n"
    "\n"
    "Exit status: 0 ok, 1 model/tokenizer/run error, 2 bad command line.\n";

/* ---- command line ------------------------------------------------------------ */

typedef struct {
    const char *model, *tokenizer, *prompt, *dump_logits, *isa;
    uint32_t max_tokens;
    lmm_sampler_opts sampling;
    bool seed_given;
    int threads;
    uint32_t ctx;
    bool json;
} run_args;

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("lmlaunch: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (see lmlaunch --help)\n", stderr);
    va_end(ap);
    return -1;
}

static int parse_u64(const char *flag, const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
    char *end;
    errno = 0;
    if (!*s || *s == '-' || *s == '+' || *s == ' ')
        return usage_error("%s: '%s' is not a whole number in [%" PRIu64 ", %" PRIu64 "]", flag, s, lo, hi);
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return usage_error("%s: '%s' is not a whole number in [%" PRIu64 ", %" PRIu64 "]", flag, s, lo, hi);
    *out = v;
    return 0;
}

static int parse_float(const char *flag, const char *s, float *out) {
    char *end;
    errno = 0;
    if (!*s) return usage_error("%s: empty value", flag);
    float v = strtof(s, &end);
    if (errno || *end || !isfinite(v)) return usage_error("%s: '%s' is not a finite number", flag, s);
    *out = v;
    return 0;
}

/* 0: run; 1: --help was asked for; -1: bad command line (message printed). */
static int parse_run_args(int argc, char **argv, run_args *a) {
    memset(a, 0, sizeof *a);
    a->prompt = "";
    a->max_tokens = 256;
    lmm_sampler_opts_default(&a->sampling);
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0) return 1;
        if (strncmp(arg, "--", 2) != 0) return usage_error("run: unexpected argument '%s'", arg);
        /* --flag=value or --flag value */
        char flag[64];
        const char *val = NULL;
        const char *eq = strchr(arg, '=');
        size_t flen = eq ? (size_t)(eq - arg) : strlen(arg);
        if (flen >= sizeof flag) return usage_error("run: unknown option '%s'", arg);
        memcpy(flag, arg, flen);
        flag[flen] = '\0';
        if (eq) val = eq + 1;

        if (strcmp(flag, "--help") == 0 || strcmp(flag, "-h") == 0) return 1;
        if (strcmp(flag, "--json") == 0) {
            if (val) return usage_error("--json takes no value");
            a->json = true;
            continue;
        }
        static const char *const with_value[] = {"--model", "--tokenizer", "--prompt", "--max-tokens",
                                                 "--temperature", "--top-k", "--top-p", "--repeat-penalty",
                                                 "--seed", "--threads", "--ctx", "--isa", "--dump-logits"};
        bool known = false;
        for (size_t k = 0; k < sizeof with_value / sizeof *with_value; k++) known |= strcmp(flag, with_value[k]) == 0;
        if (!known) return usage_error("run: unknown option '%s'", flag);
        if (!val) {
            if (i + 1 >= argc) return usage_error("%s needs a value", flag);
            val = argv[++i];
        }
        uint64_t u;
        if (strcmp(flag, "--model") == 0) {
            if (!*val) return usage_error("--model: empty path");
            a->model = val;
        } else if (strcmp(flag, "--tokenizer") == 0) {
            if (!*val) return usage_error("--tokenizer: empty path");
            a->tokenizer = val;
        } else if (strcmp(flag, "--prompt") == 0) {
            a->prompt = val;
        } else if (strcmp(flag, "--dump-logits") == 0) {
            if (!*val) return usage_error("--dump-logits: empty path");
            a->dump_logits = val;
        } else if (strcmp(flag, "--isa") == 0) {
            a->isa = val;
        } else if (strcmp(flag, "--max-tokens") == 0) {
            if (parse_u64(flag, val, 0, MAX_TOKENS_LIMIT, &u)) return -1;
            a->max_tokens = (uint32_t)u;
        } else if (strcmp(flag, "--top-k") == 0) {
            if (parse_u64(flag, val, 0, UINT32_MAX, &u)) return -1;
            a->sampling.top_k = (uint32_t)u;
        } else if (strcmp(flag, "--seed") == 0) {
            if (parse_u64(flag, val, 0, UINT64_MAX, &u)) return -1;
            a->sampling.seed = u;
            a->seed_given = true;
        } else if (strcmp(flag, "--threads") == 0) {
            if (parse_u64(flag, val, 1, 1024, &u)) return -1;
            a->threads = (int)u;
        } else if (strcmp(flag, "--ctx") == 0) {
            if (parse_u64(flag, val, 1, 1u << 24, &u)) return -1;
            a->ctx = (uint32_t)u;
        } else if (strcmp(flag, "--temperature") == 0) {
            if (parse_float(flag, val, &a->sampling.temperature)) return -1;
            if (a->sampling.temperature < 0.0f) return usage_error("--temperature: '%s' must be >= 0", val);
        } else if (strcmp(flag, "--top-p") == 0) {
            if (parse_float(flag, val, &a->sampling.top_p)) return -1;
            if (!(a->sampling.top_p > 0.0f && a->sampling.top_p <= 1.0f))
                return usage_error("--top-p: '%s' must be in (0, 1]", val);
        } else if (strcmp(flag, "--repeat-penalty") == 0) {
            if (parse_float(flag, val, &a->sampling.repeat_penalty)) return -1;
            if (!(a->sampling.repeat_penalty > 0.0f)) return usage_error("--repeat-penalty: '%s' must be > 0", val);
        }
    }
    if (!a->model) return usage_error("run: --model PATH is required");
    return 0;
}

/* ---- helpers ------------------------------------------------------------------- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t clock_seed(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^ ((uint64_t)getpid() << 32);
}

/* Peak resident set of this process in bytes (VmHWM), from getrusage. */
static uint64_t peak_rss_bytes(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (uint64_t)ru.ru_maxrss * 1024u; /* Linux: kilobytes */
}

static int fail(const char *what) {
    fprintf(stderr, "lmlaunch: %s%s%s\n", what ? what : "", what ? ": " : "", lmm_error_get());
    return 1;
}

/* Growable byte buffer for the generated text (grows geometrically: rare). */
typedef struct {
    char *p;
    size_t len, cap;
} text_buf;

static int text_append(text_buf *b, const char *s, size_t n) {
    if (n > b->cap - b->len) {
        size_t cap = b->cap * 2 > b->len + n ? b->cap * 2 : b->len + n;
        char *p = realloc(b->p, cap);
        if (!p) return lmm_error_set("out of memory");
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

/* ---- run ----------------------------------------------------------------------- */

typedef struct {
    lmm_model_desc desc;
    bool desc_open;
    lmm_tokenizer *tok;
    lmm_weights w;
    bool w_loaded;
    lmm_transformer *t;
    lmm_sampler *s;
    uint32_t *ids;      /* [n_prompt + max_tokens] prompt, then generated tokens */
    float *logits;      /* [n_vocab] */
    text_buf text;
    FILE *dump;
} run_state;

static void run_state_free(run_state *r) {
    if (r->dump) fclose(r->dump);
    free(r->text.p);
    free(r->logits);
    free(r->ids);
    lmm_sampler_free(r->s);
    lmm_transformer_free(r->t);
    if (r->w_loaded) lmm_weights_free(&r->w);
    lmm_tokenizer_free(r->tok);
    if (r->desc_open) lmm_model_desc_free(&r->desc);
}

static int encode_prompt(run_state *r, const char *prompt, uint32_t max_tokens, size_t *n_prompt) {
    size_t len = strlen(prompt), cap = len + 16, n = 0;
    for (;;) {
        free(r->ids);
        if (cap > SIZE_MAX / sizeof *r->ids - max_tokens) return lmm_error_set("prompt is too long");
        r->ids = malloc((cap + max_tokens) * sizeof *r->ids);
        if (!r->ids) return lmm_error_set("out of memory");
        if (lmm_tokenizer_encode(r->tok, prompt, len, LMM_TOK_ADD_SPECIAL, r->ids, cap, &n))
            return lmm_error_prefix("prompt");
        if (n <= cap) break;
        cap = n;
    }
    if (n == 0) { /* empty prompt: start from BOS, as llama2.c does */
        uint32_t bos = lmm_tokenizer_bos(r->tok);
        if (bos == UINT32_MAX) bos = r->desc.bos_id;
        r->ids[n++] = bos;
    }
    *n_prompt = n;
    return 0;
}

static int write_logits(run_state *r, const char *path, const float *logits, size_t n) {
    if (fwrite(logits, sizeof *logits, n, r->dump) != n)
        return lmm_error_set("%s: write failed: %s", path, strerror(errno));
    return 0;
}

static int cmd_run(int argc, char **argv) {
    run_args a;
    int prc = parse_run_args(argc, argv, &a);
    if (prc == 1) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (prc) return EXIT_USAGE;
    if (a.isa) {
        lmm_isa isa;
        if (lmm_hal_isa_parse(a.isa, &isa)) {
            fprintf(stderr, "lmlaunch: --isa: '%s' is not scalar, avx2 or avx512\n", a.isa);
            return EXIT_USAGE;
        }
        if (lmm_hal_isa_set(isa)) {
            fprintf(stderr, "lmlaunch: --isa %s: %s\n", a.isa, lmm_error_get());
            return EXIT_USAGE;
        }
    }
    if (!a.seed_given) a.sampling.seed = clock_seed();

    run_state r;
    memset(&r, 0, sizeof r);
    int rc = 1;
    struct stat st;
    if (stat(a.model, &st) != 0) {
        fprintf(stderr, "lmlaunch: %s: %s\n", a.model, strerror(errno));
        return 1;
    }
    if (a.tokenizer && stat(a.tokenizer, &st) != 0) {
        fprintf(stderr, "lmlaunch: %s: %s\n", a.tokenizer, strerror(errno));
        return 1;
    }
    if (lmm_model_desc_open(&r.desc, a.model)) {
        rc = fail(NULL);
        goto out;
    }
    r.desc_open = true;
    if (lmm_tokenizer_load_for_model(&r.tok, &r.desc, a.tokenizer)) {
        rc = fail(NULL);
        goto out;
    }
    const lmm_hparams *hp = &r.desc.hp;
    if (lmm_tokenizer_vocab_size(r.tok) > hp->n_vocab) {
        fprintf(stderr, "lmlaunch: the tokenizer has %u tokens but the model only %u\n",
                lmm_tokenizer_vocab_size(r.tok), hp->n_vocab);
        goto out;
    }

    size_t n_prompt = 0;
    if (encode_prompt(&r, a.prompt, a.max_tokens, &n_prompt)) {
        rc = fail(NULL);
        goto out;
    }
    uint32_t n_ctx = a.ctx;
    if (!n_ctx) {
        uint64_t want = (uint64_t)n_prompt + a.max_tokens;
        n_ctx = want < hp->max_seq_len ? (uint32_t)want : hp->max_seq_len;
    }
    if (n_prompt > n_ctx) {
        fprintf(stderr, "lmlaunch: the prompt is %zu tokens but the context holds %u (see --ctx)\n", n_prompt, n_ctx);
        goto out;
    }

    if (lmm_weights_load(&r.w, &r.desc)) {
        rc = fail(NULL);
        goto out;
    }
    r.w_loaded = true;
    lmm_transformer_opts topts = {n_ctx, 0, a.threads};
    lmm_sampler_opts sopts = a.sampling;
    if (lmm_transformer_init(&r.t, &r.w, &topts) || lmm_sampler_init(&r.s, hp->n_vocab, &sopts)) {
        rc = fail(NULL);
        goto out;
    }
    r.logits = malloc((size_t)hp->n_vocab * sizeof *r.logits);
    r.text.cap = (size_t)a.max_tokens * 16 + 256;
    r.text.p = malloc(r.text.cap);
    if (!r.logits || !r.text.p) {
        lmm_error_set("out of memory");
        rc = fail(NULL);
        goto out;
    }
    if (a.dump_logits && !(r.dump = fopen(a.dump_logits, "wb"))) {
        fprintf(stderr, "lmlaunch: %s: %s\n", a.dump_logits, strerror(errno));
        goto out;
    }

    uint32_t eos = lmm_tokenizer_eos(r.tok);
    if (eos == UINT32_MAX) eos = r.desc.eos_id;
    /* llama2.c's run.c also ends a story at BOS (id 1 in its checkpoints). */
    uint32_t bos_stop = r.desc.format == LMM_FORMAT_LLAMA2C ? lmm_tokenizer_bos(r.tok) : UINT32_MAX;
    for (size_t i = 0; i < n_prompt; i++) lmm_sampler_accept(r.s, r.ids[i]);

    double t0 = now_s();
    if (lmm_transformer_forward(r.t, r.ids, (uint32_t)n_prompt, 0, r.logits, 0)) {
        rc = fail(NULL);
        goto out;
    }
    double t_prefill = now_s() - t0, t_decode = 0.0;
    uint32_t n_gen = 0, n_decode_steps = 0, pos = (uint32_t)n_prompt;
    const char *stop = "max_tokens";
    char piece[1024];
    for (uint32_t step = 0; step < a.max_tokens; step++) {
        if (r.dump && write_logits(&r, a.dump_logits, r.logits, hp->n_vocab)) {
            rc = fail(NULL);
            goto out;
        }
        uint32_t next = lmm_sampler_sample(r.s, r.logits);
        if (next == eos || next == bos_stop) {
            stop = "eos";
            break;
        }
        size_t plen = 0;
        if (lmm_tokenizer_decode_token(r.tok, r.ids[pos - 1], next, piece, sizeof piece, &plen) ||
            text_append(&r.text, piece, plen)) {
            rc = fail(NULL);
            goto out;
        }
        fwrite(piece, 1, plen, stdout);
        fflush(stdout);
        lmm_sampler_accept(r.s, next);
        r.ids[pos] = next;
        n_gen++;
        if (step + 1 == a.max_tokens) break;
        if (pos + 1 >= n_ctx) {
            stop = "ctx";
            fprintf(stderr, "\nlmlaunch: stopped at the end of the context (%u positions; see --ctx)\n", n_ctx);
            break;
        }
        double t1 = now_s();
        if (lmm_transformer_forward(r.t, &r.ids[pos], 1, pos, r.logits, 0)) {
            rc = fail(NULL);
            goto out;
        }
        t_decode += now_s() - t1;
        n_decode_steps++;
        pos++;
    }
    fputc('\n', stdout);
    if (r.dump && fflush(r.dump) != 0) {
        fprintf(stderr, "lmlaunch: %s: write failed: %s\n", a.dump_logits, strerror(errno));
        goto out;
    }

    double prefill_tps = t_prefill > 0 ? (double)n_prompt / t_prefill : 0.0;
    double decode_tps = t_decode > 0 ? (double)n_decode_steps / t_decode : 0.0;
    const char *isa_name = lmm_hal_isa_name(lmm_hal_isa());
    int threads = a.threads;
    if (threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        threads = c > 0 ? (int)c : 1;
    }
    fprintf(stderr, "lmlaunch: prompt %zu tokens, %.1f tok/s prefill; %u generated, %.1f tok/s decode (%s, %d threads)\n",
            n_prompt, prefill_tps, n_gen, decode_tps, isa_name, threads);
    if (a.json) {
        json_object *o = json_object_new_object();
        json_object *toks = json_object_new_array();
        for (uint32_t i = 0; i < n_gen; i++) json_object_array_add(toks, json_object_new_int64(r.ids[n_prompt + i]));
        json_object_object_add(o, "text", json_object_new_string_len(r.text.p, (int)r.text.len));
        json_object_object_add(o, "tokens", toks);
        json_object_object_add(o, "n_prompt", json_object_new_int64((int64_t)n_prompt));
        json_object_object_add(o, "n_generated", json_object_new_int64(n_gen));
        json_object_object_add(o, "stop", json_object_new_string(stop));
        json_object_object_add(o, "prefill_tokens_per_s", json_object_new_double(prefill_tps));
        json_object_object_add(o, "decode_tokens_per_s", json_object_new_double(decode_tps));
        json_object_object_add(o, "peak_rss_bytes", json_object_new_int64((int64_t)peak_rss_bytes()));
        json_object_object_add(o, "isa", json_object_new_string(isa_name));
        json_object_object_add(o, "threads", json_object_new_int(threads));
        json_object_object_add(o, "n_ctx", json_object_new_int64(n_ctx));
        /* as a string: a JSON number loses bits above 2^53 in most readers */
        char seed[32];
        snprintf(seed, sizeof seed, "%" PRIu64, a.sampling.seed);
        json_object_object_add(o, "seed", json_object_new_string(seed));
        puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(o);
    }
    rc = fflush(stdout) == 0 ? 0 : 1;

out:
    run_state_free(&r);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (strcmp(cmd, "run") == 0) return cmd_run(argc - 2, argv + 2);
    if (cmd[0] == '-') {
        fprintf(stderr, "lmlaunch: unknown option '%s' (see lmlaunch --help)\n", cmd);
        return EXIT_USAGE;
    }
    fprintf(stderr, "lmlaunch: '%s': not implemented yet (issue 4)\n", cmd);
    return EXIT_USAGE;
}
