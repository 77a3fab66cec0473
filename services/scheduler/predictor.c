/* services/scheduler/predictor.c — the dense-cycle access predictor and the adaptive
 * prefetch depth (predictor.h). */
#include "predictor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lmm/error.h"

/* ---- dense cycle ------------------------------------------------------------------- */

typedef struct {
    lmm_predictor base;
    uint32_t n_streamed;
    uint32_t *order;          /* [n_streamed] the streamed pieces in cycle order */
    uint64_t cycle;           /* of the next access */
    uint32_t at;              /* index in order[] of the next access */
} dense_predictor;

static uint32_t dense_next(lmm_predictor *p, lmm_access *out, uint32_t max) {
    dense_predictor *d = (dense_predictor *)p;
    if (d->n_streamed == 0) return 0;
    for (uint32_t i = 0; i < max; i++) {
        out[i].piece = d->order[d->at];
        out[i].cycle = d->cycle;
        if (++d->at == d->n_streamed) {
            d->at = 0;
            d->cycle++;
        }
    }
    return max;
}

static void dense_observe(lmm_predictor *p, uint64_t cycle) {
    (void)p;
    (void)cycle; /* a dense cycle is known in advance */
}

static void dense_restart(lmm_predictor *p, uint64_t cycle) {
    dense_predictor *d = (dense_predictor *)p;
    d->cycle = cycle;
    d->at = 0;
}

static void dense_destroy(lmm_predictor *p) {
    dense_predictor *d = (dense_predictor *)p;
    free(d->order);
    free(d);
}

static const lmm_predictor_ops dense_ops = {"dense-cycle", dense_next, dense_observe, dense_restart, dense_destroy};

int lmm_predictor_create_dense(lmm_predictor **out, const uint8_t *streamed, uint32_t n_pieces) {
    *out = NULL;
    dense_predictor *d = calloc(1, sizeof *d);
    if (!d) return lmm_error_set("out of memory");
    d->base.ops = &dense_ops;
    d->order = malloc(((size_t)n_pieces + 1) * sizeof *d->order);
    if (!d->order) {
        free(d);
        return lmm_error_set("out of memory");
    }
    for (uint32_t i = 0; i < n_pieces; i++)
        if (streamed[i]) d->order[d->n_streamed++] = i;
    *out = &d->base;
    return 0;
}

/* ---- adaptive depth ------------------------------------------------------------------ */

#define EWMA_ALPHA 0.25

void lmm_prefetch_depth_init(lmm_prefetch_depth *d, uint32_t max_depth) {
    memset(d, 0, sizeof *d);
    d->max_depth = max_depth ? max_depth : 1;
    d->depth = d->max_depth;
}

static void update(lmm_prefetch_depth *d) {
    if (!d->have_read || !d->have_compute) return;
    double c = d->compute_us > 1.0 ? d->compute_us : 1.0;
    double r = ceil(d->read_us / c);
    uint32_t depth = r < 1.0 ? 1u : r > (double)d->max_depth ? d->max_depth : (uint32_t)r;
    d->depth = depth;
}

void lmm_prefetch_depth_read(lmm_prefetch_depth *d, double usec) {
    d->read_us = d->have_read ? d->read_us + EWMA_ALPHA * (usec - d->read_us) : usec;
    d->have_read = true;
    update(d);
}

void lmm_prefetch_depth_compute(lmm_prefetch_depth *d, double usec_per_piece) {
    d->compute_us = d->have_compute ? d->compute_us + EWMA_ALPHA * (usec_per_piece - d->compute_us) : usec_per_piece;
    d->have_compute = true;
    update(d);
}
