/* services/loader/ioprobe_main.c — lmioprobe: raw sequential read bandwidth of a file with
 * io_uring, O_DIRECT and/or buffered, the same way the loader reads (see
 * lmm_uring_probe_seq_read). With --drop, the page cache is emptied before each run
 * (fadvise DONTNEED on the file, and /proc/sys/vm/drop_caches when root), so buffered
 * runs measure the disk, not memory.
 *
 *   lmioprobe FILE [--bytes N] [--qd N] [--chunk BYTES] [--mode direct|buffered|both|all]
 *             [--repeat N] [--drop]
 * Mode `reader` (in `all`) streams the same bytes through lmm_uring_reader into a ring of
 * 8 slots of 16 MiB, as the loader will (ranges of 16 MiB - 4 KiB at unaligned offsets,
 * every slot busy), to compare the engine with the raw probe side by side.
 * Prints one line per run and a JSON line with the medians. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "lmm/error.h"
#include "lmm/shm_ring.h"
#include "lmm/uring_reader.h"

#define READER_SLOTS 8u
#define READER_SLOT (16u << 20)

static void drop_cache(const char *path) {
    sync();
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
    int d = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
    if (d >= 0) {
        if (write(d, "3\n", 2) != 2) fprintf(stderr, "lmioprobe: drop_caches write failed\n");
        close(d);
    }
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* GB/s of reading [0, bytes) of path through the reader in ranges of READER_SLOT - 4096
 * bytes starting 100 bytes into the file (unaligned, widened like tensors), or -1. */
static double reader_run(lmm_shm_ring *ring, const char *path, unsigned long long bytes,
                         unsigned qd, size_t chunk) {
    lmm_uring_reader r;
    lmm_uring_reader_opts o;
    lmm_uring_reader_opts_default(&o);
    o.queue_depth = qd;
    o.chunk_bytes = chunk;
    if (lmm_uring_reader_init_opts(&r, ring, &o) != 0) return -1;
    uint32_t f;
    if (lmm_uring_reader_add_file(&r, path, &f) != 0) {
        lmm_uring_reader_free(&r);
        return -1;
    }
    uint64_t size = lmm_uring_reader_file_size(&r, f);
    if (bytes == 0 || bytes > size) bytes = size;
    const uint64_t step = READER_SLOT - 4096;
    uint64_t next = bytes > 100 ? 100 : 0, done = 0;
    lmm_uring_completion cs[READER_SLOTS];
    double t0 = now_s(), gbs = -1;
    for (uint32_t s = 0; s < READER_SLOTS && next < bytes; s++) {
        uint64_t n = bytes - next < step ? bytes - next : step;
        if (lmm_uring_reader_submit(&r, f, next, n, s, 0) != 0) goto out;
        next += n;
    }
    while (lmm_uring_reader_pending(&r) > 0) {
        int m = lmm_uring_reader_wait(&r, cs, READER_SLOTS, -1);
        if (m < 0) goto out;
        for (int i = 0; i < m; i++) {
            if (cs[i].error) {
                char msg[512];
                lmm_uring_completion_describe(&r, &cs[i], msg, sizeof msg);
                lmm_error_set("%s", msg);
                goto out;
            }
            done += cs[i].bytes;
            if (next < bytes) {
                uint64_t n = bytes - next < step ? bytes - next : step;
                if (lmm_uring_reader_submit(&r, f, next, n, cs[i].slot, 0) != 0) goto out;
                next += n;
            }
        }
    }
    gbs = (double)done / (now_s() - t0) / 1e9;
out:
    lmm_uring_reader_free(&r);
    return gbs;
}

