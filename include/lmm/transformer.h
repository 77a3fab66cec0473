/* lmm/transformer.h — the Llama-family forward pass on the CPU.
 *
 * lmm_weights: where the tensors of a model live in memory (FP32/F16/BF16 as stored).
 * lmm_transformer: run state (activations, FP32 KV cache), all allocated at init;
 * nothing is allocated per token.
 *
 * Exactness: logits of a token depend only on the model and the tokens before it —
 * not on threads, ISA path, or how the tokens were batched (prefill of N vs N steps). */
#ifndef LMM_TRANSFORMER_H
#define LMM_TRANSFORMER_H

#include <stddef.h>
#include <stdint.h>

#include "lmm/hal.h"
#include "lmm/model.h"

typedef struct {
    const void *data;   /* tensor bytes as stored (dtype of the desc) */
    lmm_dtype dtype;
} lmm_weight_ref;

typedef struct {
    lmm_weight_ref wq, wk, wv, wo, w_gate, w_up, w_down;
    float *attn_norm, *ffn_norm;     /* [dim], widened to FP32 at load */
    float *bq, *bk, *bv;             /* biases (FP32) or NULL */
} lmm_layer_weights;

typedef struct {
    const lmm_model_desc *desc;
    lmm_weight_ref token_embd;       /* [n_vocab, dim] */
    lmm_weight_ref output;           /* [n_vocab, dim] (= token_embd when tied) */
    float *output_norm;              /* [dim] */
    lmm_layer_weights *layers;       /* [n_layers] */
    /* owned memory */
    void *blob;                      /* weights read into anonymous memory */
    size_t blob_size;
    float *f32_small;                /* norms, biases and rope factors widened to FP32 */
    float *rope_freq_factors;        /* [head_dim/2] or NULL (from rope_freqs.weight) */
} lmm_weights;

/* Reads every tensor of the model into memory (one 64-byte aligned anonymous
 * block, transparent huge pages asked for; each tensor 64-byte aligned in it),
 * widens the 1-D tensors to FP32 and binds the layer pointers. Validates d first.
 * d must outlive w. On error w is left empty (lmm_weights_free is still safe). */
int lmm_weights_load(lmm_weights *w, const lmm_model_desc *d);
void lmm_weights_free(lmm_weights *w);

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
 * logits: if all_logits, [n][n_vocab], else [n_vocab] for the last token.
 * Errors (-1, nothing computed): n == 0, pos+n > n_ctx, token id out of range.
 * Not thread-safe on one t; the ISA path must not change during a call. */
int lmm_transformer_forward(lmm_transformer *t, const uint32_t *tokens, uint32_t n, uint32_t pos,
                            float *logits, int all_logits);

/* Bytes held by the run state (activations + KV). */
size_t lmm_transformer_state_bytes(const lmm_transformer *t);

#endif
