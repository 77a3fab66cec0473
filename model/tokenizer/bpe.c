/* model/tokenizer/bpe.c — BPE with merge ranks (GPT-2, Llama 3, Qwen2, DeepSeek,
 * StarCoder, Falcon; also Hugging Face BPE models over characters with byte
 * fallback, like Mistral's tokenizer.json).
 *
 * The pre-tokenizer splits the text into words. Byte-level vocabularies spell every
 * byte as one printable character (GPT-2's bytes_to_unicode table); a word starts
 * as one symbol per byte, otherwise as one symbol per UTF-8 character (unknown
 * characters become <0xXX> tokens or <unk>). Then the adjacent pair with the lowest
 * merge rank is merged until no listed merge applies (ties: leftmost pair), with a
 * heap of candidates and a linked list of symbols: O(n log n) per word.
 * With ignore_merges (Llama 3), a word that is itself a token is that token. */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

#include "lmm/error.h"

/* ----------------------------------------------------- GPT-2 byte alphabet */

/* Byte b is spelt as code point byte_cp(b): printable Latin-1 bytes as themselves,
 * the other 68 bytes as U+0100.. in byte order. */
static uint32_t byte_cp(unsigned b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) return b;
    /* the others in order: 0..32 (33 bytes), 127..160 (34 bytes), 173 */
    if (b <= 32) return 256 + b;
    if (b <= 160) return 256 + 33 + (b - 127);
    return 256 + 33 + 34; /* 173 */
}

/* Inverse: code point -> byte, -1 when the code point is not in the alphabet. */
static int cp_byte(uint32_t cp) {
    static int16_t inv[324];
    static int ready;
    if (!ready) { /* idempotent: concurrent first calls write the same values */
        for (int i = 0; i < 324; i++) inv[i] = -1;
        for (unsigned b = 0; b < 256; b++) inv[byte_cp(b)] = (int16_t)b;
        ready = 1;
    }
    return cp < 324 ? inv[cp] : -1;
}

int tok_bpe_byte_char(unsigned b, char *out) { return (int)tok_utf8_encode(byte_cp(b), out); }

int tok_bpe_byte_of(uint32_t cp) { return cp_byte(cp); }

void tok_bpe_unmap(const lmm_tokenizer *t, const char *text, size_t len, char *buf, size_t cap,
                   size_t *pos) {
    (void)t;
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        size_t l = tok_utf8_len(s + i, len - i);
        int b = -1;
        if (l) {
            size_t dl;
            b = cp_byte(tok_utf8_decode(s + i, &dl));
        } else {
            l = 1;
        }
        if (b >= 0) {
            if (*pos < cap) buf[*pos] = (char)b;
            (*pos)++;
        } else { /* not in the byte alphabet: copy as is */
            for (size_t k = 0; k < l; k++, (*pos)++) {
                if (*pos < cap) buf[*pos] = (char)s[i + k];
            }
        }
        i += l;
    }
}

/* ----------------------------------------------------------- word merging */

typedef struct {
    uint32_t id;           /* TOK_NONE: merged away */
    int32_t prev, next;
} bpe_sym;

typedef struct {
    const lmm_tokenizer *t;
    tok_ids *out;
    bpe_sym *sym;          /* [sym_cap] scratch, reused across words */
    size_t sym_cap;
    tok_heap heap;         /* [2 * sym_cap] */
    char *mapped;          /* [mapped_cap] word spelt in the byte alphabet */
    size_t mapped_cap;
    int prev_unk;          /* the previous segment of the word ended in <unk> */
    tok_cache *cache;      /* NULL: none */
} bpe_ctx;

static void try_pair(bpe_ctx *c, int32_t l) {
    if (l < 0) return;
    const bpe_sym *s = c->sym;
    int32_t r = s[l].next;
    if (r < 0) return;
    uint32_t merged;
    uint32_t rank = tok_pairmap_get(&c->t->merges, s[l].id, s[r].id, &merged);
    if (rank == TOK_NONE) return;
    tok_cand cd = {((uint64_t)rank << 32) | (uint32_t)l, r, s[l].id, s[r].id, merged};
    tok_heap_push(&c->heap, cd);
}

static int reserve(bpe_ctx *c, size_t n, size_t mapped) {
    if (n > c->sym_cap) {
        size_t cap = n < 64 ? 64 : n;
        bpe_sym *s = realloc(c->sym, cap * sizeof *s);
        if (!s) return lmm_error_set("out of memory");
        c->sym = s;
        tok_cand *h = realloc(c->heap.v, 2 * cap * sizeof *h);
        if (!h) return lmm_error_set("out of memory");
        c->heap.v = h;
        c->heap.cap = 2 * cap;
        c->sym_cap = cap;
    }
    if (mapped > c->mapped_cap) {
        char *m = realloc(c->mapped, mapped);
        if (!m) return lmm_error_set("out of memory");
        c->mapped = m;
        c->mapped_cap = mapped;
    }
    return 0;
}

static int push_sym(bpe_ctx *c, size_t *n, uint32_t id) {
    bpe_sym *s = &c->sym[*n];
    s->id = id;
    s->prev = (int32_t)*n - 1;
    s->next = (int32_t)*n + 1;
    (*n)++;
    return 0;
}

