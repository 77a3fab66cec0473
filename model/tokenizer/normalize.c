/* model/tokenizer/normalize.c — text normalisation before tokenization:
 *   - Unicode normal forms (NFC, NFD, NFKC, NFKD) and lower-casing, with utf8proc;
 *   - SentencePiece's precompiled character map ("precompiled_charsmap": a
 *     Darts-clone double-array trie of input strings plus their replacements),
 *     with SentencePiece's whitespace rules (dummy prefix, collapsing runs, U+2581);
 *   - the normaliser steps of tokenizer.json (Prepend, Replace, Strip, ...).
 * Every function returns a new malloc'd string. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tok_internal.h"

#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "lmm/error.h"

/* ------------------------------------------------------------ string builder */

int tok_str_put(tok_str *s, const char *p, size_t n) {
    if (n > SIZE_MAX / 2 - s->n) return lmm_error_set("out of memory");
    if (s->n + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 256;
        while (cap < s->n + n + 1) cap *= 2;
        char *v = realloc(s->v, cap);
        if (!v) return lmm_error_set("out of memory for %zu bytes", cap);
        s->v = v;
        s->cap = cap;
    }
    memcpy(s->v + s->n, p, n);
    s->n += n;
    s->v[s->n] = 0;
    return 0;
}

/* ----------------------------------------------------------- Unicode forms */

int tok_unicode_form(const char *s, size_t n, tok_nf form, tok_str *out) {
    int opt = UTF8PROC_STABLE;
    switch (form) {
    case TOK_NF_NFC: opt |= UTF8PROC_COMPOSE; break;
    case TOK_NF_NFD: opt |= UTF8PROC_DECOMPOSE; break;
    case TOK_NF_NFKC: opt |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    case TOK_NF_NFKD: opt |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
    }
    if (n == 0) return tok_str_put(out, "", 0);
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst,
                                      (utf8proc_option_t)opt);
    if (r < 0) return lmm_error_set("unicode normalisation: %s", utf8proc_errmsg(r));
    int rc = tok_str_put(out, (const char *)dst, (size_t)r);
    free(dst);
    return rc;
}

int tok_lowercase(const char *s, size_t n, tok_str *out) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t l;
        uint32_t c = tok_utf8_decode(u + i, &l);
        i += l;
        char b[8];
        size_t k;
        if (c == 0x130) { /* the one unconditional multi-character mapping */
            k = tok_utf8_encode('i', b);
            k += tok_utf8_encode(0x307, b + k);
        } else {
            k = tok_utf8_encode((uint32_t)utf8proc_tolower((utf8proc_int32_t)c), b);
        }
        if (tok_str_put(out, b, k)) return -1;
    }
    return 0;
}

/* ------------------------------------------------- precompiled charsmap trie */

/* Darts-clone unit accessors */
static uint32_t du_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }
static uint32_t du_label(uint32_t u) { return u & ((1u << 31) | 0xFFu); }
static int du_has_leaf(uint32_t u) { return (u >> 8) & 1; }
static uint32_t du_value(uint32_t u) { return u & ((1u << 31) - 1); }

int tok_charsmap_set(lmm_tokenizer *t, const uint8_t *data, size_t n, const char *file) {
    if (n == 0) return 0;
    if (n < 4) return lmm_error_set("%s: precompiled_charsmap is truncated", file);
    uint32_t trie = (uint32_t)data[0] | ((uint32_t)data[1] << 8) | ((uint32_t)data[2] << 16) |
                    ((uint32_t)data[3] << 24);
    if (trie % 4 || trie > n - 4 || trie < 4) {
        return lmm_error_set("%s: precompiled_charsmap: trie of %u bytes in %zu", file, trie, n);
    }
    free(t->charsmap);
    t->charsmap = malloc(n);
    if (!t->charsmap) return lmm_error_set("%s: out of memory", file);
    memcpy(t->charsmap, data, n);
    t->charsmap_len = n;
    return 0;
}

