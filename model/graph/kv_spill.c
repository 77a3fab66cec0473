/* model/graph/kv_spill.c — the frame pool of the paged live KV over a spill file
 * (model/graph/kv_spill.h; docs/kv-cache.md "Long contexts: live KV spill").
 *
 * Tables (all allocated by _init):
 *   frames       [n_frames][block_bytes]  4 KiB aligned
 *   frame_block  [n_frames]  the block a frame holds, or NONE
 *   where        [n_blocks]  1 + the frame holding a block, or 0 (in the file only)
 *   pins, dirty, stamp [n_frames]
 *   ops          [n_frames]  one _pin's batch of writes or reads
 * Block `id` is file bytes [id * block_bytes, (id + 1) * block_bytes); the file is
 * extended to n_blocks * block_bytes at once (sparse), so a read never meets its end. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* O_DIRECT */
#endif
#include "kv_spill.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lmm/error.h"

#define NONE UINT64_MAX
#define NO_FRAME UINT32_MAX
#define RING_DEPTH 64u /* >= the executor's largest window (SPILL_WINDOW_MAX) */

typedef struct {
    uint32_t frame;
    uint64_t block;
} io_op;

struct lmm_kv_spill {
    char path[4096];
    int fd;
    int direct;                 /* the file is open with O_DIRECT */
    int have_ring;
    struct io_uring ring;
    uint64_t n_blocks;
    size_t block_bytes;
    uint32_t n_frames;
    unsigned char *frames;      /* [n_frames][block_bytes] */
    uint64_t *frame_block;      /* [n_frames] */
    uint32_t *where;            /* [n_blocks] */
    uint32_t *pins;             /* [n_frames] */
    uint8_t *dirty;             /* [n_frames] */
    uint64_t *stamp;            /* [n_frames] last use */
    uint64_t clock;
    io_op *ops;                 /* [n_frames] */
    io_op *inflight;            /* [n_frames] reads submitted by _pin_start, reaped by _pin_wait */
    uint32_t n_inflight;
    uint32_t *taken;            /* [n_frames] indices (into ids) of the blocks a _pin gave new frames */
    size_t ram_bytes;
    uint64_t n_reads, n_writes;
};

static atomic_uint g_file_counter;

/* ---- file I/O ------------------------------------------------------------------------ */

static unsigned char *frame_of(const lmm_kv_spill *s, uint32_t f) { return s->frames + (size_t)f * s->block_bytes; }

/* The rest of a transfer that io_uring left short (or all of it without io_uring). */
static int io_sync(lmm_kv_spill *s, const io_op *op, size_t done, int write) {
    unsigned char *buf = frame_of(s, op->frame);
    const uint64_t off = op->block * (uint64_t)s->block_bytes;
    while (done < s->block_bytes) {
        ssize_t r = write ? pwrite(s->fd, buf + done, s->block_bytes - done, (off_t)(off + done))
                          : pread(s->fd, buf + done, s->block_bytes - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0)
            return lmm_error_set("kv spill: %s: %s of block %" PRIu64 " (offset %" PRIu64 "): %s", s->path,
                                 write ? "write" : "read", op->block, off + done, strerror(errno));
        if (r == 0) { /* cannot happen below the file's size; zeros, never read anyway */
            memset(buf + done, 0, s->block_bytes - done);
            break;
        }
        done += (size_t)r;
    }
    return 0;
}

/* Queues ops[0..n) (n <= RING_DEPTH; all reads or all writes) on the ring. */
static int io_submit(lmm_kv_spill *s, const io_op *ops, uint32_t n, int write) {
    for (uint32_t i = 0; i < n; i++) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
        const io_op *op = &ops[i];
        const uint64_t off = op->block * (uint64_t)s->block_bytes;
        if (write) io_uring_prep_write(sqe, s->fd, frame_of(s, op->frame), (unsigned)s->block_bytes, off);
        else io_uring_prep_read(sqe, s->fd, frame_of(s, op->frame), (unsigned)s->block_bytes, off);
        io_uring_sqe_set_data64(sqe, i);
    }
    int sub = io_uring_submit(&s->ring);
    if (sub != (int)n) return lmm_error_set("kv spill: %s: io_uring submit: %s", s->path, strerror(sub < 0 ? -sub : EIO));
    return 0;
}

