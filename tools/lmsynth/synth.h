/* tools/lmsynth/synth.h — what the parts of lmsynth share: the model being made,
 * its tensor list, the deterministic weight generator, the synthetic vocabulary
 * and the three writers.
 *
 * One seed gives one model whatever the file format: every tensor's values are
 * drawn from a generator keyed by (seed, canonical tensor name, logical row), so a
 * GGUF, a Hugging Face directory and a llama2.c checkpoint made with the same
 * seed compute the same function. The logical row order of attn_q/attn_k is the
 * interleaved-RoPE one (GGUF llama, llama2.c); the Hugging Face writer stores those
 * rows in the NeoX order HF uses (the inverse of llama.cpp's converter permute).
 * For arch qwen2 (--qkv-bias) every format keeps the NeoX order. */
#ifndef LMSYNTH_SYNTH_H
#define LMSYNTH_SYNTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lmm/dtype.h"

typedef enum { SYNTH_FMT_GGUF = 0, SYNTH_FMT_HF, SYNTH_FMT_LLAMA2C } synth_format;

/* Number of vocabulary entries before the word pieces: <unk>, <s>, </s>, 256 bytes. */
#define SYNTH_VOCAB_FIXED 259u

typedef struct {
    uint32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, n_vocab, max_seq_len;
    uint32_t head_dim;          /* dim / n_heads */
    bool tied;                  /* output.weight absent */
    bool qkv_bias;              /* arch qwen2 */
    float norm_eps, rope_theta;
    lmm_dtype dtype;            /* of the matrices (GGUF keeps 1-D tensors F32) */
    synth_format format;
    uint64_t seed;
    const char *out;
} synth_config;

/* How a tensor's values are drawn. */
typedef enum {
    SYNTH_INIT_MATRIX = 0,   /* uniform [-1/sqrt(in), 1/sqrt(in)], in = last dimension */
    SYNTH_INIT_EMBED,        /* uniform [-0.5, 0.5] */
    SYNTH_INIT_NORM,         /* 1 + k/128, k integer in [-8, 8]: exact in F16 and BF16 */
    SYNTH_INIT_BIAS          /* uniform [-0.1, 0.1] */
} synth_init;

typedef struct {
    char name[64];          /* canonical name (lmm/model.h) */
    uint32_t n_dims;        /* 1 or 2 */
    uint64_t shape[2];      /* row-major: shape[0] rows of shape[1] (1-D: one row of shape[0]) */
    synth_init init;
    uint32_t rope_heads;    /* attn_q/attn_k (and their bias) of arch llama: heads, else 0 */
} synth_tensor;

/* The canonical tensors of the model in access order (token_embd, blocks, output_norm,
 * output). *out is malloc'ed. */
int synth_tensors(const synth_config *c, synth_tensor **out, size_t *n);

static inline uint64_t synth_tensor_elems(const synth_tensor *t) {
    return t->n_dims == 1 ? t->shape[0] : t->shape[0] * t->shape[1];
}

/* ---- generator ---------------------------------------------------------- */

/* Streams one tensor's values in file order, converted to a dtype. */
typedef struct {
    const synth_tensor *t;
    uint64_t seed;
    bool neox_rows;         /* write rope rows in NeoX order (Hugging Face llama) */
    uint64_t rows, cols, row, col;
    uint64_t state;         /* PRNG of the current row */
    float scale;
} synth_stream;

void synth_stream_init(synth_stream *s, const synth_tensor *t, uint64_t seed, bool neox_rows);
/* Writes the next n values (n <= what is left) as dtype into dst. */
void synth_stream_fill(synth_stream *s, void *dst, lmm_dtype dtype, size_t n);

/* Writes all of t to f as dtype, through a large buffer; updates the progress line.
 * Returns 0, or -1 with lmm_error_set() naming the path. */
int synth_write_tensor(FILE *f, const char *path, const synth_config *c, const synth_tensor *t, lmm_dtype dtype,
                       bool neox_rows);
/* Writes n zero bytes (alignment padding). */
int synth_write_zeros(FILE *f, const char *path, size_t n);
/* Writes n bytes, counting them for the progress line. */
int synth_write(FILE *f, const char *path, const void *p, size_t n);

/* Progress bar on stderr (lmm/progress.h: only when stderr is a terminal): total bytes
 * to write, then updates from synth_write. */
void synth_progress_begin(const synth_config *c, uint64_t total);
void synth_progress_end(void);

/* ---- vocabulary ---------------------------------------------------------- */

/* SentencePiece-style pieces ("▁" = U+2581 marks a leading space), unique,
 * deterministic. id 0 "<unk>", 1 "<s>", 2 "</s>", 3..258 "<0x00>".."<0xFF>", then
 * word pieces. Scores: 0 for the fixed entries, -(id - 259) after.
 * Token types as GGUF: 1 normal, 2 unknown, 3 control, 6 byte. */
typedef struct {
    uint32_t n;
    char **pieces;          /* [n] NUL-terminated UTF-8 */
    float *scores;          /* [n] */
    int32_t *types;         /* [n] */
} synth_vocab;

int synth_vocab_build(synth_vocab *v, uint32_t n);
void synth_vocab_free(synth_vocab *v);

/* ---- writers ---------------------------------------------------------------- */

int synth_write_gguf(const synth_config *c);
int synth_write_hf(const synth_config *c);
int synth_write_llama2c(const synth_config *c);

#endif
