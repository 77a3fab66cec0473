/* model/tokenizer/spm.c — SentencePiece BPE encoding (llama2.c, Llama 1/2, Mistral).
 *
 * The text is normalised as SentencePiece does for these models (a "dummy prefix"
 * space at the start, spaces written as U+2581 when the vocabulary stores them so),
 * split into UTF-8 characters, and then the adjacent pair whose concatenation is a
 * vocabulary piece with the highest score is merged, again and again; ties go to
 * the leftmost pair. Characters left without a piece become <0xXX> byte tokens
 * (byte fallback) or <unk>.
 *
 * Complexity: a binary heap of candidate pairs and a doubly linked list of symbols,
 * O(n log n) in the text length. Every symbol carries the id of its text, and a
 * pair is found in a map (id, id) -> (score, merged id) built at load from the
 * splits of every piece into two pieces, so the merge loop hashes no bytes. A
 * popped candidate is stale when either side has since been merged; that is
 * detected from the symbols' current ids. */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

#include "lmm/error.h"

typedef struct {
    uint32_t start, len;   /* byte range in the normalised text; len 0 = merged away */
    uint32_t id;           /* id of the text: a piece, an extra character (>= n_vocab),
                            * or TOK_NONE */
    int32_t prev, next;    /* neighbours, -1 at the ends */
} spm_sym;

/* Scratch reused by the segments of one call. */
typedef struct {
    spm_sym *sym;          /* [sym_cap] */
    size_t sym_cap;
    tok_heap heap;         /* [2 * sym_cap] */
} spm_ctx;

/* Heap priority of a score: higher scores first (an order-preserving map of the
 * float's bits, inverted). */
static uint32_t score_prio(float score) {
    uint32_t u;
    memcpy(&u, &score, 4);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ~u;
}

static int mergeable(const lmm_tokenizer *t, uint32_t id) {
    uint8_t ty = t->pieces[id].type;
    return ty == TOK_TYPE_NORMAL || ty == TOK_TYPE_USER_DEFINED || ty == TOK_TYPE_UNDEFINED;
}

/* ------------------------------------------------------------- preparation */

/* Above this many bytes hashed (sum of len^2 over the pieces: absurdly long
 * pieces), no pair map is built and pairs are looked up by their bytes. */
#define PAIR_WORK_MAX (64ull << 20)

static uint64_t extra_key(const char *s, size_t l) {
    uint64_t k = (uint64_t)l << 32;
    for (size_t i = 0; i < l; i++) k |= (uint64_t)(unsigned char)s[i] << (8 * i);
    return k;
}

static uint32_t extra_id(const lmm_tokenizer *t, const char *s, size_t l) {
    if (l > 4 || !t->n_spm_extra) return TOK_NONE;
    uint64_t k = extra_key(s, l);
    size_t lo = 0, hi = t->n_spm_extra;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->spm_extra[mid] < k) lo = mid + 1;
        else hi = mid;
    }
    return lo < t->n_spm_extra && t->spm_extra[lo] == k ? t->n_vocab + (uint32_t)lo : TOK_NONE;
}

