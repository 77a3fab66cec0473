/* services/compute/ring_source.h — the executor's weight source over the shared-memory
 * weight ring (lmm/executor.h, lmm_weight_source).
 *
 * acquire(piece): a pinned piece is read where it lies (its slot was found once, by tag,
 * before the first step: "pinned slots mapped once"); a streamed piece is waited for
 * (lmm_shm_ring_slot_wait, futex, no ZeroMQ round trip) in the slot the scheduler loads it
 * into (group_layout.h: slot n_pinned + k % n_stream for the k-th streamed load), its tag
 * checked, and claimed READY -> IN_USE. A wait longer than timeout_ms fails with a line
 * naming the piece, its layer and the slot's state.
 * release(piece): a streamed slot goes IN_USE -> FREE and the scheduler is told
 * (SLOT_FREE through the callback), so the loader can refill it while the next pieces are
 * computed. Pinned slots stay READY.
 * Weights are never copied: the executor's matmuls read the slot bytes in place. */
#ifndef LMM_RING_SOURCE_H
#define LMM_RING_SOURCE_H

#include <stdint.h>

#include "group_layout.h"
#include "lmm/executor.h"
#include "lmm/plan.h"
#include "lmm/shm_ring.h"

typedef struct {
    lmm_shm_ring *ring;
    const lmm_plan *plan;
    const lmm_group_params *params;
    int timeout_ms;
    /* tells the scheduler a slot is free again; 0 or -1 with the error */
    int (*slot_free)(void *user, uint32_t slot);
    void *user;

    uint32_t *slot_of;       /* [n_pieces] pinned piece -> slot, UINT32_MAX if streamed */
    uint32_t *stream_rank;   /* [n_pieces] rank among streamed pieces, UINT32_MAX if pinned */
    uint32_t n_streamed;     /* streamed pieces per cycle (S) */
    int mapped;              /* pinned slots found */

    uint64_t cycle;          /* the step being run (= STEP.step_id) */
    uint32_t held_piece, held_slot; /* the streamed piece held, UINT32_MAX if none */
    uint64_t wait_us;        /* time waiting for slots in this step */
    uint64_t pieces_streamed, pieces_pinned; /* acquired, since start */
} lmm_ring_source;

/* Sets up the source (no slot is touched yet) and fills *out for lmm_executor_init. */
int lmm_ring_source_init(lmm_ring_source *rs, lmm_weight_source *out, lmm_shm_ring *ring, const lmm_plan *plan,
                         const lmm_group_params *params, int timeout_ms, int (*slot_free)(void *, uint32_t),
                         void *user);
void lmm_ring_source_free(lmm_ring_source *rs);

/* Finds every pinned piece by its slot's tag (once; the scheduler sends no STEP before
 * all pinned pieces are READY). Checks that exactly params->n_pinned were found. */
int lmm_ring_source_map_pinned(lmm_ring_source *rs);

/* Before each step: the cycle whose streamed loads the step consumes. */
static inline void lmm_ring_source_begin_step(lmm_ring_source *rs, uint64_t cycle) {
    rs->cycle = cycle;
    rs->wait_us = 0;
}

/* Waits for slot `slot` to be READY holding `tag` and claims it (READY -> IN_USE).
 * what: for the error line ("piece 7 (layer 3)"). */
int lmm_ring_source_wait_claim(lmm_shm_ring *ring, uint32_t slot, uint64_t tag, int timeout_ms, const char *what,
                               uint64_t *waited_us);

#endif
