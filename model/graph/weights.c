/* model/graph/weights.c — reading a model's tensors into memory (lmm_weights_load).
 *
 * Every tensor of the description is read with large pread()s into ONE anonymous
 * mapping (64-byte aligned tensors inside it, transparent huge pages asked for), in
 * file order so the disk sees sequential reads. Matrices stay in their stored dtype
 * (the kernels widen F16/BF16 rows exactly); the small 1-D vectors (norms, biases,
 * rope_freqs) are widened once to FP32 into `f32_small`. The mapping is made
 * read-only when loading is done, so a stray write into weights faults at once. */
#include "lmm/transformer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lmm/error.h"

#define WEIGHT_ALIGN 64u
/* One pread() moves at most this much (Linux caps a read at ~2 GiB anyway). */
#define READ_MAX ((size_t)1 << 30)

static size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

/* Reads exactly n bytes at offset off of fd into dst. */
static int read_full(int fd, const char *path, const char *tname, void *dst, size_t n, uint64_t off) {
    unsigned char *p = dst;
    while (n > 0) {
        size_t want = n < READ_MAX ? n : READ_MAX;
        ssize_t got = pread(fd, p, want, (off_t)off);
        if (got < 0) {
            if (errno == EINTR) continue;
            return lmm_error_set("%s: tensor '%s': read at offset %" PRIu64 " failed: %s", path, tname, off,
                                 strerror(errno));
        }
        if (got == 0)
            return lmm_error_set("%s: tensor '%s': file ends at offset %" PRIu64 " (was it truncated?)", path,
                                 tname, off);
        p += got;
        n -= (size_t)got;
        off += (uint64_t)got;
    }
    return 0;
}

/* Tensor order for reading: by file, then by offset (then index: a total order). */
typedef struct {
    uint32_t file;
    uint32_t index;
    uint64_t offset;
} read_slot;