/* Whether s[0..l) can be one initial symbol: one character (or one stray byte). */
static bool one_symbol(const char *s, size_t l) {
    return l == 1 || tok_utf8_len((const unsigned char *)s, l) == l;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Canonical (the map's id for its bytes) mergeable pieces of 2 bytes or more. */
static bool pair_target(const lmm_tokenizer *t, uint32_t id) {
    const tok_piece *p = &t->pieces[id];
    return p->len >= 2 && mergeable(t, id) && tok_lookup(t, p->text, p->len) == id;
}

int tok_spm_prepare(lmm_tokenizer *t, const char *file) {
    tok_pairmap_free(&t->spm_pairs);
    free(t->spm_extra);
    t->spm_extra = NULL;
    t->n_spm_extra = 0;
    uint64_t work = 0;
    for (uint32_t id = 0; id < t->n_vocab; id++) work += (uint64_t)t->pieces[id].len * t->pieces[id].len;
    if (work <= PAIR_WORK_MAX) {
        /* pass 1: count the splits of each piece into two symbols that can exist (a
         * piece, or one character that is no piece: an extra), collect the extras */
        uint64_t count = 0;
        uint64_t *ex = NULL; /* [ex_cap] */
        size_t n_ex = 0, ex_cap = 0;
        for (uint32_t id = 0; id < t->n_vocab; id++) {
            if (!pair_target(t, id)) continue;
            const tok_piece *p = &t->pieces[id];
            for (uint32_t k = 1; k < p->len; k++) {
                const char *x = p->text, *y = p->text + k;
                uint32_t kx = k, ky = p->len - k;
                bool px = tok_lookup(t, x, kx) != TOK_NONE, py = tok_lookup(t, y, ky) != TOK_NONE;
                bool sx = !px && one_symbol(x, kx), sy = !py && one_symbol(y, ky);
                if (!((px || sx) && (py || sy))) continue;
                count++;
                if (n_ex + 2 > ex_cap) {
                    size_t cap = ex_cap ? 2 * ex_cap : 64;
                    uint64_t *v = realloc(ex, cap * sizeof *v);
                    if (!v) {
                        free(ex);
                        return lmm_error_set("%s: out of memory", file);
                    }
                    ex = v;
                    ex_cap = cap;
                }
                if (sx) ex[n_ex++] = extra_key(x, kx);
                if (sy) ex[n_ex++] = extra_key(y, ky);
            }
        }
        if (n_ex) {
            qsort(ex, n_ex, sizeof *ex, cmp_u64);
            size_t u = 1;
            for (size_t i = 1; i < n_ex; i++) {
                if (ex[i] != ex[u - 1]) ex[u++] = ex[i];
            }
            n_ex = u;
        }
        t->spm_extra = ex;
        t->n_spm_extra = (uint32_t)n_ex;
        /* pass 2: the map */
        if (tok_pairmap_init(&t->spm_pairs, count ? count : 1)) return lmm_error_prefix("%s", file);
        for (uint32_t id = 0; id < t->n_vocab; id++) {
            if (!pair_target(t, id)) continue;
            const tok_piece *p = &t->pieces[id];
            uint32_t prio = score_prio(p->score);
            for (uint32_t k = 1; k < p->len; k++) {
                const char *x = p->text, *y = p->text + k;
                uint32_t kx = k, ky = p->len - k;
                uint32_t a = tok_lookup(t, x, kx), b = tok_lookup(t, y, ky);
                if (a == TOK_NONE) a = extra_id(t, x, kx);
                if (b == TOK_NONE) b = extra_id(t, y, ky);
                if (a != TOK_NONE && b != TOK_NONE) tok_pairmap_put(&t->spm_pairs, a, b, prio, id);
            }
        }
    }
    for (unsigned c = 0; c < 256; c++) {
        char b = (char)c;
        uint32_t id = tok_lookup(t, &b, 1);
        t->spm_char1[c] = id != TOK_NONE ? id : extra_id(t, &b, 1);
    }
    return 0;
}

/* ---------------------------------------------------------------- encoding */

static uint64_t pair_value(const lmm_tokenizer *t, const char *a, uint32_t la, uint32_t lb,
                           uint32_t ida, uint32_t idb);

/* Id of the initial symbol s[0..l) (one character). */
static uint32_t char_id(const lmm_tokenizer *t, const char *s, size_t l) {
    if (l == 1) return t->spm_char1[(unsigned char)s[0]];
    uint32_t id = tok_lookup(t, s, l);
    return id != TOK_NONE ? id : extra_id(t, s, l);
}

static void try_pair(const lmm_tokenizer *t, const char *text, const spm_sym *s, int32_t l,
                     tok_heap *h) {
    if (l < 0 || s[l].next < 0) return;
    int32_t r = s[l].next;
    uint64_t v = pair_value(t, text + s[l].start, s[l].len, s[r].len, s[l].id, s[r].id);
    if (v == UINT64_MAX) return;
    tok_cand c = {(v >> 32 << 32) | (uint32_t)l, r, s[l].id, s[r].id, (uint32_t)v};
    tok_heap_push(h, c);
}

/* Emits the ids of one final symbol (ID: the id of its text): its piece, else its
 * bytes, else <unk>. */
static int emit(const lmm_tokenizer *t, const char *text, uint32_t len, uint32_t id, tok_ids *out) {
    /* byte pieces only spell bytes (llama2.c's old .bin stores <0x85> as U+0085) */
    if (id < t->n_vocab && t->pieces[id].type != TOK_TYPE_UNUSED && t->pieces[id].type != TOK_TYPE_BYTE)
        return tok_ids_push(out, id);
    if (t->byte_fallback) {
        int all = 1;
        for (uint32_t i = 0; i < len; i++) all &= t->byte_ids[(unsigned char)text[i]] != TOK_NONE;
        if (all) {
            for (uint32_t i = 0; i < len; i++) {
                if (tok_ids_push(out, t->byte_ids[(unsigned char)text[i]])) return -1;
            }
            return 0;
        }
    }
    if (t->unk == TOK_NONE) return lmm_error_set("%s: no token for a character and no <unk>", t->name);
    return tok_ids_push(out, t->unk);
}

/* Value of the pair (a, b) at a[0..la) b: priority << 32 | merged id, or
 * UINT64_MAX when no merge applies. */
static uint64_t pair_value(const lmm_tokenizer *t, const char *a, uint32_t la, uint32_t lb,
                           uint32_t ida, uint32_t idb) {
    uint64_t v;
    if (t->spm_pairs.cap) return tok_pairmap_find(&t->spm_pairs, ida, idb, &v) ? v : UINT64_MAX;
    uint32_t id = tok_lookup(t, a, la + lb);
    if (id == TOK_NONE || !mergeable(t, id)) return UINT64_MAX;
    return ((uint64_t)score_prio(t->pieces[id].score) << 32) | id;
}

/* BPE over a segment of at most SMALL_SEG characters: the best pair (highest
 * score, leftmost on ties, as the heap orders them) is found by a scan, which is
 * cheaper than a heap at this size. */
#define SMALL_SEG 24

static int spm_small(const lmm_tokenizer *t, const char *text, size_t len, tok_ids *out) {
    uint32_t start[SMALL_SEG], slen[SMALL_SEG], id[SMALL_SEG];
    uint64_t val[SMALL_SEG]; /* [n - 1] pair i, i+1 */
    size_t n = 0;
    for (size_t i = 0; i < len; n++) {
        unsigned char c = (unsigned char)text[i];
        uint32_t l = c < 0x80 ? 1 : (uint32_t)tok_utf8_len_lead((const unsigned char *)text + i, len - i);
        start[n] = (uint32_t)i;
        slen[n] = l;
        id[n] = l == 1 ? t->spm_char1[c] : char_id(t, text + i, l);
        i += l;
    }
    for (size_t i = 0; i + 1 < n; i++) val[i] = pair_value(t, text + start[i], slen[i], slen[i + 1], id[i], id[i + 1]);
    while (n > 1) {
        size_t best = SIZE_MAX;
        uint64_t bp = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            if (val[i] != UINT64_MAX && (best == SIZE_MAX || (val[i] >> 32) < bp)) {
                bp = val[i] >> 32;
                best = i;
            }
        }
        if (best == SIZE_MAX) break;
        id[best] = (uint32_t)val[best];
        slen[best] += slen[best + 1];
        for (size_t i = best + 1; i + 1 < n; i++) {
            start[i] = start[i + 1];
            slen[i] = slen[i + 1];
            id[i] = id[i + 1];
            val[i] = val[i + 1];
        }
        n--;
        if (best > 0) val[best - 1] = pair_value(t, text + start[best - 1], slen[best - 1], slen[best], id[best - 1], id[best]);
        if (best + 1 < n) val[best] = pair_value(t, text + start[best], slen[best], slen[best + 1], id[best], id[best + 1]);
    }
    for (size_t i = 0; i < n; i++) {
        if (emit(t, text + start[i], slen[i], id[i], out)) return -1;
    }
    return 0;
}

/* BPE over one segment of normalised TEXT. */
static int spm_segment(spm_ctx *c, const lmm_tokenizer *t, const char *text, size_t len, tok_ids *out) {
    if (len == 0) return 0;
    if (len > INT32_MAX) {
        return lmm_error_set("text of %zu bytes is too long to encode at once (max 2 GiB)", len);
    }
    /* at most one symbol per byte; at most n-1 initial pairs, and each merge pops
     * one entry and pushes at most two: the heap never holds more than 2n entries */
    if (len > c->sym_cap) {
        size_t cap = len < 256 ? 256 : len;
        spm_sym *s = realloc(c->sym, cap * sizeof *s);
        if (s) c->sym = s;
        tok_cand *h = s ? realloc(c->heap.v, 2 * cap * sizeof *h) : NULL;
        if (!h) return lmm_error_set("out of memory encoding %zu bytes", len);
        c->heap.v = h;
        c->heap.cap = 2 * cap;
        c->sym_cap = cap;
    }
    spm_sym *s = c->sym;
    size_t n = 0;
    for (size_t i = 0; i < len; n++) {
        uint32_t l = (uint32_t)tok_utf8_len_lead((const unsigned char *)text + i, len - i);
        s[n].start = (uint32_t)i;
        s[n].len = l;
        s[n].id = char_id(t, text + i, l);
        s[n].prev = (int32_t)n - 1;
        s[n].next = (int32_t)n + 1;
        i += l;
    }
    s[n - 1].next = -1;
    tok_heap *h = &c->heap;
    h->n = 0;
    for (size_t i = 0; i + 1 < n; i++) try_pair(t, text, s, (int32_t)i, h);
    while (h->n) {
        tok_cand cd = tok_heap_pop(h);
        int32_t li = (int32_t)(uint32_t)cd.key;
        spm_sym *l = &s[li], *r = &s[cd.right];
        /* stale: either side merged since (a merged symbol has a new id) */
        if (l->len == 0 || l->next != cd.right || l->id != cd.a || r->id != cd.b) continue;
        l->len += r->len;
        l->id = cd.merged;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) s[r->next].prev = li;
        try_pair(t, text, s, l->prev, h);
        try_pair(t, text, s, li, h);
    }
    for (int32_t i = 0; i >= 0; i = s[i].next) {
        if (emit(t, text + s[i].start, s[i].len, s[i].id, out)) return -1;
    }
    return 0;
}

