/* model/graph/small_tensors.c — the 1-D tensors an executor needs, widened to FP32.
 *
 * Norm weights, q/k/v biases and rope_freqs are not pieces (lmm/plan.h): a worker reads
 * the ones of its layer range once at start (lmm_small_tensors_read: pread from the model
 * files, or _read_with: any byte source, e.g. the loader) and keeps them; the resident
 * case points into the copies lmm_weights_load already made (lmm_small_tensors_from_weights). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lmm/error.h"
#include "lmm/executor.h"
#include "lmm/transformer.h"

/* One tensor to bind: its index and the field that receives its FP32 copy. */
typedef struct {
    uint32_t tensor;
    const float **dst;
} small_item;

static const char *desc_source(const lmm_model_desc *d) { return d->n_files ? d->files[0] : "model"; }

/* Appends the tensor called `name` to items; absent: error if required, else skipped. */
static int want(const lmm_model_desc *d, small_item *items, uint32_t *n, const float **dst, int required,
                const char *name) {
    const lmm_tensor_desc *t = lmm_model_desc_find(d, name);
    if (!t) return required ? lmm_error_set("%s: missing tensor '%s'", desc_source(d), name) : 0;
    if (t->n_dims != 1) return lmm_error_set("%s: tensor '%s' is not 1-D", desc_source(d), name);
    items[(*n)++] = (small_item){(uint32_t)(t - d->tensors), dst};
    return 0;
}

/* Lists the small tensors of layers [a, b) (+ output_norm when head, + rope_freqs). */
static int list_items(lmm_small_tensors *st, const lmm_model_desc *d, uint32_t a, uint32_t b, int head,
                      small_item *items, uint32_t *n) {
    char name[LMM_TENSOR_NAME_MAX];
    *n = 0;
    for (uint32_t l = a; l < b; l++) {
        lmm_small_layer *L = &st->layers[l];
#define WANT(field, suffix, required)                                            \
    do {                                                                         \
        snprintf(name, sizeof name, "blk.%u." suffix, l);                        \
        if (want(d, items, n, &L->field, (required), name)) return -1;           \
    } while (0)
        WANT(attn_norm, "attn_norm.weight", 1);
        WANT(ffn_norm, "ffn_norm.weight", 1);
        WANT(bq, "attn_q.bias", d->hp.qkv_bias);
        WANT(bk, "attn_k.bias", d->hp.qkv_bias);
        WANT(bv, "attn_v.bias", d->hp.qkv_bias);
#undef WANT
    }
    if (head && want(d, items, n, &st->output_norm, 1, "output_norm.weight")) return -1;
    return want(d, items, n, &st->rope_freqs, 0, "rope_freqs.weight");
}

static int check_range(const lmm_model_desc *d, uint32_t a, uint32_t b, int head) {
    if (a > b || b > d->hp.n_layers)
        return lmm_error_set("%s: layer range [%u, %u) is not within the model's %u layers", desc_source(d), a, b,
                             d->hp.n_layers);
    if (head && b != d->hp.n_layers)
        return lmm_error_set("%s: the output head needs the range to end at layer %u", desc_source(d), d->hp.n_layers);
    return 0;
}

int lmm_small_tensors_read_with(lmm_small_tensors *st, const lmm_model_desc *d, uint32_t layer_begin,
                                uint32_t layer_end, int head, lmm_tensor_read_fn read, void *ctx) {
    memset(st, 0, sizeof *st);
    if (check_range(d, layer_begin, layer_end, head)) return -1;
    st->n_layers = d->hp.n_layers;
    st->layers = calloc(st->n_layers, sizeof *st->layers);
    small_item *items = malloc(((size_t)(layer_end - layer_begin) * 5 + 2) * sizeof *items);
    void *raw = NULL;
    int rc = -1;
    uint32_t n = 0;
    if (!st->layers || !items) {
        lmm_error_set("out of memory");
        goto done;
    }
    if (list_items(st, d, layer_begin, layer_end, head, items, &n)) goto done;
    size_t floats = 0;
    uint64_t max_bytes = 0;
    for (uint32_t i = 0; i < n; i++) {
        const lmm_tensor_desc *t = &d->tensors[items[i].tensor];
        floats += (size_t)t->shape[0];
        if (t->nbytes > max_bytes) max_bytes = t->nbytes;
    }
    st->data = malloc((floats ? floats : 1) * sizeof(float));
    raw = malloc(max_bytes ? (size_t)max_bytes : 1);
    if (!st->data || !raw) {
        lmm_error_set("out of memory");
        goto done;
    }
    size_t at = 0;
    for (uint32_t i = 0; i < n; i++) {
        const lmm_tensor_desc *t = &d->tensors[items[i].tensor];
        if (read(ctx, items[i].tensor, raw, t->nbytes)) goto done;
        lmm_dtype_row_to_f32(st->data + at, raw, t->dtype, (size_t)t->shape[0]);
        *items[i].dst = st->data + at;
        at += (size_t)t->shape[0];
    }
    rc = 0;
done:
    free(items);
    free(raw);
    if (rc) lmm_small_tensors_free(st);
    return rc;
}

