/* lmm/transformer.h — the Llama-family forward pass on the CPU, for one sequence.
 *
 * lmm_weights: every tensor of a model read into memory (FP32/F16/BF16 as stored).
 * lmm_transformer: a single-sequence lmm_executor (lmm/executor.h) over the resident
 * source of those weights, every matrix one segment: the layer math lives only in the
 * executor. All state is allocated at init; nothing is allocated per token.
 *
 * Exactness: logits of a token depend only on the model and the tokens before it —
 * not on threads, ISA path, or how the tokens were batched (prefill of N vs N steps). */
#ifndef LMM_TRANSFORMER_H
#define LMM_TRANSFORMER_H

#include <stddef.h>
#include <stdint.h>

#include "lmm/executor.h"
#include "lmm/hal.h"
#include "lmm/model.h"
#include "lmm/plan.h"

typedef struct {
    const lmm_model_desc *desc;
    const unsigned char **data;      /* [n_tensors] each tensor's bytes as stored */
    const float **f32;               /* [n_tensors] 1-D tensors widened to FP32, else NULL */
    /* owned memory */
    void *blob;                      /* weights read into anonymous memory */
    size_t blob_size;
    float *f32_small;                /* the FP32 copies */
} lmm_weights;

/* Reads every tensor of the model into memory (one 64-byte aligned anonymous
 * block, transparent huge pages asked for; each tensor 64-byte aligned in it),
 * widens the 1-D tensors to FP32 and fills data/f32. Validates d first.
 * d must outlive w. On error w is left empty (lmm_weights_free is still safe). */
int lmm_weights_load(lmm_weights *w, const lmm_model_desc *d);
void lmm_weights_free(lmm_weights *w);

/* The resident source over loaded weights: acquire/release do nothing, segment_data
 * points into the blob, embd_rows into token_embd. p and w must outlive s. */
int lmm_source_resident_init(lmm_weight_source *s, const lmm_plan *p, const lmm_weights *w);
/* The small tensors of every layer, pointing into w's FP32 copies (no copy; st->data
 * stays NULL). lmm_small_tensors_free is still safe. */
int lmm_small_tensors_from_weights(lmm_small_tensors *st, const lmm_weights *w);

typedef struct {
    uint32_t n_ctx;        /* KV positions (0: model's max_seq_len) */
    uint32_t max_batch;    /* most tokens per forward call (0: 64) */
    int n_threads;         /* 0: number of online CPUs */
} lmm_transformer_opts;

typedef struct lmm_transformer lmm_transformer;

/* Allocates the run state (KV cache for n_ctx positions, activations for max_batch
 * tokens, RoPE table) and starts the thread pool. o may be NULL (all defaults).
 * w must outlive t. */
int lmm_transformer_init(lmm_transformer **out, const lmm_weights *w, const lmm_transformer_opts *o);
void lmm_transformer_free(lmm_transformer *t);
uint32_t lmm_transformer_n_ctx(const lmm_transformer *t);

/* Runs tokens[0..n) at positions pos..pos+n-1, appending to the KV cache
 * (positions >= pos are overwritten). n may exceed max_batch (it is chunked).
 * pos may not exceed the number of positions already in the cache (the last forward's
 * pos + n): the tokens before pos must have been run.
 * logits: if all_logits, [n][n_vocab], else [n_vocab] for the last token.
 * Errors (-1, nothing computed): n == 0, pos+n > n_ctx, token id out of range, a gap
 * before pos.
 * Not thread-safe on one t; the ISA path must not change during a call. */
int lmm_transformer_forward(lmm_transformer *t, const uint32_t *tokens, uint32_t n, uint32_t pos,
                            float *logits, int all_logits);

/* Bytes held by the run state (activations + KV). */
size_t lmm_transformer_state_bytes(const lmm_transformer *t);

#endif
