/* model/sample/sampler.c — choosing the next token from logits (lmm/sampler.h).
 *
 * Order: repetition penalty (once per distinct token of the last repeat_last_n
 * accepted tokens) -> greedy argmax when temperature == 0 -> temperature ->
 * top-k -> softmax over the candidates -> top-p -> one draw from xorshift64*.
 *
 * Determinism: candidates are ranked by (penalised logit before temperature,
 * descending; then id, ascending) — a total order, so the ranking never depends
 * on the sorting algorithm, and dividing by the temperature (which can round two
 * different logits to the same value) cannot reorder or tie them. Sums run in
 * candidate order. exp is lmm_expf, the engine's one implementation. Hence
 * top-k = 1, or a tiny top-p, picks exactly the greedy token.
 * All buffers are allocated at init; sampling allocates nothing. */
#include "lmm/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lmm/error.h"
#include "lmm/hal.h"

#define DEFAULT_REPEAT_LAST_N 64u

typedef struct {
    float key;      /* penalised logit, before temperature: the ranking key */
    float e;        /* exp(scaled - max) */
    uint32_t id;
} candidate;

struct lmm_sampler {
    lmm_sampler_opts o;
    uint32_t n_vocab;
    uint64_t rng;            /* xorshift64* state, never 0 */
    candidate *cand;         /* [n_vocab] */
    uint8_t *mark;           /* [n_vocab] 1 while a token's penalty is applied */
    uint32_t *recent;        /* [repeat_last_n] ring of accepted tokens */
    uint32_t n_recent, recent_head;
};

void lmm_sampler_opts_default(lmm_sampler_opts *o) {
    o->temperature = 0.8f;
    o->top_k = 40;
    o->top_p = 0.95f;
    o->repeat_penalty = 1.0f;
    o->repeat_last_n = DEFAULT_REPEAT_LAST_N;
    o->seed = 0;
}

/* splitmix64 of the seed: nearby seeds give unrelated streams; 0 is avoided. */
static uint64_t seed_state(uint64_t seed) {
    uint64_t z = seed + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return z ? z : 0x2545f4914f6cdd1dull;
}

