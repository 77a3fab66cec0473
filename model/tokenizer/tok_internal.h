/* model/tokenizer/tok_internal.h — the tokenizer's internal representation, shared by
 * the loaders (llama2.c, GGUF, tokenizer.json, SentencePiece .model) and the encoders
 * (SentencePiece BPE, byte-level BPE, WordPiece, Unigram).
 *
 * Every loader turns its file into one `struct lmm_tokenizer`: a vocabulary (piece
 * bytes, score, type), a hash map piece -> id, optional BPE merge ranks, the
 * special/added tokens, and the options that pick the algorithm and its pre- and
 * post-processing. The encoders never see the file format. */
#ifndef LMM_TOK_INTERNAL_H
#define LMM_TOK_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lmm/tokenizer.h"

#define TOK_NONE UINT32_MAX

typedef enum {
    TOK_ALG_SPM = 0,   /* SentencePiece BPE: merge by piece score, byte fallback */
    TOK_ALG_BPE,       /* byte-level BPE (GPT-2 style): merge by rank, bytes mapped to chars */
    TOK_ALG_WPM,       /* WordPiece (BERT) */
    TOK_ALG_UGM        /* Unigram (Viterbi over piece log-probabilities) */
} tok_alg;

/* Token types, numbered as GGUF's tokenizer.ggml.token_type (= SentencePiece's). */
typedef enum {
    TOK_TYPE_UNDEFINED = 0,
    TOK_TYPE_NORMAL = 1,
    TOK_TYPE_UNKNOWN = 2,
    TOK_TYPE_CONTROL = 3,
    TOK_TYPE_USER_DEFINED = 4,
    TOK_TYPE_UNUSED = 5,
    TOK_TYPE_BYTE = 6
} tok_type;

/* Pre-tokenizer: how text is split into words before byte-level BPE. */
typedef enum {
    TOK_PRE_NONE = 0,
    TOK_PRE_GPT2,
    TOK_PRE_LLAMA3,
    TOK_PRE_QWEN2,
    TOK_PRE_DEEPSEEK_LLM,
    TOK_PRE_DEEPSEEK_CODER,
    TOK_PRE_DEEPSEEK3_LLM,
    TOK_PRE_STARCODER,
    TOK_PRE_FALCON,
    TOK_PRE_BERT           /* whitespace + punctuation split (WordPiece) */
} tok_pre;

enum { TOK_MATCH_NO = 0, TOK_MATCH_SPECIAL = 1, TOK_MATCH_ALWAYS = 2 };

typedef struct {
    const char *text;  /* bytes, not NUL-terminated (points into the arena) */
    uint32_t len;
    float score;
    uint8_t type;      /* tok_type */
    uint8_t special;   /* 0; TOK_MATCH_SPECIAL: matched in input text only with
                        * LMM_TOK_PARSE_SPECIAL; TOK_MATCH_ALWAYS: always (added tokens) */
    uint8_t lstrip, rstrip; /* added-token options (HF): eat whitespace left/right */
} tok_piece;

/* Set of adjacent symbol pairs found inside pieces (cut.c). Pairs of two "small"
 * symbols (bytes; code points below U+00FF, and U+2581 as 0xFF) are also in a
 * bitmap, tested without hashing. */
typedef struct {
    uint64_t *keys;    /* [cap] (a << 32 | b) + 1, 0 = empty */
    uint64_t cap, n;
    uint64_t *small;   /* [256 * 256 / 64] bit a * 256 + b */
} tok_pairset;

/* Byte trie of the Unigram pieces (unigram.c). */
typedef struct {
    uint32_t *piece;   /* [n] piece ending at the node, TOK_NONE if none */
    uint32_t *kid0;    /* [n] first child */
    uint16_t *nkid;    /* [n] number of children (contiguous, sorted by label) */
    uint8_t *label;    /* [n] byte on the edge into the node */
    uint32_t n;
} tok_trie;

/* Open-addressing hash map (linear probing) from a piece's bytes to its id. A slot
 * keeps the high 32 bits of the string's hash beside the id, so that probes past
 * other strings rarely touch their piece. */
typedef struct {
    uint64_t *slots;   /* [cap] hash >> 32 << 32 | (id + 1), 0 = empty */
    uint64_t cap;      /* power of two */
} tok_strmap;

/* Hash map (left id, right id) -> (priority, id of the merged token): BPE merge
 * ranks, and SentencePiece's pairs of pieces whose concatenation is a piece. Key
 * and value side by side: one cache line per probe. */
