/* model/tokenizer/unigram.c — Unigram language-model tokenization (T5, XLM-R,
 * SentencePiece "unigram" models): the text is normalised as SentencePiece does
 * (precompiled charsmap, whitespace rules, U+2581), then the segmentation with the
 * highest total piece score is found by Viterbi over character positions. A
 * character no piece covers becomes <unk> (score: lowest piece score - 10); runs of
 * <unk> are fused, and with byte fallback an <unk> is spelt as <0xXX> tokens.
 *
 * Pieces are found with a byte trie built from the sorted pieces: the lookups at
 * a position walk down the trie and stop as soon as no piece continues the text. */
#include "tok_internal.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "lmm/error.h"

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
    free(t->trie.piece);
    free(t->trie.kid0);
    free(t->trie.nkid);
    free(t->trie.label);
    memset(&t->trie, 0, sizeof t->trie);
}

static void trie_build(lmm_tokenizer *t, uint32_t node, uint32_t lo, uint32_t hi, size_t depth,
                       uint32_t *next_free);

int tok_ugm_prepare(lmm_tokenizer *t, const char *file) {
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
    /* nodes: at most one per byte of the pieces, plus the root; the recursion is
     * as deep as the longest piece */
    size_t bytes = 1;
    for (uint32_t i = 0; i < t->ugm_n; i++) bytes += t->pieces[t->ugm_sorted[i]].len;
    if (bytes >= UINT32_MAX) return lmm_error_set("%s: unigram vocabulary too large", file);
    tok_trie *tr = &t->trie;
    tr->piece = malloc(bytes * sizeof *tr->piece);
    tr->kid0 = malloc(bytes * sizeof *tr->kid0);
    tr->nkid = malloc(bytes * sizeof *tr->nkid);
    tr->label = malloc(bytes);
    if (!tr->piece || !tr->kid0 || !tr->nkid || !tr->label) return lmm_error_set("%s: out of memory", file);
    uint32_t next = 1;
    tr->label[0] = 0;
    trie_build(t, 0, 0, t->ugm_n, 0, &next);
    tr->n = next;
    t->min_score = min;
    t->max_score = max;
    return 0;
}

/* Trie over the sorted pieces: node i has label[i] (the byte leading to it),
 * piece[i] (TOK_NONE when no piece ends here) and children kid0[i] ..
 * kid0[i] + nkid[i] - 1, contiguous and sorted by label. Node 0 is the root. */
static void trie_build(lmm_tokenizer *t, uint32_t node, uint32_t lo, uint32_t hi, size_t depth,
                       uint32_t *next_free) {
    tok_trie *tr = &t->trie;
    tr->piece[node] = TOK_NONE;
    if (lo < hi && t->pieces[t->ugm_sorted[lo]].len == depth) {
        tr->piece[node] = t->ugm_sorted[lo];
        while (lo < hi && t->pieces[t->ugm_sorted[lo]].len == depth) lo++; /* duplicates */
    }
    /* children: runs of equal byte at DEPTH */
    uint32_t n = 0;
    for (uint32_t i = lo; i < hi;) {
        unsigned char c = (unsigned char)t->pieces[t->ugm_sorted[i]].text[depth];
        while (i < hi && (unsigned char)t->pieces[t->ugm_sorted[i]].text[depth] == c) i++;
        n++;
    }
    tr->kid0[node] = *next_free;
    tr->nkid[node] = (uint16_t)n;
    uint32_t first = *next_free;
    *next_free += n;
    uint32_t k = 0;
    for (uint32_t i = lo; i < hi; k++) {
        unsigned char c = (unsigned char)t->pieces[t->ugm_sorted[i]].text[depth];
        uint32_t j = i;
        while (j < hi && (unsigned char)t->pieces[t->ugm_sorted[j]].text[depth] == c) j++;
        tr->label[first + k] = c;
        trie_build(t, first + k, i, j, depth + 1, next_free);
        i = j;
    }
}

