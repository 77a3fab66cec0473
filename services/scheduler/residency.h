/* services/scheduler/residency.h — which pieces stay resident under a memory budget.
 *
 * One forward pass reads every piece once, in order: a cycle. For a cycle larger than
 * memory, LRU (and the page cache) hit nothing; the optimum is a FIXED resident subset,
 * loaded once, plus the rest streamed through a few slots. Which subset does not change
 * the bytes read per token; spreading it evenly over the cycle (Bresenham over the piece
 * index) interleaves resident pieces between streamed ones, so compute on resident
 * pieces hides the reads of the streamed ones.
 *
 * Budget accounting (docs/process-group.md, "Scheduler"):
 *   budget >= other_bytes + (n_pinned + n_stream + 1) * slot_bytes
 * where other_bytes is everything else the group holds for the model inside the budget
 * (KV cache, activations, ring headers, worker run state, scheduler buffers) and the
 * "+ 1" slot is the embedding slot. */
#ifndef LMM_RESIDENCY_H
#define LMM_RESIDENCY_H

#include <stdint.h>

typedef struct {
    uint64_t budget;         /* bytes; 0 = no limit (everything pinned) */
    uint64_t slot_bytes;     /* one weight-ring slot */
    uint64_t other_bytes;    /* everything else counted inside the budget */
    uint32_t n_pieces;       /* pieces in one cycle, >= 1 */
    uint32_t stream_slots;   /* streaming slots wanted when not everything fits (0: 2) */
} lmm_residency_opts;

typedef struct {
    uint32_t n_pieces;
    uint32_t n_pinned;
    uint32_t n_stream;       /* 0 when everything is pinned */
    uint64_t min_budget;     /* the smallest budget that runs (2 streaming slots, 0 pinned) */
    uint64_t full_budget;    /* the smallest budget with every piece pinned */
    uint64_t used_bytes;     /* other_bytes + ring slots of this plan */
    uint8_t *pinned;         /* [n_pieces] 1 = resident */
    uint32_t *slot;          /* [n_pieces] ring slot of a pinned piece, UINT32_MAX if streamed */
    uint32_t *stream_rank;   /* [n_pieces] rank among the streamed pieces, UINT32_MAX if pinned */
} lmm_residency;

/* Plans the residency. A budget below the minimum fails with
 * "--mem-budget 10.0 MiB is too small: this model needs at least 12.3 MiB (...)". */
int lmm_residency_plan(lmm_residency *r, const lmm_residency_opts *o);
void lmm_residency_free(lmm_residency *r);

/* 1 when piece i of n is pinned with n_pinned of n pinned, spread evenly (Bresenham). */
int lmm_residency_spread(uint32_t i, uint32_t n, uint32_t n_pinned);

/* "12.3 MiB" into buf. */
const char *lmm_residency_fmt_bytes(uint64_t bytes, char *buf, unsigned cap);

#endif