typedef struct {
    uint64_t key;      /* (left << 32 | right) + 1, 0 = empty */
    uint64_t val;      /* rank (or priority) << 32 | merged id */
} tok_pairent;

typedef struct {
    tok_pairent *ent;  /* [cap] */
    uint64_t cap;      /* power of two, 0 = empty map */
    bool last_wins;    /* a merge listed twice takes its last rank (HF), else its first */
} tok_pairmap;

/* Cache of short words (pre-tokenized words of BPE, cut segments of SentencePiece)
 * -> their ids, as Hugging Face tokenizers keep one: natural text repeats its
 * words, and a hit skips the merges. Direct-mapped, fixed size, allocated at load.
 * The encoding of a word depends on nothing but its bytes, so a hit gives exactly
 * what encoding it would. One encode call at a time holds the lock (taken with
 * trylock: a concurrent call encodes without the cache). */
#define TOK_CACHE_N 8192u      /* entries (power of two): 512 KiB */
#define TOK_CACHE_KEY 22u      /* longest word cached, bytes */
#define TOK_CACHE_IDS 8u       /* most ids of a cached word */
typedef struct {
    uint64_t tag;              /* hash | 1; 0 = empty */
    uint8_t len, n;
    char key[TOK_CACHE_KEY];   /* [len] */
    uint32_t ids[TOK_CACHE_IDS]; /* [n] */
} tok_cache_entry;

typedef struct tok_cache {
    pthread_mutex_t lock;
    tok_cache_entry *e;        /* [TOK_CACHE_N] */
} tok_cache;
tok_cache *tok_cache_create(void);
void tok_cache_free(tok_cache *c);
/* takes the cache for one call: NULL when another call holds it */
tok_cache *tok_cache_acquire(tok_cache *c);
void tok_cache_release(tok_cache *c);

/* Growable byte string (NUL-terminated for convenience; may hold NULs). */
typedef struct {
    char *v;
    size_t n, cap;
} tok_str;

typedef enum { TOK_NF_NFC = 0, TOK_NF_NFD, TOK_NF_NFKC, TOK_NF_NFKD } tok_nf;

/* One normaliser step of tokenizer.json. */
typedef enum {
    TOK_NORM_NF = 0,        /* arg: tok_nf */
    TOK_NORM_LOWER,
    TOK_NORM_PREPEND,       /* a: text prepended to non-empty input */
    TOK_NORM_REPLACE,       /* a (or re) -> b */
    TOK_NORM_STRIP,         /* arg: 1 left, 2 right */
    TOK_NORM_STRIP_ACCENTS,
    TOK_NORM_PRECOMPILED    /* the tokenizer's charsmap */
} tok_norm_kind;

typedef struct {
    tok_norm_kind kind;
    int arg;
    char *a, *b;            /* [alen], [blen] */
    size_t alen, blen;
    void *re;               /* pcre2_code for a Regex pattern */
} tok_norm;

/* How the SentencePiece dummy prefix / Metaspace prepend is applied to the text
 * fragments between special tokens. */
typedef enum {
    TOK_PREFIX_AFTER_SPECIAL = 0, /* first fragment and each one after a special token (llama.cpp) */
    TOK_PREFIX_ALWAYS,            /* every fragment (HF per-split normalisers) */
    TOK_PREFIX_FIRST              /* only a fragment at the start of the input */
} tok_prefix_mode;

struct lmm_tokenizer {
    tok_alg alg;
    char name[64];           /* "llama2c", "llama", "gpt2", "bert", "t5", ... for messages */

    uint32_t n_vocab;
    tok_piece *pieces;       /* [n_vocab] */
    char *arena;             /* [arena_cap] all piece bytes */
    size_t arena_used, arena_cap;
    tok_strmap map;          /* piece -> id */

    uint32_t bos, eos, unk, pad, sep, cls, mask; /* TOK_NONE when absent */
    bool add_bos, add_eos;   /* what LMM_TOK_ADD_SPECIAL adds */
    bool add_sep;            /* BERT: [CLS] text [SEP] */

    /* SentencePiece-style options */
    bool add_space_prefix;   /* prepend the "dummy prefix" space */
    bool escape_spaces;      /* spaces are stored as U+2581 in pieces */
    bool byte_fallback;      /* unknown chars become <0xXX> tokens */
    bool remove_extra_ws;    /* collapse runs of spaces, trim (SentencePiece normalizer) */
    bool nfkc;               /* NFKC normalisation (Unigram T5 etc.) */
    bool strip_bos_space;    /* decode: drop the leading space after BOS / at the start */
    uint32_t byte_ids[256];  /* SPM: id of <0xXX>; BPE: id of the byte's char */

