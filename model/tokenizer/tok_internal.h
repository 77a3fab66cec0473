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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

typedef struct {
    const char *text;  /* bytes, not NUL-terminated (points into the arena) */
    uint32_t len;
    float score;
    uint8_t type;      /* tok_type */
    uint8_t special;   /* matched as a whole in the input with LMM_TOK_PARSE_SPECIAL */
    uint8_t lstrip, rstrip; /* added-token options (HF): eat whitespace left/right */
} tok_piece;

/* Open-addressing hash map from a byte string to a uint32 value. */
typedef struct {
    uint32_t *slots;   /* [cap] id+1, 0 = empty */
    uint64_t cap;      /* power of two */
} tok_strmap;

/* Hash map (left id, right id) -> merge rank for byte-level BPE. */
typedef struct {
    uint64_t *keys;    /* [cap] (left << 32 | right) + 1, 0 = empty */
    uint32_t *vals;    /* [cap] rank */
    uint64_t cap;
} tok_pairmap;

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

    /* byte-level BPE */
    tok_pairmap merges;
    tok_pre pre;
    void *pre_regex[4];      /* compiled PCRE2 patterns applied in sequence */
    uint32_t n_pre_regex;
    bool ignore_merges;      /* Llama 3: a whole word in the vocab is one token */
    bool bpe_bytes;          /* pieces are in GPT-2's byte-to-unicode alphabet */

    /* WordPiece */
    bool lowercase;
    bool strip_accents;
    bool tokenize_chinese;
    uint32_t max_word_chars;

    /* Unigram */
    double unk_penalty;      /* score of an unknown char */
    float min_score;

    /* special tokens, sorted by decreasing length for longest-first matching */
    uint32_t *special_ids;   /* [n_special] */
    uint32_t n_special;
};

/* vocab.c ------------------------------------------------------------------ */
int tok_alloc(lmm_tokenizer **out, uint32_t n_vocab, size_t arena_bytes);
/* Copies LEN bytes into the arena as piece ID. */
int tok_set_piece(lmm_tokenizer *t, uint32_t id, const char *text, size_t len, float score,
                  uint8_t type);
/* Builds the piece -> id map (later ids win on duplicates) and the special list. */
int tok_finish(lmm_tokenizer *t, const char *file);
uint32_t tok_lookup(const lmm_tokenizer *t, const char *s, size_t len);
int tok_build_specials(lmm_tokenizer *t);
uint64_t tok_hash(const char *s, size_t len);
void tok_pairmap_free(tok_pairmap *m);
int tok_pairmap_init(tok_pairmap *m, uint64_t n);
void tok_pairmap_put(tok_pairmap *m, uint32_t a, uint32_t b, uint32_t rank);
uint32_t tok_pairmap_get(const tok_pairmap *m, uint32_t a, uint32_t b);

/* Growable id list used by the encoders. */
typedef struct {
    uint32_t *v;
    size_t n, cap;
} tok_ids;
int tok_ids_push(tok_ids *ids, uint32_t id);

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
                   tok_ids *out);
int tok_bpe_encode(const lmm_tokenizer *t, const char *text, size_t len, tok_ids *out);
int tok_wpm_encode(const lmm_tokenizer *t, const char *text, size_t len, tok_ids *out);
int tok_ugm_encode(const lmm_tokenizer *t, const char *text, size_t len, bool at_start,
                   tok_ids *out);

/* loaders */
int tok_load_gguf_file(lmm_tokenizer **out, const char *path);
int tok_load_gguf(lmm_tokenizer **out, const lmm_gguf *g, const char *name);
int tok_load_hf(lmm_tokenizer **out, const char *path);
int tok_load_spm_model(lmm_tokenizer **out, const char *path);

#endif
