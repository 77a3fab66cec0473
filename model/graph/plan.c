/* model/graph/plan.c — cutting a model's weight matrices into pieces (lmm/plan.h).
 *
 * Packing, one layer at a time (then the head), matrices in execution order, with one
 * piece open: a matrix (or what is left of it) that fits in the open piece goes in
 * whole; one that would fit a fresh piece whole closes the open piece and starts a new
 * one (so a small matrix is never cut in two); one larger than a piece fills the open
 * piece with as many whole rows as fit and goes on in the next. Sizes are counted as
 * the loader fills them: each segment widened to 4 KiB of the file. Every step is
 * deterministic, so the scheduler, loader and every worker that build a plan from the
 * same description and piece_bytes get the same plan. */
#include "lmm/plan.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmm/error.h"

/* Counts stay far below 2^32 (a 1-row-per-piece plan of a 70B model has ~3e6). */
#define PLAN_MAX_ITEMS (1u << 30)

static const char *const k_mat_suffix[LMM_MAT_PER_LAYER] = {
    "attn_q.weight",   "attn_k.weight", "attn_v.weight",   "attn_output.weight",
    "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight",
};

const char *lmm_plan_mat_name(lmm_plan_mat kind) {
    static const char *const names[LMM_MAT_PER_LAYER] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                                         "ffn_gate", "ffn_up", "ffn_down"};
    return (unsigned)kind < LMM_MAT_PER_LAYER ? names[kind] : "output";
}

static const char *desc_source(const lmm_model_desc *d) { return d->n_files ? d->files[0] : "model"; }

static int tensor_index(const lmm_model_desc *d, const char *name, uint32_t *out) {
    const lmm_tensor_desc *t = lmm_model_desc_find(d, name);
    if (!t) return -1;
    *out = (uint32_t)(t - d->tensors);
    return 0;
}

/* The head's matrix: output.weight, or token_embd.weight when tied. */
static const char *head_name(const lmm_model_desc *d) {
    if (d->hp.tied_embeddings || !lmm_model_desc_find(d, "output.weight")) return "token_embd.weight";
    return "output.weight";
}

/* Fills m (tensor, shape) for the matrix called `name`. */
static int matrix_bind(const lmm_model_desc *d, lmm_plan_matrix *m, const char *name) {
    if (tensor_index(d, name, &m->tensor)) return lmm_error_set("%s: missing tensor '%s'", desc_source(d), name);
    const lmm_tensor_desc *t = &d->tensors[m->tensor];
    if (t->n_dims != 2 || t->shape[0] == 0 || t->shape[1] == 0 || t->nbytes % t->shape[0] != 0)
        return lmm_error_set("%s: tensor '%s' is not a matrix", desc_source(d), name);
    m->dtype = t->dtype;
    m->rows = t->shape[0];
    m->cols = t->shape[1];
    m->row_bytes = t->nbytes / t->shape[0];
    return 0;
}

/* Largest 4 KiB widened span of one row of a matrix. Row r starts at offset + r*row_bytes,
 * whose remainder mod 4096 repeats with a period dividing 4096: 4096 rows see them all. */
static uint64_t row_span_max(uint64_t offset, uint64_t row_bytes, uint64_t rows) {
    uint64_t n = rows < LMM_PLAN_ALIGN ? rows : LMM_PLAN_ALIGN, best = 0;
    for (uint64_t r = 0; r < n; r++) {
        uint64_t s = lmm_plan_span(offset + r * row_bytes, row_bytes);
        if (s > best) best = s;
    }
    return best;
}

/* The matrices in execution order; returns the index of the one needing the largest
 * piece in *widest and that size in *min. */
