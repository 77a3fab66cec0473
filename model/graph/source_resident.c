/* model/graph/source_resident.c — the weight source over an lmm_weights blob.
 *
 * Every tensor is already in memory (lmm_weights_load), laid out tensor by tensor, not
 * slot by slot, so this source answers segment_data (the address of a segment's first
 * row in the blob) instead of building slot-shaped pieces; acquire and release have
 * nothing to do. This is the source of lmm_transformer. */
#include <stdlib.h>

#include "lmm/error.h"
#include "lmm/executor.h"
#include "lmm/transformer.h"

typedef struct {
    const lmm_plan *plan;
    const lmm_weights *w;
} resident_src;

static const void *resident_acquire(void *ctx, uint32_t piece) {
    (void)piece;
    return ((resident_src *)ctx)->w->blob;
}

static void resident_release(void *ctx, uint32_t piece) {
    (void)ctx;
    (void)piece;
}

static const void *resident_segment(void *ctx, uint32_t segment) {
    const resident_src *r = ctx;
    const lmm_plan_segment *s = &r->plan->segments[segment];
    const lmm_tensor_desc *t = &r->plan->desc->tensors[s->tensor];
    return r->w->data[s->tensor] + (s->file_offset - t->offset);
}

static int resident_embd_rows(void *ctx, const uint32_t *tokens, uint32_t n, const void **rows) {
    const resident_src *r = ctx;
    const lmm_plan_embd *e = &r->plan->embd;
    for (uint32_t i = 0; i < n; i++) rows[i] = r->w->data[e->tensor] + (uint64_t)tokens[i] * e->row_bytes;
    return 0;
}

int lmm_source_resident_init(lmm_weight_source *s, const lmm_plan *p, const lmm_weights *w) {
    *s = (lmm_weight_source){0};
    if (!p || !w || !w->data || w->desc != p->desc)
        return lmm_error_set("resident source: the weights are not loaded, or are of another model than the plan");
    resident_src *r = malloc(sizeof *r);
    if (!r) return lmm_error_set("out of memory");
    r->plan = p;
    r->w = w;
    *s = (lmm_weight_source){r, resident_acquire, resident_release, resident_segment, resident_embd_rows, free};
    return 0;
}
