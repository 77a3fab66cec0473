/* services/scheduler/predictor.h — the access predictor: which streamed pieces the
 * compute workers will need next, in the order they will need them.
 *
 * The scheduler keeps up to `depth` LOADs in flight ahead of the compute workers; what to
 * load comes only from lmm_predictor_next(). For a dense model the answer is exact: the
 * streamed pieces of the cycle, cycle after cycle (every STEP is one cycle). Later issues
 * add predictors behind the same interface (MoE: the experts the router will pick; KV
 * blocks of long contexts); they learn from lmm_predictor_observe() and may be wrong, in
 * which case the worker's wait for a piece that was not loaded is answered by an
 * on-demand LOAD (not needed for the dense predictor, which is never wrong).
 *
 * The adaptive prefetch depth is here too (lmm_prefetch_depth): how many LOADs to keep in
 * flight, from EWMAs of the measured read time and compute time per piece. */
#ifndef LMM_PREDICTOR_H
#define LMM_PREDICTOR_H

#include <stdbool.h>
#include <stdint.h>

/* One predicted access: piece `piece` in cycle `cycle` (cycle = STEP number). */
typedef struct {
    uint32_t piece;
    uint64_t cycle;
} lmm_access;

typedef struct lmm_predictor lmm_predictor;

/* What a predictor implements. */
typedef struct {
    const char *name;
    /* Fills out[0..max) with the next accesses after those already returned; returns how
     * many (0: nothing predictable now). */
    uint32_t (*next)(lmm_predictor *p, lmm_access *out, uint32_t max);
    /* A step finished (cycle, and later: what the router chose). Dense: nothing to learn. */
    void (*observe)(lmm_predictor *p, uint64_t cycle);
    /* Recovery (a step was abandoned): what was returned and not used is dropped; the
     * next access is the first one of `cycle`. */
    void (*restart)(lmm_predictor *p, uint64_t cycle);
    void (*destroy)(lmm_predictor *p);
} lmm_predictor_ops;

struct lmm_predictor {
    const lmm_predictor_ops *ops;
    uint64_t returned;        /* accesses returned so far */
};

/* The dense-cycle predictor: streamed[i] != 0 for the pieces that are streamed, in cycle
 * order. With no streamed piece, next() returns 0. */
int lmm_predictor_create_dense(lmm_predictor **out, const uint8_t *streamed, uint32_t n_pieces);

static inline uint32_t lmm_predictor_next(lmm_predictor *p, lmm_access *out, uint32_t max) {
    uint32_t n = p->ops->next(p, out, max);
    p->returned += n;
    return n;
}
static inline void lmm_predictor_observe(lmm_predictor *p, uint64_t cycle) { p->ops->observe(p, cycle); }
static inline void lmm_predictor_restart(lmm_predictor *p, uint64_t cycle) { p->ops->restart(p, cycle); }
static inline void lmm_predictor_free(lmm_predictor *p) {
    if (p) p->ops->destroy(p);
}

/* ---- adaptive prefetch depth ----
 * depth = ceil(read / compute) clamped to [1, max_depth]: when reading a piece takes r
 * times as long as computing one, r reads must be in flight for the reads to keep up
 * (as far as the disk allows); when reads are faster than compute, one in flight is
 * enough, and fewer LOADs queued ahead keep the loader's queue short for the embedding
 * rows each step waits for. Until both times are measured: max_depth. */
typedef struct {
    double read_us;           /* EWMA of the read time per piece (LOADED.usec) */
    double compute_us;        /* EWMA of the compute time per streamed piece (a step's
                               * STEP_DONE.usec summed over workers / streamed pieces) */
    bool have_read, have_compute;
    uint32_t max_depth;       /* n_stream */
    uint32_t depth;
} lmm_prefetch_depth;

void lmm_prefetch_depth_init(lmm_prefetch_depth *d, uint32_t max_depth);
void lmm_prefetch_depth_read(lmm_prefetch_depth *d, double usec);
void lmm_prefetch_depth_compute(lmm_prefetch_depth *d, double usec_per_piece);
static inline uint32_t lmm_prefetch_depth_get(const lmm_prefetch_depth *d) { return d->depth; }

#endif