/* Waits for the n ops queued by io_submit; a short transfer is finished with pread/pwrite. */
static int io_reap(lmm_kv_spill *s, const io_op *ops, uint32_t n, int write) {
    int rc = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct io_uring_cqe *cqe;
        int w = io_uring_wait_cqe(&s->ring, &cqe);
        if (w == -EINTR) {
            i--;
            continue;
        }
        if (w < 0) return lmm_error_set("kv spill: %s: io_uring wait: %s", s->path, strerror(-w));
        const io_op *op = &ops[io_uring_cqe_get_data64(cqe)];
        int res = cqe->res;
        io_uring_cqe_seen(&s->ring, cqe);
        if (rc) continue; /* reap the rest, report the first error */
        if (res < 0)
            rc = lmm_error_set("kv spill: %s: %s of block %" PRIu64 ": %s", s->path, write ? "write" : "read",
                               op->block, strerror(-res));
        else if ((size_t)res < s->block_bytes)
            rc = io_sync(s, op, (size_t)res, write);
    }
    return rc;
}

/* Runs ops[0..n) (all reads or all writes) to completion. */
static int io_batch(lmm_kv_spill *s, const io_op *ops, uint32_t n, int write) {
    if (write) s->n_writes += n;
    else s->n_reads += n;
    if (!s->have_ring) {
        for (uint32_t i = 0; i < n; i++)
            if (io_sync(s, &ops[i], 0, write)) return -1;
        return 0;
    }
    for (uint32_t b = 0; b < n; b += RING_DEPTH) {
        uint32_t m = n - b < RING_DEPTH ? n - b : RING_DEPTH;
        if (io_submit(s, ops + b, m, write) || io_reap(s, ops + b, m, write)) return -1;
    }
    return 0;
}

/* ---- init / free ------------------------------------------------------------------------ */

void lmm_kv_spill_free(lmm_kv_spill *s) {
    if (!s) return;
    if (s->have_ring) io_uring_queue_exit(&s->ring);
    if (s->fd >= 0) close(s->fd);
    free(s->frames);
    free(s->frame_block);
    free(s->where);
    free(s->pins);
    free(s->dirty);
    free(s->stamp);
    free(s->ops);
    free(s->inflight);
    free(s->taken);
    free(s);
}