/* Longest match of the charsmap at s[0..n): its length (0: none) and replacement. */
static size_t charsmap_match(const lmm_tokenizer *t, const char *s, size_t n, const char **rep,
                             size_t *rep_len) {
    const uint8_t *cm = t->charsmap;
    uint32_t trie = (uint32_t)cm[0] | ((uint32_t)cm[1] << 8) | ((uint32_t)cm[2] << 16) | ((uint32_t)cm[3] << 24);
    size_t units = trie / 4;
    const uint8_t *arr = cm + 4;
    const char *strs = (const char *)cm + 4 + trie;
    size_t strs_len = t->charsmap_len - 4 - trie;
#define UNIT(i) ((uint32_t)arr[4 * (i)] | ((uint32_t)arr[4 * (i) + 1] << 8) | \
                 ((uint32_t)arr[4 * (i) + 2] << 16) | ((uint32_t)arr[4 * (i) + 3] << 24))
    size_t best = 0;
    uint32_t pos = 0;
    uint32_t u = UNIT(0);
    pos ^= du_offset(u);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == 0) break; /* NUL ends the keys of the trie */
        pos ^= c;
        if (pos >= units) break;
        u = UNIT(pos);
        if (du_label(u) != c) break;
        pos ^= du_offset(u);
        if (pos >= units) break;
        if (du_has_leaf(u)) {
            uint32_t v = du_value(UNIT(pos));
            if (v < strs_len) {
                best = i + 1;
                *rep = strs + v;
                *rep_len = strnlen(strs + v, strs_len - v);
            }
        }
    }
#undef UNIT
    return best;
}

/* Applies the charsmap alone (tokenizer.json's Precompiled normaliser). */
int tok_charsmap_apply(const lmm_tokenizer *t, const char *s, size_t n, tok_str *out) {
    for (size_t i = 0; i < n;) {
        const char *rep;
        size_t rl;
        size_t m = t->charsmap ? charsmap_match(t, s + i, n - i, &rep, &rl) : 0;
        if (m) {
            if (tok_str_put(out, rep, rl)) return -1;
            i += m;
        } else {
            size_t l = tok_utf8_len_lead((const unsigned char *)s + i, n - i);
            if (tok_str_put(out, s + i, l)) return -1;
            i += l;
        }
    }
    return 0;
}

/* SentencePiece's normaliser: charsmap per prefix, then (optionally) no leading,
 * trailing or repeated spaces, the dummy prefix, and spaces written as U+2581. */
/* Without a charsmap every character stands for itself: one pass over the bytes
 * (a space is only ever the one-byte character ' '). */
static int spm_normalize_plain(const lmm_tokenizer *t, const char *s, size_t n, bool prefix, tok_str *out) {
    size_t i = 0;
    if (t->remove_extra_ws) {
        while (i < n && s[i] == ' ') i++;
    }
    if (i >= n) return tok_str_put(out, "", 0);
    if (n > (SIZE_MAX - 8) / 3) return lmm_error_set("out of memory");
    size_t need = out->n + 3 * (n - i) + 4; /* each byte gives at most 3 */
    if (need > out->cap) {
        char *v = realloc(out->v, need);
        if (!v) return lmm_error_set("out of memory for %zu bytes", need);
        out->v = v;
        out->cap = need;
    }
    char *o = out->v + out->n;
    const bool esc = t->escape_spaces, rm = t->remove_extra_ws;
    if (prefix) {
        if (esc) {
            memcpy(o, "\xe2\x96\x81", 3);
            o += 3;
        } else {
            *o++ = ' ';
        }
    }
    bool prev_space = rm;
    for (; i < n; i++) {
        char c = s[i];
        if (c != ' ') {
            *o++ = c;
            prev_space = false;
            continue;
        }
        if (prev_space && rm) continue;
        if (esc) {
            memcpy(o, "\xe2\x96\x81", 3);
            o += 3;
        } else {
            *o++ = ' ';
        }
        prev_space = true;
    }
    out->n = (size_t)(o - out->v);
    if (rm) {
        const char *sp = esc ? "\xe2\x96\x81" : " ";
        size_t sl = esc ? 3 : 1;
        while (out->n >= sl && memcmp(out->v + out->n - sl, sp, sl) == 0) out->n -= sl;
    }
    out->v[out->n] = 0;
    return 0;
}

