/* hal/cpu/threadpool.c — persistent worker threads for lmm_threadpool_for().
 *
 * The caller is worker 0; workers 1..n-1 are pthreads created once. A job is
 * published by storing a 64-bit word `next` (generation, chunk count, next
 * chunk); every thread (caller included) claims chunks with a fetch-and-add on
 * that word, so a claim names its job, and nobody can run a chunk of a finished
 * job. The job's fields are read only after a successful claim: the job cannot
 * finish (and the caller cannot overwrite them) while a claimed chunk is
 * outstanding. The caller returns when `done` counts every chunk.
 *
 * Idle workers spin (pause) for a short while on `next`, then sleep on a futex
 * (`wake_seq`); the caller only issues the wake-up system call when a worker is
 * actually asleep. Spinning keeps the ~200 calls per decoded token cheap. No
 * allocation per call. Calls must not be nested, nor made concurrently on one pool.
 *
 * `next` packs generation (24 bits) | chunk count (20 bits) | next chunk (20 bits). */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "hal/cpu/hal_cpu.h"
#include "lmm/error.h"

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#else
#define cpu_relax() ((void)0)
#endif

struct lmm_threadpool {
    int n_threads;
    pthread_t *threads; /* [n_threads - 1] */
    /* job (written by the caller before publishing, read after a claim) */
    lmm_range_fn fn;
    void *arg;
    size_t n, chunk;
    /* each on its own cache line: hot atomics */
    _Alignas(64) _Atomic uint64_t next; /* gen:24 | n_chunks:20 | next chunk:20 */
    _Alignas(64) _Atomic uint32_t done; /* chunks finished in this generation */
    _Alignas(64) _Atomic uint32_t wake_seq;
    _Atomic int n_sleeping;
    _Atomic int stop;
    long spin_ns;
};

#define IDX_BITS 20
#define MAX_CHUNKS ((1u << IDX_BITS) - 1)
static inline uint32_t w_gen(uint64_t w) { return (uint32_t)(w >> (2 * IDX_BITS)); }
static inline uint32_t w_nch(uint64_t w) { return (uint32_t)(w >> IDX_BITS) & MAX_CHUNKS; }
static inline uint32_t w_idx(uint64_t w) { return (uint32_t)w & MAX_CHUNKS; }

static long futex_op(_Atomic uint32_t *addr, int op, uint32_t val) {
    return syscall(SYS_futex, (uint32_t *)addr, op, val, NULL, NULL, 0);
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Claims and runs chunks until a claim comes back empty. A claim is one
 * fetch-and-add on `next`; the word it returns says which job (generation) the
 * chunk belongs to and whether it exists. A late worker may thus claim a chunk
 * of a newer job than the one that woke it: it runs it (that job is published
 * and cannot finish before the chunk is reported done), so nothing is lost.
 * Empty claims push the index past the count by at most two per thread (hence
 * the 4096 spare indices and at most 1024 threads). */
static void run_chunks(lmm_threadpool *p) {
    uint32_t ran = 0, gen = 0;
    for (;;) {
        const uint64_t cur = atomic_fetch_add_explicit(&p->next, 1, memory_order_acq_rel);
        /* report the chunks run so far when the job changes under us, or at the end */
        if (ran && (w_gen(cur) != gen || w_idx(cur) >= w_nch(cur))) {
            atomic_fetch_add_explicit(&p->done, ran, memory_order_release);
            ran = 0;
        }
        if (w_idx(cur) >= w_nch(cur)) return;
        gen = w_gen(cur);
        const size_t b = (size_t)w_idx(cur) * p->chunk;
        const size_t e = p->n - b < p->chunk ? p->n : b + p->chunk;
        p->fn(p->arg, b, e);
        ran++;
    }
}

static void *worker_main(void *vp) {
    lmm_threadpool *p = (lmm_threadpool *)vp;
    uint32_t seen = w_gen(atomic_load_explicit(&p->next, memory_order_acquire));
    for (;;) {
        /* wait for a new generation: spin, then sleep */
        uint32_t gen;
        uint64_t t0 = 0;
        for (unsigned it = 0;; it++) {
            if (atomic_load_explicit(&p->stop, memory_order_acquire)) return NULL;
            gen = w_gen(atomic_load_explicit(&p->next, memory_order_acquire));
            if (gen != seen) break;
            if ((it & 63) == 63) {
                uint64_t t = now_ns();
                if (t0 == 0) t0 = t;
                if ((long)(t - t0) >= p->spin_ns) {
                    uint32_t ws = atomic_load_explicit(&p->wake_seq, memory_order_seq_cst);
                    atomic_fetch_add_explicit(&p->n_sleeping, 1, memory_order_seq_cst);
                    gen = w_gen(atomic_load_explicit(&p->next, memory_order_seq_cst));
                    if (gen == seen && !atomic_load_explicit(&p->stop, memory_order_seq_cst))
                        futex_op(&p->wake_seq, FUTEX_WAIT_PRIVATE, ws);
                    atomic_fetch_sub_explicit(&p->n_sleeping, 1, memory_order_seq_cst);
                    t0 = 0;
                    continue;
                }
            }
            cpu_relax();
        }
        seen = gen;
        run_chunks(p);
    }
}

lmm_threadpool *lmm_threadpool_create(int n_threads) {
    if (n_threads < 1 || n_threads > 1024) {
        lmm_error_set("lmm_threadpool_create: n_threads must be in 1..1024 (got %d)", n_threads);
        return NULL;
    }
    lmm_threadpool *p = aligned_alloc(64, (sizeof *p + 63) / 64 * 64);
    if (!p) {
        lmm_error_set("lmm_threadpool_create: out of memory");
        return NULL;
    }
    *p = (lmm_threadpool){0};
    p->n_threads = n_threads;
    atomic_init(&p->next, 0);
    atomic_init(&p->done, 0);
    atomic_init(&p->wake_seq, 0);
    atomic_init(&p->n_sleeping, 0);
    atomic_init(&p->stop, 0);
    p->spin_ns = 200000; /* 200 us, overridable by LMM_SPIN_US */
    const char *env = getenv("LMM_SPIN_US");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end == 0 && v >= 0 && v <= 10000000) p->spin_ns = v * 1000;
    }
    if (n_threads > 1) {
        p->threads = calloc((size_t)n_threads - 1, sizeof *p->threads);
        if (!p->threads) {
            free(p);
            lmm_error_set("lmm_threadpool_create: out of memory");
            return NULL;
        }
        for (int i = 0; i < n_threads - 1; i++) {
            int rc = pthread_create(&p->threads[i], NULL, worker_main, p);
            if (rc != 0) {
                p->n_threads = i + 1; /* join the ones that started */
                lmm_threadpool_free(p);
                lmm_error_set("lmm_threadpool_create: pthread_create failed (error %d)", rc);
                return NULL;
            }
        }
    }
    return p;
}

