/* model/tokenizer/vocab.c — vocabulary storage shared by every tokenizer: piece
 * bytes in one arena, the piece -> id hash map, the BPE pair -> rank map and the
 * list of special tokens matched in input text. */
#include "tok_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lmm/error.h"

int tok_alloc(lmm_tokenizer **out, uint32_t n_vocab, size_t arena_bytes) {
    *out = NULL;
    if (n_vocab == 0 || n_vocab >= (1u << 30)) {
        return lmm_error_set("vocabulary size %u is out of range", n_vocab);
    }
    lmm_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return lmm_error_set("out of memory");
    t->n_vocab = n_vocab;
    t->pieces = calloc(n_vocab, sizeof *t->pieces);
    t->arena = malloc(arena_bytes ? arena_bytes : 1);
    t->arena_cap = arena_bytes;
    if (!t->pieces || !t->arena) {
        lmm_tokenizer_free(t);
        return lmm_error_set("out of memory for a vocabulary of %u tokens", n_vocab);
    }
    t->bos = t->eos = t->unk = t->pad = t->sep = t->cls = t->mask = TOK_NONE;
    for (int i = 0; i < 256; i++) t->byte_ids[i] = TOK_NONE;
    t->max_word_chars = 100;
    t->unk_penalty = 10.0;
    *out = t;
    return 0;
}

/* Pieces are appended to the arena in order; the caller sized it. */
int tok_set_piece(lmm_tokenizer *t, uint32_t id, const char *text, size_t len, float score,
                  uint8_t type) {
    static const char empty[1] = "";
    if (id >= t->n_vocab) return lmm_error_set("token id %u out of range", id);
    if (len > UINT32_MAX / 2) return lmm_error_set("token %u: piece too long", id);
    tok_piece *p = &t->pieces[id];
    p->text = empty;
    if (len) {
        if (len > t->arena_cap - t->arena_used) {
            return lmm_error_set("token %u: vocabulary larger than its declared size", id);
        }
        memcpy(t->arena + t->arena_used, text, len);
        p->text = t->arena + t->arena_used;
        t->arena_used += len;
    }
    p->len = (uint32_t)len;
    p->score = score;
    p->type = type;
    return 0;
}

void tok_pairmap_free(tok_pairmap *m) {
    free(m->ent);
    m->ent = NULL;
    m->cap = 0;
}

int tok_pairmap_init(tok_pairmap *m, uint64_t n) {
    uint64_t cap = 16;
    while (cap < n + n / 2) cap <<= 1; /* load factor at most 2/3 */
    m->ent = calloc(cap, sizeof *m->ent);
    m->cap = m->ent ? cap : 0;
    if (!m->ent) return lmm_error_set("out of memory for %llu merges", (unsigned long long)n);
    return 0;
}

/* A merge listed twice: llama.cpp keeps the first rank, Hugging Face (a hash map
 * filled in order) the last; m->last_wins says which. The caller sized the map. */
void tok_pairmap_put(tok_pairmap *m, uint32_t a, uint32_t b, uint32_t rank, uint32_t merged) {
    uint64_t key = (((uint64_t)a << 32) | b) + 1;
    uint64_t i = tok_pair_hash(key) & (m->cap - 1);
    while (m->ent[i].key) {
        if (m->ent[i].key == key) {
            if (m->last_wins) m->ent[i].val = ((uint64_t)rank << 32) | merged;
            return;
        }
        i = (i + 1) & (m->cap - 1);
    }
    m->ent[i].key = key;
    m->ent[i].val = ((uint64_t)rank << 32) | merged;
}

static int cmp_special(const void *a, const void *b, void *ctx) {
    const lmm_tokenizer *t = ctx;
    const tok_piece *pa = &t->pieces[*(const uint32_t *)a];
    const tok_piece *pb = &t->pieces[*(const uint32_t *)b];
    unsigned char fa = (unsigned char)pa->text[0], fb = (unsigned char)pb->text[0];
    if (fa != fb) return fa < fb ? -1 : 1;
    if (pa->len != pb->len) return pa->len > pb->len ? -1 : 1;
    uint32_t ia = *(const uint32_t *)a, ib = *(const uint32_t *)b;
    return ia < ib ? -1 : ia > ib;
}

int tok_build_specials(lmm_tokenizer *t) {
    free(t->special_ids);
    t->special_ids = NULL;
    t->n_special = 0;
    memset(t->spec_off, 0, sizeof t->spec_off);
    uint32_t n = 0;
    for (uint32_t i = 0; i < t->n_vocab; i++) n += t->pieces[i].special && t->pieces[i].len;
    if (!n) return 0;
    t->special_ids = malloc(n * sizeof *t->special_ids);
    if (!t->special_ids) return lmm_error_set("out of memory");
    for (uint32_t i = 0; i < t->n_vocab; i++) {
        if (t->pieces[i].special && t->pieces[i].len) t->special_ids[t->n_special++] = i;
    }
    qsort_r(t->special_ids, n, sizeof *t->special_ids, cmp_special, t);
    memset(t->spec_off, 0, sizeof t->spec_off);
    for (uint32_t i = 0; i < n; i++) t->spec_off[(unsigned char)t->pieces[t->special_ids[i]].text[0] + 1]++;
    for (int b = 0; b < 256; b++) t->spec_off[b + 1] += t->spec_off[b];
    return 0;
}

