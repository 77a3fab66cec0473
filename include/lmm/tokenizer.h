/* lmm/tokenizer.h — text <-> token ids, for every tokenizer a model can carry.
 * Loaders: llama2.c tokenizer.bin, GGUF metadata (tokenizer.ggml.*), Hugging Face
 * tokenizer.json, SentencePiece tokenizer.model. Algorithms: SentencePiece BPE with
 * byte fallback, byte-level BPE, WordPiece, Unigram. */
#ifndef LMM_TOKENIZER_H
#define LMM_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "lmm/model.h"

typedef struct lmm_tokenizer lmm_tokenizer;

enum {
    LMM_TOK_ADD_SPECIAL = 1u << 0,   /* add BOS/EOS as the tokenizer's config says */
    LMM_TOK_PARSE_SPECIAL = 1u << 1  /* match special-token text in the input */
};

/* llama2.c tokenizer.bin: i32 max_token_length, then per token { f32 score, i32 len, bytes }. */
int lmm_tokenizer_load_llama2c(lmm_tokenizer **out, const char *path, uint32_t vocab_size);
/* The tokenizer for a model: `path` if given (any supported file type), else the
 * one the model carries (GGUF metadata) or sits beside it (tokenizer.json, tokenizer.bin). */
int lmm_tokenizer_load_for_model(lmm_tokenizer **out, const lmm_model_desc *d, const char *path);
/* Any supported tokenizer file, detected from its content/name. */
int lmm_tokenizer_load_file(lmm_tokenizer **out, const char *path);
void lmm_tokenizer_free(lmm_tokenizer *t);

uint32_t lmm_tokenizer_vocab_size(const lmm_tokenizer *t);
uint32_t lmm_tokenizer_bos(const lmm_tokenizer *t);  /* UINT32_MAX when none */
uint32_t lmm_tokenizer_eos(const lmm_tokenizer *t);

/* Control tokens (BOS, EOS, <|im_end|>, ...) decode to no text. */
int lmm_tokenizer_is_control(const lmm_tokenizer *t, uint32_t id);
/* The vocabulary entry of ID as stored (e.g. "\u2581the", "Ġthe", "<0x0A>"), or NULL when
 * out of range; *len gets its length (it may contain NUL bytes). */
const char *lmm_tokenizer_piece(const lmm_tokenizer *t, uint32_t id, size_t *len);
/* A one-word description of the algorithm: "spm-bpe", "bpe", "wordpiece", "unigram". */
const char *lmm_tokenizer_kind(const lmm_tokenizer *t);

/* Encodes len bytes of text (not NUL-terminated; may contain NUL). Writes at most
 * cap ids; *n_ids gets the full count (call again with a bigger buffer if > cap).
 * Invalid UTF-8 is an error (-1, message names the byte offset). Thread-safe: a
 * loaded tokenizer is read-only. */
int lmm_tokenizer_encode(const lmm_tokenizer *t, const char *text, size_t len, unsigned flags,
                         uint32_t *ids, size_t cap, size_t *n_ids);
/* Decodes one token given the previous one (for leading-space rules: pass
 * UINT32_MAX or the BOS id before the first token, whose leading space is then
 * dropped as SentencePiece does), writing its bytes to buf; *len = bytes written.
 * Byte-fallback tokens (<0x0A>) and byte-level pieces give raw bytes, which may be
 * part of a UTF-8 character completed by the next tokens. Control tokens give
 * nothing. An out-of-range id, or a buffer smaller than the piece (*len then says
 * how many bytes are needed), is an error. */
int lmm_tokenizer_decode_token(const lmm_tokenizer *t, uint32_t prev, uint32_t id,
                               char *buf, size_t cap, size_t *len);
/* Decodes a whole sequence into buf (NUL-terminated if room); *len = bytes of the
 * whole text, which may exceed cap (then only cap bytes were written: call again
 * with a buffer of *len + 1). An out-of-range id is an error. */
int lmm_tokenizer_decode(const lmm_tokenizer *t, const uint32_t *ids, size_t n,
                         char *buf, size_t cap, size_t *len);

#endif