static int bind_matrices(const lmm_model_desc *d, lmm_plan_matrix *mats, uint32_t *widest, uint64_t *min) {
    uint32_t L = d->hp.n_layers, k = 0;
    char name[LMM_TENSOR_NAME_MAX];
    *min = 0;
    *widest = 0;
    for (uint32_t l = 0; l <= L; l++)
        for (uint32_t j = 0; j < (l < L ? (uint32_t)LMM_MAT_PER_LAYER : 1u); j++, k++) {
            lmm_plan_matrix *m = &mats[k];
            if (l < L)
                snprintf(name, sizeof name, "blk.%u.%s", l, k_mat_suffix[j]);
            else
                snprintf(name, sizeof name, "%s", head_name(d));
            m->layer = l;
            m->kind = l < L ? (lmm_plan_mat)j : LMM_MAT_PER_LAYER;
            if (matrix_bind(d, m, name)) return -1;
            const lmm_tensor_desc *t = &d->tensors[m->tensor];
            uint64_t s = row_span_max(t->offset, m->row_bytes, m->rows);
            if (s > *min) {
                *min = s;
                *widest = k;
            }
        }
    return 0;
}

uint64_t lmm_plan_min_piece_bytes(const lmm_model_desc *d) {
    uint32_t n = d->hp.n_layers * LMM_MAT_PER_LAYER + 1, widest;
    lmm_plan_matrix *mats = calloc(n, sizeof *mats);
    uint64_t min = 0;
    if (!mats) {
        lmm_error_set("out of memory");
        return 0;
    }
    if (bind_matrices(d, mats, &widest, &min)) min = 0;
    free(mats);
    return min;
}

/* ---- packing ------------------------------------------------------------------------- */

typedef struct {
    lmm_plan *p;
    uint32_t cap_pieces, cap_segments;
    uint64_t used;       /* packed bytes of the open piece */
} packer;

static int grow(void **arr, uint32_t *cap, uint32_t need, size_t elem) {
    if (need <= *cap) return 0;
    if (need > PLAN_MAX_ITEMS) return lmm_error_set("plan: more than %u pieces or segments", PLAN_MAX_ITEMS);
    uint32_t c = *cap ? *cap : 64;
    while (c < need) c = c > PLAN_MAX_ITEMS / 2 ? PLAN_MAX_ITEMS : c * 2;
    void *n = realloc(*arr, (size_t)c * elem);
    if (!n) return lmm_error_set("out of memory");
    *arr = n;
    *cap = c;
    return 0;
}

static int piece_open(packer *k, uint32_t layer) {
    lmm_plan *p = k->p;
    if (grow((void **)&p->pieces, &k->cap_pieces, p->n_pieces + 1, sizeof *p->pieces)) return -1;
    p->pieces[p->n_pieces++] = (lmm_plan_piece){layer, p->n_segments, 0, 0, 0};
    k->used = 0;
    return 0;
}

/* Closes the open piece; an empty one is dropped. */
static void piece_close(packer *k) {
    lmm_plan *p = k->p;
    lmm_plan_piece *pc = &p->pieces[p->n_pieces - 1];
    if (pc->n_segments == 0) {
        p->n_pieces--;
        return;
    }
    pc->bytes = k->used;
    if (k->used > p->slot_bytes) p->slot_bytes = k->used;
}

/* Appends rows [r0, r1) of matrix mi to the open piece. */
static int segment_add(packer *k, uint32_t mi, uint64_t r0, uint64_t r1) {
    lmm_plan *p = k->p;
    lmm_plan_matrix *m = &p->matrices[mi];
    const lmm_tensor_desc *t = &p->desc->tensors[m->tensor];
    if (grow((void **)&p->segments, &k->cap_segments, p->n_segments + 1, sizeof *p->segments)) return -1;
    lmm_plan_segment *s = &p->segments[p->n_segments];
    s->tensor = m->tensor;
    s->piece = p->n_pieces - 1;
    s->matrix = mi;
    s->file = t->file;
    s->row_begin = r0;
    s->row_end = r1;
    s->file_offset = t->offset + r0 * m->row_bytes;
    s->nbytes = (r1 - r0) * m->row_bytes;
    s->slot_offset = k->used;
    k->used += lmm_plan_span(s->file_offset, s->nbytes);
    if (m->n_segments == 0) m->first_segment = p->n_segments;
    m->n_segments++;
    p->pieces[s->piece].n_segments++;
    p->pieces[s->piece].data_bytes += s->nbytes;
    p->weight_bytes += s->nbytes;
    p->n_segments++;
    return 0;
}

