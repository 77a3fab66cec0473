/* services/loader/uring_reader.c — io_uring reads of file byte ranges into shared-memory
 * ring slots (see lmm/uring_reader.h and docs/loader.md).
 *
 * Requests wait in a FIFO; a pump cuts them into chunks and keeps queue_depth chunks in
 * flight, taking the next request's chunks as soon as one request is fully queued.
 * Chunks that must be read again (EAGAIN, a short read, a file switched to buffered
 * reads) wait in a retry list served before new chunks. Finished requests wait in a
 * done FIFO until _poll/_wait return them. All tables are allocated by _init. */
#include "lmm/uring_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lmm/error.h"

#define NIL UINT32_MAX

/* ------------------------------------------------------------------ state */

typedef struct {
    int fd;
    int direct;             /* 1: opened with O_DIRECT */
    uint64_t size;
    char *path;
} rfile;

typedef struct {
    uint32_t next;          /* link: free list, pending FIFO or done FIFO */
    uint32_t file, slot;
    uint32_t outstanding;   /* chunks allocated to it and not finished */
    uint64_t tag;
    uint64_t offset, len;   /* as requested */
    uint64_t start, end;    /* widened range being read */
    uint64_t slot_offset;   /* slot byte where file byte `start` goes (multiple of 4096) */
    uint64_t next_off;      /* start of the next chunk to cut */
    int error;              /* errno of the lowest failing read, or 0 */
    uint64_t error_off;
} rreq;

typedef struct {
    uint32_t req;
    uint32_t next;          /* link: free list or retry list */
    uint64_t off;           /* file offset still to read */
    uint32_t len;           /* bytes still to read */
    int direct;             /* issued on an O_DIRECT descriptor */
} rchunk;

struct lmm_uring_state {
    struct io_uring ring;
    int ring_ok;
    int event_fd;
    rfile *files;           /* [max_files] */
    uint32_t n_files;
    rreq *reqs;             /* [max_requests] */
    uint32_t req_free;
    uint32_t pend_head, pend_tail;   /* requests with chunks still to cut */
    uint32_t done_head, done_tail;   /* finished, not yet returned */
    unsigned n_reqs_used;
    rchunk *chunks;         /* [queue_depth] */
    uint32_t chunk_free;
    uint32_t retry_head, retry_tail;
    unsigned prepared;      /* SQEs prepared since the last io_uring_submit */
};

/* ------------------------------------------------------------------ small helpers */

static void fifo_push(rreq *reqs, uint32_t *head, uint32_t *tail, uint32_t i) {
    reqs[i].next = NIL;
    if (*tail == NIL) *head = i;
    else reqs[*tail].next = i;
    *tail = i;
}

static uint32_t fifo_pop(rreq *reqs, uint32_t *head, uint32_t *tail) {
    uint32_t i = *head;
    if (i == NIL) return NIL;
    *head = reqs[i].next;
    if (*head == NIL) *tail = NIL;
    return i;
}

static void retry_push(struct lmm_uring_state *s, uint32_t c) {
    s->chunks[c].next = NIL;
    if (s->retry_tail == NIL) s->retry_head = c;
    else s->chunks[s->retry_tail].next = c;
    s->retry_tail = c;
}

int lmm_uring_span(uint64_t offset, uint64_t len, uint64_t file_size, uint64_t *start,
                   uint64_t *end) {
    if (len == 0) return lmm_error_set("empty range at offset %llu", (unsigned long long)offset);
    if (offset > file_size || len > file_size - offset)
        return lmm_error_set("range [%llu, %llu) is beyond the end of the file (%llu bytes)",
                             (unsigned long long)offset,
                             (unsigned long long)(offset + len < offset ? UINT64_MAX
                                                                        : offset + len),
                             (unsigned long long)file_size);
    /* offset + len <= file_size < 2^64 - 4096 for any real file: no overflow below. */
    *start = offset & ~(uint64_t)(LMM_URING_ALIGN - 1);
    *end = (offset + len + LMM_URING_ALIGN - 1) & ~(uint64_t)(LMM_URING_ALIGN - 1);
    return 0;
}

/* ------------------------------------------------------------------ init / free */

void lmm_uring_reader_opts_default(lmm_uring_reader_opts *o) {
    o->queue_depth = LMM_URING_DEFAULT_QUEUE_DEPTH;
    o->chunk_bytes = LMM_URING_DEFAULT_CHUNK;
    o->max_requests = 0;
    o->max_files = 256;
    o->flags = 0;
}

