/* model/tokenizer/unigram.c — Unigram language-model tokenization (T5, XLM-R,
 * SentencePiece "unigram" models): the text is normalised as SentencePiece does
 * (precompiled charsmap, whitespace rules, U+2581), then the segmentation with the
 * highest total piece score is found by Viterbi over character positions. A
 * character no piece covers becomes <unk> (score: lowest piece score - 10); runs of
 * <unk> are fused, and with byte fallback an <unk> is spelt as <0xXX> tokens.
 *
 * Pieces are found with a sorted index: at each position the range of pieces
 * sharing the text's next k bytes is narrowed by binary search, so lookups cost
 * O(log V) per byte and stop as soon as no piece continues the text. */
#include "tok_internal.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "lmm/error.h"

static const lmm_tokenizer *sort_ctx;

static int cmp_piece(const void *a, const void *b, void *ctx) {
    const lmm_tokenizer *t = ctx;
    const tok_piece *pa = &t->pieces[*(const uint32_t *)a], *pb = &t->pieces[*(const uint32_t *)b];
    size_t n = pa->len < pb->len ? pa->len : pb->len;
    int c = memcmp(pa->text, pb->text, n);
    if (c) return c;
    if (pa->len != pb->len) return pa->len < pb->len ? -1 : 1;
    uint32_t ia = *(const uint32_t *)a, ib = *(const uint32_t *)b;
    return ia < ib ? -1 : ia > ib;
}

void tok_ugm_free(lmm_tokenizer *t) {
    free(t->ugm_sorted);
    t->ugm_sorted = NULL;
    t->ugm_n = 0;
}

int tok_ugm_prepare(lmm_tokenizer *t, const char *file) {
    (void)sort_ctx;
    tok_ugm_free(t);
    t->ugm_sorted = malloc((size_t)t->n_vocab * sizeof *t->ugm_sorted);
    if (!t->ugm_sorted) return lmm_error_set("%s: out of memory", file);
    float min = FLT_MAX, max = -FLT_MAX;
    for (uint32_t i = 0; i < t->n_vocab; i++) {
        const tok_piece *p = &t->pieces[i];
        if (p->len == 0 || !(p->type == TOK_TYPE_NORMAL || p->type == TOK_TYPE_USER_DEFINED ||
                             p->type == TOK_TYPE_UNDEFINED))
            continue;
        t->ugm_sorted[t->ugm_n++] = i;
        if (p->type != TOK_TYPE_USER_DEFINED) {
            if (p->score < min) min = p->score;
            if (p->score > max) max = p->score;
        }
    }
    if (t->ugm_n == 0) return lmm_error_set("%s: unigram model without pieces", file);
    qsort_r(t->ugm_sorted, t->ugm_n, sizeof *t->ugm_sorted, cmp_piece, t);
    t->min_score = min;
    t->max_score = max;
    return 0;
}

/* In [lo, hi) (pieces sorting equal on their first k bytes), the first index whose
 * piece is longer than k with byte k >= c (strict: > c). */
static uint32_t bound(const lmm_tokenizer *t, uint32_t lo, uint32_t hi, size_t k, unsigned char c, int strict) {
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        const tok_piece *p = &t->pieces[t->ugm_sorted[mid]];
        int before = p->len <= k || (strict ? (unsigned char)p->text[k] <= c : (unsigned char)p->text[k] < c);
        if (before) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* Path scores. Ties between segmentations are decided by rounding, so each model
 * follows its reference: Hugging Face sums in double; SentencePiece keeps the best
 * score per position as a float, adds a piece's score to it in double (its user-
 * defined bonus, length * max - 0.1, makes the expression double) and compares that
 * with the stored float, while the <unk> candidate is summed in float. */
typedef struct {
    double score;      /* best total score of text[0..i) */
    uint32_t from;     /* start of the last piece on that path */
    uint32_t id;       /* that piece (t->unk for an unknown character) */
} ugm_node;