static int pack_matrix(packer *k, uint32_t mi) {
    lmm_plan *p = k->p;
    const lmm_plan_matrix *m = &p->matrices[mi];
    const uint64_t pb = p->piece_bytes, rb = m->row_bytes;
    const uint64_t base = p->desc->tensors[m->tensor].offset;
    uint64_t r = 0;
    while (r < m->rows) {
        uint64_t off = base + r * rb, lead = off % LMM_PLAN_ALIGN;
        uint64_t whole = lmm_plan_span(off, (m->rows - r) * rb);
        if (whole <= pb - k->used) { /* the rest fits the open piece */
            if (segment_add(k, mi, r, m->rows)) return -1;
            break;
        }
        if (k->used > 0 && whole <= pb) { /* it fits a fresh piece whole: do not cut it */
            piece_close(k);
            if (piece_open(k, m->layer)) return -1;
            continue;
        }
        /* larger than a piece: as many rows as fit in the open one */
        uint64_t avail = (pb - k->used) / LMM_PLAN_ALIGN * LMM_PLAN_ALIGN;
        uint64_t n = avail > lead ? (avail - lead) / rb : 0;
        if (n > m->rows - r) n = m->rows - r;
        if (n == 0) {
            if (k->used == 0) /* cannot happen once piece_bytes >= the minimum */
                return lmm_error_set("plan: a row of '%s' does not fit a piece of %" PRIu64 " bytes",
                                     p->desc->tensors[m->tensor].name, pb);
            piece_close(k);
            if (piece_open(k, m->layer)) return -1;
            continue;
        }
        if (segment_add(k, mi, r, r + n)) return -1;
        r += n;
    }
    return 0;
}

/* The 1-D tensors the graph reads, in layer order. */
static int list_small(lmm_plan *p) {
    const lmm_model_desc *d = p->desc;
    static const char *const per_layer[] = {"attn_norm.weight", "ffn_norm.weight", "attn_q.bias", "attn_k.bias",
                                            "attn_v.bias"};
    uint32_t cap = p->n_layers * 5 + 2;
    p->small = malloc((size_t)cap * sizeof *p->small);
    if (!p->small) return lmm_error_set("out of memory");
    char name[LMM_TENSOR_NAME_MAX];
    uint32_t idx;
    for (uint32_t l = 0; l < p->n_layers; l++)
        for (size_t j = 0; j < sizeof per_layer / sizeof *per_layer; j++) {
            snprintf(name, sizeof name, "blk.%u.%s", l, per_layer[j]);
            if (tensor_index(d, name, &idx) == 0) p->small[p->n_small++] = idx;
        }
    if (tensor_index(d, "output_norm.weight", &idx) == 0) p->small[p->n_small++] = idx;
    if (tensor_index(d, "rope_freqs.weight", &idx) == 0) p->small[p->n_small++] = idx;
    for (uint32_t i = 0; i < p->n_small; i++) p->small_bytes += d->tensors[p->small[i]].nbytes;
    return 0;
}