int lmm_kv_spill_init(lmm_kv_spill **out, const char *dir, uint64_t n_blocks, size_t block_bytes, uint32_t n_frames) {
    *out = NULL;
    if (!dir || !*dir) return lmm_error_set("kv spill: no spill directory given");
    if (block_bytes == 0 || block_bytes % LMM_KV_SPILL_ALIGN || block_bytes > (1u << 30) || n_frames == 0 ||
        n_blocks == 0 || n_blocks >= UINT32_MAX || n_blocks > INT64_MAX / block_bytes)
        return lmm_error_set("kv spill: %s: bad geometry (%" PRIu64 " blocks of %zu bytes, %u frames)", dir, n_blocks,
                             block_bytes, n_frames);
    if ((size_t)n_frames > SIZE_MAX / block_bytes) return lmm_error_set("kv spill: %u frames is too many", n_frames);
    lmm_kv_spill *s = calloc(1, sizeof *s);
    if (!s) return lmm_error_set("out of memory");
    s->fd = -1;
    s->n_blocks = n_blocks;
    s->block_bytes = block_bytes;
    s->n_frames = n_frames;
    int n = snprintf(s->path, sizeof s->path, "%s/live-%ld-%u.kv", dir, (long)getpid(),
                     atomic_fetch_add(&g_file_counter, 1u));
    if (n < 0 || (size_t)n >= sizeof s->path) {
        lmm_kv_spill_free(s);
        return lmm_error_set("kv spill: directory name too long: %s", dir);
    }
    unlink(s->path); /* a stale file of an earlier process with this pid */
    const char *plain = getenv("LMM_KV_SPILL_PLAIN_IO"); /* test hook: the fallbacks */
    const int force_plain = plain && *plain && strcmp(plain, "0") != 0;
    s->fd = force_plain ? -1 : open(s->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_DIRECT, 0600);
    if (s->fd >= 0) {
        s->direct = 1;
    } else if (force_plain || errno == EINVAL) { /* the file system refuses O_DIRECT */
        s->fd = open(s->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (s->fd >= 0)
            fprintf(stderr, "lmm: warning: kv spill: %s %s; buffered I/O (the page cache may keep spilled KV in "
                            "RAM)\n", dir, force_plain ? "(LMM_KV_SPILL_PLAIN_IO)" : "refuses O_DIRECT");
    }
    if (s->fd < 0) {
        int e = errno;
        lmm_kv_spill_free(s);
        return lmm_error_set("kv spill: cannot create a spill file in %s: %s (the live KV spill directory must be a "
                             "writable directory)", dir, strerror(e));
    }
    unlink(s->path); /* the file lives as long as the descriptor: never left behind */
    if (ftruncate(s->fd, (off_t)(n_blocks * (uint64_t)block_bytes))) {
        int e = errno;
        lmm_kv_spill_free(s);
        return lmm_error_set("kv spill: %s: cannot size the spill file to %" PRIu64 " bytes: %s", dir,
                             n_blocks * (uint64_t)block_bytes, strerror(e));
    }
    size_t fb = (size_t)n_frames * block_bytes;
    s->frames = aligned_alloc(LMM_KV_SPILL_ALIGN, fb);
    s->frame_block = malloc(n_frames * sizeof *s->frame_block);
    s->where = calloc((size_t)n_blocks, sizeof *s->where);
    s->pins = calloc(n_frames, sizeof *s->pins);
    s->dirty = calloc(n_frames, sizeof *s->dirty);
    s->stamp = calloc(n_frames, sizeof *s->stamp);
    s->ops = malloc(n_frames * sizeof *s->ops);
    s->inflight = malloc(n_frames * sizeof *s->inflight);
    s->taken = malloc(n_frames * sizeof *s->taken);
    if (!s->frames || !s->frame_block || !s->where || !s->pins || !s->dirty || !s->stamp || !s->ops || !s->inflight ||
        !s->taken) {
        lmm_kv_spill_free(s);
        return lmm_error_set("kv spill: out of memory for %u frames of %zu bytes", n_frames, block_bytes);
    }
    memset(s->frames, 0, fb); /* touch now: first touch in the token loop would be slow */
    for (uint32_t f = 0; f < n_frames; f++) s->frame_block[f] = NONE;
    s->ram_bytes = fb + (size_t)n_blocks * sizeof *s->where +
                   (size_t)n_frames * (sizeof *s->frame_block + sizeof *s->pins + 1 + sizeof *s->stamp +
                                       2 * sizeof *s->ops + sizeof *s->taken);
    s->have_ring = !force_plain && io_uring_queue_init(RING_DEPTH, &s->ring, 0) == 0; /* else pread/pwrite */
    *out = s;
    return 0;
}

/* ---- pin / unpin ------------------------------------------------------------------------ */

/* The frame to reuse: an empty one, else the newest clean, else the newest dirty; NO_FRAME
 * when all are pinned. */
static uint32_t victim(const lmm_kv_spill *s) {
    uint32_t best = NO_FRAME;
    int best_class = -1; /* 2 empty, 1 clean, 0 dirty */
    for (uint32_t f = 0; f < s->n_frames; f++) {
        if (s->pins[f]) continue;
        int c = s->frame_block[f] == NONE ? 2 : s->dirty[f] ? 0 : 1;
        if (c > best_class || (c == best_class && s->stamp[f] > s->stamp[best])) {
            best = f;
            best_class = c;
            if (c == 2) break;
        }
    }
    return best;
}

static void frame_forget(lmm_kv_spill *s, uint32_t f) {
    if (s->frame_block[f] != NONE) s->where[s->frame_block[f]] = 0;
    s->frame_block[f] = NONE;
    s->pins[f] = 0;
    s->dirty[f] = 0;
}

int lmm_kv_spill_pin_start(lmm_kv_spill *s, const uint64_t *ids, uint32_t n, const uint8_t *fresh,
                           unsigned char **frames) {
    uint32_t n_taken = 0, n_ops = 0;
    if (s->n_inflight && lmm_kv_spill_pin_wait(s)) return -1; /* one batch of reads in flight at a time */
    for (uint32_t i = 0; i < n; i++)
        if (ids[i] >= s->n_blocks)
            return lmm_error_set("kv spill: block %" PRIu64 " out of range (%" PRIu64 ")", ids[i], s->n_blocks);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t w = s->where[ids[i]];
        frames[i] = NULL;
        if (!w) continue;
        s->pins[w - 1]++;
        s->stamp[w - 1] = ++s->clock;
        frames[i] = frame_of(s, w - 1);
    }
    /* frames for the missing blocks; the dirty ones written back first */
    for (uint32_t i = 0; i < n; i++) {
        if (frames[i]) continue;
        uint32_t f = victim(s);
        if (f == NO_FRAME) {
            lmm_error_set("kv spill: %s: all %u frames are pinned", s->path, s->n_frames);
            goto fail;
        }
        if (s->frame_block[f] != NONE && s->dirty[f]) s->ops[n_ops++] = (io_op){f, s->frame_block[f]};
        if (s->frame_block[f] != NONE) s->where[s->frame_block[f]] = 0;
        s->frame_block[f] = ids[i];
        s->where[ids[i]] = f + 1;
        s->pins[f] = 1;
        s->dirty[f] = 0;
        s->stamp[f] = ++s->clock;
        s->taken[n_taken++] = i; /* index into ids */
        frames[i] = frame_of(s, f);
    }
    if (n_ops && io_batch(s, s->ops, n_ops, 1)) goto fail;
    n_ops = 0;
    for (uint32_t k = 0; k < n_taken; k++) {
        uint32_t i = s->taken[k];
        if (!(fresh && fresh[i])) s->ops[n_ops++] = (io_op){s->where[ids[i]] - 1, ids[i]};
    }
    if (n_ops && s->have_ring && n_ops <= RING_DEPTH) { /* reaped by _pin_wait */
        if (io_submit(s, s->ops, n_ops, 0)) goto fail;
        s->n_reads += n_ops;
        memcpy(s->inflight, s->ops, n_ops * sizeof *s->ops);
        s->n_inflight = n_ops;
    } else if (n_ops && io_batch(s, s->ops, n_ops, 0)) {
        goto fail;
    }
    return 0;
fail:
    for (uint32_t k = 0; k < n_taken; k++) frame_forget(s, s->where[ids[s->taken[k]]] - 1);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t w = s->where[ids[i]];
        if (w && s->pins[w - 1]) s->pins[w - 1]--;
    }
    return -1;
}