void lmm_threadpool_free(lmm_threadpool *p) {
    if (!p) return;
    atomic_store_explicit(&p->stop, 1, memory_order_seq_cst);
    atomic_fetch_add_explicit(&p->wake_seq, 1, memory_order_seq_cst);
    futex_op(&p->wake_seq, FUTEX_WAKE_PRIVATE, INT_MAX);
    for (int i = 0; i < p->n_threads - 1; i++) pthread_join(p->threads[i], NULL);
    free(p->threads);
    free(p);
}

int lmm_threadpool_size(const lmm_threadpool *p) { return p ? p->n_threads : 1; }

void lmm_threadpool_for(lmm_threadpool *p, size_t n, size_t chunk, lmm_range_fn fn, void *arg) {
    if (n == 0) return;
    if (chunk == 0) chunk = 1;
    if (!p || p->n_threads == 1 || n <= chunk) {
        for (size_t b = 0; b < n; b += chunk) fn(arg, b, n - b < chunk ? n : b + chunk);
        return;
    }
    size_t n_chunks = (n - 1) / chunk + 1;
    if (n_chunks > MAX_CHUNKS - 4096) { /* room for empty claims past the end */
        chunk = (n - 1) / (MAX_CHUNKS - 4096) + 1;
        n_chunks = (n - 1) / chunk + 1;
    }
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    p->chunk = chunk;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    const uint32_t gen =
        (w_gen(atomic_load_explicit(&p->next, memory_order_relaxed)) + 1) & 0xffffffu;
    atomic_store_explicit(&p->next, ((uint64_t)gen << (2 * IDX_BITS)) | ((uint64_t)n_chunks << IDX_BITS),
                          memory_order_seq_cst);
    if (atomic_load_explicit(&p->n_sleeping, memory_order_seq_cst) > 0) {
        atomic_fetch_add_explicit(&p->wake_seq, 1, memory_order_seq_cst);
        futex_op(&p->wake_seq, FUTEX_WAKE_PRIVATE, INT_MAX);
    }
    run_chunks(p);
    /* wait for chunks still running on other threads */
    for (unsigned it = 0; atomic_load_explicit(&p->done, memory_order_acquire) != n_chunks; it++) {
        cpu_relax();
        if ((it & 1023) == 1023) sched_yield();
    }
}