int lmm_uring_reader_init(lmm_uring_reader *r, unsigned queue_depth, const lmm_shm_ring *ring) {
    lmm_uring_reader_opts o;
    lmm_uring_reader_opts_default(&o);
    if (queue_depth) o.queue_depth = queue_depth;
    return lmm_uring_reader_init_opts(r, ring, &o);
}

int lmm_uring_reader_init_opts(lmm_uring_reader *r, const lmm_shm_ring *ring,
                               const lmm_uring_reader_opts *opts) {
    memset(r, 0, sizeof *r);
    if (opts) r->opts = *opts;
    else lmm_uring_reader_opts_default(&r->opts);
    lmm_uring_reader_opts *o = &r->opts;
    if (o->queue_depth == 0 || o->queue_depth > 4096)
        return lmm_error_set("uring reader: queue depth %u (allowed 1..4096)", o->queue_depth);
    if (o->chunk_bytes == 0 || o->chunk_bytes % LMM_URING_ALIGN != 0 ||
        o->chunk_bytes > (1u << 30))
        return lmm_error_set("uring reader: chunk of %zu bytes is not a multiple of %u "
                             "up to 1 GiB", o->chunk_bytes, LMM_URING_ALIGN);
    if (o->max_requests == 0) o->max_requests = 4 * o->queue_depth;
    if (o->max_files == 0) o->max_files = 256;
    if (o->max_requests > (1u << 20) || o->max_files > (1u << 20))
        return lmm_error_set("uring reader: table sizes too large");
    if (!ring || !ring->base) return lmm_error_set("uring reader: no ring mapped");
    r->ring = ring;

    struct lmm_uring_state *s = calloc(1, sizeof *s);
    if (!s) return lmm_error_set("uring reader: out of memory");
    r->s = s;
    s->event_fd = -1;
    s->files = calloc(o->max_files, sizeof *s->files);
    s->reqs = calloc(o->max_requests, sizeof *s->reqs);
    s->chunks = calloc(o->queue_depth, sizeof *s->chunks);
    if (!s->files || !s->reqs || !s->chunks) {
        lmm_uring_reader_free(r);
        return lmm_error_set("uring reader: out of memory");
    }
    for (uint32_t i = 0; i < o->max_requests; i++)
        s->reqs[i].next = i + 1 < o->max_requests ? i + 1 : NIL;
    s->req_free = 0;
    for (uint32_t i = 0; i < o->queue_depth; i++)
        s->chunks[i].next = i + 1 < o->queue_depth ? i + 1 : NIL;
    s->chunk_free = 0;
    s->pend_head = s->pend_tail = s->done_head = s->done_tail = NIL;
    s->retry_head = s->retry_tail = NIL;

    /* COOP_TASKRUN: completions are processed when we enter the kernel, no IPI to
     * interrupt us (5.19+); older kernels get a plain ring. */
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_COOP_TASKRUN;
    int e = io_uring_queue_init_params(o->queue_depth, &s->ring, &p);
    if (e == -EINVAL) {
        memset(&p, 0, sizeof p);
        e = io_uring_queue_init_params(o->queue_depth, &s->ring, &p);
    }
    if (e < 0) {
        lmm_uring_reader_free(r);
        return lmm_error_set("uring reader: io_uring_queue_init(%u): %s", o->queue_depth,
                             strerror(-e));
    }
    s->ring_ok = 1;

    s->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->event_fd < 0 || io_uring_register_eventfd(&s->ring, s->event_fd) < 0) {
        int err = errno;
        lmm_uring_reader_free(r);
        return lmm_error_set("uring reader: eventfd: %s", strerror(err));
    }

    /* One fixed buffer per slot (buffer index = slot): the kernel pins the pages once
     * instead of per read. It can fail (RLIMIT_MEMLOCK without CAP_IPC_LOCK, slots over
     * 1 GiB, too many slots); plain reads give the same bytes. */
    if (!(o->flags & LMM_URING_NO_FIXED_BUFFERS)) {
        struct iovec *iov = calloc(ring->n_slots, sizeof *iov);
        if (!iov) {
            lmm_uring_reader_free(r);
            return lmm_error_set("uring reader: out of memory");
        }
        for (uint32_t i = 0; i < ring->n_slots; i++) {
            iov[i].iov_base = lmm_shm_ring_slot_data(ring, i);
            iov[i].iov_len = ring->slot_size;
        }
        e = io_uring_register_buffers(&s->ring, iov, ring->n_slots);
        free(iov);
        if (e == 0) {
            r->fixed_buffers = 1;
        } else if (!(o->flags & LMM_URING_QUIET)) {
            fprintf(stderr, "lmm loader: warning: cannot register %u slots of %zu bytes as "
                    "io_uring fixed buffers (%s); using plain reads\n", ring->n_slots,
                    ring->slot_size, strerror(-e));
        }
    }
    return 0;
}