static uint32_t trie_child(const tok_trie *tr, uint32_t node, unsigned char c) {
    uint32_t lo = tr->kid0[node], end = lo + tr->nkid[node], hi = end;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (tr->label[mid] < c) lo = mid + 1;
        else hi = mid;
    }
    return lo < end && tr->label[lo] == c ? lo : TOK_NONE;
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

/* Viterbi over one segment s[0..n) that no piece spans out of; START is the best
 * score of the text before it (kept so that rounding is as over the whole text).
 * Returns the best score at the end in *end. */
static int viterbi_segment(const lmm_tokenizer *t, const char *s, size_t n, double start, double *end,
                           int *prev_unk, ugm_node *best, uint32_t *path, tok_ids *out) {
    for (size_t i = 0; i <= n; i++) best[i].score = -DBL_MAX, best[i].from = 0, best[i].id = TOK_NONE;
    best[0].score = start;
    double unk_score = (double)t->min_score - t->unk_penalty;
    for (size_t i = 0; i < n;) {
        size_t cl = tok_utf8_len_lead((const unsigned char *)s + i, n - i);
        int single = 0;
        uint32_t node = 0;
        for (size_t k = 0; i + k < n; k++) {
            node = trie_child(&t->trie, node, (unsigned char)s[i + k]);
            if (node == TOK_NONE) break;
            if (t->trie.piece[node] != TOK_NONE) {
                uint32_t id = t->trie.piece[node];
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
    *end = best[n].score;
    /* walk back into path[] as (start, id) pairs, then emit in order */
    size_t cnt = 0;
    for (size_t i = n; i > 0; i = best[i].from) cnt++;
    size_t k = cnt;
    for (size_t i = n; i > 0; i = best[i].from) {
        k--;
        path[2 * k] = best[i].from;
        path[2 * k + 1] = best[i].id;
    }
    int rc = 0;
    for (size_t j = 0; j < cnt && rc == 0; j++) {
        uint32_t id = path[2 * j + 1];
        if (id == TOK_NONE) return lmm_error_set("%s tokenizer: no <unk> token for an unknown character", t->name);
        if (id == t->unk && t->byte_fallback) {
            size_t a = path[2 * j], b = j + 1 < cnt ? path[2 * j + 2] : n;
            for (size_t q = a; q < b && rc == 0; q++) {
                uint32_t bid = t->byte_ids[(unsigned char)s[q]];
                rc = tok_ids_push(out, bid != TOK_NONE ? bid : t->unk);
            }
            continue;
        }
        /* runs of <unk> are one, also across segments */
        if (id == t->unk && (j > 0 ? path[2 * j - 1] == t->unk : *prev_unk)) continue;
        rc = tok_ids_push(out, id);
    }
    *prev_unk = cnt > 0 && path[2 * cnt - 1] == t->unk;
    return rc;
}

static int viterbi(const lmm_tokenizer *t, const char *s, size_t n, tok_ids *out) {
    if (n == 0) return 0;
    if (n > UINT32_MAX - 1) return lmm_error_set("%s tokenizer: text too long", t->name);
    /* segments: cut where no piece can span (cut.c); buffers sized for the
     * longest segment */
    size_t longest = 0;
    for (size_t a = 0; a < n;) {
        size_t b = tok_next_cut(t, s, n, a);
        if (tok_segment_check(t, b - a)) return -1;
        if (b - a > longest) longest = b - a;
        a = b;
    }
    ugm_node *best = malloc((longest + 1) * sizeof *best);
    uint32_t *path = malloc((longest + 1) * 2 * sizeof *path);
    if (!best || !path) {
        free(best);
        free(path);
        return lmm_error_set("out of memory for the lattice of %zu bytes", longest);
    }
    int rc = 0;
    double score = 0;
    int prev_unk = 0;
    for (size_t a = 0; a < n && rc == 0;) {
        size_t b = tok_next_cut(t, s, n, a);
        rc = viterbi_segment(t, s + a, b - a, score, &score, &prev_unk, best, path, out);
        a = b;
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
