/* services/compute/ring_source.c — the executor's weight source over the weight ring:
 * pinned pieces in place, streamed pieces waited for by futex and freed right after use
 * (ring_source.h). */
#include "ring_source.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lmm/error.h"
#include "lmm/trace.h"

static uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int lmm_ring_source_wait_claim(lmm_shm_ring *ring, uint32_t slot, uint64_t tag, int timeout_ms, const char *what,
                               uint64_t *waited_us) {
    uint64_t t0 = now_us();
    uint64_t deadline = t0 + (uint64_t)timeout_ms * 1000u;
    for (;;) {
        lmm_slot_state st = lmm_shm_ring_slot_state(ring, slot);
        if (st == LMM_SLOT_READY) {
            /* READY seen with acquire ordering: the metadata is the loader's. */
            uint64_t have = lmm_shm_ring_slot_meta(ring, slot)->tag;
            if (have != tag)
                return lmm_error_set("%s: slot %u holds tag %#" PRIx64 ", expected %#" PRIx64
                                     " (scheduler and worker out of step)",
                                     what, slot, have, tag);
            if (lmm_shm_ring_slot_claim(ring, slot, UINT64_MAX) != 0) return lmm_error_prefix("%s", what);
            break;
        }
        uint64_t now = now_us();
        if (now >= deadline) {
            const lmm_shm_slot_meta *m = lmm_shm_ring_slot_meta(ring, slot);
            if (st == LMM_SLOT_FREE && m->error)
                return lmm_error_set("%s: the load into slot %u failed: %s", what, slot, strerror(m->error));
            return lmm_error_set("%s: not loaded into slot %u within %d ms (the slot is %s)", what, slot, timeout_ms,
                                 lmm_slot_state_name(st));
        }
        int left_ms = (int)((deadline - now + 999) / 1000);
        /* -1 = timeout: loop once more to report it with the slot's state. */
        (void)lmm_shm_ring_slot_wait(ring, slot, 1u << LMM_SLOT_READY, left_ms);
    }
    if (waited_us) *waited_us += now_us() - t0;
    return 0;
}

/* "piece 7 (layer 3)" or "piece 9 (output head)" */
static void describe(const lmm_ring_source *rs, uint32_t piece, char *buf, size_t cap) {
    uint32_t layer = rs->plan->pieces[piece].layer;
    if (layer >= rs->plan->n_layers)
        snprintf(buf, cap, "piece %u (output head)", piece);
    else
        snprintf(buf, cap, "piece %u (layer %u)", piece, layer);
}

static const void *rs_acquire(void *ctx, uint32_t piece) {
    lmm_ring_source *rs = ctx;
    const lmm_group_params *p = rs->params;
    char what[64];
    if (piece >= rs->plan->n_pieces) {
        lmm_error_set("piece %u out of range (%u pieces)", piece, rs->plan->n_pieces);
        return NULL;
    }
    if (!rs->mapped) {
        lmm_error_set("pinned slots not mapped before the first step");
        return NULL;
    }
    uint32_t slot = rs->slot_of[piece];
    if (slot != UINT32_MAX) {
        rs->pieces_pinned++;
        return lmm_shm_ring_slot_data(rs->ring, slot);
    }
    if (rs->held_piece != UINT32_MAX) {
        lmm_error_set("piece %u acquired while piece %u is held", piece, rs->held_piece);
        return NULL;
    }
    uint64_t k = rs->cycle * rs->n_streamed + rs->stream_rank[piece];
    slot = lmm_group_stream_slot(p, k);
    describe(rs, piece, what, sizeof what);
    uint64_t t0 = lmm_trace_begin();
    if (lmm_ring_source_wait_claim(rs->ring, slot, lmm_tag_stream(rs->cycle, piece), rs->timeout_ms, what,
                                   &rs->wait_us) != 0)
        return NULL;
    lmm_trace_end("wait", "wait slot", t0, "piece", piece, "bytes", (int64_t)rs->plan->pieces[piece].data_bytes);
    rs->held_piece = piece;
    rs->held_slot = slot;
    rs->pieces_streamed++;
    return lmm_shm_ring_slot_data(rs->ring, slot);
}