void lmm_uring_reader_free(lmm_uring_reader *r) {
    struct lmm_uring_state *s = r->s;
    if (s) {
        /* reads still in flight are cancelled or finish in the kernel, which holds its
         * own references to the pages they target */
        if (s->ring_ok) io_uring_queue_exit(&s->ring);
        if (s->event_fd >= 0) close(s->event_fd);
        if (s->files) {
            for (uint32_t i = 0; i < s->n_files; i++) {
                if (s->files[i].fd >= 0) close(s->files[i].fd);
                free(s->files[i].path);
            }
        }
        free(s->files);
        free(s->reqs);
        free(s->chunks);
        free(s);
    }
    memset(r, 0, sizeof *r);
}

/* ------------------------------------------------------------------ files */

static void warn_buffered(const lmm_uring_reader *r, const char *path, const char *why) {
    if (!(r->opts.flags & LMM_URING_QUIET))
        fprintf(stderr, "lmm loader: warning: %s: %s; using buffered reads (page cache)\n",
                path, why);
}

/* Why O_DIRECT cannot be used on fd (as the file system reports it), or NULL. */
static const char *dio_unsupported(int fd, char *buf, size_t cap) {
#ifdef STATX_DIOALIGN
    struct statx sx;
    if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) != 0 ||
        !(sx.stx_mask & STATX_DIOALIGN))
        return NULL; /* not reported (older kernel, some file systems): trust open() */
    if (sx.stx_dio_offset_align == 0) return "file system reports no direct I/O support";
    if (sx.stx_dio_offset_align > LMM_URING_ALIGN || sx.stx_dio_mem_align > LMM_URING_ALIGN) {
        snprintf(buf, cap, "direct I/O needs %u-byte offsets / %u-byte buffers, more than %u",
                 sx.stx_dio_offset_align, sx.stx_dio_mem_align, LMM_URING_ALIGN);
        return buf;
    }
#else
    (void)fd, (void)buf, (void)cap;
#endif
    return NULL;
}

