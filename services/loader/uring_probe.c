/* services/loader/uring_probe.c — raw sequential read bandwidth of a file with io_uring:
 * the physical limit the loader (and bench/) is compared against, measured with the same
 * tool the loader uses (O_DIRECT, registered buffers, queue_depth reads in flight). */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lmm/error.h"
#include "lmm/uring_reader.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

typedef struct {
    uint64_t off;   /* file offset of the read in flight */
    uint32_t len;   /* bytes still to read into this buffer */
    uint32_t pos;   /* bytes already in this buffer (after a short read) */
} probe_buf;

static void queue_read(struct io_uring *ring, int fd, const struct iovec *iov,
                       const probe_buf *b, unsigned i, int fixed) {
    /* at most qd reads exist and the SQ has qd entries: a slot is always free */
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    uint8_t *dst = (uint8_t *)iov->iov_base + b->pos;
    if (fixed) io_uring_prep_read_fixed(sqe, fd, dst, b->len, b->off, (int)i);
    else io_uring_prep_read(sqe, fd, dst, b->len, b->off);
    io_uring_sqe_set_data64(sqe, i);
}

static double probe_seq_read(const char *path, uint64_t bytes, unsigned qd, size_t chunk,
                             int direct) {
    if (qd == 0 || qd > 4096) return lmm_error_set("%s: queue depth %u (1..4096)", path, qd);
    if (chunk == 0 || chunk % LMM_URING_ALIGN != 0 || chunk > (1u << 30))
        return lmm_error_set("%s: chunk %zu is not a multiple of 4096 up to 1 GiB", path, chunk);
    if ((uint64_t)qd * chunk > ((uint64_t)1 << 34))
        return lmm_error_set("%s: %u buffers of %zu bytes is too much memory", path, qd, chunk);
    int fd = open(path, O_RDONLY | O_CLOEXEC | (direct ? O_DIRECT : 0));
    if (fd < 0 && direct && errno == EINVAL)
        return lmm_error_set("%s: file system refuses O_DIRECT", path);
    if (fd < 0) return lmm_error_set("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
        close(fd);
        return lmm_error_set("%s: not a non-empty regular file", path);
    }
    if (bytes == 0 || bytes > (uint64_t)st.st_size) bytes = (uint64_t)st.st_size;

    double gbs = -1;
    struct io_uring ring;
    int ring_ok = 0, fixed = 0;
    size_t total = (size_t)qd * chunk;
    uint8_t *mem = NULL; /* [qd][chunk] */
    probe_buf *pb = calloc(qd, sizeof *pb);
    struct iovec *iov = calloc(qd, sizeof *iov);
    if (!pb || !iov || posix_memalign((void **)&mem, 4096, total) != 0) {
        mem = NULL;
        lmm_error_set("%s: out of memory for %u buffers of %zu bytes", path, qd, chunk);
        goto out;
    }
    memset(mem, 0, total); /* fault the buffers in before the clock starts */
    int e = io_uring_queue_init(qd, &ring, 0);
    if (e < 0) {
        lmm_error_set("%s: io_uring_queue_init: %s", path, strerror(-e));
        goto out;
    }
    ring_ok = 1;
    for (unsigned i = 0; i < qd; i++) {
        iov[i].iov_base = mem + (size_t)i * chunk;
        iov[i].iov_len = chunk;
    }
    fixed = io_uring_register_buffers(&ring, iov, qd) == 0;

    /* Reads cover [0, round_up(bytes, 4096)): O_DIRECT needs whole blocks, and the last
     * block of the file comes back short, which is fine. */
    uint64_t end = (bytes + LMM_URING_ALIGN - 1) & ~(uint64_t)(LMM_URING_ALIGN - 1);
    uint64_t next = 0, done = 0;
    unsigned inflight = 0;
    int failed = 0;
    double t0 = now_s();
    for (unsigned i = 0; i < qd && next < end; i++) {
        uint64_t n = end - next < chunk ? end - next : chunk;
        pb[i] = (probe_buf){next, (uint32_t)n, 0};
        next += n;
        queue_read(&ring, fd, &iov[i], &pb[i], i, fixed);
        inflight++;
    }
    while (inflight > 0) {
        e = io_uring_submit_and_wait(&ring, 1);
        if (e < 0 && e != -EINTR) {
            lmm_error_set("%s: io_uring_submit: %s", path, strerror(-e));
            failed = 1;
            break;
        }
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            seen++;
            unsigned i = (unsigned)io_uring_cqe_get_data64(cqe);
            int res = cqe->res;
            if (res == -EAGAIN || res == -EINTR) {
                queue_read(&ring, fd, &iov[i], &pb[i], i, fixed); /* again */
                continue;
            }
            if (res < 0 || (res == 0 && pb[i].off < bytes)) {
                if (!failed)
                    lmm_error_set("%s: read at offset %llu: %s", path,
                                  (unsigned long long)pb[i].off,
                                  res < 0 ? strerror(-res) : "unexpected end of file");
                failed = 1;
                inflight--;
                continue;
            }
            done += (uint64_t)res;
            pb[i].off += (uint64_t)res;
            pb[i].pos += (uint32_t)res;
            pb[i].len -= (uint32_t)res;
            if (res > 0 && pb[i].len > 0 && pb[i].off < bytes) {
                /* short read inside the file: read the rest into the same buffer */
            } else if (next < end && !failed) {
                uint64_t n = end - next < chunk ? end - next : chunk;
                pb[i] = (probe_buf){next, (uint32_t)n, 0};
                next += n;
            } else {
                inflight--;
                continue;
            }
            queue_read(&ring, fd, &iov[i], &pb[i], i, fixed);
        }
        io_uring_cq_advance(&ring, seen);
    }
    if (failed) {
        /* reads still in flight must finish before the buffers are freed */
        io_uring_submit(&ring);
        struct io_uring_cqe *cqe;
        while (inflight > 0 && io_uring_wait_cqe(&ring, &cqe) == 0) {
            io_uring_cqe_seen(&ring, cqe);
            inflight--;
        }
        goto out;
    }
    double dt = now_s() - t0;
    if (done < bytes) {
        lmm_error_set("%s: read %llu of %llu bytes", path, (unsigned long long)done,
                      (unsigned long long)bytes);
        goto out;
    }
    gbs = (double)bytes / (dt > 0 ? dt : 1e-9) / 1e9;

out:
    if (ring_ok) io_uring_queue_exit(&ring);
    close(fd);
    free(mem);
    free(iov);
    free(pb);
    return gbs;
}

double lmm_uring_probe_seq_read(const char *path, uint64_t bytes, unsigned queue_depth,
                                size_t chunk) {
    return probe_seq_read(path, bytes, queue_depth, chunk, 1);
}

double lmm_uring_probe_seq_read_buffered(const char *path, uint64_t bytes,
                                         unsigned queue_depth, size_t chunk) {
    return probe_seq_read(path, bytes, queue_depth, chunk, 0);
}