    /* SentencePiece BPE (spm.c): a symbol is known by the id of its text, so that a
     * pair is looked up by two ids instead of by its bytes. spm_pairs: (id of a, id
     * of b) -> (score priority, id of the piece a+b), for every mergeable piece and
     * every byte split of it into two pieces. Characters that are no piece but
     * occur as one half of such a split get ids from n_vocab on (spm_extra,
     * sorted); spm_char1[b]: id of the one-byte text b (piece or extra, else TOK_NONE). */
    tok_pairmap spm_pairs;
    uint64_t *spm_extra;     /* [n_spm_extra] len << 32 | bytes (little-endian), sorted */
    uint32_t n_spm_extra;
    uint32_t spm_char1[256];

    /* byte-level BPE */
    tok_pairmap merges;
    tok_pre pre;
    void *pre_regex[8];      /* [n_pre_regex] compiled PCRE2 patterns, applied in sequence */
    uint8_t pre_mode[8];     /* [n_pre_regex] tok_split_mode of each pattern */
    uint32_t n_pre_regex;
    bool bpe_prefix_space;   /* ByteLevel add_prefix_space: ' ' in front of each fragment */
    bool ignore_merges;      /* Llama 3: a whole word in the vocab is one token */
    bool bpe_bytes;          /* pieces are in GPT-2's byte-to-unicode alphabet */
    bool fuse_unk;           /* a run of unknown characters is one <unk> */

    /* WordPiece */
    bool lowercase;
    bool strip_accents;
    bool tokenize_chinese;
    uint32_t max_word_chars;
    bool wpm_phantom_space;  /* GGUF: "\u2581word" and "cont" instead of "word" and "##cont" */

    /* Unigram */
    double unk_penalty;      /* an unknown char scores min_score - unk_penalty */
    float min_score, max_score;
    uint32_t *ugm_sorted;    /* [ugm_n] ids of matchable pieces, sorted by bytes */
    uint32_t ugm_n;
    tok_trie trie;
    tok_pairset cut_pairs;   /* empty: never cut */
    uint32_t max_piece_len;  /* bytes of the longest piece */
    bool ugm_float;          /* path scores summed in float (SentencePiece), else double (HF) */
    bool spm_normalize;      /* SentencePiece normaliser (charsmap, whitespace) before
                              * Unigram; tokenizer.json models normalise by steps */
    uint8_t *charsmap;       /* [charsmap_len] SentencePiece precompiled normaliser */
    size_t charsmap_len;

    /* tokens matched as a whole in input text: sorted by first byte, then by
     * decreasing length (longest match wins); spec_off[b]..spec_off[b+1] are
     * those starting with byte b */
    uint32_t *special_ids;   /* [n_special] */
    uint32_t n_special;
    uint32_t spec_off[257];
    tok_prefix_mode prefix_mode;

    tok_cache *cache;        /* word -> ids (BPE, SentencePiece BPE); NULL: none */

    /* tokenizer.json pipeline: normaliser steps, then Metaspace */
    tok_norm *norms;         /* [n_norms] */
    uint32_t n_norms;
    bool metaspace;          /* ' ' -> U+2581 and prepend U+2581 per prefix_mode (when
                              * the fragment does not start with one already) */
    bool metaspace_prefix;   /* Metaspace prepends U+2581 (prepend_scheme != never) */
    bool wpm_normalizer;     /* tokenizer.json had a BertNormalizer */
};

/* vocab.c ------------------------------------------------------------------ */
int tok_alloc(lmm_tokenizer **out, uint32_t n_vocab, size_t arena_bytes);
/* Copies LEN bytes into the arena as piece ID. */
int tok_set_piece(lmm_tokenizer *t, uint32_t id, const char *text, size_t len, float score,
                  uint8_t type);
/* Builds the piece -> id map (later ids win on duplicates). */
int tok_build_map(lmm_tokenizer *t, const char *file);
/* Builds the map if not done yet, and the list of special tokens. */
int tok_finish(lmm_tokenizer *t, const char *file);
uint32_t tok_lookup_type(const lmm_tokenizer *t, uint8_t type);
/* BPE merge "left right" with RANK (needs the map); merges of unknown tokens are
 * ignored, as they can never apply */
