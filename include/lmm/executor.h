/* lmm/executor.h — the one implementation of the layer math, over weight pieces.
 *
 * An lmm_executor runs layers [layer_begin, layer_end) of the Llama-family forward
 * pass (optionally preceded by the token embedding and followed by the output head)
 * for a BATCH of tokens from one or more sequences: each token carries (seq id,
 * position). It owns the FP32 KV cache of its layers for max_seqs sequences (in RAM, or
 * paged through a RAM budget to a spill file: lmm_executor_opts.kv_ram_bytes) and reads
 * the weight matrices piece by piece (lmm/plan.h) from a pluggable SOURCE. The whole
 * engine has no other copy of this math: lmm_transformer_forward is a single-sequence
 * executor over the resident source, and compute workers run executors over the
 * shared-memory ring. Results are bit-identical whatever the source, piece size,
 * layer split, batch composition, thread count or ISA path (docs/exactness.md).
 *
 * One step (lmm_executor_step):
 *   x[t] = embedding row of token t (widened exactly to FP32), or x_in[t]
 *   for each layer: the steps of docs/exactness.md "Transformer"; K/V rows of token t
 *       go to cache[seq_t][layer][pos_t]; attention of t reads cache[seq_t][layer][0..pos_t]
 *   x_out[t] = x[t]                                  (if asked)
 *   logits = output(rmsnorm(x[t], output_norm))      (head only, tokens that ask)
 * Every step acquires every piece of the executor's range exactly once, in plan order
 * (also the head's pieces when no token wants logits), and releases each right after
 * the matmul rows of its last segment: the piece sequence is the same every step, which
 * is what the scheduler's access predictor relies on. At most one piece is held at a time.
 *
 * Nothing is allocated per step. Not thread-safe on one executor. */
#ifndef LMM_EXECUTOR_H
#define LMM_EXECUTOR_H

#include <stddef.h>
#include <stdint.h>

#include "lmm/model.h"
#include "lmm/plan.h"

/* ---- weight sources ------------------------------------------------------------------
 *
 * acquire(ctx, piece): make piece `piece` readable and return the base of its slot
 *   bytes: segment s of the piece then starts at base + lmm_plan_segment_data_offset(s)
 *   (= base + slot_offset + file_offset % 4096). May block (waiting for the loader).
 *   On failure: NULL after lmm_error_set() with a message; the executor prefixes it with
 *   the piece and layer and lmm_executor_step returns -1 with it.
 * release(ctx, piece): the executor is done with the piece (a ring slot may be freed).
 *   Called exactly once for every successful acquire, also when the step fails.
 * segment_data(ctx, segment) (optional): where a source's bytes are not laid out like a
 *   slot (the resident and mmap sources point into the loaded blob or the file mapping),
 *   it returns the address of segment `segment` (index into plan->segments) directly,
 *   and the base returned by acquire is only checked for NULL.
 * embd_rows(ctx, tokens, n, rows) (optional): rows[i] = address of the embedding row of
 *   tokens[i], as stored (plan->embd.dtype, plan->embd.dim elements); valid until the
 *   next call. Used when a step gives token ids without embedding row pointers.
 * destroy(ctx): frees the source (lmm_source_free).
 * Every callback runs on the thread that called lmm_executor_step. */
typedef struct {
    void *ctx;
    const void *(*acquire)(void *ctx, uint32_t piece);
    void (*release)(void *ctx, uint32_t piece);
    const void *(*segment_data)(void *ctx, uint32_t segment);
    int (*embd_rows)(void *ctx, const uint32_t *tokens, uint32_t n, const void **rows);
    void (*destroy)(void *ctx);
} lmm_weight_source;

/* naive: each acquire reads the piece's segments with pread() into ONE slot-sized
 * buffer (slot layout; O_DIRECT when o_direct, 4 KiB widened like the loader), no
 * overlap of reading and computing; embedding rows are pread into a buffer of max_batch
 * rows. The baseline "read what you need when you need it". */
int lmm_source_naive_init(lmm_weight_source *s, const lmm_plan *p, uint32_t max_batch, int o_direct);
/* mmap: every model file mapped read-only; segments point into the mapping (the page
 * cache decides what is resident: llama.cpp's default, the other baseline). */
int lmm_source_mmap_init(lmm_weight_source *s, const lmm_plan *p);
/* The resident source (weights already loaded: lmm_weights) is in lmm/transformer.h. */
void lmm_source_free(lmm_weight_source *s);

/* ---- small tensors -------------------------------------------------------------------
 * Norm weights, biases and rope frequency factors, widened to FP32. Pointers of layers
 * outside the range read (and of absent biases) are NULL. */
typedef struct {
    const float *attn_norm, *ffn_norm;   /* [dim] */
    const float *bq, *bk, *bv;           /* [q_dim], [kv_dim], [kv_dim] or NULL */
} lmm_small_layer;

typedef struct {
    uint32_t n_layers;
    lmm_small_layer *layers;             /* [n_layers] */
    const float *output_norm;            /* [dim] or NULL (not read) */
    const float *rope_freqs;             /* [head_dim/2] or NULL (absent) */
    /* owned */
    float *data;
} lmm_small_tensors;

/* Reads the small tensors of layers [layer_begin, layer_end) (output_norm if head;
 * rope_freqs always when present) with pread() from the model files (workers). */
int lmm_small_tensors_read(lmm_small_tensors *st, const lmm_model_desc *d, uint32_t layer_begin, uint32_t layer_end,
                           int head);
/* The same with the bytes fetched by a callback: read(ctx, tensor index, dst, nbytes)
 * fills dst with the tensor's nbytes bytes as stored; 0 or -1 with an error. */
