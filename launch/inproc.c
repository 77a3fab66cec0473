/* launch/inproc.c — `lmlaunch run --in-process`: the whole engine in this process.
 *
 * Open a model, tokenize the prompt, prefill it in one forward pass, then sample and
 * print tokens as they come. The process group (`lmlaunch run`) must give exactly the
 * same tokens and logits; the exactness tests compare the two. */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lmlaunch.h"
#include "lmm/error.h"
#include "lmm/hal.h"
#include "lmm/model.h"
#include "lmm/sampler.h"
#include "lmm/tokenizer.h"
#include "lmm/transformer.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "--dump-logits writes the host's floats; it assumes a little-endian host"
#endif

/* ---- helpers ------------------------------------------------------------------- */

double lmlaunch_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t lmlaunch_clock_seed(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^ ((uint64_t)getpid() << 32);
}

/* Peak resident set of this process in bytes (VmHWM), from getrusage. */
uint64_t lmlaunch_peak_rss_bytes(void) {
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
    uint32_t *win;      /* [n_ctx / 2] --context-shift: the window run again after a shift */
    float *logits;      /* [n_vocab] */
    text_buf text;
    FILE *dump;
} run_state;

static void run_state_free(run_state *r) {
    if (r->dump) fclose(r->dump);
    free(r->text.p);
    free(r->logits);
    free(r->ids);
    free(r->win);
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

/* `lmlaunch run --in-process`: a (parsed, seed set) -> exit status. The reference the
 * process group is compared against (tests/launch, tests/model/test_lmlaunch.c). */
int lmlaunch_run_inprocess(run_args a) {
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
    /* The context checks of the scheduler's GENERATE (docs/protocol.md): an explicit
     * --max-tokens must fit with the prompt unless --context-shift; the default ends at
     * the end of the context. */
    uint32_t limit = a.ctx ? a.ctx : hp->max_seq_len, n_ctx = limit;
    if (n_prompt > limit) {
        fprintf(stderr, "lmlaunch: the prompt is %zu tokens but the context holds %u (see --ctx)\n", n_prompt, limit);
        goto out;
    }
    if (!a.context_shift && a.max_tokens_given && (uint64_t)n_prompt + a.max_tokens > limit) {
        fprintf(stderr,
                "lmlaunch: the prompt (%zu tokens) plus max_tokens (%u) exceeds the context of %u tokens; use "
                "--context-shift to slide past it\n",
                n_prompt, a.max_tokens, limit);
        goto out;
    }
    if (a.context_shift && n_prompt >= limit && a.max_tokens > 0) {
        fprintf(stderr,
                "lmlaunch: the prompt (%zu tokens) fills the context of %u tokens: a context shift needs a shorter "
                "prompt\n",
                n_prompt, limit);
        goto out;
    }
    if (!a.ctx && !a.context_shift) { /* no more KV than this run can use */
        uint64_t want = (uint64_t)n_prompt + a.max_tokens;
        n_ctx = want < limit ? (uint32_t)want : limit;
    }
    uint32_t keep = n_ctx / 2 > 1 ? n_ctx / 2 : 1; /* --context-shift: the window's length */
    if (a.context_shift && !(r.win = malloc((size_t)keep * sizeof *r.win))) {
        lmm_error_set("out of memory");
        rc = fail(NULL);
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

    double t0 = lmlaunch_now_s();
    if (lmm_transformer_forward(r.t, r.ids, (uint32_t)n_prompt, 0, r.logits, 0)) {
        rc = fail(NULL);
        goto out;
    }
    double t_prefill = lmlaunch_now_s() - t0, t_decode = 0.0;
    /* pos: tokens so far (index into ids); kv_pos: positions in the KV, == pos until a
     * context shift */
    uint32_t n_gen = 0, n_decode_steps = 0, pos = (uint32_t)n_prompt, kv_pos = pos;
    const char *stop = "max_tokens";
    char piece[1024];
    /* A default max_tokens with a prompt that fills the context: nothing is generated
     * (the scheduler's rule: no position is left). */
    if (n_prompt >= n_ctx && a.max_tokens > 0) {
        stop = "ctx";
        fprintf(stderr, "lmlaunch: stopped at the end of the context (%u positions; see --ctx)\n", n_ctx);
        a.max_tokens = 0;
    }
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
        if (kv_pos + 1 >= n_ctx && a.context_shift) {
            /* docs/kv-cache.md "Context shift": the first token and the last keep - 1
             * tokens run again from position 0; the next token comes from that window */
            r.win[0] = keep > 1 ? r.ids[0] : r.ids[pos];
            if (keep > 1) memcpy(r.win + 1, r.ids + pos + 1 - (keep - 1), (size_t)(keep - 1) * sizeof *r.win);
            double t1 = lmlaunch_now_s();
            if (lmm_transformer_forward(r.t, r.win, keep, 0, r.logits, 0)) {
                rc = fail(NULL);
                goto out;
            }
            t_decode += lmlaunch_now_s() - t1;
            kv_pos = keep;
            pos++;
            continue;
        }
        if (kv_pos + 1 >= n_ctx) {
            stop = "ctx";
            fprintf(stderr, "\nlmlaunch: stopped at the end of the context (%u positions; see --ctx)\n", n_ctx);
            break;
        }
        double t1 = lmlaunch_now_s();
        if (lmm_transformer_forward(r.t, &r.ids[pos], 1, kv_pos, r.logits, 0)) {
            rc = fail(NULL);
            goto out;
        }
        t_decode += lmlaunch_now_s() - t1;
        n_decode_steps++;
        pos++;
        kv_pos++;
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
        json_object_object_add(o, "peak_rss_bytes", json_object_new_int64((int64_t)lmlaunch_peak_rss_bytes()));
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