int lmm_uring_reader_add_file(lmm_uring_reader *r, const char *path, uint32_t *index) {
    struct lmm_uring_state *s = r->s;
    if (!s) return lmm_error_set("%s: uring reader not initialized", path);
    if (s->n_files >= r->opts.max_files)
        return lmm_error_set("%s: too many files (max_files %u)", path, r->opts.max_files);
    /* A plain descriptor first: says whether the file exists and is a regular file
     * before O_DIRECT is tried, and is kept if O_DIRECT cannot be used. */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lmm_error_set("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    int err = fstat(fd, &st) != 0 ? errno : 0;
    if (err || !S_ISREG(st.st_mode)) {
        close(fd);
        return lmm_error_set("%s: %s", path, err ? strerror(err) : "not a regular file");
    }
    int direct = 0;
    if (!(r->opts.flags & LMM_URING_FORCE_BUFFERED)) {
        int dfd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
        char why[128];
        const char *w = NULL;
        if (dfd < 0 && errno == EINVAL) w = "file system refuses O_DIRECT (EINVAL)";
        else if (dfd < 0) w = strerror(errno); /* odd, since the plain open worked */
        else if ((w = dio_unsupported(dfd, why, sizeof why)) != NULL) close(dfd);
        if (w) {
            warn_buffered(r, path, w);
        } else {
            close(fd);
            fd = dfd;
            direct = 1;
        }
    }
    char *copy = strdup(path);
    if (!copy) {
        close(fd);
        return lmm_error_set("%s: out of memory", path);
    }
    rfile *f = &s->files[s->n_files];
    f->fd = fd;
    f->direct = direct;
    f->size = (uint64_t)st.st_size;
    f->path = copy;
    if (index) *index = s->n_files;
    s->n_files++;
    return 0;
}

int lmm_uring_reader_file_direct(const lmm_uring_reader *r, uint32_t file) {
    if (!r->s || file >= r->s->n_files) return -1;
    return r->s->files[file].direct;
}

uint64_t lmm_uring_reader_file_size(const lmm_uring_reader *r, uint32_t file) {
    return r->s && file < r->s->n_files ? r->s->files[file].size : 0;
}

const char *lmm_uring_reader_file_path(const lmm_uring_reader *r, uint32_t file) {
    return r->s && file < r->s->n_files ? r->s->files[file].path : "?";
}

/* A read on an O_DIRECT descriptor came back EINVAL (the file system accepted the open
 * but not the read): read this file through the page cache from now on. Reads still in
 * flight keep their own reference to the old descriptor. */
static int switch_to_buffered(lmm_uring_reader *r, rfile *f) {
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    warn_buffered(r, f->path, "direct read refused (EINVAL)");
    close(f->fd);
    f->fd = fd;
    f->direct = 0;
    return 0;
}

/* ------------------------------------------------------------------ submit / pump */

static int prep_chunk(lmm_uring_reader *r, uint32_t c) {
    struct lmm_uring_state *s = r->s;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    if (!sqe) {
        /* The SQ has queue_depth entries and at most queue_depth chunks exist, so this
         * only happens if the kernel did not take earlier entries yet. */
        int e = io_uring_submit(&s->ring);
        if (e < 0 && e != -EAGAIN && e != -EBUSY)
            return lmm_error_set("uring reader: io_uring_submit: %s", strerror(-e));
        s->prepared = 0;
        sqe = io_uring_get_sqe(&s->ring);
        if (!sqe) return 1; /* try again on the next pump */
    }
    rchunk *ch = &s->chunks[c];
    rreq *q = &s->reqs[ch->req];
    rfile *f = &s->files[q->file];
    uint8_t *dst = lmm_shm_ring_slot_data(r->ring, q->slot) + q->slot_offset + (ch->off - q->start);
    if (r->fixed_buffers)
        io_uring_prep_read_fixed(sqe, f->fd, dst, ch->len, ch->off, (int)q->slot);
    else
        io_uring_prep_read(sqe, f->fd, dst, ch->len, ch->off);
    ch->direct = f->direct;
    io_uring_sqe_set_data64(sqe, c);
    s->prepared++;
    return 0;
}

/* Fills the queue up to queue_depth chunks and submits. */
static int pump(lmm_uring_reader *r) {
    struct lmm_uring_state *s = r->s;
    for (;;) {
        uint32_t c;
        if (s->retry_head != NIL) {
            c = s->retry_head;
            int e = prep_chunk(r, c);
            if (e != 0) return e < 0 ? -1 : 0;
            s->retry_head = s->chunks[c].next;
            if (s->retry_head == NIL) s->retry_tail = NIL;
            continue;
        }
        if (s->pend_head == NIL || s->chunk_free == NIL) break;
        uint32_t qi = s->pend_head;
        rreq *q = &s->reqs[qi];
        c = s->chunk_free;
        rchunk *ch = &s->chunks[c];
        uint64_t n = q->end - q->next_off;
        if (n > r->opts.chunk_bytes) n = r->opts.chunk_bytes;
        ch->req = qi;
        ch->off = q->next_off;
        ch->len = (uint32_t)n;
        int e = prep_chunk(r, c);
        if (e != 0) return e < 0 ? -1 : 0;
        s->chunk_free = ch->next;
        q->next_off += n;
        q->outstanding++;
        if (q->next_off == q->end) fifo_pop(s->reqs, &s->pend_head, &s->pend_tail);
    }
    if (s->prepared) {
        int e = io_uring_submit(&s->ring);
        if (e < 0 && e != -EAGAIN && e != -EBUSY && e != -EINTR)
            return lmm_error_set("uring reader: io_uring_submit: %s", strerror(-e));
        if (e >= 0) s->prepared = 0;
    }
    return 0;
}

int lmm_uring_reader_submit(lmm_uring_reader *r, uint32_t file, uint64_t offset, uint64_t len,
                            uint32_t slot, uint64_t user_tag) {
    return lmm_uring_reader_submit_at(r, file, offset, len, slot, 0, user_tag);
}

int lmm_uring_reader_submit_at(lmm_uring_reader *r, uint32_t file, uint64_t offset, uint64_t len,
                               uint32_t slot, uint64_t slot_offset, uint64_t user_tag) {
    struct lmm_uring_state *s = r->s;
    if (!s) return lmm_error_set("uring reader not initialized");
    if (file >= s->n_files)
        return lmm_error_set("uring reader: file %u not added (%u files)", file, s->n_files);
    rfile *f = &s->files[file];
    if (slot >= r->ring->n_slots)
        return lmm_error_set("%s: slot %u out of range (ring %s has %u slots)", f->path, slot,
                             r->ring->name, r->ring->n_slots);
    uint64_t start, end;
    if (lmm_uring_span(offset, len, f->size, &start, &end) != 0)
        return lmm_error_prefix("%s", f->path);
    if (slot_offset % LMM_URING_ALIGN != 0)
        return lmm_error_set("%s: slot offset %llu is not a multiple of %u", f->path,
                             (unsigned long long)slot_offset, LMM_URING_ALIGN);
    if (slot_offset > r->ring->slot_size || end - start > r->ring->slot_size - slot_offset)
        return lmm_error_set("%s: range [%llu, %llu) needs %llu bytes once aligned to 4 KiB at "
                             "slot offset %llu; a slot holds %zu", f->path, (unsigned long long)offset,
                             (unsigned long long)(offset + len), (unsigned long long)(end - start),
                             (unsigned long long)slot_offset, r->ring->slot_size);
    if (s->req_free == NIL) {
        errno = EAGAIN;
        return lmm_error_set("%s: request table full (%u requests pending); reap completions "
                             "first", f->path, s->n_reqs_used);
    }
    uint32_t qi = s->req_free;
    rreq *q = &s->reqs[qi];
    s->req_free = q->next;
    s->n_reqs_used++;
    memset(q, 0, sizeof *q);
    q->file = file;
    q->slot = slot;
    q->tag = user_tag;
    q->offset = offset;
    q->len = len;
    q->start = start;
    q->end = end;
    q->next_off = start;
    q->slot_offset = slot_offset;
    fifo_push(s->reqs, &s->pend_head, &s->pend_tail, qi);
    return pump(r);
}

unsigned lmm_uring_reader_pending(const lmm_uring_reader *r) {
    return r->s ? r->s->n_reqs_used : 0;
}

/* ------------------------------------------------------------------ completions */

static void req_fail(rreq *q, int err, uint64_t off) {
    if (q->error == 0 || off < q->error_off) {
        q->error = err;
        q->error_off = off;
    }
}

static void chunk_done(struct lmm_uring_state *s, uint32_t c) {
    rchunk *ch = &s->chunks[c];
    uint32_t qi = ch->req;
    rreq *q = &s->reqs[qi];
    ch->next = s->chunk_free;
    s->chunk_free = c;
    q->outstanding--;
    if (q->outstanding == 0 && q->next_off == q->end)
        fifo_push(s->reqs, &s->done_head, &s->done_tail, qi);
}

static void handle_cqe(lmm_uring_reader *r, uint32_t c, int res) {
    struct lmm_uring_state *s = r->s;
    rchunk *ch = &s->chunks[c];
    rreq *q = &s->reqs[ch->req];
    rfile *f = &s->files[q->file];
    uint64_t need_end = q->offset + q->len;
    if (res == -EAGAIN || res == -EINTR) {
        retry_push(s, c);
        return;
    }
    if (res == -EINVAL && ch->direct) {
        /* Only if this descriptor was O_DIRECT: the file system took the open but refuses
         * the read. Other chunks of the file already in flight land here too. */
        if (!f->direct || switch_to_buffered(r, f) == 0) {
            retry_push(s, c);
            return;
        }
    }
    if (res < 0) {
        req_fail(q, -res, ch->off);
        chunk_done(s, c);
        return;
    }
    ch->off += (uint64_t)res;
    ch->len -= (uint32_t)res;
    if (ch->len == 0 || ch->off >= need_end) {
        /* complete, or short only past the bytes asked for (the last block's tail) */
        chunk_done(s, c);
        return;
    }
    if (res == 0 || (ch->direct && ch->off % LMM_URING_ALIGN != 0)) {
        /* end of file before the requested range ended: the file shrank (a direct read
         * stops mid-block only at end of file) */
        req_fail(q, ENODATA, ch->off);
        chunk_done(s, c);
        return;
    }
    retry_push(s, c); /* a short read in the middle: read the rest */
}

static void reap(lmm_uring_reader *r) {
    struct lmm_uring_state *s = r->s;
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&s->ring, head, cqe) {
        handle_cqe(r, (uint32_t)io_uring_cqe_get_data64(cqe), cqe->res);
        n++;
    }
    if (n) io_uring_cq_advance(&s->ring, n);
}