/* Merges one segment of a word (a piece that no merge can span out of). */
static int bpe_segment(bpe_ctx *c, const char *w, size_t len) {
    const lmm_tokenizer *t = c->t;
    if (reserve(c, len + 1, 0)) return -1; /* at most one symbol per byte */
    size_t n = 0;
    if (t->bpe_bytes) {
        for (size_t i = 0; i < len; i++) {
            unsigned char b = (unsigned char)w[i];
            if (t->byte_ids[b] == TOK_NONE) {
                if (t->unk == TOK_NONE) return lmm_error_set("%s tokenizer: no token for byte 0x%02x", t->name, b);
                push_sym(c, &n, t->unk);
            } else {
                push_sym(c, &n, t->byte_ids[b]);
            }
        }
    } else {
        for (size_t i = 0; i < len;) {
            size_t l = tok_utf8_len_lead((const unsigned char *)w + i, len - i);
            uint32_t id = tok_lookup(t, w + i, l);
            if (id != TOK_NONE && t->pieces[id].type != TOK_TYPE_BYTE) {
                push_sym(c, &n, id);
            } else if (t->byte_fallback && t->byte_ids[(unsigned char)w[i]] != TOK_NONE) {
                for (size_t k = 0; k < l; k++) {
                    uint32_t b = t->byte_ids[(unsigned char)w[i + k]];
                    push_sym(c, &n, b != TOK_NONE ? b : t->unk);
                }
            } else if (t->unk != TOK_NONE) {
                /* fuse_unk: a run of unknown characters is one <unk> */
                int prev_unk = n > 0 ? c->sym[n - 1].id == t->unk : c->prev_unk;
                if (!(t->fuse_unk && prev_unk)) push_sym(c, &n, t->unk);
            } else {
                return lmm_error_set("%s tokenizer: no token for a character at byte %zu of a word",
                                     t->name, i);
            }
            i += l;
        }
    }
    if (n == 0) return 0;
    c->sym[n - 1].next = -1;
    c->heap.n = 0;
    for (size_t i = 0; i + 1 < n; i++) try_pair(c, (int32_t)i);
    bpe_sym *s = c->sym;
    while (c->heap.n) {
        tok_cand cd = tok_heap_pop(&c->heap);
        int32_t li = (int32_t)(uint32_t)cd.key, ri = cd.right;
        if (s[li].id != cd.a || s[ri].id != cd.b || s[li].next != ri) continue;
        s[li].id = cd.merged;
        s[ri].id = TOK_NONE;
        s[li].next = s[ri].next;
        if (s[ri].next >= 0) s[s[ri].next].prev = li;
        s[ri].prev = s[ri].next = -2; /* detached: cannot match a stale candidate */
        try_pair(c, s[li].prev);
        try_pair(c, li);
    }
    uint32_t last = TOK_NONE;
    for (int32_t i = 0; i >= 0; i = s[i].next) {
        if (tok_ids_push(c->out, s[i].id)) return -1;
        last = s[i].id;
    }
    c->prev_unk = last == t->unk && t->unk != TOK_NONE;
    return 0;
}

static int bpe_word_uncached(bpe_ctx *c, const char *w, size_t len);

static int bpe_word(void *ctx, const char *w, size_t len) {
    bpe_ctx *c = ctx;
    if (len == 0) return 0;
    if (!c->cache || len > TOK_CACHE_KEY) return bpe_word_uncached(c, w, len);
    tok_cache_entry *e;
    uint64_t h;
    int hit = tok_cache_get(c->cache, w, len, &e, &h, c->out);
    if (hit) return hit < 0 ? -1 : 0;
    size_t before = c->out->n;
    if (bpe_word_uncached(c, w, len)) return -1;
    tok_cache_put(e, h, c->out->v + before, c->out->n - before);
    return 0;
}

static int bpe_word_uncached(bpe_ctx *c, const char *w, size_t len) {
    const lmm_tokenizer *t = c->t;
    if (t->ignore_merges) { /* Llama 3: a word that is a token is that token */
        uint32_t id;
        if (t->bpe_bytes) {
            if (len <= t->max_piece_len) {
                if (reserve(c, 0, 2 * len + 1)) return -1;
                size_t m = 0;
                for (size_t i = 0; i < len; i++) m += tok_utf8_encode(byte_cp((unsigned char)w[i]), c->mapped + m);
                id = tok_lookup(t, c->mapped, m);
            } else {
                id = TOK_NONE; /* longer than any token */
            }
        } else {
            id = tok_lookup(t, w, len);
        }
        if (id != TOK_NONE) return tok_ids_push(c->out, id);
    }
    c->prev_unk = 0;
    for (size_t a = 0; a < len;) {
        size_t b = tok_next_cut(t, w, len, a);
        if (tok_segment_check(t, b - a) || bpe_segment(c, w + a, b - a)) return -1;
        a = b;
    }
    return 0;
}

int tok_bpe_encode(const lmm_tokenizer *t, const char *text, size_t len, tok_ids *out,
                   tok_cache *cache) {
    bpe_ctx c = {t, out, NULL, 0, {NULL, 0, 0}, NULL, 0, 0, cache};
    int rc = tok_pre_split(t, text, len, bpe_word, &c);
    free(c.sym);
    free(c.heap.v);
    free(c.mapped);
    return rc;
}