static void rs_release(void *ctx, uint32_t piece) {
    lmm_ring_source *rs = ctx;
    if (piece >= rs->plan->n_pieces || rs->slot_of[piece] != UINT32_MAX || rs->held_piece != piece) return;
    uint32_t slot = rs->held_slot;
    rs->held_piece = UINT32_MAX;
    rs->held_slot = UINT32_MAX;
    /* IN_USE -> FREE, then tell the scheduler so the loader can refill it. Neither can
     * fail unless the ring is corrupt; a lost SLOT_FREE shows up as a load that never
     * comes (the next wait times out naming the piece). */
    if (lmm_shm_ring_slot_release(rs->ring, slot, 0) != 0 || rs->slot_free(rs->user, slot) != 0)
        fprintf(stderr, "lmm-compute: releasing slot %u: %s\n", slot, lmm_error_get());
}

static void rs_destroy(void *ctx) { (void)ctx; /* owned by the caller (lmm_ring_source_free) */ }

int lmm_ring_source_init(lmm_ring_source *rs, lmm_weight_source *out, lmm_shm_ring *ring, const lmm_plan *plan,
                         const lmm_group_params *params, int timeout_ms, int (*slot_free)(void *, uint32_t),
                         void *user) {
    memset(rs, 0, sizeof *rs);
    memset(out, 0, sizeof *out);
    rs->ring = ring;
    rs->plan = plan;
    rs->params = params;
    rs->timeout_ms = timeout_ms;
    rs->slot_free = slot_free;
    rs->user = user;
    rs->held_piece = rs->held_slot = UINT32_MAX;
    rs->slot_of = malloc((size_t)plan->n_pieces * sizeof *rs->slot_of);
    rs->stream_rank = malloc((size_t)plan->n_pieces * sizeof *rs->stream_rank);
    if (!rs->slot_of || !rs->stream_rank) {
        lmm_ring_source_free(rs);
        return lmm_error_set("out of memory");
    }
    out->ctx = rs;
    out->acquire = rs_acquire;
    out->release = rs_release;
    out->destroy = rs_destroy;
    return 0;
}

void lmm_ring_source_free(lmm_ring_source *rs) {
    free(rs->slot_of);
    free(rs->stream_rank);
    rs->slot_of = rs->stream_rank = NULL;
}

int lmm_ring_source_map_pinned(lmm_ring_source *rs) {
    const lmm_group_params *p = rs->params;
    uint32_t n = rs->plan->n_pieces;
    for (uint32_t i = 0; i < n; i++) rs->slot_of[i] = UINT32_MAX;
    uint32_t found = 0;
    for (uint32_t s = 0; s < p->n_pinned; s++) {
        if (lmm_shm_ring_slot_state(rs->ring, s) != LMM_SLOT_READY)
            return lmm_error_set("%s: pinned slot %u is %s, not READY", rs->ring->name, s,
                                 lmm_slot_state_name(lmm_shm_ring_slot_state(rs->ring, s)));
        uint64_t tag = lmm_shm_ring_slot_meta(rs->ring, s)->tag;
        uint64_t piece = tag & 0xffffffffu;
        if (lmm_tag_kind(tag) != LMM_TAG_PINNED || piece >= n || rs->slot_of[piece] != UINT32_MAX)
            return lmm_error_set("%s: pinned slot %u has tag %#" PRIx64 ", not a pinned piece", rs->ring->name, s, tag);
        rs->slot_of[piece] = s;
        found++;
    }
    rs->n_streamed = 0;
    for (uint32_t i = 0; i < n; i++) rs->stream_rank[i] = rs->slot_of[i] == UINT32_MAX ? rs->n_streamed++ : UINT32_MAX;
    if (found != p->n_pinned || (rs->n_streamed > 0 && p->n_stream == 0))
        return lmm_error_set("%s: %u pinned pieces found, %u expected (%u streamed, %u streaming slots)",
                             rs->ring->name, found, p->n_pinned, rs->n_streamed, p->n_stream);
    rs->mapped = 1;
    return 0;
}
