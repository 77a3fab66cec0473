/* bench/stream_baseline.c — the two baselines of the streaming benchmark (bench/stream):
 * decode with the shared executor (model/graph/executor.c) in this one process, the
 * weights coming from
 *
 *   naive  lmm_source_naive_init: each piece pread() when the executor acquires it, into
 *          one buffer, no overlap of reading and computing (O_DIRECT unless --buffered).
 *          --piece-bytes layer (the default) makes every layer one piece: "read each
 *          layer when it is needed"; a number uses the plan's pieces of that size.
 *   mmap   lmm_source_mmap_init: the files mapped, the page cache decides (llama.cpp's
 *          default way of running a model).
 *
 * and, with no compute at all, the engine's own reads replayed:
 *
 *   replay the byte ranges the engine streams per token (the plan's pieces of --piece-bytes,
 *          default 32 MiB, minus --pinned N pieces spread evenly over the cycle exactly as
 *          services/scheduler/residency.c pins them), read with the loader's
 *          lmm_uring_reader (O_DIRECT, queue depth 32, 1 MiB chunks) into --stream-slots
 *          ring slots kept busy, one cycle per "token": "a raw read of the same bytes with
 *          the same tool", the engine's disk limit on a disk whose speed depends on the
 *          access pattern (docs/benchmarks.md).
 *
 *   bench_stream_baseline --mode naive|mmap|replay [--tokens N] [--threads N]
 *                         [--piece-bytes layer|BYTES] [--buffered]
 *                         [--pinned N] [--stream-slots N] [--queue-depth N]
 *                         [--hold-us N] [--no-fixed-buffers] MODEL
 *
 * (replay experiments: --hold-us keeps each filled slot that long before refilling it, as
 * compute would; --no-fixed-buffers reads without registered buffers.)
 *
 * Runs BOS and then N greedy decode steps (N+1 steps; the first one, which also faults in
 * the small tensors' neighbours and warms the thread pool, is reported apart). For every
 * step: wall time, bytes the disk served to this process (/proc/self/io read_bytes, what
 * the kernel submitted for us: preads and page-fault readahead alike), bytes the source
 * asked for (naive only), and the I/O stall:
 *   naive  time inside the source's acquire (the pread of the piece: nothing else runs);
 *   mmap   block-I/O delay of the process's threads (delay accounting, /proc/self/task/
 *          TID/stat field 42; needs kernel.task_delayacct=1, which bench/stream sets),
 *          summed over threads and divided by the number of compute threads.
 * Prints a line per step, a summary table and one JSON line (medians over the steps after
 * the first). Must be run cold (caches dropped) and inside the memory cgroup by the caller
 * to mean anything: see bench/stream and docs/benchmarks.md. */
#include <dirent.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "lmm/error.h"
#include "lmm/executor.h"
#include "lmm/hal.h"
#include "lmm/model.h"
#include "lmm/plan.h"
#include "lmm/shm_ring.h"
#include "lmm/uring_reader.h"
#include "probe.h"

#define MAX_TOKENS 256

/* ---- a source wrapper that counts and times the inner source's acquires ---------------- */

typedef struct {
    lmm_weight_source inner;
    const lmm_plan *plan;
    int o_direct;              /* naive: reads are 4 KiB widened */
    double acquire_s;          /* time inside inner.acquire / embd_rows */
    uint64_t asked_bytes;      /* bytes the source was asked to read (naive) */
} counting_src;

static const void *count_acquire(void *ctx, uint32_t piece) {
    counting_src *c = ctx;
    double t0 = probe_now();
    const void *p = c->inner.acquire(c->inner.ctx, piece);
    c->acquire_s += probe_now() - t0;
    const lmm_plan_piece *pc = &c->plan->pieces[piece];
    for (uint32_t i = pc->first_segment; i < pc->first_segment + pc->n_segments; i++) {
        const lmm_plan_segment *s = &c->plan->segments[i];
        c->asked_bytes += c->o_direct ? lmm_plan_span(s->file_offset, s->nbytes) : s->nbytes;
    }
    return p;
}