int tok_add_merge(lmm_tokenizer *t, const char *s, size_t len, uint32_t rank);
int tok_add_merge2(lmm_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen,
                   uint32_t rank);
int tok_build_specials(lmm_tokenizer *t);
void tok_pairmap_free(tok_pairmap *m);
/* room for N pairs */
int tok_pairmap_init(tok_pairmap *m, uint64_t n);
void tok_pairmap_put(tok_pairmap *m, uint32_t a, uint32_t b, uint32_t rank, uint32_t merged);

/* Hash of a byte string: 8 bytes at a time (the map is rebuilt at every load, so
 * only consistency within one process matters). */
static inline uint64_t tok_hash(const char *s, size_t len) {
    uint64_t h = 0x9e3779b97f4a7c15ull ^ ((uint64_t)len * 0xff51afd7ed558ccdull);
    uint64_t w;
    while (len > 8) {
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
        s += 8;
        len -= 8;
    }
    if (len >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + len - 4, 4);
        w = (uint64_t)a | ((uint64_t)b << 32);
    } else if (len) {
        w = (uint64_t)(unsigned char)s[0] | ((uint64_t)(unsigned char)s[len / 2] << 8) |
            ((uint64_t)(unsigned char)s[len - 1] << 16);
    } else {
        w = 0;
    }
    h = (h ^ w) * 0x94d049bb133111ebull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 32);
}

/* Id of the piece whose bytes are s[0..len), TOK_NONE when none (the last of
 * duplicate pieces). */
static inline uint32_t tok_lookup(const lmm_tokenizer *t, const char *s, size_t len) {
    const tok_strmap *m = &t->map;
    if (!m->cap) return TOK_NONE;
    uint64_t h = tok_hash(s, len);
    uint64_t tag = h >> 32 << 32;
    uint64_t i = h & (m->cap - 1);
    for (uint64_t v; (v = m->slots[i]) != 0; i = (i + 1) & (m->cap - 1)) {
        if ((v & 0xFFFFFFFF00000000ull) != tag) continue;
        uint32_t id = (uint32_t)v - 1;
        const tok_piece *p = &t->pieces[id];
        if (p->len == len && memcmp(p->text, s, len) == 0) return id;
    }
    return TOK_NONE;
}

static inline uint64_t tok_pair_hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return k;
}

/* The value stored for (a, b): true and *val when there is one. */
static inline bool tok_pairmap_find(const tok_pairmap *m, uint32_t a, uint32_t b, uint64_t *val) {
    if (!m->cap) return false;
    uint64_t key = (((uint64_t)a << 32) | b) + 1;
    for (uint64_t i = tok_pair_hash(key) & (m->cap - 1); m->ent[i].key; i = (i + 1) & (m->cap - 1)) {
        if (m->ent[i].key == key) {
            *val = m->ent[i].val;
            return true;
        }
    }
    return false;
}

/* rank of the merge of (a, b), TOK_NONE when there is none; *merged gets its id */
static inline uint32_t tok_pairmap_get(const tok_pairmap *m, uint32_t a, uint32_t b, uint32_t *merged) {
    uint64_t v;
    if (!tok_pairmap_find(m, a, b, &v)) return TOK_NONE;
    *merged = (uint32_t)v;
    return (uint32_t)(v >> 32);
}

/* Growable id list used by the encoders. */
typedef struct {
    uint32_t *v;
    size_t n, cap;
} tok_ids;
int tok_ids_push(tok_ids *ids, uint32_t id);

/* The cache entry for word w[0..len) (len <= TOK_CACHE_KEY), whose ids are
 * appended to OUT on a hit: 1 hit, 0 miss, -1 out of memory. */
static inline int tok_cache_get(tok_cache *c, const char *w, size_t len, tok_cache_entry **slot,
                                uint64_t *hash, tok_ids *out) {
    uint64_t h = tok_hash(w, len);
    tok_cache_entry *e = &c->e[h & (TOK_CACHE_N - 1)];
    *slot = e;
    *hash = h;
    if (e->tag != (h | 1) || e->len != len || memcmp(e->key, w, len) != 0) {
        e->tag = 0; /* filled by tok_cache_put if the word's ids fit */
        e->len = (uint8_t)len;
        memcpy(e->key, w, len);
        return 0;
    }
    if (out->n + e->n > out->cap) {
        for (unsigned i = 0; i < e->n; i++) {
            if (tok_ids_push(out, e->ids[i])) return -1;
        }
        return 1;
    }
    memcpy(out->v + out->n, e->ids, e->n * sizeof *e->ids);
    out->n += e->n;
    return 1;
}

