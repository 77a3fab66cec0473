/* services/cache/kv_disk.c — block files of the disk tier, O_DIRECT through liburing
 * (kv_disk.h, docs/kv-cache.md). One request at a time: the cache writes behind the
 * scheduler, off every request's path. */
#include "kv_disk.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lmm/error.h"

static size_t round4k(uint64_t n) { return (size_t)((n + 4095u) / 4096u * 4096u); }

int kv_disk_io_init(kv_disk_io *io, uint64_t block_bytes) {
    memset(io, 0, sizeof *io);
    io->buf_bytes = KV_DISK_HEADER + round4k(block_bytes);
    if (posix_memalign((void **)&io->buf, 4096, io->buf_bytes)) return lmm_error_set("out of memory");
    int r = io_uring_queue_init(4, &io->ring, 0);
    if (r < 0) {
        free(io->buf);
        io->buf = NULL;
        return lmm_error_set("io_uring_queue_init: %s", strerror(-r));
    }
    io->up = true;
    return 0;
}

void kv_disk_io_free(kv_disk_io *io) {
    if (io->up) io_uring_queue_exit(&io->ring);
    free(io->buf);
    memset(io, 0, sizeof *io);
}

/* One read or write of len bytes at off, whole or an error. */
static int rw(kv_disk_io *io, int fd, bool write, size_t len, const char *path) {
    size_t done = 0;
    while (done < len) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);
        if (!sqe) return lmm_error_set("%s: no io_uring entry", path);
        if (write) io_uring_prep_write(sqe, fd, io->buf + done, (unsigned)(len - done), done);
        else io_uring_prep_read(sqe, fd, io->buf + done, (unsigned)(len - done), done);
        int r = io_uring_submit(&io->ring);
        if (r < 0) return lmm_error_set("%s: io_uring_submit: %s", path, strerror(-r));
        struct io_uring_cqe *cqe;
        do r = io_uring_wait_cqe(&io->ring, &cqe);
        while (r == -EINTR);
        if (r < 0) return lmm_error_set("%s: io_uring_wait_cqe: %s", path, strerror(-r));
        int res = cqe->res;
        io_uring_cqe_seen(&io->ring, cqe);
        if (res < 0) return lmm_error_set("%s: %s", path, strerror(-res));
        if (res == 0) return lmm_error_set("%s: short %s", path, write ? "write" : "read");
        done += (size_t)res;
    }
    return 0;
}

int kv_disk_probe(kv_disk_io *io, const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/.probe-%d", dir, (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT | O_CLOEXEC, 0600);
    if (fd < 0) return lmm_error_set("%s: %s", path, strerror(errno));
    memset(io->buf, 0, 4096);
    int rc = rw(io, fd, true, 4096, path);
    close(fd);
    unlink(path);
    return rc;
}

int kv_disk_write(kv_disk_io *io, const char *dir, const kv_region_info *info, uint64_t key, uint64_t checksum,
                  const void *data) {
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/%016" PRIx64 "-%016" PRIx64 ".kvb", dir, info->model_id, key);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    kv_disk_header h = {KV_DISK_MAGIC, 1, info->model_id, key, checksum, info->block_bytes, info->block_tokens};
    memset(io->buf, 0, KV_DISK_HEADER);
    memcpy(io->buf, &h, sizeof h);
    if (data != io->buf + KV_DISK_HEADER) memcpy(io->buf + KV_DISK_HEADER, data, info->block_bytes);
    memset(io->buf + KV_DISK_HEADER + info->block_bytes, 0, io->buf_bytes - KV_DISK_HEADER - info->block_bytes);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT | O_CLOEXEC, 0600);
    if (fd < 0) return lmm_error_set("%s: %s", tmp, strerror(errno));
    int rc = rw(io, fd, true, io->buf_bytes, tmp);
    if (close(fd) != 0 && rc == 0) rc = lmm_error_set("%s: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0) rc = lmm_error_set("%s: %s", path, strerror(errno));
    if (rc) unlink(tmp);
    return rc;
}

int kv_disk_read(kv_disk_io *io, const char *dir, const char *name, const kv_region_info *info, uint64_t *key,
                 uint64_t *checksum) {
    uint64_t mid, k;
    char tail[8];
    if (sscanf(name, "%16" SCNx64 "-%16" SCNx64 ".%4s", &mid, &k, tail) != 3 || strcmp(tail, "kvb") != 0 ||
        mid != info->model_id)
        return 1;
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
    if (fd < 0) return lmm_error_set("%s: %s", path, strerror(errno));
    int rc = rw(io, fd, false, io->buf_bytes, path);
    close(fd);
    kv_disk_header h;
    memcpy(&h, io->buf, sizeof h);
    if (rc == 0 && (h.magic != KV_DISK_MAGIC || h.version != 1 || h.model_id != info->model_id || h.key != k ||
                    h.block_bytes != info->block_bytes || h.block_tokens != info->block_tokens))
        rc = lmm_error_set("%s: header does not match its name or this model", path);
    if (rc == 0 && kv_checksum(io->buf + KV_DISK_HEADER, info->block_bytes) != h.checksum)
        rc = lmm_error_set("%s: checksum mismatch", path);
    if (rc) {
        unlink(path); /* corrupt or mismatched: never served */
        return -1;
    }
    *key = k;
    *checksum = h.checksum;
    return 0;
}
