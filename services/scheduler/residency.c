/* services/scheduler/residency.c — the resident subset under a memory budget
 * (residency.h explains why a fixed, evenly spread subset and not LRU). */
#include "residency.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmm/error.h"

#define DEFAULT_STREAM_SLOTS 2u

const char *lmm_residency_fmt_bytes(uint64_t bytes, char *buf, unsigned cap) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    unsigned u = 0;
    while (v >= 1024.0 && u + 1 < sizeof units / sizeof *units) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, cap, "%" PRIu64 " B", bytes);
    else
        snprintf(buf, cap, "%.1f %s", v, units[u]);
    return buf;
}

int lmm_residency_spread(uint32_t i, uint32_t n, uint32_t n_pinned) {
    /* Piece i is pinned when floor((i+1)*P/n) steps up from floor(i*P/n): exactly P of the
     * n pieces, as evenly spaced as integers allow. */
    uint64_t a = (uint64_t)i * n_pinned / n, b = (uint64_t)(i + 1) * n_pinned / n;
    return b > a;
}

void lmm_residency_free(lmm_residency *r) {
    free(r->pinned);
    free(r->slot);
    free(r->stream_rank);
    memset(r, 0, sizeof *r);
}

/* other + slots * slot_bytes, saturating at UINT64_MAX. */
static uint64_t need(const lmm_residency_opts *o, uint64_t slots) {
    if (o->slot_bytes && slots > (UINT64_MAX - o->other_bytes) / o->slot_bytes) return UINT64_MAX;
    return o->other_bytes + slots * o->slot_bytes;
}

int lmm_residency_plan(lmm_residency *r, const lmm_residency_opts *o) {
    memset(r, 0, sizeof *r);
    if (o->n_pieces == 0 || o->slot_bytes == 0) return lmm_error_set("residency: empty plan");
    uint32_t n = o->n_pieces;
    uint32_t want_stream = o->stream_slots ? o->stream_slots : DEFAULT_STREAM_SLOTS;
    if (want_stream < 2) want_stream = 2;
    uint32_t min_stream = n < 2 ? n : 2;
    /* +1: the embedding slot */
    r->n_pieces = n;
    r->min_budget = need(o, (uint64_t)min_stream + 1);
    r->full_budget = need(o, (uint64_t)n + 1);

    if (o->budget == 0 || o->budget >= r->full_budget) {
        r->n_pinned = n;
        r->n_stream = 0;
    } else if (o->budget < r->min_budget) {
        char b[32], m[32], s[32], x[32], f[32];
        return lmm_error_set("--mem-budget %s is too small: this model needs at least %s (%u streaming slots + 1 "
                             "embedding slot of %s, plus %s of KV cache, activations and run state); everything "
                             "resident needs %s",
                             lmm_residency_fmt_bytes(o->budget, b, sizeof b),
                             lmm_residency_fmt_bytes(r->min_budget, m, sizeof m), min_stream,
                             lmm_residency_fmt_bytes(o->slot_bytes, s, sizeof s),
                             lmm_residency_fmt_bytes(o->other_bytes, x, sizeof x),
                             lmm_residency_fmt_bytes(r->full_budget, f, sizeof f));
    } else {
        uint64_t slots = (o->budget - o->other_bytes) / o->slot_bytes - 1; /* ring slots for pieces, >= 2 */
        uint32_t n_stream = want_stream;
        if (n_stream > n) n_stream = n;
        if (slots < n_stream) n_stream = (uint32_t)slots;
        uint64_t pinned = slots - n_stream;
        /* Everything would fit but one piece: still stream through >= 2 slots (pinned < n). */
        if (pinned > n - n_stream) pinned = n - n_stream;
        r->n_pinned = (uint32_t)pinned;
        r->n_stream = n_stream;
    }
    r->used_bytes = need(o, (uint64_t)r->n_pinned + r->n_stream + 1);

    r->pinned = calloc(n, 1);
    r->slot = malloc((size_t)n * sizeof *r->slot);
    r->stream_rank = malloc((size_t)n * sizeof *r->stream_rank);
    if (!r->pinned || !r->slot || !r->stream_rank) {
        lmm_residency_free(r);
        return lmm_error_set("out of memory");
    }
    uint32_t next_slot = 0, next_rank = 0;
    for (uint32_t i = 0; i < n; i++) {
        r->pinned[i] = (uint8_t)lmm_residency_spread(i, n, r->n_pinned);
        r->slot[i] = r->pinned[i] ? next_slot++ : UINT32_MAX;
        r->stream_rank[i] = r->pinned[i] ? UINT32_MAX : next_rank++;
    }
    return 0;
}