/* A short segment, through the cache when there is one. */
static int spm_small_cached(const lmm_tokenizer *t, const char *text, size_t len, tok_ids *out,
                            tok_cache *cache) {
    if (!cache || len > TOK_CACHE_KEY) return spm_small(t, text, len, out);
    tok_cache_entry *e;
    uint64_t h;
    int hit = tok_cache_get(cache, text, len, &e, &h, out);
    if (hit) return hit < 0 ? -1 : 0;
    size_t before = out->n;
    if (spm_small(t, text, len, out)) return -1;
    tok_cache_put(e, h, out->v + before, out->n - before);
    return 0;
}

int tok_spm_encode_normalized(const lmm_tokenizer *t, const char *text, size_t len, tok_ids *out,
                              tok_cache *cache) {
    spm_ctx c = {NULL, 0, {NULL, 0, 0}};
    int rc = 0;
    /* cut at every boundary no piece spans (cut.c): mostly words, done by the scan */
    for (size_t a = 0; a < len && rc == 0;) {
        size_t b = tok_next_cut_min(t, text, len, a, 1);
        if (b - a <= SMALL_SEG) rc = spm_small_cached(t, text + a, b - a, out, cache);
        else rc = tok_segment_check(t, b - a) || spm_segment(&c, t, text + a, b - a, out) ? -1 : 0;
        a = b;
    }
    free(c.sym);
    free(c.heap.v);
    return rc;
}

int tok_spm_encode(const lmm_tokenizer *t, const char *text, size_t len, bool prefix,
                   tok_ids *out, tok_cache *cache) {
    if (len == 0) return 0;
    tok_str norm = {0};
    int rc = tok_spm_normalize(t, text, len, prefix && t->add_space_prefix, &norm);
    if (rc == 0) rc = tok_spm_encode_normalized(t, norm.v, norm.n, out, cache);
    free(norm.v);
    return rc;
}
