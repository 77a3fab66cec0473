/* model/graph/source_mmap.c — the weight source that maps the model files.
 *
 * Every file is mapped read-only, whole; segment_data and embd_rows point into the
 * mappings and acquire/release do nothing: the kernel's page cache decides what is in
 * memory and reads on page faults. This is how llama.cpp runs by default, and the second
 * baseline for the benchmarks (on a cycle larger than memory the page cache's LRU keeps
 * almost nothing useful). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lmm/error.h"
#include "lmm/executor.h"

typedef struct {
    const lmm_plan *plan;
    uint32_t n_files;
    unsigned char **maps;     /* [n_files] (NULL for an empty file) */
    size_t *sizes;            /* [n_files] */
} mmap_src;

static const void *mmap_acquire(void *ctx, uint32_t piece) {
    (void)piece;
    return ctx; /* any non-NULL: segment_data gives the addresses */
}

static void mmap_release(void *ctx, uint32_t piece) {
    (void)ctx;
    (void)piece;
}

static const void *mmap_segment(void *ctx, uint32_t segment) {
    const mmap_src *m = ctx;
    const lmm_plan_segment *s = &m->plan->segments[segment];
    return m->maps[s->file] + s->file_offset;
}

static int mmap_embd_rows(void *ctx, const uint32_t *tokens, uint32_t n, const void **rows) {
    const mmap_src *m = ctx;
    for (uint32_t i = 0; i < n; i++) rows[i] = m->maps[m->plan->embd.file] + lmm_plan_embd_offset(m->plan, tokens[i]);
    return 0;
}

static void mmap_destroy(void *ctx) {
    mmap_src *m = ctx;
    if (!m) return;
    for (uint32_t f = 0; f < m->n_files && m->maps; f++)
        if (m->maps[f]) munmap(m->maps[f], m->sizes[f]);
    free(m->maps);
    free(m->sizes);
    free(m);
}

int lmm_source_mmap_init(lmm_weight_source *s, const lmm_plan *p) {
    *s = (lmm_weight_source){0};
    const lmm_model_desc *d = p->desc;
    mmap_src *m = calloc(1, sizeof *m);
    if (!m) return lmm_error_set("out of memory");
    m->plan = p;
    m->n_files = d->n_files;
    m->maps = calloc(d->n_files ? d->n_files : 1, sizeof *m->maps);
    m->sizes = calloc(d->n_files ? d->n_files : 1, sizeof *m->sizes);
    if (!m->maps || !m->sizes) {
        mmap_destroy(m);
        return lmm_error_set("out of memory");
    }
    for (uint32_t f = 0; f < d->n_files; f++) {
        int fd = open(d->files[f], O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0) {
            int e = errno;
            if (fd >= 0) close(fd);
            mmap_destroy(m);
            return lmm_error_set("%s: cannot open: %s", d->files[f], strerror(e));
        }
        if ((uint64_t)st.st_size < d->file_sizes[f]) {
            close(fd);
            mmap_destroy(m);
            return lmm_error_set("%s: the file has %" PRIu64 " bytes, the model description says %" PRIu64
                                 " (was it changed?)",
                                 d->files[f], (uint64_t)st.st_size, d->file_sizes[f]);
        }
        if (st.st_size > 0) {
            void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
            if (map == MAP_FAILED) {
                int e = errno;
                close(fd);
                mmap_destroy(m);
                return lmm_error_set("%s: cannot map %" PRIu64 " bytes: %s", d->files[f], (uint64_t)st.st_size,
                                     strerror(e));
            }
            m->maps[f] = map;
            m->sizes[f] = (size_t)st.st_size;
        }
        close(fd);
    }
    *s = (lmm_weight_source){m, mmap_acquire, mmap_release, mmap_segment, mmap_embd_rows, mmap_destroy};
    return 0;
}