static int viterbi(const lmm_tokenizer *t, const char *s, size_t n, tok_ids *out) {
    if (n == 0) return 0;
    if (n > UINT32_MAX - 1) return lmm_error_set("%s tokenizer: text too long", t->name);
    ugm_node *best = malloc((n + 1) * sizeof *best);
    if (!best) return lmm_error_set("out of memory for the lattice of %zu bytes", n);
    for (size_t i = 0; i <= n; i++) best[i].score = -DBL_MAX, best[i].from = 0, best[i].id = TOK_NONE;
    best[0].score = 0;
    double unk_score = (double)t->min_score - t->unk_penalty;
    for (size_t i = 0; i < n;) {
        size_t cl = tok_utf8_len_lead((const unsigned char *)s + i, n - i);
        if (best[i].score == -DBL_MAX) { /* not reachable (cannot happen: unk covers all) */
            i += cl;
            continue;
        }
        int single = 0;
        uint32_t lo = 0, hi = t->ugm_n;
        for (size_t k = 0; i + k < n && lo < hi; k++) {
            unsigned char c = (unsigned char)s[i + k];
            lo = bound(t, lo, hi, k, c, 0);
            hi = bound(t, lo, hi, k, c, 1);
            if (lo < hi && t->pieces[t->ugm_sorted[lo]].len == k + 1) {
                uint32_t id = t->ugm_sorted[lo];
                const tok_piece *p = &t->pieces[id];
                double sc = p->type == TOK_TYPE_USER_DEFINED ? (double)(k + 1) * t->max_score - 0.1 : p->score;
                double tot = best[i].score + sc;
                if (tot > best[i + k + 1].score) {
                    best[i + k + 1].score = t->ugm_float ? (double)(float)tot : tot;
                    best[i + k + 1].from = (uint32_t)i;
                    best[i + k + 1].id = id;
                }
                if (k + 1 == cl) single = 1;
            }
        }
        if (!single) {
            double tot = best[i].score + unk_score;
            if (t->ugm_float) tot = (double)((float)best[i].score + (float)unk_score);
            if (tot > best[i + cl].score) {
                best[i + cl].score = t->ugm_float ? (double)(float)tot : tot;
                best[i + cl].from = (uint32_t)i;
                best[i + cl].id = t->unk;
            }
        }
        i += cl;
    }
    /* walk back, then emit in order */
    size_t cnt = 0;
    for (size_t i = n; i > 0; i = best[i].from) cnt++;
    uint32_t *path = malloc(cnt * 2 * sizeof *path); /* (start, id) pairs, reversed */
    if (!path) {
        free(best);
        return lmm_error_set("out of memory");
    }
    size_t k = cnt;
    for (size_t i = n; i > 0; i = best[i].from) {
        k--;
        path[2 * k] = best[i].from;
        path[2 * k + 1] = best[i].id;
    }
    int rc = 0;
    for (size_t j = 0; j < cnt && rc == 0; j++) {
        uint32_t id = path[2 * j + 1];
        if (id == t->unk && t->byte_fallback) {
            size_t a = path[2 * j], b = j + 1 < cnt ? path[2 * j + 2] : n;
            for (size_t q = a; q < b && rc == 0; q++) {
                uint32_t bid = t->byte_ids[(unsigned char)s[q]];
                rc = tok_ids_push(out, bid != TOK_NONE ? bid : t->unk);
            }
            continue;
        }
        if (id == t->unk && id != TOK_NONE && out->n > 0 && out->v[out->n - 1] == t->unk && j > 0 &&
            path[2 * j - 1] == t->unk)
            continue; /* runs of unknown characters are one <unk> */
        if (id == TOK_NONE) rc = lmm_error_set("%s tokenizer: no <unk> token for an unknown character", t->name);
        else rc = tok_ids_push(out, id);
    }
    free(path);
    free(best);
    return rc;
}

typedef struct {
    const lmm_tokenizer *t;
    tok_ids *out;
} ugm_ctx;

static int ugm_word(void *ctx, const char *s, size_t n) {
    ugm_ctx *c = ctx;
    return viterbi(c->t, s, n, c->out);
}

int tok_ugm_encode(const lmm_tokenizer *t, const char *text, size_t len, bool prefix, tok_ids *out) {
    if (len == 0) return 0;
    tok_str norm = {0};
    if (t->spm_normalize) {
        if (tok_spm_normalize(t, text, len, prefix && t->add_space_prefix, &norm)) {
            free(norm.v);
            return -1;
        }
        text = norm.v ? norm.v : "";
        len = norm.n;
    }
    ugm_ctx c = {t, out};
    int rc = tok_pre_split(t, text, len, ugm_word, &c);
    free(norm.v);
    return rc;
}
