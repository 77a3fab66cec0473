/* model/graph/weights.c — reading a model's tensors into memory (lmm_weights_load).
 *
 * Every tensor of the description is read with large pread()s into ONE anonymous
 * mapping (64-byte aligned tensors inside it, transparent huge pages asked for), in
 * file order so the disk sees sequential reads. Matrices stay in their stored dtype
 * (the kernels widen F16/BF16 rows exactly); the small 1-D vectors (norms, biases,
 * rope_freqs) are widened once to FP32 into `f32_small`. `data[i]` and `f32[i]` say
 * where tensor i ended up. The mapping is made read-only when loading is done, so a
 * stray write into weights faults at once. */
#include "lmm/transformer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lmm/error.h"
#include "lmm/progress.h"

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

int lmm_weights_load(lmm_weights *w, const lmm_model_desc *d) {
    memset(w, 0, sizeof *w);
    w->desc = d;
    if (lmm_model_desc_validate(d)) return -1;

    uint32_t n = d->n_tensors;
    read_slot *order = malloc((size_t)n * sizeof *order);
    size_t *pos = calloc(n, sizeof *pos); /* [n_tensors] byte position of each tensor in the blob */
    w->data = calloc(n ? n : 1, sizeof *w->data);
    w->f32 = calloc(n ? n : 1, sizeof *w->f32);
    int *fds = malloc((size_t)d->n_files * sizeof *fds);
    int rc = -1;
    if (!order || !pos || !w->data || !w->f32 || !fds) {
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
        pos[order[k].index] = total;
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
    if (!w->f32_small) {
        lmm_error_set("out of memory");
        goto done;
    }

    size_t small_pos = 0;
    lmm_progress bar; /* on stderr when it is a terminal (large models take a while) */
    lmm_progress_init(&bar, "loading weights", total);
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = order[k].index;
        const lmm_tensor_desc *t = &d->tensors[i];
        const char *path = d->files[t->file];
        if (fds[t->file] < 0) {
            fds[t->file] = open(path, O_RDONLY | O_CLOEXEC);
            if (fds[t->file] < 0) {
                lmm_error_set("%s: cannot open: %s", path, strerror(errno));
                lmm_progress_clear(&bar);
                goto done;
            }
        }
        unsigned char *dst = (unsigned char *)blob + pos[i];
        if (read_full(fds[t->file], path, t->name, dst, (size_t)t->nbytes, t->offset)) {
            lmm_progress_clear(&bar);
            goto done;
        }
        lmm_progress_add(&bar, (size_t)t->nbytes);
        w->data[i] = dst;
        if (t->n_dims == 1) {
            float *f = w->f32_small + small_pos;
            lmm_dtype_row_to_f32(f, dst, t->dtype, (size_t)t->shape[0]);
            w->f32[i] = f;
            small_pos += (size_t)t->shape[0];
        }
    }
    lmm_progress_done(&bar);
    (void)mprotect(blob, total, PROT_READ);
    rc = 0;

done:
    if (fds)
        for (uint32_t f = 0; f < d->n_files; f++)
            if (fds[f] >= 0) close(fds[f]);
    free(fds);
    free(order);
    free(pos);
    if (rc) lmm_weights_free(w);
    return rc;
}

void lmm_weights_free(lmm_weights *w) {
    if (!w) return;
    if (w->blob) munmap(w->blob, w->blob_size);
    free(w->f32_small);
    free(w->data);
    free(w->f32);
    memset(w, 0, sizeof *w);
}
