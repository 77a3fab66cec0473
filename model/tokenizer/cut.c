/* model/tokenizer/cut.c — where a long text may be cut into segments that are
 * tokenized one after the other with exactly the result of the whole.
 *
 * Every merge (BPE) or lattice node (Unigram) produces a vocabulary piece, so a
 * token can only span the boundary between two adjacent symbols a|b when some
 * piece contains "ab". We record every adjacent pair of symbols that occurs inside
 * a piece (code points; bytes for byte-level BPE); a boundary whose pair is not in
 * that set can never be spanned, and cutting there changes nothing. Segments are
 * then independent (BPE) or chained through the best score at the cut (Unigram),
 * which keeps the heaps and lattices small: memory stays bounded and the merge
 * heap cache-friendly, whatever the input length.
 *
 * A run of TOK_MAX_SEGMENT bytes with no possible cut (e.g. 100 MB of "aaaa")
 * is refused with an error rather than exhausting memory. */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

#include "lmm/error.h"

static uint64_t mix(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return k;
}

/* index of a small symbol (see tok_pairset), -1 for the others */
static inline int small_index(const lmm_tokenizer *t, uint32_t c) {
    if (c < 0xFF || (t->bpe_bytes && t->alg == TOK_ALG_BPE && c == 0xFF)) return (int)c;
    return c == 0x2581 && !(t->bpe_bytes && t->alg == TOK_ALG_BPE) ? 0xFF : -1;
}

static void pairs_put(tok_pairset *ps, uint32_t a, uint32_t b) {
    uint64_t key = (((uint64_t)a << 32) | b) + 1;
    uint64_t i = mix(key) & (ps->cap - 1);
    while (ps->keys[i]) {
        if (ps->keys[i] == key) return;
        i = (i + 1) & (ps->cap - 1);
    }
    ps->keys[i] = key;
    ps->n++;
}

static inline int pairs_has(const lmm_tokenizer *t, const tok_pairset *ps, uint32_t a, uint32_t b) {
    int sa = small_index(t, a), sb = small_index(t, b);
    if (sa >= 0 && sb >= 0) {
        unsigned bit = (unsigned)sa * 256u + (unsigned)sb;
        return (int)((ps->small[bit / 64] >> (bit % 64)) & 1);
    }
    uint64_t key = (((uint64_t)a << 32) | b) + 1;
    uint64_t i = mix(key) & (ps->cap - 1);
    while (ps->keys[i]) {
        if (ps->keys[i] == key) return 1;
        i = (i + 1) & (ps->cap - 1);
    }
    return 0;
}

void tok_cut_free(lmm_tokenizer *t) {
    free(t->cut_pairs.keys);
    free(t->cut_pairs.small);
    memset(&t->cut_pairs, 0, sizeof t->cut_pairs);
}

/* Symbols of piece P: code points, or for byte-level BPE the bytes its characters
 * stand for (pieces outside the byte alphabet are never built from bytes). */
static size_t piece_symbols(const lmm_tokenizer *t, const tok_piece *p, uint32_t *sym, size_t cap) {
    size_t n = 0;
    const unsigned char *s = (const unsigned char *)p->text;
    for (size_t i = 0; i < p->len && n < cap;) {
        size_t l = tok_utf8_len(s + i, p->len - i);
        if (!l) return 0;
        size_t dl;
        uint32_t cp = tok_utf8_decode(s + i, &dl);
        if (t->bpe_bytes) {
            int b = tok_bpe_byte_of(cp);
            if (b < 0) return 0;
            cp = (uint32_t)b;
        }
        sym[n++] = cp;
        i += l;
    }
    return n;
}

int tok_cut_prepare(lmm_tokenizer *t, const char *file) {
    tok_cut_free(t);
    if (t->alg == TOK_ALG_WPM) return 0; /* words are bounded by max_word_chars */
    uint64_t total = 0;
    for (uint32_t i = 0; i < t->n_vocab; i++) total += t->pieces[i].len;
    uint64_t cap = 1024;
    while (cap < total * 2) cap <<= 1;
    t->cut_pairs.keys = calloc(cap, sizeof *t->cut_pairs.keys);
    t->cut_pairs.small = calloc(256 * 256 / 64, sizeof *t->cut_pairs.small);
    if (!t->cut_pairs.keys || !t->cut_pairs.small) {
        tok_cut_free(t);
        return lmm_error_set("%s: out of memory", file);
    }
    t->cut_pairs.cap = cap;
    uint32_t sym[256];
    for (uint32_t i = 0; i < t->n_vocab; i++) {
        const tok_piece *p = &t->pieces[i];
        if (p->len < 2 || p->type == TOK_TYPE_BYTE) continue;
        size_t n = piece_symbols(t, p, sym, sizeof sym / sizeof sym[0]);
        if (n == sizeof sym / sizeof sym[0]) { /* absurdly long piece: no cuts at all */
            tok_cut_free(t);
            return 0;
        }
        for (size_t k = 0; k + 1 < n; k++) {
            pairs_put(&t->cut_pairs, sym[k], sym[k + 1]);
            int sa = small_index(t, sym[k]), sb = small_index(t, sym[k + 1]);
            if (sa >= 0 && sb >= 0) {
                unsigned bit = (unsigned)sa * 256u + (unsigned)sb;
                t->cut_pairs.small[bit / 64] |= 1ull << (bit % 64);
            }
        }
    }
    return 0;
}

size_t tok_next_cut(const lmm_tokenizer *t, const char *s, size_t n, size_t from) {
    return tok_next_cut_min(t, s, n, from, TOK_MIN_SEGMENT);
}

size_t tok_next_cut_min(const lmm_tokenizer *t, const char *s, size_t n, size_t from, size_t min) {
    if (!t->cut_pairs.cap || n - from <= min) return n;
    const unsigned char *u = (const unsigned char *)s;
    size_t i = from;
    uint32_t prev = 0;
    int have_prev = 0;
    while (i < n) {
        size_t l;
        uint32_t cur;
        if ((t->bpe_bytes && t->alg == TOK_ALG_BPE) || u[i] < 0x80) {
            cur = u[i];
            l = 1;
        } else {
            l = tok_utf8_len(u + i, n - i);
            if (!l) { /* not UTF-8 (cannot happen: input is validated) */
                l = 1;
                cur = 0xFFFFFFFFu;
            } else {
                cur = tok_utf8_decode(u + i, &l);
            }
        }
        if (have_prev && i - from >= min && !pairs_has(t, &t->cut_pairs, prev, cur)) return i;
        prev = cur;
        have_prev = 1;
        i += l;
    }
    return n;
}

int tok_segment_check(const lmm_tokenizer *t, size_t len) {
    if (len > TOK_MAX_SEGMENT) {
        return lmm_error_set("%s tokenizer: %zu bytes of text without a possible token boundary "
                             "(at most %u are tokenized at once)", t->name, len, (unsigned)TOK_MAX_SEGMENT);
    }
    return 0;
}
