/* services/loader/ioprobe_main.c — lmioprobe: raw sequential read bandwidth of a file with
 * io_uring, O_DIRECT and/or buffered, the same way the loader reads (see
 * lmm_uring_probe_seq_read). With --drop, the page cache is emptied before each run
 * (fadvise DONTNEED on the file, and /proc/sys/vm/drop_caches when root), so buffered
 * runs measure the disk, not memory.
 *
 *   lmioprobe FILE [--bytes N] [--qd N] [--chunk BYTES] [--mode direct|buffered|both]
 *             [--repeat N] [--drop]
 * Prints one line per run and a JSON line with the medians. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lmm/error.h"
#include "lmm/uring_reader.h"

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
                    "[--mode direct|buffered|both] [--repeat N] [--drop]\n");
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
    int do_direct = strcmp(mode, "buffered") != 0;
    int do_buffered = strcmp(mode, "direct") != 0;
    if (!do_direct && !do_buffered) return usage();

    double d[100], b[100];
    printf("%-9s %4s %9s %6s %8s\n", "mode", "qd", "chunk", "run", "GB/s");
    /* Alternate the modes run by run: the machine is shared and noisy, so each pair is
     * measured side by side. */
    for (int k = 0; k < repeat; k++) {
        if (do_direct) {
            if (drop) drop_cache(path);
            d[k] = lmm_uring_probe_seq_read(path, bytes, qd, (size_t)chunk);
            if (d[k] < 0) {
                fprintf(stderr, "lmioprobe: %s\n", lmm_error_get());
                return 1;
            }
            printf("%-9s %4u %9llu %6d %8.3f\n", "direct", qd, chunk, k, d[k]);
        }
        if (do_buffered) {
            if (drop) drop_cache(path);
            b[k] = lmm_uring_probe_seq_read_buffered(path, bytes, qd, (size_t)chunk);
            if (b[k] < 0) {
                fprintf(stderr, "lmioprobe: %s\n", lmm_error_get());
                return 1;
            }
            printf("%-9s %4u %9llu %6d %8.3f\n", "buffered", qd, chunk, k, b[k]);
        }
    }
    double md = do_direct ? median(d, repeat) : 0, mb = do_buffered ? median(b, repeat) : 0;
    printf("{\"file\":\"%s\",\"qd\":%u,\"chunk\":%llu,\"drop\":%d,\"repeat\":%d", path, qd, chunk,
           drop, repeat);
    if (do_direct) printf(",\"direct_gbs\":%.3f", md);
    if (do_buffered) printf(",\"buffered_gbs\":%.3f", mb);
    if (do_direct && do_buffered && mb > 0) printf(",\"ratio_direct_buffered\":%.3f", md / mb);
    printf("}\n");
    return 0;
}
