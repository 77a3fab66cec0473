/* lmm/uring_reader.h — io_uring reads of file byte ranges into shared-memory ring slots.
 *
 * The loader's engine (services/loader/uring_reader.c; docs/loader.md). A request asks
 * for bytes [offset, offset+len) of one file to land in one slot of an lmm_shm_ring.
 * The reader widens the range to 4 KiB alignment:
 *     start = offset rounded down to 4096,  end = offset+len rounded up to 4096
 * (end never exceeds the file size rounded up to 4096: a read of the file's last,
 * partial block stops short at end of file, which is expected), reads [start, end) into
 * the slot from its first byte, and reports data_start = offset - start (= offset % 4096):
 * file byte `offset` is slot byte data_start. The layout is the same whether the file
 * is read with O_DIRECT or buffered, so consumers never care which.
 *
 * Reads go in chunks (default 1 MiB) and the submission queue is kept at queue_depth
 * chunks in flight across requests: the next request's chunks start as soon as the
 * previous request's last chunks are queued. The slots are registered as fixed buffers
 * when the kernel allows it (else plain reads, same results). Files are opened with
 * O_DIRECT; a file system that refuses it gets buffered reads and one warning line.
 *
 * Nothing is allocated per request: the request table (max_requests) and the chunk
 * table (queue_depth) are allocated by _init. Not thread-safe: one thread drives it. */
#ifndef LMM_URING_READER_H
#define LMM_URING_READER_H

#include <stddef.h>
#include <stdint.h>

#include "lmm/shm_ring.h"

#define LMM_URING_ALIGN 4096u
#define LMM_URING_DEFAULT_QUEUE_DEPTH 32u
#define LMM_URING_DEFAULT_CHUNK (1u << 20)

enum {
    LMM_URING_FORCE_BUFFERED = 1u << 0, /* never O_DIRECT (tests; file systems known to refuse) */
    LMM_URING_NO_FIXED_BUFFERS = 1u << 1, /* do not register the slots as fixed buffers */
    LMM_URING_QUIET = 1u << 2            /* no warning line on stderr for the fallbacks */
};

typedef struct {
    unsigned queue_depth;   /* chunks in flight; >= 1 (default 32; 16-32 suits this disk) */
    size_t chunk_bytes;     /* bytes per read, multiple of 4096 (default 1 MiB) */
    unsigned max_requests;  /* requests in the table, in flight or completed but not yet
                               returned by _poll/_wait (default 4 * queue_depth) */
    unsigned max_files;     /* files _add_file accepts (default 256) */
    unsigned flags;         /* LMM_URING_* */
} lmm_uring_reader_opts;

/* One finished request, returned by _poll / _wait. */
typedef struct {
    uint64_t user_tag;      /* as given to _submit */
    uint32_t file;
    uint32_t slot;
    uint64_t offset;        /* the requested range */
    uint64_t length;
    uint64_t slot_offset;   /* as given to _submit_at (0 for _submit) */
    uint64_t data_start;    /* slot byte holding file byte `offset`:
                               slot_offset + offset % 4096 */
    uint64_t bytes;         /* bytes of the requested range now in the slot: length, or
                               less on error */
    int error;              /* 0, or a positive errno (EIO, ENODATA for end of file
                               before the range ended, ...) */
    uint64_t error_offset;  /* file offset of the read that failed */
} lmm_uring_completion;

struct lmm_uring_state;     /* private: io_uring, request and chunk tables */

typedef struct {
    lmm_uring_reader_opts opts;  /* as used (defaults filled in) */
    const lmm_shm_ring *ring;    /* destination slots (not owned) */
    int fixed_buffers;           /* 1 if the slots are registered with io_uring */
    struct lmm_uring_state *s;
} lmm_uring_reader;

/* Fills opts with the defaults. */
void lmm_uring_reader_opts_default(lmm_uring_reader_opts *o);
/* Sets up an io_uring of opts->queue_depth entries reading into the slots of ring, which
 * must stay mapped until _free. opts NULL: defaults. */
int lmm_uring_reader_init_opts(lmm_uring_reader *r, const lmm_shm_ring *ring,
                               const lmm_uring_reader_opts *opts);