typedef int (*lmm_tensor_read_fn)(void *ctx, uint32_t tensor, void *dst, uint64_t nbytes);
int lmm_small_tensors_read_with(lmm_small_tensors *st, const lmm_model_desc *d, uint32_t layer_begin,
                                uint32_t layer_end, int head, lmm_tensor_read_fn read, void *ctx);
void lmm_small_tensors_free(lmm_small_tensors *st);

/* ---- the executor ------------------------------------------------------------------ */
typedef struct {
    uint32_t layer_begin, layer_end;  /* layers [begin, end); may be empty (embedding only) */
    int head;                         /* compute logits: needs layer_end == n_layers */
    uint32_t max_batch;               /* most tokens per step (0: 64) */
    uint32_t max_seqs;                /* sequences with a KV cache (0: 1) */
    uint32_t n_ctx;                   /* positions per sequence (0: the model's max_seq_len) */
    int n_threads;                    /* 0: number of online CPUs */
    /* Paged live KV (docs/kv-cache.md "Long contexts: live KV spill"). kv_ram_bytes 0:
     * the whole cache in RAM (above). Else, when the cache is larger than kv_ram_bytes,
     * positions are grouped in blocks of kv_block tokens per (sequence, layer, K or V),
     * at most kv_ram_bytes of blocks are held in a frame pool and the rest live in a
     * spill file in kv_spill_dir (needed then), streamed back in position order for
     * attention: the same bits as all in RAM. */
    uint64_t kv_ram_bytes;
    const char *kv_spill_dir;
    uint32_t kv_block;                /* positions per block (0: 16, or more so that a block is 4 KiB) */
} lmm_executor_opts;

/* One step's batch. Input, the first given of: x_in; embd_rows; tokens (rows through the
 * source's embd_rows). Token ids, when given, are checked against n_vocab. */
typedef struct {
    uint32_t n;                       /* tokens, 1..max_batch */
    const uint32_t *seq;              /* [n] sequence ids < max_seqs; NULL: all 0 */
    const uint32_t *pos;              /* [n] positions < n_ctx */
    const uint32_t *tokens;           /* [n] token ids < n_vocab, or NULL */
    const void *const *embd_rows;     /* [n] embedding row of each token as stored, or NULL */
    const float *x_in;                /* [n][dim] output of the previous layer range, or NULL */
    float *x_out;                     /* [n][dim] the residual stream after the range, or NULL */
    const uint8_t *want_logits;       /* [n] nonzero: logits wanted; NULL: all (head only) */
    float *logits;                    /* [n_wanted][n_vocab] in batch order (head only) */
} lmm_executor_batch;

typedef struct lmm_executor lmm_executor;

/* plan, small and the source's ctx must outlive the executor (*src is copied).
 * Allocates the KV cache [max_seqs][layers in range][n_ctx][kv_dim] (K and V, FP32)
 * (or, paged, the frame pool and the spill file), activations for max_batch tokens and
 * the RoPE table, and starts the thread pool. */
int lmm_executor_init(lmm_executor **out, const lmm_plan *plan, const lmm_small_tensors *small,
                      const lmm_weight_source *src, const lmm_executor_opts *o);
void lmm_executor_free(lmm_executor *ex);

/* Runs one step. The tokens of one sequence must come in batch order at consecutive
 * positions p, p+1, ..., with p <= lmm_executor_seq_len(seq) (the cache holds 0..p-1);
 * positions >= p are overwritten and afterwards seq_len(seq) = last position + 1.
 * Tokens of different sequences may be interleaved in any order. Errors (-1 with a
 * message; the sequences of the batch are then truncated to their first position in it):
 * bad batch, or a source failure. */
int lmm_executor_step(lmm_executor *ex, const lmm_executor_batch *b);

/* Positions 0..seq_len-1 of `seq` hold valid K/V. */
uint32_t lmm_executor_seq_len(const lmm_executor *ex, uint32_t seq);
/* Forgets positions >= len of `seq` (0: the sequence starts over). */
void lmm_executor_seq_truncate(lmm_executor *ex, uint32_t seq, uint32_t len);

/* KV export / import for the cache service (docs/kv-cache.md). Layout of a range
 * [p0, p1) of one sequence: for each layer of the range in order, K rows then V rows,
 * [n_local][2][p1-p0][kv_dim] FP32 (lmm_executor_kv_bytes(ex, p1-p0) bytes). kv_read
 * needs p1 <= seq_len; kv_write needs p0 <= seq_len and sets seq_len = p1 (later
 * positions are forgotten). Bit copies: a loaded block is exactly the computed one. */
size_t lmm_executor_kv_bytes(const lmm_executor *ex, uint32_t n_pos);
int lmm_executor_kv_read(const lmm_executor *ex, uint32_t seq, uint32_t p0, uint32_t p1, float *dst);
int lmm_executor_kv_write(lmm_executor *ex, uint32_t seq, uint32_t p0, uint32_t p1, const float *src);

uint32_t lmm_executor_n_ctx(const lmm_executor *ex);
uint32_t lmm_executor_max_batch(const lmm_executor *ex);
/* Pieces this executor acquires each step: [first, end) of plan->pieces. */
void lmm_executor_pieces(const lmm_executor *ex, uint32_t *first, uint32_t *end);
/* Bytes held by the run state (activations, KV cache, RoPE table, scratch). */
size_t lmm_executor_state_bytes(const lmm_executor *ex);
/* Paged live KV: 1 when this executor spills (else 0 and the rest is 0); the bytes of
 * KV frames in RAM; blocks read from / written to the spill file so far. */
int lmm_executor_kv_spill_stats(const lmm_executor *ex, size_t *ram_bytes, uint64_t *reads, uint64_t *writes);

#endif