/* CPU seconds of this process, io_uring's worker threads included. */
static double cpu_s(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + (double)u.ru_stime.tv_sec +
           ((double)u.ru_utime.tv_usec + (double)u.ru_stime.tv_usec) * 1e-6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int usage(void) {
    fprintf(stderr, "usage: lmioprobe FILE [--bytes N] [--qd N] [--chunk BYTES] "
                    "[--mode direct|buffered|both|reader|all] [--repeat N] [--drop]\n");
    return 1;
}

int main(int argc, char **argv) {
    const char *path = NULL, *mode = "both";
    unsigned long long bytes = 0, chunk = 1u << 20;
    unsigned qd = 32;
    int repeat = 3, drop = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--bytes") && v) bytes = strtoull(v, NULL, 0), i++;
        else if (!strcmp(a, "--qd") && v) qd = (unsigned)strtoul(v, NULL, 0), i++;
        else if (!strcmp(a, "--chunk") && v) chunk = strtoull(v, NULL, 0), i++;
        else if (!strcmp(a, "--mode") && v) mode = v, i++;
        else if (!strcmp(a, "--repeat") && v) repeat = atoi(v), i++;
        else if (!strcmp(a, "--drop")) drop = 1;
        else if (a[0] != '-' && !path) path = a;
        else return usage();
    }
    if (!path || repeat < 1 || repeat > 100) return usage();
    int all = !strcmp(mode, "all");
    int do_direct = all || !strcmp(mode, "direct") || !strcmp(mode, "both");
    int do_buffered = all || !strcmp(mode, "buffered") || !strcmp(mode, "both");
    int do_reader = all || !strcmp(mode, "reader");
    if (!do_direct && !do_buffered && !do_reader) return usage();
    lmm_shm_ring ring;
    if (do_reader && lmm_shm_ring_create(&ring, READER_SLOTS, READER_SLOT) != 0) {
        fprintf(stderr, "lmioprobe: %s\n", lmm_error_get());
        return 1;
    }

    double d[100], b[100], e[100];
    printf("%-9s %4s %9s %6s %8s %8s\n", "mode", "qd", "chunk", "run", "GB/s", "cpu_s");
    /* Alternate the modes run by run: the machine is shared and noisy, so each pair is
     * measured side by side. */
    for (int k = 0; k < repeat; k++) {
        if (do_direct) {
            if (drop) drop_cache(path);
            double c0 = cpu_s();
            d[k] = lmm_uring_probe_seq_read(path, bytes, qd, (size_t)chunk);
            double c1 = cpu_s() - c0;
            if (d[k] < 0) {
                fprintf(stderr, "lmioprobe: %s\n", lmm_error_get());
                return 1;
            }
            printf("%-9s %4u %9llu %6d %8.3f %8.3f\n", "direct", qd, chunk, k, d[k], c1);
        }
        if (do_buffered) {
            if (drop) drop_cache(path);
            double c0 = cpu_s();
            b[k] = lmm_uring_probe_seq_read_buffered(path, bytes, qd, (size_t)chunk);
            double c1 = cpu_s() - c0;
            if (b[k] < 0) {
                fprintf(stderr, "lmioprobe: %s\n", lmm_error_get());
                return 1;
            }
            printf("%-9s %4u %9llu %6d %8.3f %8.3f\n", "buffered", qd, chunk, k, b[k], c1);
        }
        if (do_reader) {
            if (drop) drop_cache(path);
            double c0 = cpu_s();
            e[k] = reader_run(&ring, path, bytes, qd, (size_t)chunk);
            double c1 = cpu_s() - c0;
            if (e[k] < 0) {
                fprintf(stderr, "lmioprobe: %s\n", lmm_error_get());
                lmm_shm_ring_destroy(&ring);
                return 1;
            }
            printf("%-9s %4u %9llu %6d %8.3f %8.3f\n", "reader", qd, chunk, k, e[k], c1);
        }
    }
    if (do_reader) lmm_shm_ring_destroy(&ring);
    double md = do_direct ? median(d, repeat) : 0, mb = do_buffered ? median(b, repeat) : 0;
    double me = do_reader ? median(e, repeat) : 0;
    printf("{\"file\":\"%s\",\"qd\":%u,\"chunk\":%llu,\"drop\":%d,\"repeat\":%d", path, qd, chunk,
           drop, repeat);
    if (do_direct) printf(",\"direct_gbs\":%.3f", md);
    if (do_buffered) printf(",\"buffered_gbs\":%.3f", mb);
    if (do_reader) printf(",\"reader_gbs\":%.3f", me);
    if (do_direct && do_buffered && mb > 0) printf(",\"ratio_direct_buffered\":%.3f", md / mb);
    if (do_direct && do_reader && md > 0) printf(",\"ratio_reader_direct\":%.3f", me / md);
    printf("}\n");
    return 0;
}
