/* model/graph/source_naive.c — the weight source that reads each piece when it is needed.
 *
 * acquire(piece) preads the piece's segments into ONE slot-sized buffer, laid out as a
 * ring slot (segment data at slot_offset + file_offset % 4096), and returns it; nothing
 * overlaps the reading with computing. With o_direct the files are opened O_DIRECT and
 * each segment is read 4 KiB widened, as the loader does; otherwise exactly the segment's
 * bytes are read through the page cache. The baseline for the benchmarks: the engine's
 * ring must beat it. Only one piece can be held at a time (the executor never holds two). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lmm/error.h"
#include "lmm/executor.h"

typedef struct {
    const lmm_plan *plan;
    int o_direct;
    int *fds;                 /* [n_files] */
    unsigned char *buf;       /* [slot_bytes], 4 KiB aligned: the one "slot" */
    unsigned char *embd;      /* [max_batch][embd_stride], 4 KiB aligned */
    uint64_t embd_stride;     /* 4 KiB widened size of one embedding row, rounded up */
    uint32_t max_batch;
    int held;
    uint32_t held_piece;
} naive_src;

#define ALIGN LMM_PLAN_ALIGN

/* Puts file bytes [offset, offset + nbytes) at dst + offset % 4096 (dst 4 KiB aligned). */
static int read_range(naive_src *n, uint32_t file, unsigned char *dst, uint64_t offset, uint64_t nbytes) {
    const char *path = n->plan->desc->files[file];
    uint64_t start = offset, len = nbytes, need = nbytes;
    if (n->o_direct) {
        start = offset / ALIGN * ALIGN;
        len = lmm_plan_span(offset, nbytes); /* a short read at end of file is expected */
        need = offset - start + nbytes;
    } else {
        dst += offset % ALIGN;
    }
    uint64_t done = 0;
    while (done < need) {
        uint64_t want = len - done < (1u << 30) ? len - done : (1u << 30);
        ssize_t got = pread(n->fds[file], dst + done, (size_t)want, (off_t)(start + done));
        if (got < 0 && errno == EINTR) continue;
        if (got < 0)
            return lmm_error_set("%s: read of %" PRIu64 " bytes at offset %" PRIu64 " failed: %s", path, want,
                                 start + done, strerror(errno));
        if (got == 0)
            return lmm_error_set("%s: file ends at offset %" PRIu64 " (was it truncated?)", path, start + done);
        done += (uint64_t)got;
    }
    return 0;
}

static const void *naive_acquire(void *ctx, uint32_t piece) {
    naive_src *n = ctx;
    if (n->held) {
        lmm_error_set("naive source: piece %u acquired while piece %u is held (it has one buffer)", piece,
                      n->held_piece);
        return NULL;
    }
    const lmm_plan_piece *pc = &n->plan->pieces[piece];
    for (uint32_t i = pc->first_segment; i < pc->first_segment + pc->n_segments; i++) {
        const lmm_plan_segment *s = &n->plan->segments[i];
        if (read_range(n, s->file, n->buf + s->slot_offset, s->file_offset, s->nbytes)) return NULL;
    }
    n->held = 1;
    n->held_piece = piece;
    return n->buf;
}

static void naive_release(void *ctx, uint32_t piece) {
    naive_src *n = ctx;
    if (n->held && n->held_piece == piece) n->held = 0;
}

static int naive_embd_rows(void *ctx, const uint32_t *tokens, uint32_t count, const void **rows) {
    naive_src *n = ctx;
    const lmm_plan_embd *e = &n->plan->embd;
    if (count > n->max_batch)
        return lmm_error_set("naive source: %u embedding rows asked, room for %u", count, n->max_batch);
    for (uint32_t i = 0; i < count; i++) {
        uint64_t off = lmm_plan_embd_offset(n->plan, tokens[i]);
        unsigned char *dst = n->embd + (size_t)i * n->embd_stride;
        if (read_range(n, e->file, dst, off, e->row_bytes)) return -1;
        rows[i] = dst + off % ALIGN;
    }
    return 0;
}

static void naive_destroy(void *ctx) {
    naive_src *n = ctx;
    if (!n) return;
    if (n->fds)
        for (uint32_t f = 0; f < n->plan->desc->n_files; f++)
            if (n->fds[f] >= 0) close(n->fds[f]);
    free(n->fds);
    free(n->buf);
    free(n->embd);
    free(n);
}

static void *alloc_aligned(uint64_t bytes) {
    bytes = (bytes + ALIGN - 1) / ALIGN * ALIGN;
    if (bytes == 0) bytes = ALIGN;
    if (bytes > SIZE_MAX) return NULL;
    return aligned_alloc(ALIGN, (size_t)bytes);
}

int lmm_source_naive_init(lmm_weight_source *s, const lmm_plan *p, uint32_t max_batch, int o_direct) {
    *s = (lmm_weight_source){0};
    const lmm_model_desc *d = p->desc;
    if (max_batch == 0) max_batch = 1;
    naive_src *n = calloc(1, sizeof *n);
    if (!n) return lmm_error_set("out of memory");
    n->plan = p;
    n->o_direct = o_direct != 0;
    n->max_batch = max_batch;
    n->embd_stride = (p->embd.row_bytes + ALIGN - 1) / ALIGN * ALIGN + ALIGN;
    n->fds = malloc((d->n_files ? d->n_files : 1) * sizeof *n->fds);
    n->buf = alloc_aligned(p->slot_bytes);
    n->embd = n->embd_stride <= UINT64_MAX / max_batch ? alloc_aligned(n->embd_stride * max_batch) : NULL;
    if (!n->fds || !n->buf || !n->embd) {
        if (n->fds)
            for (uint32_t f = 0; f < d->n_files; f++) n->fds[f] = -1;
        naive_destroy(n);
        return lmm_error_set("naive source: out of memory for a slot of %" PRIu64 " bytes", p->slot_bytes);
    }
    for (uint32_t f = 0; f < d->n_files; f++) n->fds[f] = -1;
    for (uint32_t f = 0; f < d->n_files; f++) {
        n->fds[f] = open(d->files[f], O_RDONLY | O_CLOEXEC | (n->o_direct ? O_DIRECT : 0));
        if (n->fds[f] < 0) {
            int e = errno;
            naive_destroy(n);
            return lmm_error_set("%s: cannot open%s: %s", d->files[f], o_direct ? " with O_DIRECT" : "", strerror(e));
        }
    }
    *s = (lmm_weight_source){n, naive_acquire, naive_release, NULL, naive_embd_rows, naive_destroy};
    return 0;
}