int tok_spm_normalize(const lmm_tokenizer *t, const char *s, size_t n, bool prefix, tok_str *out) {
    static const char WS[] = "\xe2\x96\x81";
    if (!t->charsmap) return spm_normalize_plain(t, s, n, prefix, out);
    size_t i = 0;
    /* one normalised prefix at a time */
#define NEXT(rep, rl, m)                                                                   \
    do {                                                                                   \
        m = t->charsmap ? charsmap_match(t, s + i, n - i, &rep, &rl) : 0;                  \
        if (!m) {                                                                          \
            m = tok_utf8_len_lead((const unsigned char *)s + i, n - i);                    \
            rep = s + i;                                                                   \
            rl = m;                                                                        \
        }                                                                                  \
    } while (0)
    if (t->remove_extra_ws) {
        while (i < n) {
            const char *rep;
            size_t rl, m;
            NEXT(rep, rl, m);
            if (!(rl == 1 && rep[0] == ' ')) break;
            i += m;
        }
    }
    if (i >= n) return tok_str_put(out, "", 0);
    if (prefix && tok_str_put(out, t->escape_spaces ? WS : " ", t->escape_spaces ? 3 : 1)) return -1;
    bool prev_space = t->remove_extra_ws;
    while (i < n) {
        const char *rep;
        size_t rl, m;
        NEXT(rep, rl, m);
        i += m;
        if (prev_space && t->remove_extra_ws) {
            while (rl && rep[0] == ' ') {
                rep++;
                rl--;
            }
        }
        if (rl == 0) continue;
        for (size_t k = 0; k < rl; k++) {
            int rc = rep[k] == ' ' && t->escape_spaces ? tok_str_put(out, WS, 3) : tok_str_put(out, rep + k, 1);
            if (rc) return -1;
        }
        prev_space = rep[rl - 1] == ' ';
    }
#undef NEXT
    if (t->remove_extra_ws) {
        const char *sp = t->escape_spaces ? WS : " ";
        size_t sl = t->escape_spaces ? 3 : 1;
        while (out->n >= sl && memcmp(out->v + out->n - sl, sp, sl) == 0) out->n -= sl;
        if (out->v) out->v[out->n] = 0;
    }
    return 0;
}

/* ------------------------------------------------- tokenizer.json normalisers */

int tok_norm_add(lmm_tokenizer *t, const tok_norm *n) {
    tok_norm *v = realloc(t->norms, (t->n_norms + 1) * sizeof *v);
    if (!v) return lmm_error_set("out of memory");
    t->norms = v;
    t->norms[t->n_norms++] = *n;
    return 0;
}

void tok_norms_free(lmm_tokenizer *t) {
    for (uint32_t i = 0; i < t->n_norms; i++) {
        free(t->norms[i].a);
        free(t->norms[i].b);
        if (t->norms[i].re) pcre2_code_free(t->norms[i].re);
    }
    free(t->norms);
    t->norms = NULL;
    t->n_norms = 0;
}