/* Fills the entry of a miss (slot and hash from tok_cache_get) with the N ids the
 * word gave (nothing if too many). */
static inline void tok_cache_put(tok_cache_entry *e, uint64_t hash, const uint32_t *ids, size_t n) {
    if (n > TOK_CACHE_IDS) return;
    memcpy(e->ids, ids, n * sizeof *ids);
    e->n = (uint8_t)n;
    e->tag = hash | 1;
}

/* Binary min-heap of merge candidates, shared by the BPE encoders. key = priority
 * (high 32 bits, lower merges first) << 32 | left symbol index, so equal priorities
 * go to the leftmost pair. a, b: the ids of the pair when pushed, to detect stale
 * entries after either side has changed. */
typedef struct {
    uint64_t key;
    int32_t right;
    uint32_t a, b;
    uint32_t merged;       /* id of the token a+b */
} tok_cand;

typedef struct {
    tok_cand *v;           /* [cap] */
    size_t n, cap;
} tok_heap;

static inline void tok_heap_push(tok_heap *h, tok_cand c) {
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h->v[p].key <= c.key) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = c;
}

static inline tok_cand tok_heap_pop(tok_heap *h) {
    tok_cand top = h->v[0];
    tok_cand last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, best = i;
        uint64_t bk = last.key;
        if (l < h->n && h->v[l].key < bk) {
            best = l;
            bk = h->v[l].key;
        }
        if (r < h->n && h->v[r].key < bk) best = r;
        if (best == i) break;
        h->v[i] = h->v[best];
        i = best;
    }
    if (h->n) h->v[i] = last;
    return top;
}

/* utf8.c ------------------------------------------------------------------- */
/* Length of the valid UTF-8 sequence at s[0..n) or 0 when invalid. */
size_t tok_utf8_len(const unsigned char *s, size_t n);
/* Length of the sequence by its lead byte alone (1 for stray bytes), capped at n. */
size_t tok_utf8_len_lead(const unsigned char *s, size_t n);
/* Offset of the first invalid byte, or n when S is valid UTF-8. */
size_t tok_utf8_check(const char *s, size_t n);
/* Decodes one valid sequence. */
uint32_t tok_utf8_decode(const unsigned char *s, size_t *len);
size_t tok_utf8_encode(uint32_t cp, char *out);

/* encoders: append the ids of a plain text fragment (no special tokens inside) */
int tok_spm_encode(const lmm_tokenizer *t, const char *text, size_t len, bool at_start,
                   tok_ids *out, tok_cache *cache);
/* spm.c: builds spm_pairs, spm_extra, spm_char1 (after the map, at tok_finish) */
int tok_spm_prepare(lmm_tokenizer *t, const char *file);
int tok_bpe_encode(const lmm_tokenizer *t, const char *text, size_t len, tok_ids *out,
                   tok_cache *cache);
int tok_wpm_encode(const lmm_tokenizer *t, const char *text, size_t len, tok_ids *out);
int tok_ugm_encode(const lmm_tokenizer *t, const char *text, size_t len, bool at_start,
                   tok_ids *out);

/* bpe.c: bytes of a byte-level BPE piece (GPT-2 alphabet) appended at buf[*pos]
 * (only what fits below cap is written; *pos always advances) */
/* spells byte B in GPT-2's alphabet (UTF-8, 1-2 bytes); returns the length */
int tok_bpe_byte_char(unsigned b, char *out);
/* the byte a code point of GPT-2's alphabet stands for, -1 if none */
int tok_bpe_byte_of(uint32_t cp);
void tok_bpe_unmap(const lmm_tokenizer *t, const char *text, size_t len, char *buf, size_t cap,
                   size_t *pos);
/* pretok.c: split text into words with the pre-tokenizer's patterns, calling FN
 * on each word in order (no words when there are no patterns: FN gets the text) */
typedef int (*tok_word_fn)(void *ctx, const char *s, size_t n);
int tok_pre_split(const lmm_tokenizer *t, const char *s, size_t n, tok_word_fn fn, void *ctx);
/* sets the patterns of a GGUF tokenizer.ggml.pre name ("llama-bpe", "qwen2", ...) */
int tok_pre_preset(lmm_tokenizer *t, const char *name, const char *file);
/* How a pattern splits a piece: keep matches and the text between them (HF
 * "Isolated"), drop the matches ("Removed": the pattern is a delimiter), or keep
 * only the matches (Whitespace / WhitespaceSplit pre-tokenizers). */