uint32_t tok_lookup_type(const lmm_tokenizer *t, uint8_t type) {
    for (uint32_t i = 0; i < t->n_vocab; i++) {
        if (t->pieces[i].type == type) return i;
    }
    return TOK_NONE;
}

int tok_add_merge2(lmm_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen,
                   uint32_t rank) {
    uint32_t ia = tok_lookup(t, a, alen), ib = tok_lookup(t, b, blen);
    if (ia == TOK_NONE || ib == TOK_NONE) return 0; /* merge of unknown tokens: never applies */
    char stack[256];
    char *buf = alen + blen <= sizeof stack ? stack : malloc(alen + blen);
    if (!buf) return lmm_error_set("out of memory");
    memcpy(buf, a, alen);
    memcpy(buf + alen, b, blen);
    uint32_t im = tok_lookup(t, buf, alen + blen);
    if (buf != stack) free(buf);
    if (im == TOK_NONE) return 0;
    tok_pairmap_put(&t->merges, ia, ib, rank, im);
    return 0;
}

int tok_add_merge(lmm_tokenizer *t, const char *s, size_t len, uint32_t rank) {
    /* "left right": split at the first space after the first byte */
    const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
    if (!sp) return lmm_error_set("merge %u ('%.40s') is not two tokens separated by a space", rank, s);
    size_t alen = (size_t)(sp - s);
    return tok_add_merge2(t, s, alen, sp + 1, len - alen - 1, rank);
}

int tok_build_map(lmm_tokenizer *t, const char *file) {
    uint64_t cap = 16;
    while (cap < (uint64_t)t->n_vocab * 2) cap <<= 1;
    free(t->map.slots);
    t->map.slots = calloc(cap, sizeof *t->map.slots);
    if (!t->map.slots) return lmm_error_set("%s: out of memory", file);
    t->map.cap = cap;
    for (uint32_t id = 0; id < t->n_vocab; id++) {
        const tok_piece *p = &t->pieces[id];
        uint64_t h = tok_hash(p->text, p->len);
        uint64_t i = h & (cap - 1);
        while (t->map.slots[i]) {
            const tok_piece *q = &t->pieces[(uint32_t)t->map.slots[i] - 1];
            if (q->len == p->len && memcmp(q->text, p->text, p->len) == 0) break;
            i = (i + 1) & (cap - 1);
        }
        t->map.slots[i] = (h >> 32 << 32) | (id + 1); /* later ids win on duplicates */
    }
    return 0;
}

int tok_finish(lmm_tokenizer *t, const char *file) {
    if (!t->map.cap && tok_build_map(t, file)) return -1;
    if (tok_build_specials(t)) return lmm_error_prefix("%s", file);
    t->max_piece_len = 0;
    for (uint32_t i = 0; i < t->n_vocab; i++) {
        if (t->pieces[i].len > t->max_piece_len) t->max_piece_len = t->pieces[i].len;
    }
    if (tok_cut_prepare(t, file)) return -1;
    if (t->alg == TOK_ALG_SPM && tok_spm_prepare(t, file)) return -1;
    if ((t->alg == TOK_ALG_SPM || t->alg == TOK_ALG_BPE) && !t->cache && !(t->cache = tok_cache_create()))
        return lmm_error_set("%s: out of memory", file);
    return 0;
}

tok_cache *tok_cache_create(void) {
    tok_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->e = aligned_alloc(64, TOK_CACHE_N * sizeof *c->e);
    if (!c->e || pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c->e);
        free(c);
        return NULL;
    }
    memset(c->e, 0, TOK_CACHE_N * sizeof *c->e);
    return c;
}

void tok_cache_free(tok_cache *c) {
    if (!c) return;
    pthread_mutex_destroy(&c->lock);
    free(c->e);
    free(c);
}

tok_cache *tok_cache_acquire(tok_cache *c) {
    return c && pthread_mutex_trylock(&c->lock) == 0 ? c : NULL;
}

void tok_cache_release(tok_cache *c) {
    if (c) pthread_mutex_unlock(&c->lock);
}

int tok_ids_push(tok_ids *ids, uint32_t id) {
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 64;
        uint32_t *v = realloc(ids->v, cap * sizeof *v);
        if (!v) return lmm_error_set("out of memory for %zu token ids", cap);
        ids->v = v;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return 0;
}