static int replace_all(const tok_norm *st, const char *s, size_t n, tok_str *out) {
    if (st->re) {
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(st->re, NULL);
        if (!md) return lmm_error_set("out of memory");
        size_t last = 0, off = 0;
        int rc = 0;
        while (off <= n) {
            int m = pcre2_match(st->re, (PCRE2_SPTR)s, n, off, PCRE2_NO_UTF_CHECK, md, NULL);
            if (m < 0) break;
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            if (ov[1] == ov[0]) { /* empty match: skip a character */
                if (ov[0] >= n) break;
                off = ov[0] + tok_utf8_len_lead((const unsigned char *)s + ov[0], n - ov[0]);
                continue;
            }
            if ((rc = tok_str_put(out, s + last, ov[0] - last)) || (rc = tok_str_put(out, st->b, st->blen))) break;
            last = off = ov[1];
        }
        pcre2_match_data_free(md);
        if (rc) return rc;
        return tok_str_put(out, s + last, n - last);
    }
    if (st->alen == 0) return tok_str_put(out, s, n);
    size_t last = 0;
    for (size_t i = 0; i + st->alen <= n;) {
        if (memcmp(s + i, st->a, st->alen) == 0) {
            if (tok_str_put(out, s + last, i - last) || tok_str_put(out, st->b, st->blen)) return -1;
            i += st->alen;
            last = i;
        } else {
            i++;
        }
    }
    return tok_str_put(out, s + last, n - last);
}

static int strip_accents(const char *s, size_t n, tok_str *out) {
    tok_str d = {0};
    if (tok_unicode_form(s, n, TOK_NF_NFD, &d)) {
        free(d.v);
        return -1;
    }
    const unsigned char *u = (const unsigned char *)d.v;
    int rc = 0;
    for (size_t i = 0; i < d.n && rc == 0;) {
        size_t l;
        uint32_t c = tok_utf8_decode(u + i, &l);
        utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
        /* the StripAccents normaliser drops every combining mark (Mn, Mc, Me);
         * BertNormalizer (wpm.c) drops only Mn */
        if (cat != UTF8PROC_CATEGORY_MN && cat != UTF8PROC_CATEGORY_MC && cat != UTF8PROC_CATEGORY_ME)
            rc = tok_str_put(out, d.v + i, l);
        i += l;
    }
    free(d.v);
    return rc;
}

static int apply_one(const lmm_tokenizer *t, const tok_norm *st, const char *s, size_t n, tok_str *out) {
    switch (st->kind) {
    case TOK_NORM_NF: return tok_unicode_form(s, n, (tok_nf)st->arg, out);
    case TOK_NORM_LOWER: return tok_lowercase(s, n, out);
    case TOK_NORM_PREPEND:
        if (n && tok_str_put(out, st->a, st->alen)) return -1;
        return tok_str_put(out, s, n);
    case TOK_NORM_REPLACE: return replace_all(st, s, n, out);
    case TOK_NORM_STRIP: {
        size_t a = 0, b = n;
        while (st->arg & 1 && a < b) {
            size_t l;
            uint32_t c = tok_utf8_decode((const unsigned char *)s + a, &l);
            if (!tok_is_whitespace(c)) break;
            a += l;
        }
        while (st->arg & 2 && b > a) {
            size_t k = b - 1;
            while (k > a && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
            size_t l;
            uint32_t c = tok_utf8_decode((const unsigned char *)s + k, &l);
            if (!tok_is_whitespace(c)) break;
            b = k;
        }
        return tok_str_put(out, s + a, b - a);
    }
    case TOK_NORM_STRIP_ACCENTS: return strip_accents(s, n, out);
    case TOK_NORM_PRECOMPILED: return tok_charsmap_apply(t, s, n, out);
    }
    return lmm_error_set("unknown normaliser step");
}

int tok_norms_apply(const lmm_tokenizer *t, const char *s, size_t n, tok_str *out) {
    tok_str cur = {0}, next = {0};
    if (tok_str_put(&cur, s, n)) return -1;
    for (uint32_t i = 0; i < t->n_norms; i++) {
        next.n = 0;
        if (apply_one(t, &t->norms[i], cur.v, cur.n, &next)) {
            free(cur.v);
            free(next.v);
            return -1;
        }
        tok_str tmp = cur;
        cur = next;
        next = tmp;
    }
    free(next.v);
    free(out->v);
    *out = cur;
    return 0;
}
