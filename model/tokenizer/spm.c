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
 * O(n log n) in the text length. A popped candidate is stale when either side has
 * since been merged; that is detected from the symbols' current lengths. */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

#include "lmm/error.h"

typedef struct {
    uint32_t start, len;   /* byte range in the normalised text; len 0 = merged away */
    int32_t prev, next;    /* neighbours, -1 at the ends */
} spm_sym;

/* Heap priority of a score: higher scores first (an order-preserving map of the
 * float's bits, inverted). */
static uint64_t score_prio(float score) {
    uint32_t u;
    memcpy(&u, &score, 4);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return (uint64_t)(~u);
}

static int mergeable(const lmm_tokenizer *t, uint32_t id) {
    uint8_t ty = t->pieces[id].type;
    return ty == TOK_TYPE_NORMAL || ty == TOK_TYPE_USER_DEFINED || ty == TOK_TYPE_UNDEFINED;
}

static void try_pair(const lmm_tokenizer *t, const char *text, const spm_sym *s, int32_t l,
                     tok_heap *h) {
    if (l < 0 || s[l].next < 0) return;
    int32_t r = s[l].next;
    uint32_t len = s[l].len + s[r].len;
    uint32_t id = tok_lookup(t, text + s[l].start, len);
    if (id == TOK_NONE || !mergeable(t, id)) return;
    tok_cand c = {(score_prio(t->pieces[id].score) << 32) | (uint32_t)l, r, len, 0};
    tok_heap_push(h, c);
}

/* Emits the ids of one final symbol: its piece, else its bytes, else <unk>. */
static int emit(const lmm_tokenizer *t, const char *text, uint32_t len, tok_ids *out) {
    uint32_t id = tok_lookup(t, text, len);
    /* byte pieces only spell bytes (llama2.c's old .bin stores <0x85> as U+0085) */
    if (id != TOK_NONE && t->pieces[id].type != TOK_TYPE_UNUSED && t->pieces[id].type != TOK_TYPE_BYTE)
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

/* BPE over one segment of normalised TEXT. */
static int spm_segment(const lmm_tokenizer *t, const char *text, size_t len, tok_ids *out);

int tok_spm_encode_normalized(const lmm_tokenizer *t, const char *text, size_t len, tok_ids *out) {
    size_t a = 0;
    while (a < len) {
        size_t b = tok_next_cut(t, text, len, a);
        if (tok_segment_check(t, b - a) || spm_segment(t, text + a, b - a, out)) return -1;
        a = b;
    }
    return 0;
}

static int spm_segment(const lmm_tokenizer *t, const char *text, size_t len, tok_ids *out) {
    if (len == 0) return 0;
    if (len > INT32_MAX) {
        return lmm_error_set("text of %zu bytes is too long to encode at once (max 2 GiB)", len);
    }
    size_t n = 0;
    for (size_t i = 0; i < len; n++) i += tok_utf8_len_lead((const unsigned char *)text + i, len - i);
    spm_sym *s = malloc(n * sizeof *s);
    /* at most n-1 initial pairs, and each merge pops one entry and pushes at most
     * two: the heap never holds more than 2n entries */
    tok_heap h = {malloc(2 * n * sizeof *h.v), 0, 2 * n};
    if (!s || !h.v) {
        free(s);
        free(h.v);
        return lmm_error_set("out of memory encoding %zu bytes", len);
    }
    size_t k = 0;
    for (size_t i = 0; i < len; k++) {
        uint32_t l = (uint32_t)tok_utf8_len_lead((const unsigned char *)text + i, len - i);
        s[k].start = (uint32_t)i;
        s[k].len = l;
        s[k].prev = (int32_t)k - 1;
        s[k].next = k + 1 < n ? (int32_t)k + 1 : -1;
        i += l;
    }
    for (size_t i = 0; i + 1 < n; i++) try_pair(t, text, s, (int32_t)i, &h);
    while (h.n) {
        tok_cand c = tok_heap_pop(&h);
        int32_t li = (int32_t)(uint32_t)c.key;
        spm_sym *l = &s[li], *r = &s[c.right];
        if (l->len == 0 || r->len == 0 || l->next != c.right || l->len + r->len != c.a) continue;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) s[r->next].prev = li;
        try_pair(t, text, s, l->prev, &h);
        try_pair(t, text, s, li, &h);
    }
    int rc = 0;
    for (int32_t i = 0; i >= 0 && rc == 0; i = s[i].next) {
        rc = emit(t, text + s[i].start, s[i].len, out);
    }
    free(s);
    free(h.v);
    return rc;
}

int tok_spm_encode(const lmm_tokenizer *t, const char *text, size_t len, bool prefix,
                   tok_ids *out) {
    if (len == 0) return 0;
    tok_str norm = {0};
    int rc = tok_spm_normalize(t, text, len, prefix && t->add_space_prefix, &norm);
    if (rc == 0) rc = tok_spm_encode_normalized(t, norm.v, norm.n, out);
    free(norm.v);
    return rc;
}