static void count_release(void *ctx, uint32_t piece) {
    counting_src *c = ctx;
    c->inner.release(c->inner.ctx, piece);
}

static const void *count_segment(void *ctx, uint32_t segment) {
    counting_src *c = ctx;
    return c->inner.segment_data(c->inner.ctx, segment);
}

static int count_embd(void *ctx, const uint32_t *tokens, uint32_t n, const void **rows) {
    counting_src *c = ctx;
    double t0 = probe_now();
    int rc = c->inner.embd_rows(c->inner.ctx, tokens, n, rows);
    c->acquire_s += probe_now() - t0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t off = lmm_plan_embd_offset(c->plan, tokens[i]);
        c->asked_bytes += c->o_direct ? lmm_plan_span(off, c->plan->embd.row_bytes) : c->plan->embd.row_bytes;
    }
    return rc;
}

static void count_destroy(void *ctx) {
    (void)ctx; /* the inner source is freed by main */
}

/* ---- what the kernel says about this process ------------------------------------------ */

/* read_bytes of /proc/self/io: bytes this process caused to be read from storage. */
static uint64_t proc_read_bytes(void) {
    FILE *f = fopen("/proc/self/io", "r");
    if (!f) return 0;
    char line[128];
    unsigned long long v = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "read_bytes: %llu", &v) == 1) break;
    fclose(f);
    return v;
}

/* Field 42 (delayacct_blkio_ticks) of one /proc/.../stat line; the comm field (2) may hold
 * spaces and parentheses, so fields are counted from the last ')'. */
static uint64_t stat_blkio_ticks(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p) return 0;
    p++;
    /* after ')' comes field 3 */
    int field = 2;
    char *save = NULL;
    for (char *tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        if (++field == 42) return strtoull(tok, NULL, 10);
    }
    return 0;
}

/* Block-I/O delay of every thread of this process, seconds (0 when delay accounting is off). */
static double blkio_delay_s(void) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return 0.0;
    uint64_t ticks = 0;
    struct dirent *e;
    char path[64];
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            snprintf(path, sizeof path, "/proc/self/task/%.20s/stat", e->d_name);
            ticks += stat_blkio_ticks(path);
        }
    closedir(d);
    long hz = sysconf(_SC_CLK_TCK);
    return (double)ticks / (double)(hz > 0 ? hz : 100);
}

static int delayacct_enabled(void) {
    FILE *f = fopen("/proc/sys/kernel/task_delayacct", "r");
    int v = 0;
    if (f) {
        if (fscanf(f, "%d", &v) != 1) v = 0;
        fclose(f);
    }
    return v;
}

static long major_faults(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_majflt;
}