static unsigned take_done(lmm_uring_reader *r, lmm_uring_completion *out, unsigned max) {
    struct lmm_uring_state *s = r->s;
    unsigned n = 0;
    while (n < max && s->done_head != NIL) {
        uint32_t qi = fifo_pop(s->reqs, &s->done_head, &s->done_tail);
        rreq *q = &s->reqs[qi];
        lmm_uring_completion *c = &out[n++];
        c->user_tag = q->tag;
        c->file = q->file;
        c->slot = q->slot;
        c->offset = q->offset;
        c->length = q->len;
        c->slot_offset = q->slot_offset;
        c->data_start = q->slot_offset + (q->offset - q->start);
        c->error = q->error;
        c->error_offset = q->error ? q->error_off : 0;
        if (!q->error) c->bytes = q->len;
        else c->bytes = q->error_off > q->offset ? q->error_off - q->offset : 0;
        if (c->bytes > q->len) c->bytes = q->len;
        q->next = s->req_free;
        s->req_free = qi;
        s->n_reqs_used--;
    }
    return n;
}

int lmm_uring_reader_poll(lmm_uring_reader *r, lmm_uring_completion *out, unsigned max) {
    struct lmm_uring_state *s = r->s;
    if (!s) return lmm_error_set("uring reader not initialized");
    uint64_t junk; /* the eventfd is only a wake-up hint: drain it, ignore the count */
    ssize_t ignored = read(s->event_fd, &junk, sizeof junk);
    (void)ignored;
    reap(r);
    if (pump(r) != 0) return -1;
    return (int)take_done(r, out, max);
}