int lmm_plan_build(lmm_plan *p, const lmm_model_desc *d, uint64_t piece_bytes) {
    memset(p, 0, sizeof *p);
    p->desc = d;
    if (lmm_model_desc_validate(d)) return -1;
    if (piece_bytes == 0) piece_bytes = LMM_PLAN_PIECE_BYTES_DEFAULT;
    if (piece_bytes > LMM_PLAN_PIECE_BYTES_MAX)
        return lmm_error_set("plan: piece size %" PRIu64 " bytes is too large (most %" PRIu64 ")", piece_bytes,
                             (uint64_t)LMM_PLAN_PIECE_BYTES_MAX);
    p->piece_bytes = piece_bytes;
    p->n_layers = d->hp.n_layers;
    p->n_matrices = p->n_layers * LMM_MAT_PER_LAYER + 1;
    p->matrices = calloc(p->n_matrices, sizeof *p->matrices);
    p->layer_pieces = calloc((size_t)p->n_layers + 2, sizeof *p->layer_pieces);
    if (!p->matrices || !p->layer_pieces) {
        lmm_plan_free(p);
        return lmm_error_set("out of memory");
    }
    uint32_t widest;
    uint64_t min;
    if (bind_matrices(d, p->matrices, &widest, &min)) {
        lmm_plan_free(p);
        return -1;
    }
    if (piece_bytes < min) {
        const lmm_plan_matrix *m = &p->matrices[widest];
        lmm_error_set("%s: piece size %" PRIu64 " bytes is too small: a row of '%s' (%" PRIu64
                      " bytes) takes %" PRIu64 " bytes widened to 4 KiB; the minimum piece size for this model is %" PRIu64
                      " bytes",
                      desc_source(d), piece_bytes, d->tensors[m->tensor].name, m->row_bytes, min, min);
        lmm_plan_free(p);
        return -1;
    }

    packer k = {p, 0, 0, 0};
    uint32_t mi = 0;
    for (uint32_t l = 0; l <= p->n_layers; l++) {
        p->layer_pieces[l] = p->n_pieces;
        if (piece_open(&k, l)) goto fail;
        for (uint32_t j = 0; j < (l < p->n_layers ? (uint32_t)LMM_MAT_PER_LAYER : 1u); j++, mi++)
            if (pack_matrix(&k, mi)) goto fail;
        piece_close(&k);
    }
    p->layer_pieces[p->n_layers + 1] = p->n_pieces;

    if (list_small(p)) goto fail;
    uint32_t e;
    if (tensor_index(d, "token_embd.weight", &e)) {
        lmm_error_set("%s: missing tensor 'token_embd.weight'", desc_source(d));
        goto fail;
    }
    const lmm_tensor_desc *t = &d->tensors[e];
    p->embd = (lmm_plan_embd){e, t->file, t->dtype, t->offset, t->nbytes / t->shape[0], t->shape[0], t->shape[1]};
    return 0;

fail:
    lmm_plan_free(p);
    return -1;
}

void lmm_plan_free(lmm_plan *p) {
    if (!p) return;
    free(p->matrices);
    free(p->pieces);
    free(p->segments);
    free(p->layer_pieces);
    free(p->small);
    memset(p, 0, sizeof *p);
}

const lmm_plan_matrix *lmm_plan_matrix_of(const lmm_plan *p, uint32_t layer, lmm_plan_mat kind) {
    if (layer >= p->n_layers) return &p->matrices[p->n_matrices - 1];
    return &p->matrices[layer * LMM_MAT_PER_LAYER + (uint32_t)kind];
}

int lmm_plan_pieces_of(const lmm_plan *p, uint32_t layer_begin, uint32_t layer_end, int head, uint32_t *first,
                       uint32_t *end) {
    if (layer_begin > layer_end || layer_end > p->n_layers)
        return lmm_error_set("plan: layer range [%u, %u) is not within the model's %u layers", layer_begin, layer_end,
                             p->n_layers);
    if (head && layer_end != p->n_layers)
        return lmm_error_set("plan: the output head follows the last layer: range [%u, %u) must end at %u",
                             layer_begin, layer_end, p->n_layers);
    *first = p->layer_pieces[layer_begin];
    *end = head ? p->layer_pieces[p->n_layers + 1] : p->layer_pieces[layer_end];
    return 0;
}
