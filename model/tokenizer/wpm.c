/* model/tokenizer/wpm.c — WordPiece (BERT), as Hugging Face's BertNormalizer,
 * BertPreTokenizer and WordPiece model define it:
 *   normalise: drop NUL, U+FFFD and control characters, whitespace -> ' ', spaces
 *     around CJK ideographs, optionally NFD + drop nonspacing marks (accents),
 *     lower-case;
 *   split: on whitespace (dropped) and around every punctuation character;
 *   each word: greedy longest match from the left, continuation pieces prefixed
 *     "##"; a word with no full cover (or over max_word_chars) is [UNK].
 * GGUF vocabularies spell pieces differently: word-initial pieces start with U+2581
 * ("phantom space") and continuations have no prefix.
 * Unicode data (categories, case, decomposition) comes from utf8proc. */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "lmm/error.h"

/* Unicode White_Space (what Rust's char::is_whitespace tests) */
int tok_is_whitespace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

static int is_control(uint32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return 0;
    utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
    return cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_CS ||
           cat == UTF8PROC_CATEGORY_CO || cat == UTF8PROC_CATEGORY_CN;
}

static int is_punct(uint32_t c) {
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126))
        return 1;
    utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
    return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

static int is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) ||
           (c >= 0x2B820 && c <= 0x2CEAF) || (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Growable code-point buffer */
typedef struct {
    uint32_t *v;
    size_t n, cap;
} cpbuf;

static int cp_push(cpbuf *b, uint32_t c) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        uint32_t *v = realloc(b->v, cap * sizeof *v);
        if (!v) return lmm_error_set("out of memory");
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = c;
    return 0;
}

static int push_lower(const lmm_tokenizer *t, cpbuf *b, uint32_t c) {
    if (!t->lowercase) return cp_push(b, c);
    if (c == 0x130) { /* the one unconditional multi-character lower-case mapping */
        if (cp_push(b, 'i')) return -1;
        return cp_push(b, 0x307);
    }
    return cp_push(b, (uint32_t)utf8proc_tolower((utf8proc_int32_t)c));
}

/* BertNormalizer over the text, into code points. */
static int normalize(const lmm_tokenizer *t, const char *text, size_t len, cpbuf *b) {
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        size_t l;
        uint32_t c = tok_utf8_decode(s + i, &l);
        i += l;
        if (c == 0 || c == 0xFFFD || is_control(c)) continue;
        if (tok_is_whitespace(c)) c = ' ';
        int cjk = t->tokenize_chinese && is_cjk(c);
        if (cjk && cp_push(b, ' ')) return -1;
        if (t->strip_accents) {
            utf8proc_int32_t d[32];
            int last = 0;
            utf8proc_ssize_t nd = utf8proc_decompose_char((utf8proc_int32_t)c, d, 32, UTF8PROC_DECOMPOSE, &last);
            if (nd < 0 || nd > 32) {
                d[0] = (utf8proc_int32_t)c;
                nd = 1;
            }
            for (utf8proc_ssize_t k = 0; k < nd; k++) {
                if (utf8proc_category(d[k]) == UTF8PROC_CATEGORY_MN) continue;
                if (push_lower(t, b, (uint32_t)d[k])) return -1;
            }
        } else if (push_lower(t, b, c)) {
            return -1;
        }
        if (cjk && cp_push(b, ' ')) return -1;
    }
    return 0;
}

/* Greedy longest-match-first over one word (code points w[0..n)). */
static int wpm_word(const lmm_tokenizer *t, const uint32_t *w, size_t n, char *scratch, tok_ids *out) {
    if (n > t->max_word_chars) return tok_ids_push(out, t->unk);
    /* UTF-8 of the word, with "##" room in front; offs[i] = byte offset of char i */
    size_t *offs = malloc((n + 1) * sizeof *offs);
    if (!offs) return lmm_error_set("out of memory");
    char *u = scratch + 3;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        offs[i] = m;
        m += tok_utf8_encode(w[i], u + m);
    }
    offs[n] = m;
    /* word-initial pieces: "" (HF) or "\u2581" (GGUF); continuations "##" (HF) or "" (GGUF) */
    const char *pre_first = t->wpm_phantom_space ? "\xe2\x96\x81" : "";
    const char *pre_cont = t->wpm_phantom_space ? "" : "##";
    size_t mark = out->n, start = 0;
    int rc = 0;
    while (start < n) {
        uint32_t id = TOK_NONE;
        size_t end = n;
        const char *pre = start == 0 ? pre_first : pre_cont;
        size_t prl = strlen(pre);
        char *p = u + offs[start] - prl;
        char save[3];
        memcpy(save, p, prl);
        memcpy(p, pre, prl);
        for (; end > start; end--) {
            id = tok_lookup(t, p, offs[end] - offs[start] + prl);
            if (id != TOK_NONE) break;
        }
        memcpy(p, save, prl);
        if (id == TOK_NONE) { /* no cover: the whole word is unknown */
            out->n = mark;
            rc = tok_ids_push(out, t->unk);
            break;
        }
        if ((rc = tok_ids_push(out, id))) break;
        start = end;
    }
    free(offs);
    return rc;
}

int tok_wpm_encode(const lmm_tokenizer *t, const char *text, size_t len, tok_ids *out) {
    if (t->unk == TOK_NONE) return lmm_error_set("%s tokenizer: WordPiece needs an [UNK] token", t->name);
    cpbuf b = {0};
    if (normalize(t, text, len, &b)) {
        free(b.v);
        return -1;
    }
    /* the longest word we look up is max_word_chars characters of up to 4 bytes */
    char *scratch = malloc(4 * (size_t)t->max_word_chars + 8); /* + 3 bytes of prefix room */
    if (!scratch) {
        free(b.v);
        return lmm_error_set("out of memory");
    }
    int rc = 0;
    size_t i = 0;
    while (i < b.n && rc == 0) {
        uint32_t c = b.v[i];
        if (tok_is_whitespace(c)) {
            i++;
        } else if (is_punct(c)) {
            rc = wpm_word(t, &b.v[i], 1, scratch, out);
            i++;
        } else {
            size_t j = i;
            while (j < b.n && !tok_is_whitespace(b.v[j]) && !is_punct(b.v[j])) j++;
            rc = wpm_word(t, &b.v[i], j - i, scratch, out);
            i = j;
        }
    }
    free(scratch);
    free(b.v);
    return rc;
}