int lmm_uring_reader_wait(lmm_uring_reader *r, lmm_uring_completion *out, unsigned max,
                          int timeout_ms) {
    struct lmm_uring_state *s = r->s;
    if (!s) return lmm_error_set("uring reader not initialized");
    for (;;) {
        int n = lmm_uring_reader_poll(r, out, max);
        if (n != 0 || s->n_reqs_used == 0 || max == 0) return n;
        struct io_uring_cqe *cqe;
        struct __kernel_timespec ts, *tsp = NULL;
        if (timeout_ms >= 0) {
            ts.tv_sec = timeout_ms / 1000;
            ts.tv_nsec = (long long)(timeout_ms % 1000) * 1000000LL;
            tsp = &ts;
        }
        int e = io_uring_wait_cqe_timeout(&s->ring, &cqe, tsp);
        if (e == -ETIME) return 0;
        if (e < 0 && e != -EINTR && e != -EAGAIN)
            return lmm_error_set("uring reader: io_uring_wait_cqe: %s", strerror(-e));
        /* a wait that returned early (EINTR) just goes around again */
    }
}

int lmm_uring_reader_event_fd(const lmm_uring_reader *r) { return r->s ? r->s->event_fd : -1; }

void lmm_uring_completion_describe(const lmm_uring_reader *r, const lmm_uring_completion *c,
                                   char *buf, size_t cap) {
    const char *path = lmm_uring_reader_file_path(r, c->file);
    if (c->error == 0)
        snprintf(buf, cap, "%s: [%llu, %llu) read into slot %u", path,
                 (unsigned long long)c->offset, (unsigned long long)(c->offset + c->length),
                 c->slot);
    else if (c->error == ENODATA)
        snprintf(buf, cap, "%s: end of file at offset %llu before the range [%llu, %llu) "
                 "ended (file shrank?)", path, (unsigned long long)c->error_offset,
                 (unsigned long long)c->offset, (unsigned long long)(c->offset + c->length));
    else
        snprintf(buf, cap, "%s: read at offset %llu: %s", path,
                 (unsigned long long)c->error_offset, strerror(c->error));
}
