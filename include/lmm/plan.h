/* lmm/plan.h — a model's weights cut into pieces, in execution order.
 *
 * One forward pass reads the weight matrices in a fixed order: for each layer
 * attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down; then the output
 * head (output.weight, or token_embd.weight when the embeddings are tied). The plan
 * cuts that sequence into PIECES of at most piece_bytes; a piece is the unit the
 * loader reads into one ring slot and a compute worker acquires and releases.
 *
 * A piece is a list of SEGMENTS. A segment is rows [row_begin, row_end) of one
 * matrix = one contiguous byte range [file_offset, file_offset + nbytes) of one file.
 * Inside the piece's slot the segments are packed at 4 KiB aligned offsets, each
 * widened to 4 KiB boundaries of the file (what an O_DIRECT read of it fills):
 *
 *   slot byte slot_offset            = file byte floor4k(file_offset)
 *   slot byte slot_offset + file_offset % 4096 = the segment's first byte (row_begin)
 *   next segment's slot_offset       = slot_offset + lmm_plan_span(file_offset, nbytes)
 *
 * Rules: pieces never span two layers (the head counts as layer n_layers), so a layer
 * range [a, b) needs exactly a contiguous range of pieces; a matrix larger than a piece
 * is split on row boundaries; consecutive small matrices of a layer share a piece; a
 * piece's packed size (`bytes`) is <= piece_bytes; slot_bytes = max over pieces.
 *
 * Not pieces: the 1-D tensors (norms, biases, rope_freqs: `small`, read once by every
 * worker) and the token embedding (`embd`: the rows of a step's tokens are fetched per
 * step; the head still reads the whole matrix through pieces when it is tied).
 * All offsets and sizes are uint64_t. */
#ifndef LMM_PLAN_H
#define LMM_PLAN_H

#include <stdint.h>

#include "lmm/dtype.h"
#include "lmm/model.h"

#define LMM_PLAN_ALIGN 4096u
#define LMM_PLAN_PIECE_BYTES_DEFAULT (32ull << 20)
/* Largest accepted piece_bytes; with it every matrix is one segment (lmm_transformer). */
#define LMM_PLAN_PIECE_BYTES_MAX (1ull << 52)

/* The seven matrices of a layer, in execution order. */
typedef enum {
    LMM_MAT_ATTN_Q = 0,
    LMM_MAT_ATTN_K,
    LMM_MAT_ATTN_V,
    LMM_MAT_ATTN_OUTPUT,
    LMM_MAT_FFN_GATE,
    LMM_MAT_FFN_UP,
    LMM_MAT_FFN_DOWN,
    LMM_MAT_PER_LAYER
} lmm_plan_mat;

typedef struct {
    uint32_t tensor;         /* index into desc->tensors */
    uint32_t piece;          /* the piece holding it */
    uint32_t matrix;         /* index into plan->matrices */
    uint32_t file;           /* index into desc->files */
    uint64_t row_begin, row_end;
    uint64_t file_offset;    /* absolute offset of row row_begin in the file */
    uint64_t nbytes;         /* (row_end - row_begin) * row_bytes */
    uint64_t slot_offset;    /* 4 KiB aligned; the data starts at slot_offset + file_offset % 4096 */
} lmm_plan_segment;

typedef struct {
    uint32_t layer;          /* layer index; n_layers = the output head */
    uint32_t first_segment;  /* segments [first_segment, first_segment + n_segments) */
    uint32_t n_segments;
    uint64_t bytes;          /* packed, 4 KiB widened size in the slot (<= slot_bytes) */
    uint64_t data_bytes;     /* sum of the segments' nbytes */
} lmm_plan_piece;

typedef struct {
    uint32_t tensor;         /* index into desc->tensors */
    uint32_t layer;          /* n_layers = the head */
    lmm_plan_mat kind;       /* LMM_MAT_PER_LAYER for the head */
    lmm_dtype dtype;
    uint64_t rows, cols, row_bytes;
    uint32_t first_segment;  /* its segments, in row order, are consecutive */
    uint32_t n_segments;
} lmm_plan_matrix;