static uint64_t xorshift64s(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* Uniform in [0, 1) with 24 random bits (exact in float). */
static float draw_unit(uint64_t *s) { return (float)(xorshift64s(s) >> 40) * (1.0f / 16777216.0f); }

int lmm_sampler_init(lmm_sampler **out, uint32_t n_vocab, const lmm_sampler_opts *o) {
    *out = NULL;
    lmm_sampler_opts opts;
    if (o) opts = *o;
    else lmm_sampler_opts_default(&opts);
    if (n_vocab == 0) return lmm_error_set("sampler: vocabulary of 0 tokens");
    if (!(opts.temperature >= 0.0f) || isinf(opts.temperature))
        return lmm_error_set("sampler: temperature %g must be finite and >= 0", (double)opts.temperature);
    if (!(opts.top_p > 0.0f && opts.top_p <= 1.0f))
        return lmm_error_set("sampler: top-p %g must be in (0, 1]", (double)opts.top_p);
    if (!(opts.repeat_penalty > 0.0f) || isinf(opts.repeat_penalty))
        return lmm_error_set("sampler: repetition penalty %g must be finite and > 0", (double)opts.repeat_penalty);
    if (opts.repeat_last_n == 0) opts.repeat_last_n = DEFAULT_REPEAT_LAST_N;
    if (opts.repeat_last_n > (1u << 24)) return lmm_error_set("sampler: repeat_last_n %u is too large", opts.repeat_last_n);

    lmm_sampler *s = calloc(1, sizeof *s);
    if (!s) return lmm_error_set("out of memory");
    s->o = opts;
    s->n_vocab = n_vocab;
    s->rng = seed_state(opts.seed);
    s->cand = malloc((size_t)n_vocab * sizeof *s->cand);
    s->mark = calloc(n_vocab, 1);
    s->recent = malloc((size_t)opts.repeat_last_n * sizeof *s->recent);
    if (!s->cand || !s->mark || !s->recent) {
        lmm_sampler_free(s);
        return lmm_error_set("out of memory");
    }
    *out = s;
    return 0;
}

void lmm_sampler_free(lmm_sampler *s) {
    if (!s) return;
    free(s->cand);
    free(s->mark);
    free(s->recent);
    free(s);
}

void lmm_sampler_accept(lmm_sampler *s, uint32_t token) {
    uint32_t cap = s->o.repeat_last_n;
    s->recent[s->recent_head] = token;
    s->recent_head = (s->recent_head + 1) % cap;
    if (s->n_recent < cap) s->n_recent++;
}

/* Ranking: a before b when a's key is larger, or equal with a smaller id. */
static int ranks_before(const candidate *a, const candidate *b) {
    return a->key > b->key || (a->key == b->key && a->id < b->id);
}

static void penalise(lmm_sampler *s, float *logits) {
    float p = s->o.repeat_penalty;
    if (p == 1.0f) return;
    for (uint32_t i = 0; i < s->n_recent; i++) {
        uint32_t id = s->recent[i];
        if (id >= s->n_vocab || s->mark[id]) continue;
        s->mark[id] = 1;
        logits[id] = logits[id] > 0.0f ? logits[id] / p : logits[id] * p;
    }
    for (uint32_t i = 0; i < s->n_recent; i++)
        if (s->recent[i] < s->n_vocab) s->mark[s->recent[i]] = 0;
}

static uint32_t argmax(const float *logits, uint32_t n) {
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

/* Min-heap on rank (the root is the worst kept candidate). */
static void heap_down(candidate *h, uint32_t n, uint32_t i) {
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, worst = i;
        if (l < n && ranks_before(&h[worst], &h[l])) worst = l;
        if (r < n && ranks_before(&h[worst], &h[r])) worst = r;
        if (worst == i) return;
        candidate tmp = h[i];
        h[i] = h[worst];
        h[worst] = tmp;
        i = worst;
    }
}

/* Sorts h[0..n) best first: heapsort (in place, no allocation, unlike glibc's qsort).
 * The ranking is a total order, so the result does not depend on the algorithm. */
static void sort_ranked(candidate *h, uint32_t n) {
    for (uint32_t i = n / 2; i-- > 0;) heap_down(h, n, i);
    for (uint32_t end = n; end-- > 1;) {
        candidate tmp = h[0]; /* the worst left goes to the back */
        h[0] = h[end];
        h[end] = tmp;
        heap_down(h, end, 0);
    }
}

/* The k best of the vocabulary into cand[0..k), sorted by rank. */
static void select_top_k(lmm_sampler *s, const float *key, uint32_t k) {
    candidate *h = s->cand;
    for (uint32_t i = 0; i < k; i++) h[i] = (candidate){key[i], 0.0f, i};
    for (uint32_t i = k / 2; i-- > 0;) heap_down(h, k, i);
    for (uint32_t i = k; i < s->n_vocab; i++) {
        candidate c = {key[i], 0.0f, i};
        if (ranks_before(&c, &h[0])) {
            h[0] = c;
            heap_down(h, k, 0);
        }
    }
    sort_ranked(h, k);
}

uint32_t lmm_sampler_sample(lmm_sampler *s, float *logits) {
    const uint32_t n = s->n_vocab;
    penalise(s, logits);
    if (s->o.temperature == 0.0f) return argmax(logits, n);

    /* candidates, ranked when truncated by top-k */
    uint32_t nc = n;
    int ranked = 0;
    if (s->o.top_k > 0 && s->o.top_k < n) {
        nc = s->o.top_k;
        select_top_k(s, logits, nc);
        ranked = 1;
    } else {
        for (uint32_t i = 0; i < n; i++) s->cand[i] = (candidate){logits[i], 0.0f, i};
    }

    /* temperature (in place, as the header says), then softmax over the candidates */
    const float temp = s->o.temperature;
    for (uint32_t i = 0; i < n; i++) logits[i] = logits[i] / temp;
    float m = -INFINITY;
    for (uint32_t c = 0; c < nc; c++) m = fmaxf(m, logits[s->cand[c].id]);
    float sum = 0.0f;
    for (uint32_t c = 0; c < nc; c++) {
        s->cand[c].e = lmm_expf(logits[s->cand[c].id] - m);
        sum += s->cand[c].e;
    }

    /* top-p: the shortest ranked prefix holding at least top_p of the mass */
    float total = sum;
    if (s->o.top_p < 1.0f && nc > 1) {
        if (!ranked) {
            /* A candidate below (1-top_p)/(nc-1) of the mass cannot be in the nucleus
             * (as llama2.c argues): drop those before sorting. */
            float cutoff = (1.0f - s->o.top_p) * sum / (float)(nc - 1);
            uint32_t kept = 0;
            for (uint32_t c = 0; c < nc; c++)
                if (s->cand[c].e >= cutoff) s->cand[kept++] = s->cand[c];
            nc = kept ? kept : 1; /* the max has e = 1 >= cutoff; kept is never 0 */
            sort_ranked(s->cand, nc);
        }
        float target = s->o.top_p * sum, cum = 0.0f;
        uint32_t keep = nc;
        for (uint32_t c = 0; c < nc; c++) {
            cum += s->cand[c].e;
            if (cum >= target) {
                keep = c + 1;
                break;
            }
        }
        nc = keep;
        total = 0.0f;
        for (uint32_t c = 0; c < nc; c++) total += s->cand[c].e;
    }

    /* draw */
    float r = draw_unit(&s->rng) * total, acc = 0.0f;
    for (uint32_t c = 0; c < nc; c++) {
        acc += s->cand[c].e;
        if (r < acc) return s->cand[c].id;
    }
    return s->cand[nc - 1].id;
}