/* Same, defaults but queue_depth (0: default). */
int lmm_uring_reader_init(lmm_uring_reader *r, unsigned queue_depth, const lmm_shm_ring *ring);
void lmm_uring_reader_free(lmm_uring_reader *r);

/* Opens path for reading (O_DIRECT unless refused; see above) and stores its index,
 * 0, 1, ... in the order of the calls, in *index. */
int lmm_uring_reader_add_file(lmm_uring_reader *r, const char *path, uint32_t *index);
/* 1 if file is read with O_DIRECT, 0 if buffered (fallback), -1 if no such file. */
int lmm_uring_reader_file_direct(const lmm_uring_reader *r, uint32_t file);
uint64_t lmm_uring_reader_file_size(const lmm_uring_reader *r, uint32_t file);
const char *lmm_uring_reader_file_path(const lmm_uring_reader *r, uint32_t file);

/* Bytes [offset, offset+len) of file into slot. Checks the range against the file size
 * and that the widened range fits the slot; -1 with a message naming the file when not,
 * or when the request table is full (errno EAGAIN: reap completions first). The read
 * is queued (and submitted to the kernel when the queue has room); the slot must not be
 * touched until its completion is returned. */
int lmm_uring_reader_submit(lmm_uring_reader *r, uint32_t file, uint64_t offset, uint64_t len,
                            uint32_t slot, uint64_t user_tag);
/* Same, placing the widened range at slot byte slot_offset (a multiple of 4096) instead
 * of the slot's start, so several ranges can share one slot (a piece of several
 * segments, docs/process-group.md): file byte `offset` lands at slot byte
 * slot_offset + offset % 4096. The widened range must fit in [slot_offset, slot_size).
 * Ranges of one slot must not overlap once widened (the caller's plan ensures it). */
int lmm_uring_reader_submit_at(lmm_uring_reader *r, uint32_t file, uint64_t offset, uint64_t len,
                               uint32_t slot, uint64_t slot_offset, uint64_t user_tag);
/* Requests submitted and not yet returned as completions. */
unsigned lmm_uring_reader_pending(const lmm_uring_reader *r);

/* Returns up to max finished requests without sleeping (>= 0), or -1 if io_uring itself
 * failed. Completions come in the order requests finish. */
int lmm_uring_reader_poll(lmm_uring_reader *r, lmm_uring_completion *out, unsigned max);
/* Like _poll, but sleeps until at least one request finished (or timeout_ms passes;
 * -1: no limit). Returns 0 at once when nothing is pending. */
int lmm_uring_reader_wait(lmm_uring_reader *r, lmm_uring_completion *out, unsigned max,
                          int timeout_ms);
/* An eventfd that becomes readable when completions may be available: put it in the
 * loader's zmq_poll set, then call _poll. */
int lmm_uring_reader_event_fd(const lmm_uring_reader *r);

/* One line for a failed completion: "<path>: read at offset N: <strerror>". */
void lmm_uring_completion_describe(const lmm_uring_reader *r, const lmm_uring_completion *c,
                                   char *buf, size_t cap);

/* The widened range of a request: [*start, *end) is what is read, offset - *start is the
 * data start in the slot. Returns -1 (message) if [offset, offset+len) is empty or not
 * inside a file of file_size bytes. The slot must hold *end - *start bytes. */
int lmm_uring_span(uint64_t offset, uint64_t len, uint64_t file_size, uint64_t *start,
                   uint64_t *end);

/* --- raw bandwidth probe (the physical limit benchmarks compare against) ---
 * Reads the first `bytes` bytes of path sequentially (bytes 0: the whole file) with
 * O_DIRECT and io_uring, queue_depth reads of chunk bytes in flight into registered
 * buffers, and returns GB/s (1e9 bytes per second), or -1 with a message (also when
 * the file system refuses O_DIRECT). The _buffered variant reads through the page cache
 * (drop caches first to measure the disk). */
double lmm_uring_probe_seq_read(const char *path, uint64_t bytes, unsigned queue_depth,
                                size_t chunk);
double lmm_uring_probe_seq_read_buffered(const char *path, uint64_t bytes,
                                         unsigned queue_depth, size_t chunk);

#endif