static int cmp_file_offset(const void *a, const void *b) {
    const read_slot *x = a, *y = b;
    if (x->file != y->file) return x->file < y->file ? -1 : 1;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

typedef struct {
    size_t *pos;        /* [n_tensors] byte position of each tensor in the blob */
    float **small;      /* [n_tensors] FP32 copy of a 1-D tensor, or NULL */
} load_map;

static int find_index(const lmm_model_desc *d, const char *name) {
    for (uint32_t i = 0; i < d->n_tensors; i++)
        if (strcmp(d->tensors[i].name, name) == 0) return (int)i;
    return -1;
}

/* Binds a matrix by name; every matrix the graph uses must be present. */
static int bind_matrix(lmm_weights *w, const load_map *m, lmm_weight_ref *ref, const char *name) {
    int i = find_index(w->desc, name);
    if (i < 0) return lmm_error_set("%s: missing tensor '%s'", w->desc->n_files ? w->desc->files[0] : "model", name);
    ref->data = (const unsigned char *)w->blob + m->pos[i];
    ref->dtype = w->desc->tensors[i].dtype;
    return 0;
}

/* A widened 1-D vector by name, or NULL when absent. */
static float *bind_small(const lmm_weights *w, const load_map *m, const char *name) {
    int i = find_index(w->desc, name);
    return i < 0 ? NULL : m->small[i];
}

static int bind_all(lmm_weights *w, const load_map *m) {
    const lmm_model_desc *d = w->desc;
    const char *src = d->n_files ? d->files[0] : "model";
    if (bind_matrix(w, m, &w->token_embd, "token_embd.weight")) return -1;
    if (d->hp.tied_embeddings || !lmm_model_desc_find(d, "output.weight")) {
        w->output = w->token_embd;
    } else if (bind_matrix(w, m, &w->output, "output.weight")) {
        return -1;
    }
    w->output_norm = bind_small(w, m, "output_norm.weight");
    if (!w->output_norm) return lmm_error_set("%s: missing tensor 'output_norm.weight'", src);
    w->rope_freq_factors = bind_small(w, m, "rope_freqs.weight");
    char name[LMM_TENSOR_NAME_MAX];
    for (uint32_t l = 0; l < d->hp.n_layers; l++) {
        lmm_layer_weights *L = &w->layers[l];
#define MAT(field, suffix)                                           \
    do {                                                             \
        snprintf(name, sizeof name, "blk.%u." suffix, l);            \
        if (bind_matrix(w, m, &L->field, name)) return -1;           \
    } while (0)
#define VEC(field, suffix, required)                                                     \
    do {                                                                                 \
        snprintf(name, sizeof name, "blk.%u." suffix, l);                                \
        L->field = bind_small(w, m, name);                                               \
        if ((required) && !L->field) return lmm_error_set("%s: missing tensor '%s'", src, name); \
    } while (0)
        MAT(wq, "attn_q.weight");
        MAT(wk, "attn_k.weight");
        MAT(wv, "attn_v.weight");
        MAT(wo, "attn_output.weight");
        MAT(w_gate, "ffn_gate.weight");
        MAT(w_up, "ffn_up.weight");
        MAT(w_down, "ffn_down.weight");
        VEC(attn_norm, "attn_norm.weight", 1);
        VEC(ffn_norm, "ffn_norm.weight", 1);
        VEC(bq, "attn_q.bias", d->hp.qkv_bias);
        VEC(bk, "attn_k.bias", d->hp.qkv_bias);
        VEC(bv, "attn_v.bias", d->hp.qkv_bias);
#undef MAT
#undef VEC
    }
    return 0;
}

int lmm_weights_load(lmm_weights *w, const lmm_model_desc *d) {
    memset(w, 0, sizeof *w);
    w->desc = d;
    if (lmm_model_desc_validate(d)) return -1;

    uint32_t n = d->n_tensors;
    read_slot *order = malloc((size_t)n * sizeof *order);
    load_map m = {calloc(n, sizeof *m.pos), calloc(n, sizeof *m.small)};
    int *fds = malloc((size_t)d->n_files * sizeof *fds);
    int rc = -1;
    if (!order || !m.pos || !m.small || !fds) {
        lmm_error_set("out of memory");
        goto done;
    }
    for (uint32_t f = 0; f < d->n_files; f++) fds[f] = -1;

    /* Layout: tensors in file order, each 64-byte aligned; FP32 copies of 1-D tensors. */
    size_t total = 0, small_floats = 0;
    for (uint32_t i = 0; i < n; i++) {
        const lmm_tensor_desc *t = &d->tensors[i];
        order[i] = (read_slot){t->file, i, t->offset};
        if (t->n_dims == 1) small_floats += (size_t)t->shape[0];
    }
    qsort(order, n, sizeof *order, cmp_file_offset);
    for (uint32_t k = 0; k < n; k++) {
        const lmm_tensor_desc *t = &d->tensors[order[k].index];
        total = align_up(total, WEIGHT_ALIGN);
        if (total > SIZE_MAX - 2 * WEIGHT_ALIGN || t->nbytes > (uint64_t)(SIZE_MAX - 2 * WEIGHT_ALIGN - total)) {
            lmm_error_set("%s: tensor '%s': the model does not fit in the address space", d->files[t->file], t->name);
            goto done;
        }
        m.pos[order[k].index] = total;
        total += (size_t)t->nbytes;
    }
    total = align_up(total ? total : 1, WEIGHT_ALIGN);

    void *blob = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (blob == MAP_FAILED) {
        lmm_error_set("%s: cannot map %zu bytes for the weights: %s", d->n_files ? d->files[0] : "model", total,
                      strerror(errno));
        goto done;
    }
    w->blob = blob;
    w->blob_size = total;
#ifdef MADV_HUGEPAGE
    (void)madvise(blob, total, MADV_HUGEPAGE); /* a hint: failure only costs TLB misses */
#endif

    w->f32_small = malloc((small_floats ? small_floats : 1) * sizeof(float));
    w->layers = calloc(d->hp.n_layers, sizeof *w->layers);
    if (!w->f32_small || !w->layers) {
        lmm_error_set("out of memory");
        goto done;
    }

    size_t small_pos = 0;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = order[k].index;
        const lmm_tensor_desc *t = &d->tensors[i];
        const char *path = d->files[t->file];
        if (fds[t->file] < 0) {
            fds[t->file] = open(path, O_RDONLY | O_CLOEXEC);
            if (fds[t->file] < 0) {
                lmm_error_set("%s: cannot open: %s", path, strerror(errno));
                goto done;
            }
        }
        unsigned char *dst = (unsigned char *)blob + m.pos[i];
        if (read_full(fds[t->file], path, t->name, dst, (size_t)t->nbytes, t->offset)) goto done;
        if (t->n_dims == 1) {
            m.small[i] = w->f32_small + small_pos;
            lmm_dtype_row_to_f32(m.small[i], dst, t->dtype, (size_t)t->shape[0]);
            small_pos += (size_t)t->shape[0];
        }
    }
    if (bind_all(w, &m)) goto done;
    (void)mprotect(blob, total, PROT_READ);
    rc = 0;

done:
    if (fds)
        for (uint32_t f = 0; f < d->n_files; f++)
            if (fds[f] >= 0) close(fds[f]);
    free(fds);
    free(order);
    free(m.pos);
    free(m.small);
    if (rc) lmm_weights_free(w);
    return rc;
}

void lmm_weights_free(lmm_weights *w) {
    if (!w) return;
    if (w->blob) munmap(w->blob, w->blob_size);
    free(w->f32_small);
    free(w->layers);
    memset(w, 0, sizeof *w);
}