typedef enum { TOK_SPLIT_ISOLATED = 0, TOK_SPLIT_REMOVED, TOK_SPLIT_MATCHES_ONLY } tok_split_mode;
int tok_pre_add_regex(lmm_tokenizer *t, const char *pattern, size_t len, const char *file);
/* LITERAL: the pattern is a plain string; ISOLATED: see tok_split_mode (else
 * REMOVED, or MATCHES_ONLY for tok_pre_add_mode) */
int tok_pre_add(lmm_tokenizer *t, const char *pattern, size_t len, bool literal, bool isolated,
                const char *file);
int tok_pre_add_mode(lmm_tokenizer *t, const char *pattern, size_t len, bool literal,
                     tok_split_mode mode, const char *file);
/* compiles a UTF-8 + Unicode-properties PCRE2 pattern (pcre2_code *), NULL on error */
void *tok_regex_compile(const char *pattern, size_t len, const char *file);
/* GPT-2's split pattern (ByteLevel use_regex) */
#define TOK_RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
void tok_pre_free(lmm_tokenizer *t);

/* unigram.c */
int tok_charsmap_set(lmm_tokenizer *t, const uint8_t *data, size_t n, const char *file);
int tok_spm_encode_normalized(const lmm_tokenizer *t, const char *text, size_t len, tok_ids *out,
                              tok_cache *cache);

/* cut.c: where long texts may be cut (see there) */
#define TOK_MIN_SEGMENT 64u          /* bytes: shorter segments are not worth a cut */
#define TOK_MAX_SEGMENT (64u << 20)  /* bytes without a possible cut: refused */
int tok_cut_prepare(lmm_tokenizer *t, const char *file);
void tok_cut_free(lmm_tokenizer *t);
/* the first safe cut in s[from + TOK_MIN_SEGMENT .. n), or n */
size_t tok_next_cut(const lmm_tokenizer *t, const char *s, size_t n, size_t from);
/* the same from from + MIN bytes on (MIN >= 1) */
size_t tok_next_cut_min(const lmm_tokenizer *t, const char *s, size_t n, size_t from, size_t min);
int tok_segment_check(const lmm_tokenizer *t, size_t len);
int tok_ugm_prepare(lmm_tokenizer *t, const char *file);
void tok_ugm_free(lmm_tokenizer *t);

/* normalize.c */
int tok_str_put(tok_str *s, const char *p, size_t n);
int tok_unicode_form(const char *s, size_t n, tok_nf form, tok_str *out);
int tok_lowercase(const char *s, size_t n, tok_str *out);
int tok_charsmap_apply(const lmm_tokenizer *t, const char *s, size_t n, tok_str *out);
int tok_spm_normalize(const lmm_tokenizer *t, const char *s, size_t n, bool prefix, tok_str *out);
int tok_norms_apply(const lmm_tokenizer *t, const char *s, size_t n, tok_str *out);
void tok_norms_free(lmm_tokenizer *t);
/* appends a step (the tokenizer owns its strings and regex from then on) */
int tok_norm_add(lmm_tokenizer *t, const tok_norm *n);
/* wpm.c: Unicode White_Space */
int tok_is_whitespace(uint32_t c);

/* loaders */
int tok_read_whole_file(const char *path, unsigned char **data, size_t *size);
/* "<0xAB>" -> 0xAB, else -1 */
int tok_parse_byte_piece(const char *s, uint32_t len);
int tok_load_llama2c_memory(lmm_tokenizer **out, const unsigned char *d, size_t size,
                            uint32_t vocab_size, const char *path);
int tok_load_gguf_file(lmm_tokenizer **out, const char *path);
int tok_load_gguf(lmm_tokenizer **out, const lmm_gguf *g, const char *name);
int tok_load_hf(lmm_tokenizer **out, const char *path);
/* PATH: for messages, and to find tokenizer_config.json beside it */
int tok_load_hf_memory(lmm_tokenizer **out, const char *data, size_t size, const char *path);
int tok_load_spm_model(lmm_tokenizer **out, const char *path);
int tok_load_spm_memory(lmm_tokenizer **out, const uint8_t *data, size_t size, const char *path);

#endif