/* Where the token embedding rows are: row `token` is [offset + token * row_bytes, +row_bytes). */
typedef struct {
    uint32_t tensor;
    uint32_t file;
    lmm_dtype dtype;
    uint64_t offset, row_bytes, n_rows, dim;
} lmm_plan_embd;

typedef struct {
    const lmm_model_desc *desc;      /* must outlive the plan */
    uint32_t n_layers;
    uint64_t piece_bytes;            /* as asked (0 was replaced by the default) */
    uint64_t slot_bytes;             /* largest piece's packed size: the ring slot size */
    uint64_t weight_bytes;           /* sum of nbytes over all segments */
    uint32_t n_matrices;             /* n_layers * 7 + 1 */
    lmm_plan_matrix *matrices;       /* [n_matrices] in execution order; the last is the head */
    uint32_t n_pieces;
    lmm_plan_piece *pieces;          /* [n_pieces] in execution order */
    uint32_t n_segments;
    lmm_plan_segment *segments;      /* [n_segments] in execution order */
    uint32_t *layer_pieces;          /* [n_layers + 2]: layer l's pieces are
                                        [layer_pieces[l], layer_pieces[l+1]); l = n_layers: head */
    uint32_t n_small;
    uint32_t *small;                 /* [n_small] tensor indices of the 1-D tensors the graph uses */
    uint64_t small_bytes;            /* their bytes as stored */
    lmm_plan_embd embd;
} lmm_plan;

/* Cuts d's weights into pieces of at most piece_bytes (0: LMM_PLAN_PIECE_BYTES_DEFAULT).
 * Validates d. piece_bytes must be >= lmm_plan_min_piece_bytes(d) (the 4 KiB widened
 * size of the widest matrix row), else -1 with an error that says the minimum. */
int lmm_plan_build(lmm_plan *p, const lmm_model_desc *d, uint64_t piece_bytes);
void lmm_plan_free(lmm_plan *p);

/* The smallest piece_bytes lmm_plan_build accepts for d (0 with an error when d lacks
 * a matrix the graph needs). */
uint64_t lmm_plan_min_piece_bytes(const lmm_model_desc *d);

/* Bytes an O_DIRECT read of [offset, offset + nbytes) fills: both ends widened to 4 KiB. */
static inline uint64_t lmm_plan_span(uint64_t offset, uint64_t nbytes) {
    uint64_t start = offset / LMM_PLAN_ALIGN * LMM_PLAN_ALIGN;
    uint64_t end = (offset + nbytes + LMM_PLAN_ALIGN - 1) / LMM_PLAN_ALIGN * LMM_PLAN_ALIGN;
    return end - start;
}

/* Offset of a segment's first byte from the start of its piece's slot. */
static inline uint64_t lmm_plan_segment_data_offset(const lmm_plan_segment *s) {
    return s->slot_offset + s->file_offset % LMM_PLAN_ALIGN;
}

/* Matrix `kind` of layer `layer`; layer == n_layers gives the head (kind ignored). */
const lmm_plan_matrix *lmm_plan_matrix_of(const lmm_plan *p, uint32_t layer, lmm_plan_mat kind);

/* The pieces that layers [layer_begin, layer_end) (and the head, if head) need:
 * [*first, *end), in execution order. head requires layer_end == n_layers; an empty
 * range gives *first == *end. -1 with an error on a bad range. */
int lmm_plan_pieces_of(const lmm_plan *p, uint32_t layer_begin, uint32_t layer_end, int head, uint32_t *first,
                       uint32_t *end);

/* File offset of the embedding row of `token` (token < embd.n_rows). */
static inline uint64_t lmm_plan_embd_offset(const lmm_plan *p, uint32_t token) {
    return p->embd.offset + (uint64_t)token * p->embd.row_bytes;
}

const char *lmm_plan_mat_name(lmm_plan_mat kind);

#endif