static uint32_t argmax(const float *x, uint32_t n) {
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* ---- replay: the engine's streamed reads, no compute ------------------------------------ */

/* Piece i of n is pinned when n_pinned of n are spread evenly: the rule of
 * services/scheduler/residency.c (lmm_residency_spread), so the replay reads the bytes the
 * engine streams. */
static int spread_pinned(uint32_t i, uint32_t n, uint32_t n_pinned) {
    uint64_t a = (uint64_t)i * n_pinned / n, b = (uint64_t)(i + 1) * n_pinned / n;
    return b > a;
}

typedef struct {
    lmm_uring_reader r;
    lmm_shm_ring ring;
    const lmm_plan *plan;
    uint32_t *files;          /* [n_files] reader file index of each model file */
    uint32_t *stream;         /* [n_stream] streamed pieces, in cycle order */
    uint32_t n_stream;
    uint32_t *left;           /* [slots] segments of the slot's piece not yet complete */
    uint64_t bytes;           /* widened bytes read */
    unsigned hold_us;         /* a completed slot is refilled after this long (0: at once) */
} replay_ctx;

/* Queues every segment of piece `piece` into `slot`; -1 with a message. */
static int replay_submit(replay_ctx *c, uint32_t piece, uint32_t slot) {
    const lmm_plan_piece *pc = &c->plan->pieces[piece];
    for (uint32_t i = pc->first_segment; i < pc->first_segment + pc->n_segments; i++) {
        const lmm_plan_segment *sg = &c->plan->segments[i];
        if (lmm_uring_reader_submit_at(&c->r, c->files[sg->file], sg->file_offset, sg->nbytes, slot, sg->slot_offset,
                                       slot))
            return -1;
        c->bytes += lmm_plan_span(sg->file_offset, sg->nbytes);
    }
    c->left[slot] = pc->n_segments;
    return 0;
}

/* Reads n_cycles cycles of the streamed pieces through `slots` slots kept busy; the time of
 * each cycle (from the first submit of its first piece to the completion of its last) in
 * t[], its bytes in io[]. */
static int replay_run(replay_ctx *c, uint32_t slots, uint32_t n_cycles, double *t, double *io) {
    uint64_t total = (uint64_t)c->n_stream * n_cycles, next = 0, done = 0;
    lmm_uring_completion comp[64];
    double t_cycle = probe_now();
    uint64_t b_cycle = 0;
    for (uint32_t s = 0; s < slots && next < total; s++, next++)
        if (replay_submit(c, c->stream[next % c->n_stream], s)) return -1;
    while (done < total) {
        int n = lmm_uring_reader_wait(&c->r, comp, 64, -1);
        if (n < 0) return -1;
        for (int i = 0; i < n; i++) {
            if (comp[i].error) {
                char msg[512];
                lmm_uring_completion_describe(&c->r, &comp[i], msg, sizeof msg);
                return lmm_error_set("%s", msg);
            }
            uint32_t s = (uint32_t)comp[i].user_tag;
            if (--c->left[s]) continue;
            done++; /* a piece is complete: the slot takes the next one */
            if (c->hold_us) usleep(c->hold_us); /* as if compute used the slot for a while */
            if (done % c->n_stream == 0) {
                uint32_t k = (uint32_t)(done / c->n_stream - 1);
                double now = probe_now();
                t[k] = now - t_cycle;
                io[k] = (double)(c->bytes - b_cycle);
                t_cycle = now;
                b_cycle = c->bytes;
            }
            if (next < total && replay_submit(c, c->stream[next++ % c->n_stream], s)) return -1;
        }
    }
    return 0;
}

/* ---- one run -------------------------------------------------------------------------- */

typedef struct {
    double t[MAX_TOKENS + 1];       /* wall seconds of each step */
    double stall[MAX_TOKENS + 1];   /* I/O stall seconds of each step (see the top) */
    double blkio[MAX_TOKENS + 1];   /* block-I/O delay summed over threads */
    double io[MAX_TOKENS + 1];      /* /proc/self/io read_bytes delta */
    double asked[MAX_TOKENS + 1];   /* bytes the source was asked for (naive) */
    double majflt[MAX_TOKENS + 1];  /* major page faults */
    uint32_t tokens[MAX_TOKENS + 1];  /* greedy token sampled after each step */
} step_log;

static int usage(void) {
    fprintf(stderr, "usage: bench_stream_baseline --mode naive|mmap|replay [--tokens N] [--threads N] "
                    "[--piece-bytes layer|BYTES] [--buffered] [--pinned N] [--stream-slots N] [--queue-depth N] "
                    "[--hold-us N] [--no-fixed-buffers] MODEL\n");
    return 2;
}

/* The replay mode: prints its table and JSON line; 0, or 1 after printing the error. */
static int run_replay(const char *path, uint64_t piece_bytes, uint32_t n_pinned, uint32_t slots, unsigned qd,
                      unsigned hold_us, unsigned reader_flags, uint32_t n_tokens) {
    lmm_model_desc d;
    lmm_plan plan;
    replay_ctx c;
    memset(&c, 0, sizeof c);
    int rc = 1, have_ring = 0, have_reader = 0;
    double *t = calloc(n_tokens + 1, sizeof *t), *io = calloc(n_tokens + 1, sizeof *io);
    if (!t || !io) {
        fprintf(stderr, "bench_stream_baseline: out of memory\n");
        return 1;
    }
    if (lmm_model_desc_open(&d, path)) goto fail_nodesc;
    if (lmm_plan_build(&plan, &d, piece_bytes)) goto fail_noplan;
    c.plan = &plan;
    c.hold_us = hold_us;
    if (n_pinned >= plan.n_pieces) {
        lmm_error_set("--pinned %u: the plan has %u pieces; at least one must be streamed", n_pinned, plan.n_pieces);
        goto fail;
    }
    c.files = calloc(d.n_files ? d.n_files : 1, sizeof *c.files);
    c.stream = calloc(plan.n_pieces, sizeof *c.stream);
    c.left = calloc(slots, sizeof *c.left);
    if (!c.files || !c.stream || !c.left) {
        lmm_error_set("out of memory");
        goto fail;
    }
    for (uint32_t i = 0; i < plan.n_pieces; i++)
        if (!spread_pinned(i, plan.n_pieces, n_pinned)) c.stream[c.n_stream++] = i;
    if (lmm_shm_ring_create(&c.ring, slots, (size_t)plan.slot_bytes)) goto fail;
    have_ring = 1;
    lmm_shm_ring_unlink(&c.ring); /* nothing left in /dev/shm, whatever happens to us */
    lmm_uring_reader_opts o;
    lmm_uring_reader_opts_default(&o);
    o.queue_depth = qd;
    o.flags |= reader_flags;
    if (lmm_uring_reader_init_opts(&c.r, &c.ring, &o)) goto fail;
    have_reader = 1;
    for (uint32_t f = 0; f < d.n_files; f++)
        if (lmm_uring_reader_add_file(&c.r, d.files[f], &c.files[f])) goto fail;
    fprintf(stderr,
            "bench_stream_baseline: %s, replay: %u pieces of <= %.1f MiB, %u pinned, %u streamed through %u slots, "
            "queue depth %u\n",
            path, plan.n_pieces, (double)plan.piece_bytes / (1 << 20), n_pinned, c.n_stream, slots, qd);
    if (replay_run(&c, slots, n_tokens + 1, t, io)) goto fail;
    for (uint32_t i = 0; i <= n_tokens; i++)
        fprintf(stderr, "  cycle %2u: %7.3f s  read %7.3f GB  %.3f GB/s\n", i, t[i], io[i] * 1e-9, io[i] / t[i] * 1e-9);
    double tmp[MAX_TOKENS];
    memcpy(tmp, t + 1, n_tokens * sizeof *tmp);
    double t_med = probe_median(tmp, n_tokens);
    memcpy(tmp, io + 1, n_tokens * sizeof *tmp);
    double io_med = probe_median(tmp, n_tokens);
    printf("stream baseline replay: %s, %u cycles after the first, medians\n", path, n_tokens);
    printf("%-8s %9s %9s %12s %9s\n", "mode", "cycles/s", "s/cycle", "GB/cycle", "GB/s");
    printf("%-8s %9.3f %9.3f %12.3f %9.3f\n", "replay", 1.0 / t_med, t_med, io_med * 1e-9, io_med / t_med * 1e-9);
    json_object *j = json_object_new_object(), *per = json_object_new_array();
    for (uint32_t i = 0; i <= n_tokens; i++) json_object_array_add(per, json_object_new_double(t[i]));
    json_object_object_add(j, "bench", json_object_new_string("stream_baseline"));
    json_object_object_add(j, "mode", json_object_new_string("replay"));
    json_object_object_add(j, "model", json_object_new_string(path));
    json_object_object_add(j, "piece_bytes", json_object_new_int64((int64_t)plan.piece_bytes));
    json_object_object_add(j, "n_pieces", json_object_new_int64(plan.n_pieces));
    json_object_object_add(j, "n_pinned", json_object_new_int64(n_pinned));
    json_object_object_add(j, "n_streamed", json_object_new_int64(c.n_stream));
    json_object_object_add(j, "stream_slots", json_object_new_int64(slots));
    json_object_object_add(j, "queue_depth", json_object_new_int64(qd));
    json_object_object_add(j, "o_direct", json_object_new_boolean(lmm_uring_reader_file_direct(&c.r, 0) == 1));
    json_object_object_add(j, "tokens", json_object_new_int64(n_tokens));
    json_object_object_add(j, "first_token_s", json_object_new_double(t[0]));
    json_object_object_add(j, "token_s_median", json_object_new_double(t_med));
    json_object_object_add(j, "tokens_per_s", json_object_new_double(1.0 / t_med));
    json_object_object_add(j, "bytes_read_per_token", json_object_new_int64((int64_t)io_med));
    json_object_object_add(j, "read_gbps", json_object_new_double(io_med / t_med * 1e-9));
    json_object_object_add(j, "token_s", per);
    printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(j);
    rc = 0;
fail:
    if (rc) fprintf(stderr, "bench_stream_baseline: %s\n", lmm_error_get());
    if (have_reader) lmm_uring_reader_free(&c.r);
    if (have_ring) lmm_shm_ring_destroy(&c.ring);
    free(c.files);
    free(c.stream);
    free(c.left);
    lmm_plan_free(&plan);
    lmm_model_desc_free(&d);
    free(t);
    free(io);
    return rc;
fail_noplan:
    lmm_model_desc_free(&d);
fail_nodesc:
    fprintf(stderr, "bench_stream_baseline: %s\n", lmm_error_get());
    free(t);
    free(io);
    return 1;
}

int main(int argc, char **argv) {
    const char *mode = NULL, *path = NULL, *piece_arg = NULL;
    int threads = 0, buffered = 0;
    uint32_t n_tokens = 6, n_pinned = 0, slots = 2;
    unsigned qd = LMM_URING_DEFAULT_QUEUE_DEPTH, hold_us = 0, reader_flags = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--mode") && v) mode = v, i++;
        else if (!strcmp(a, "--tokens") && v) n_tokens = (uint32_t)strtoul(v, NULL, 10), i++;
        else if (!strcmp(a, "--threads") && v) threads = atoi(v), i++;
        else if (!strcmp(a, "--piece-bytes") && v) piece_arg = v, i++;
        else if (!strcmp(a, "--pinned") && v) n_pinned = (uint32_t)strtoul(v, NULL, 10), i++;
        else if (!strcmp(a, "--stream-slots") && v) slots = (uint32_t)strtoul(v, NULL, 10), i++;
        else if (!strcmp(a, "--queue-depth") && v) qd = (unsigned)strtoul(v, NULL, 10), i++;
        else if (!strcmp(a, "--hold-us") && v) hold_us = (unsigned)strtoul(v, NULL, 10), i++;
        else if (!strcmp(a, "--buffered")) buffered = 1;
        else if (!strcmp(a, "--no-fixed-buffers")) reader_flags |= LMM_URING_NO_FIXED_BUFFERS;
        else if (a[0] != '-' && !path) path = a;
        else return usage();
    }
    int naive = mode && !strcmp(mode, "naive"), replay = mode && !strcmp(mode, "replay");
    if (!path || !mode || (!naive && !replay && strcmp(mode, "mmap")) || n_tokens < 2 || n_tokens > MAX_TOKENS ||
        threads < 0 || slots < 1 || slots > 64 || qd < 1 || qd > 4096)
        return usage();
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }
    /* naive and mmap: one piece per layer unless asked; replay: the engine's default pieces */
    if (!piece_arg) piece_arg = replay ? "0" : "layer";
    uint64_t piece_bytes = LMM_PLAN_PIECE_BYTES_MAX;
    if (strcmp(piece_arg, "layer")) {
        char *end;
        piece_bytes = strtoull(piece_arg, &end, 10);
        if (*end) return usage();
    }
    if (replay) return run_replay(path, piece_bytes, n_pinned, slots, qd, hold_us, reader_flags, n_tokens);
    if (piece_bytes == 0) piece_bytes = LMM_PLAN_PIECE_BYTES_DEFAULT;

    lmm_model_desc d;
    lmm_plan plan;
    lmm_small_tensors small;
    lmm_weight_source inner, src;
    lmm_executor *ex = NULL;
    double t_init = probe_now();
    if (lmm_model_desc_open(&d, path)) {
        fprintf(stderr, "bench_stream_baseline: %s\n", lmm_error_get());
        return 1;
    }
    if (lmm_plan_build(&plan, &d, piece_bytes)) {
        fprintf(stderr, "bench_stream_baseline: %s\n", lmm_error_get());
        return 1;
    }
    if (lmm_small_tensors_read(&small, &d, 0, plan.n_layers, 1)) {
        fprintf(stderr, "bench_stream_baseline: %s\n", lmm_error_get());
        return 1;
    }
    if (naive ? lmm_source_naive_init(&inner, &plan, 1, !buffered) : lmm_source_mmap_init(&inner, &plan)) {
        fprintf(stderr, "bench_stream_baseline: %s\n", lmm_error_get());
        return 1;
    }
    counting_src cs = {.inner = inner, .plan = &plan, .o_direct = naive && !buffered};
    src = (lmm_weight_source){&cs, count_acquire, count_release, inner.segment_data ? count_segment : NULL,
                              count_embd, count_destroy};
    lmm_executor_opts o = {.layer_begin = 0,
                           .layer_end = plan.n_layers,
                           .head = 1,
                           .max_batch = 1,
                           .max_seqs = 1,
                           .n_ctx = n_tokens + 2,
                           .n_threads = threads};
    if (lmm_executor_init(&ex, &plan, &small, &src, &o)) {
        fprintf(stderr, "bench_stream_baseline: %s\n", lmm_error_get());
        return 1;
    }
    t_init = probe_now() - t_init;

    uint32_t vocab = d.hp.n_vocab;
    float *logits = malloc((size_t)vocab * sizeof *logits);
    step_log *lg = calloc(1, sizeof *lg);
    if (!logits || !lg) {
        fprintf(stderr, "bench_stream_baseline: out of memory\n");
        return 1;
    }
    int dacct = delayacct_enabled();
    uint32_t tok = d.bos_id;
    fprintf(stderr, "bench_stream_baseline: %s, %s%s, %u pieces (slot %.1f MiB), %.2f GB of matrices, %d threads\n",
            path, mode, naive ? (buffered ? " buffered" : " O_DIRECT") : "", plan.n_pieces,
            (double)plan.slot_bytes / (1 << 20), (double)plan.weight_bytes * 1e-9, threads);
    for (uint32_t i = 0; i <= n_tokens; i++) {
        uint32_t pos = i;
        lmm_executor_batch b = {.n = 1, .pos = &pos, .tokens = &tok, .logits = logits};
        double acq0 = cs.acquire_s, blk0 = blkio_delay_s();
        uint64_t io0 = proc_read_bytes(), ask0 = cs.asked_bytes;
        long flt0 = major_faults();
        double t0 = probe_now();
        if (lmm_executor_step(ex, &b)) {
            fprintf(stderr, "bench_stream_baseline: step %u: %s\n", i, lmm_error_get());
            return 1;
        }
        lg->t[i] = probe_now() - t0;
        lg->io[i] = (double)(proc_read_bytes() - io0);
        lg->asked[i] = (double)(cs.asked_bytes - ask0);
        lg->blkio[i] = blkio_delay_s() - blk0;
        lg->majflt[i] = (double)(major_faults() - flt0);
        lg->stall[i] = naive ? cs.acquire_s - acq0 : (dacct ? lg->blkio[i] / threads : -1.0);
        tok = argmax(logits, vocab);
        lg->tokens[i] = tok;
        fprintf(stderr, "  step %2u: %7.3f s  read %7.3f GB  stall %7.3f s  asked %7.3f GB  major faults %.0f\n", i,
                lg->t[i], lg->io[i] * 1e-9, lg->stall[i], lg->asked[i] * 1e-9, lg->majflt[i]);
    }

    /* medians over the steps after the first */
    size_t n = n_tokens;
    double tmp[MAX_TOKENS];