int lmm_kv_spill_pin_wait(lmm_kv_spill *s) {
    uint32_t n = s->n_inflight;
    if (!n) return 0;
    s->n_inflight = 0;
    if (io_reap(s, s->inflight, n, 0) == 0) return 0;
    for (uint32_t i = 0; i < n; i++) frame_forget(s, s->inflight[i].frame); /* their bytes are not valid */
    return -1;
}

int lmm_kv_spill_pin(lmm_kv_spill *s, const uint64_t *ids, uint32_t n, const uint8_t *fresh, unsigned char **frames) {
    if (lmm_kv_spill_pin_start(s, ids, n, fresh, frames)) return -1;
    if (lmm_kv_spill_pin_wait(s) == 0) return 0;
    lmm_kv_spill_unpin(s, ids, n, 0);
    return -1;
}

void lmm_kv_spill_unpin(lmm_kv_spill *s, const uint64_t *ids, uint32_t n, int dirty) {
    for (uint32_t i = 0; i < n; i++) {
        uint32_t w = ids[i] < s->n_blocks ? s->where[ids[i]] : 0;
        if (!w || !s->pins[w - 1]) continue;
        s->pins[w - 1]--;
        if (dirty) s->dirty[w - 1] = 1;
    }
}

uint32_t lmm_kv_spill_n_frames(const lmm_kv_spill *s) { return s->n_frames; }
size_t lmm_kv_spill_ram_bytes(const lmm_kv_spill *s) { return s->ram_bytes; }

void lmm_kv_spill_counts(const lmm_kv_spill *s, uint64_t *reads, uint64_t *writes) {
    *reads = s->n_reads;
    *writes = s->n_writes;
}
