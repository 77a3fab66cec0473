/* bench/tokenize_main.c — bench_tokenize: encoding speed of one tokenizer on one file.
 *
 *   bench_tokenize --tokenizer PATH --input FILE [--reps N] [--lines] [--dump IDS]
 *
 * Loads the tokenizer (any file lmm_tokenizer_load_file reads; not timed), reads
 * FILE, and encodes it N times (default 1) with no special tokens added or parsed
 * (flags 0). Whole text by default: one lmm_tokenizer_encode call on all bytes;
 * --lines: one call per line, each line with its '\n'. Prints per repetition and
 * then one line
 *   RESULT impl=lmm bytes=B tokens=T checksum=XXXXXXXX wall_s=W cpu_s=C mbps_wall=.. mbps_cpu=..
 * (medians over the repetitions; MB = 10^6 bytes; CPU = user + system time of the
 * process, getrusage). The checksum is FNV-1a over the ids as 32-bit words:
 * h = 2166136261; h = (h ^ id) * 16777619 mod 2^32, the same in the reference
 * drivers (bench/tokenize_ref_spm.py, bench/tokenize_ref_hf.mjs), so equal counts
 * and checksums mean the same ids. --dump writes the ids, one per line. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "lmm/error.h"
#include "lmm/tokenizer.h"

static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu_now(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int usage(void) {
    fprintf(stderr, "usage: bench_tokenize --tokenizer PATH --input FILE [--reps N] [--lines] [--dump IDS]\n");
    return 2;
}

/* Encodes text[0..n) into ids[*n_ids..cap), growing ids when needed. */
static int encode_append(const lmm_tokenizer *t, const char *text, size_t n, uint32_t **ids,
                         size_t *cap, size_t *n_ids) {
    size_t got;
    if (lmm_tokenizer_encode(t, text, n, 0, *ids + *n_ids, *cap - *n_ids, &got)) return -1;
    if (got > *cap - *n_ids) { /* not expected: see cap */
        size_t need = *n_ids + got + 1024;
        uint32_t *v = realloc(*ids, need * sizeof *v);
        if (!v) return lmm_error_set("out of memory");
        *ids = v;
        *cap = need;
        if (lmm_tokenizer_encode(t, text, n, 0, *ids + *n_ids, *cap - *n_ids, &got)) return -1;
    }
    *n_ids += got;
    return 0;
}

int main(int argc, char **argv) {
    const char *tok_path = NULL, *input = NULL, *dump = NULL;
    int reps = 1, lines = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tokenizer") == 0 && i + 1 < argc) tok_path = argv[++i];
        else if (strcmp(argv[i], "--input") == 0 && i + 1 < argc) input = argv[++i];
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--dump") == 0 && i + 1 < argc) dump = argv[++i];
        else if (strcmp(argv[i], "--lines") == 0) lines = 1;
        else return usage();
    }
    if (!tok_path || !input || reps < 1 || reps > 1000) return usage();

    FILE *f = fopen(input, "rb");
    if (!f) {
        fprintf(stderr, "bench_tokenize: cannot open %s\n", input);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (sz < 0) {
        fprintf(stderr, "bench_tokenize: cannot size %s\n", input);
        return 1;
    }
    size_t n = (size_t)sz;
    char *text = malloc(n ? n : 1); /* [n] the input */
    if (!text || fread(text, 1, n, f) != n) {
        fprintf(stderr, "bench_tokenize: cannot read %s\n", input);
        return 1;
    }
    fclose(f);

    double t0 = wall_now();
    lmm_tokenizer *t;
    if (lmm_tokenizer_load_file(&t, tok_path)) {
        fprintf(stderr, "bench_tokenize: %s\n", lmm_error_get());
        return 1;
    }
    printf("loaded %s (%s, %u tokens) in %.3f s; %zu bytes, %s\n", tok_path, lmm_tokenizer_kind(t),
           lmm_tokenizer_vocab_size(t), wall_now() - t0, n, lines ? "line by line" : "whole text");

    size_t cap = 2 * n + 1024; /* ids never exceed bytes + one dummy prefix per call */
    uint32_t *ids = malloc(cap * sizeof *ids); /* [cap] ids of the whole text */
    double *wall = malloc((size_t)reps * sizeof *wall), *cpu = malloc((size_t)reps * sizeof *cpu);
    if (!ids || !wall || !cpu) {
        fprintf(stderr, "bench_tokenize: out of memory\n");
        return 1;
    }
    size_t n_ids = 0;
    uint32_t sum = 0;
    for (int r = 0; r < reps; r++) {
        n_ids = 0;
        double w0 = wall_now(), c0 = cpu_now();
        int rc = 0;
        if (lines) {
            for (size_t a = 0; a < n && rc == 0;) {
                const char *nl = memchr(text + a, '\n', n - a);
                size_t b = nl ? (size_t)(nl - text) + 1 : n;
                rc = encode_append(t, text + a, b - a, &ids, &cap, &n_ids);
                a = b;
            }
        } else {
            rc = encode_append(t, text, n, &ids, &cap, &n_ids);
        }
        wall[r] = wall_now() - w0;
        cpu[r] = cpu_now() - c0;
        if (rc) {
            fprintf(stderr, "bench_tokenize: %s\n", lmm_error_get());
            return 1;
        }
        sum = 2166136261u;
        for (size_t i = 0; i < n_ids; i++) sum = (sum ^ ids[i]) * 16777619u;
        printf("rep %d: %zu tokens, checksum %08x, wall %.3f s (%.2f MB/s), cpu %.3f s (%.2f MB/s)\n",
               r + 1, n_ids, sum, wall[r], (double)n / 1e6 / wall[r], cpu[r], (double)n / 1e6 / cpu[r]);
        fflush(stdout);
    }
    if (dump) {
        FILE *o = fopen(dump, "w");
        if (!o) {
            fprintf(stderr, "bench_tokenize: cannot write %s\n", dump);
            return 1;
        }
        for (size_t i = 0; i < n_ids; i++) fprintf(o, "%u\n", ids[i]);
        fclose(o);
    }
    double mw = median(wall, reps), mc = median(cpu, reps);
    printf("RESULT impl=lmm bytes=%zu tokens=%zu checksum=%08x wall_s=%.4f cpu_s=%.4f mbps_wall=%.3f "
           "mbps_cpu=%.3f\n",
           n, n_ids, sum, mw, mc, (double)n / 1e6 / mw, (double)n / 1e6 / mc);
    lmm_tokenizer_free(t);
    free(ids);
    free(wall);
    free(cpu);
    free(text);
    return 0;
}