/* pread() of whole tensors, one descriptor per file opened on first use. */
typedef struct {
    const lmm_model_desc *d;
    int *fds; /* [n_files], -1 until opened */
} pread_ctx;

static int pread_tensor(void *arg, uint32_t tensor, void *dst, uint64_t nbytes) {
    pread_ctx *c = arg;
    const lmm_tensor_desc *t = &c->d->tensors[tensor];
    const char *path = c->d->files[t->file];
    int *fd = &c->fds[t->file];
    if (*fd < 0 && (*fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return lmm_error_set("%s: cannot open: %s", path, strerror(errno));
    unsigned char *p = dst;
    uint64_t off = t->offset;
    while (nbytes > 0) {
        size_t want = nbytes < (1u << 30) ? (size_t)nbytes : (1u << 30);
        ssize_t got = pread(*fd, p, want, (off_t)off);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0)
            return lmm_error_set("%s: tensor '%s': read at offset %" PRIu64 " failed: %s", path, t->name, off,
                                 strerror(errno));
        if (got == 0)
            return lmm_error_set("%s: tensor '%s': file ends at offset %" PRIu64 " (was it truncated?)", path, t->name,
                                 off);
        p += got;
        off += (uint64_t)got;
        nbytes -= (uint64_t)got;
    }
    return 0;
}

int lmm_small_tensors_read(lmm_small_tensors *st, const lmm_model_desc *d, uint32_t layer_begin, uint32_t layer_end,
                           int head) {
    pread_ctx c = {d, malloc((d->n_files ? d->n_files : 1) * sizeof(int))};
    if (!c.fds) {
        memset(st, 0, sizeof *st);
        return lmm_error_set("out of memory");
    }
    for (uint32_t f = 0; f < d->n_files; f++) c.fds[f] = -1;
    int rc = lmm_small_tensors_read_with(st, d, layer_begin, layer_end, head, pread_tensor, &c);
    for (uint32_t f = 0; f < d->n_files; f++)
        if (c.fds[f] >= 0) close(c.fds[f]);
    free(c.fds);
    return rc;
}

int lmm_small_tensors_from_weights(lmm_small_tensors *st, const lmm_weights *w) {
    memset(st, 0, sizeof *st);
    if (!w || !w->desc || !w->f32) return lmm_error_set("small tensors: weights are not loaded");
    const lmm_model_desc *d = w->desc;
    st->n_layers = d->hp.n_layers;
    st->layers = calloc(st->n_layers, sizeof *st->layers);
    small_item *items = malloc(((size_t)st->n_layers * 5 + 2) * sizeof *items);
    uint32_t n = 0;
    int rc = -1;
    if (!st->layers || !items)
        lmm_error_set("out of memory");
    else if (list_items(st, d, 0, st->n_layers, 1, items, &n) == 0) {
        for (uint32_t i = 0; i < n; i++) *items[i].dst = w->f32[items[i].tensor];
        rc = 0;
    }
    free(items);
    if (rc) lmm_small_tensors_free(st);
    return rc;
}

void lmm_small_tensors_free(lmm_small_tensors *st) {
    if (!st) return;
    free(st->layers);
    free(st->data);
    memset(st, 0, sizeof *st);
}