#define MEDIAN_OF(arr) (memcpy(tmp, (arr) + 1, n * sizeof(double)), probe_median(tmp, n))
    double t_med = MEDIAN_OF(lg->t), io_med = MEDIAN_OF(lg->io), stall_med = MEDIAN_OF(lg->stall);
    double asked_med = MEDIAN_OF(lg->asked), blk_med = MEDIAN_OF(lg->blkio), flt_med = MEDIAN_OF(lg->majflt);
    double t_sum = 0;
    for (size_t i = 1; i <= n; i++) t_sum += lg->t[i];
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    size_t state = lmm_executor_state_bytes(ex);

    printf("stream baseline %s: %s, %u steps after the first, medians\n", mode, path, n_tokens);
    printf("%-8s %9s %9s %12s %9s %9s %10s\n", "mode", "tok/s", "s/token", "GB/token", "GB/s", "stall s", "first s");
    printf("%-8s %9.3f %9.3f %12.3f %9.3f %9.3f %10.3f\n", mode, 1.0 / t_med, t_med, io_med * 1e-9,
           io_med / t_med * 1e-9, stall_med, lg->t[0]);

    json_object *j = json_object_new_object();
    json_object *per = json_object_new_array(), *per_io = json_object_new_array(), *per_st = json_object_new_array();
    json_object *gen = json_object_new_array();
    for (uint32_t i = 0; i <= n_tokens; i++) {
        json_object_array_add(gen, json_object_new_int64(lg->tokens[i]));
        json_object_array_add(per, json_object_new_double(lg->t[i]));
        json_object_array_add(per_io, json_object_new_int64((int64_t)lg->io[i]));
        json_object_array_add(per_st, lg->stall[i] >= 0 ? json_object_new_double(lg->stall[i]) : NULL);
    }
    json_object_object_add(j, "bench", json_object_new_string("stream_baseline"));
    json_object_object_add(j, "mode", json_object_new_string(mode));
    json_object_object_add(j, "o_direct", json_object_new_boolean(naive && !buffered));
    json_object_object_add(j, "model", json_object_new_string(path));
    json_object_object_add(j, "weight_bytes", json_object_new_int64((int64_t)plan.weight_bytes));
    json_object_object_add(j, "piece_bytes", json_object_new_int64((int64_t)plan.piece_bytes));
    json_object_object_add(j, "n_pieces", json_object_new_int64(plan.n_pieces));
    json_object_object_add(j, "slot_bytes", json_object_new_int64((int64_t)plan.slot_bytes));
    json_object_object_add(j, "threads", json_object_new_int(threads));
    json_object_object_add(j, "isa", json_object_new_string(lmm_hal_isa_name(lmm_hal_isa())));
    json_object_object_add(j, "tokens", json_object_new_int64(n_tokens));
    json_object_object_add(j, "init_s", json_object_new_double(t_init));
    json_object_object_add(j, "first_token_s", json_object_new_double(lg->t[0]));
    json_object_object_add(j, "token_s_median", json_object_new_double(t_med));
    json_object_object_add(j, "token_s_mean", json_object_new_double(t_sum / (double)n));
    json_object_object_add(j, "tokens_per_s", json_object_new_double(1.0 / t_med));
    json_object_object_add(j, "bytes_read_per_token", json_object_new_int64((int64_t)io_med));
    json_object_object_add(j, "bytes_asked_per_token", json_object_new_int64((int64_t)asked_med));
    json_object_object_add(j, "read_gbps", json_object_new_double(io_med / t_med * 1e-9));
    json_object_object_add(j, "io_stall_s_per_token", stall_med >= 0 ? json_object_new_double(stall_med) : NULL);
    json_object_object_add(j, "blkio_delay_s_per_token", dacct ? json_object_new_double(blk_med) : NULL);
    json_object_object_add(j, "major_faults_per_token", json_object_new_double(flt_med));
    json_object_object_add(j, "state_bytes", json_object_new_int64((int64_t)state));
    json_object_object_add(j, "peak_rss_bytes", json_object_new_int64((int64_t)ru.ru_maxrss * 1024));
    json_object_object_add(j, "token_s", per);
    json_object_object_add(j, "read_bytes", per_io);
    json_object_object_add(j, "stall_s", per_st);
    json_object_object_add(j, "generated", gen); /* greedy tokens: the engine must give the same */
    printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(j);

    free(lg);
    free(logits);
    lmm_executor_free(ex);
    lmm_source_free(&inner);
    lmm_small_tensors_free(&small);
    lmm_plan_free(&plan);
    lmm_model_desc_free(&d);
    return 0;
}
