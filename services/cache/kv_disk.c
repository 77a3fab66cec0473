/* services/cache/kv_disk.c — block files of the disk tier, O_DIRECT through liburing
 * (kv_disk.h, docs/kv-cache.md). One request at a time: the cache writes behind the
 * scheduler, off every request's path. */
#include "kv_disk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
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

/* ---- the tier's size (kv_disk.h): shared accounting, the bound, LRU eviction ----------- */

uint64_t kv_disk_file_bytes(uint64_t block_bytes) { return KV_DISK_HEADER + (uint64_t)round4k(block_bytes); }

uint64_t *kv_disk_acct(lmm_shm_ring *ring) { return (uint64_t *)(void *)ring->header->reserved; }

bool kv_disk_reserve(uint64_t *acct, uint64_t n) {
    uint64_t used = __atomic_load_n(&acct[0], __ATOMIC_RELAXED);
    for (;;) {
        uint64_t bound = __atomic_load_n(&acct[1], __ATOMIC_RELAXED);
        if (used > bound || n > bound - used) return false;
        if (__atomic_compare_exchange_n(&acct[0], &used, used + n, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            return true;
    }
}

void kv_disk_unreserve(uint64_t *acct, uint64_t n) {
    uint64_t used = __atomic_load_n(&acct[0], __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n(&acct[0], &used, used > n ? used - n : 0, false, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED)) {
    }
}

void kv_disk_touch(const char *dir, uint64_t model_id, uint64_t key) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%016" PRIx64 "-%016" PRIx64 ".kvb", dir, model_id, key);
    (void)utimensat(AT_FDCWD, path, NULL, 0); /* now; a file evicted meanwhile is no error */
}

uint64_t kv_disk_evict_target(uint64_t bound, uint64_t file_bytes) {
    uint64_t margin = bound / 16 > 2 * file_bytes ? bound / 16 : 2 * file_bytes;
    return bound > margin ? bound - margin : 0;
}

uint64_t kv_disk_default_budget(const char *dir, uint64_t used) {
    struct statvfs v;
    if (statvfs(dir, &v) != 0) return used;
    uint64_t avail = (uint64_t)v.f_bavail * v.f_frsize, size = (uint64_t)v.f_blocks * v.f_frsize;
    uint64_t margin = size / 10;
    return used + (avail > margin ? avail - margin : 0);
}

/* "<16 hex>-<16 hex>.kvb" (a block) or the same + ".tmp" (being written). */
static bool block_file_name(const char *name, uint64_t *model_id, uint64_t *key, bool *tmp) {
    size_t len = strlen(name);
    if (len != 37 && len != 41) return false;
    uint64_t v[2] = {0, 0};
    for (int w = 0; w < 2; w++)
        for (int i = 0; i < 16; i++) {
            char ch = name[w * 17 + i];
            int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
            if (d < 0) return false;
            v[w] = v[w] << 4 | (uint64_t)d;
        }
    if (name[16] != '-' || strncmp(name + 33, ".kvb", 4) != 0) return false;
    if (len == 41 && strcmp(name + 37, ".tmp") != 0) return false;
    *model_id = v[0];
    *key = v[1];
    *tmp = len == 41;
    return true;
}

typedef struct {
    struct timespec mtime;
    uint64_t model_id, key, bytes;
} disk_file;

static int file_older(const void *a, const void *b) {
    const disk_file *x = a, *y = b;
    if (x->mtime.tv_sec != y->mtime.tv_sec) return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
    if (x->mtime.tv_nsec != y->mtime.tv_nsec) return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
    if (x->model_id != y->model_id) return x->model_id < y->model_id ? -1 : 1;
    return x->key < y->key ? -1 : x->key > y->key;
}

long kv_disk_evict(const char *dir, uint64_t target, uint64_t *total,
                   void (*on_evict)(void *user, uint64_t model_id, uint64_t key, uint64_t bytes), void *user) {
    DIR *dp = opendir(dir);
    if (!dp) return lmm_error_set("%s: %s", dir, strerror(errno));
    disk_file *files = NULL;
    size_t n = 0, cap = 0;
    long removed = 0;
    *total = 0;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct dirent *e;
    while ((e = readdir(dp))) {
        uint64_t mid, key;
        bool tmp;
        if (!block_file_name(e->d_name, &mid, &key, &tmp)) continue;
        struct stat st;
        if (fstatat(dirfd(dp), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
        if (tmp) { /* a writer that died; a live one takes milliseconds */
            if (now.tv_sec - st.st_mtim.tv_sec > 60) unlinkat(dirfd(dp), e->d_name, 0);
            continue;
        }
        if (n == cap) {
            size_t c = cap ? cap * 2 : 256;
            disk_file *f = realloc(files, c * sizeof *f);
            if (!f) {
                free(files);
                closedir(dp);
                return lmm_error_set("out of memory");
            }
            files = f;
            cap = c;
        }
        files[n++] = (disk_file){st.st_mtim, mid, key, (uint64_t)st.st_size};
        *total += (uint64_t)st.st_size;
    }
    if (*total > target) {
        qsort(files, n, sizeof *files, file_older);
        for (size_t i = 0; i < n && *total > target; i++) {
            char name[64];
            snprintf(name, sizeof name, "%016" PRIx64 "-%016" PRIx64 ".kvb", files[i].model_id, files[i].key);
            if (unlinkat(dirfd(dp), name, 0) != 0) continue; /* ENOENT: the other evictor counted it */
            *total -= files[i].bytes;
            removed++;
            if (on_evict) on_evict(user, files[i].model_id, files[i].key, files[i].bytes);
        }
    }
    free(files);
    closedir(dp);
    return removed;
}
