/* services/compute/group_layout.h — what the scheduler and the compute workers agree on
 * without a message: the layout of the two shared-memory regions, the meaning of slot
 * tags, where each streamed piece will be loaded, how embedding rows are packed into the
 * embedding slot and how layers are split between workers (docs/process-group.md,
 * "Scheduler" and "Compute"). Compiled into lmm-scheduler and lmm-compute.
 *
 * Weight ring (ring 0), n_pinned + n_stream + 1 slots of slot_bytes:
 *   [0, n_pinned)                      pinned pieces, READY for the life of the group
 *   [n_pinned, n_pinned + n_stream)    streamed pieces; the k-th streamed load of the
 *                                      group's life (k = cycle * S + rank of the piece
 *                                      among the S streamed pieces) goes to slot
 *                                      n_pinned + k % n_stream
 *   n_pinned + n_stream (the last)     the embedding slot: the small tensors at start-up,
 *                                      then each step's embedding rows
 * Because compute workers consume streamed pieces in cycle order and free each one when
 * done, slot n_pinned + k % n_stream is always the next one to come free, so this fixed
 * assignment never waits for a slot that a later piece holds.
 *
 * Activation region (ring 1), one slot:
 *   [0, 4096)                          lmm_group_params (written once by the scheduler
 *                                      before any service says HELLO)
 *   [x_offset, + max_batch*dim*4)      x: the residual stream, handed from worker w to w+1
 *   [logits_offset, + max_batch*n_vocab*4)  logits of the STEP's `out` rows (last worker)
 */
#ifndef LMM_GROUP_LAYOUT_H
#define LMM_GROUP_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "lmm/model.h"

#define LMM_GROUP_MAGIC 0x314d524150504d4cull /* "LMMPARM1" little-endian */
#define LMM_GROUP_VERSION 1u
#define LMM_GROUP_HEADER_BYTES 4096u
#define LMM_GROUP_ALIGN 4096u

/* ---- slot tags (lmm_shm_slot_meta.tag; LOAD.tag) ---- */
#define LMM_TAG_KIND_SHIFT 62
#define LMM_TAG_PINNED (1ull << LMM_TAG_KIND_SHIFT)  /* | piece */
#define LMM_TAG_STREAM (2ull << LMM_TAG_KIND_SHIFT)  /* | (cycle mod 2^30) << 32 | piece */
#define LMM_TAG_EMBD (3ull << LMM_TAG_KIND_SHIFT)    /* | (step mod 2^61): embedding rows */
#define LMM_TAG_SMALL (LMM_TAG_EMBD | (1ull << 61))  /* the small tensors, at start-up */

static inline uint64_t lmm_tag_pinned(uint32_t piece) { return LMM_TAG_PINNED | piece; }
static inline uint64_t lmm_tag_stream(uint64_t cycle, uint32_t piece) {
    return LMM_TAG_STREAM | ((cycle & ((1ull << 30) - 1)) << 32) | piece;
}
static inline uint64_t lmm_tag_embd(uint64_t step) { return LMM_TAG_EMBD | (step & ((1ull << 61) - 1)); }
static inline uint64_t lmm_tag_kind(uint64_t tag) { return tag & (3ull << LMM_TAG_KIND_SHIFT); }

/* ---- the parameters every worker reads from the activation region ---- */
typedef struct {
    uint64_t magic;          /* LMM_GROUP_MAGIC, stored last (release) by the scheduler */
    uint32_t version;        /* LMM_GROUP_VERSION */
    uint32_t n_workers;
    uint32_t n_ctx;          /* KV positions per sequence */
    uint32_t max_seqs;       /* sequences alive at once (sequence ids < max_seqs) */
    uint32_t max_batch;      /* tokens per STEP */
    uint32_t n_pieces;
    uint32_t n_pinned;
    uint32_t n_stream;
    uint32_t embd_slot;      /* = n_pinned + n_stream */
    uint32_t n_small;        /* small tensors packed in the embedding slot at start-up */
    uint64_t piece_bytes;    /* the plan's piece size */
    uint64_t slot_bytes;     /* weight-ring slot size */
    uint64_t x_offset;       /* in the activation slot */
    uint64_t logits_offset;
    uint64_t act_bytes;      /* size of the activation slot */
} lmm_group_params;

/* Offsets of x and logits in the activation slot for this shape; returns its size. */
uint64_t lmm_group_act_layout(uint32_t max_batch, uint32_t dim, uint32_t n_vocab, uint64_t *x_offset,
                              uint64_t *logits_offset);

/* Layers [*begin, *end) of worker w of n: an even split (the first n_layers % n workers
 * get one more). */
void lmm_group_layers(uint32_t n_layers, uint32_t n_workers, uint32_t w, uint32_t *begin, uint32_t *end);

/* Weight-ring slot of the k-th streamed load. */
static inline uint32_t lmm_group_stream_slot(const lmm_group_params *p, uint64_t k) {
    return p->n_pinned + (uint32_t)(k % p->n_stream);
}

/* ---- packing byte ranges into one slot (pieces, embedding rows, small tensors) ----
 * Range i [offset[i], offset[i]+length[i]) is read widened to 4 KiB at slot byte
 * slot_offset[i], which is the previous range's slot_offset plus its widened size;
 * file byte offset[i] lands at slot byte slot_offset[i] + offset[i] % 4096. Returns the
 * bytes used (a multiple of 4096), UINT64_MAX on overflow. */
uint64_t lmm_group_pack(const uint64_t *offset, const uint64_t *length, uint32_t n, uint64_t *slot_offset);
/* Widened size of one range. */
static inline uint64_t lmm_group_span(uint64_t offset, uint64_t length) {
    uint64_t a = offset % LMM_GROUP_ALIGN + length;
    return (a + LMM_GROUP_ALIGN - 1) / LMM_GROUP_ALIGN * LMM_GROUP_ALIGN;
}

/* ---- embedding rows of a step ----
 * The distinct token ids of tokens[0..n) in order of first appearance go to distinct[],
 * row_of[i] = index in distinct[] of tokens[i]. hash: caller scratch of hash_cap entries
 * (a power of two >= 2 * n). Returns the number of distinct ids. */
uint32_t lmm_group_distinct(const uint32_t *tokens, uint32_t n, uint32_t *distinct, uint32_t *row_of,
                            uint32_t *hash, uint32_t hash_cap);
/* Smallest power of two >= 2 * n (n <= 2^30). */
uint32_t lmm_group_hash_cap(uint32_t n);

#endif
