/* core/trace.c — the per-process trace-event recorder and its Chrome trace JSON writer
 * (lmm/trace.h).
 *
 * The ring: `cap` events allocated at start. A recorder takes index i with one atomic
 * add, fills ring[i % cap] and publishes it by storing seq = i + 1 (release); the writer
 * reads the last `cap` indices and skips any slot whose seq is not the one it expects
 * (being rewritten right now). Nothing is allocated or locked on the recording path. */
#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lmm/error.h"
#include "lmm/trace.h"

#define MAX_THREAD_NAMES 64u

typedef struct {
    _Atomic uint64_t seq;      /* index + 1 once filled; 0 while being written */
    uint64_t ts, dur;          /* µs */
    uint64_t id;               /* async id */
    const char *cat, *name;
    const char *k[2];          /* argument keys (NULL: none) */
    int64_t v[2];
    int32_t tid;
    char ph;                   /* 'X', 'b', 'e', 'i', 'C' */
} trace_event;

static struct {
    _Atomic bool on;
    trace_event *ring;         /* [cap] */
    uint64_t cap;
    _Atomic uint64_t head;     /* events recorded so far */
    char process[LMM_TRACE_NAME_MAX];
    pthread_mutex_t names_lock;
    struct {
        int32_t tid;
        char name[LMM_TRACE_NAME_MAX];
    } threads[MAX_THREAD_NAMES];
    unsigned n_threads;
    bool exit_handler;
    char exit_dir[1024];
} T = {.names_lock = PTHREAD_MUTEX_INITIALIZER};

static _Thread_local int32_t t_tid;

static int32_t this_tid(void) {
    if (!t_tid) t_tid = (int32_t)syscall(SYS_gettid);
    return t_tid;
}

uint64_t lmm_trace_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

bool lmm_trace_on(void) { return atomic_load_explicit(&T.on, memory_order_relaxed); }

uint64_t lmm_trace_begin(void) { return lmm_trace_on() ? lmm_trace_now_us() : 0; }

/* ---- start / stop ------------------------------------------------------------------ */

void lmm_trace_set_process_name(const char *name) {
    pthread_mutex_lock(&T.names_lock);
    snprintf(T.process, sizeof T.process, "%s", name && *name ? name : "process");
    pthread_mutex_unlock(&T.names_lock);
}

const char *lmm_trace_process_name(void) { return T.process; }

int lmm_trace_start(const char *process_name, size_t max_events) {
    lmm_trace_set_process_name(process_name);
    if (T.ring) return 0;
    if (max_events == 0) max_events = LMM_TRACE_DEFAULT_EVENTS;
    if (max_events > (SIZE_MAX / 2) / sizeof(trace_event))
        return lmm_error_set("trace: %zu events do not fit in memory", max_events);
    /* calloc: the pages are touched only as events land in them */
    T.ring = calloc(max_events, sizeof *T.ring);
    if (!T.ring) return lmm_error_set("trace: cannot allocate %zu events", max_events);
    T.cap = max_events;
    atomic_store(&T.head, 0);
    atomic_store(&T.on, true);
    return 0;
}

void lmm_trace_stop(void) {
    atomic_store(&T.on, false);
    free(T.ring);
    T.ring = NULL;
    T.cap = 0;
    atomic_store(&T.head, 0);
    pthread_mutex_lock(&T.names_lock);
    T.n_threads = 0;
    pthread_mutex_unlock(&T.names_lock);
}

void lmm_trace_thread_name(const char *name) {
    int32_t tid = this_tid();
    pthread_mutex_lock(&T.names_lock);
    unsigned i = 0;
    while (i < T.n_threads && T.threads[i].tid != tid) i++;
    if (i < MAX_THREAD_NAMES) {
        if (i == T.n_threads) T.n_threads++;
        T.threads[i].tid = tid;
        snprintf(T.threads[i].name, sizeof T.threads[i].name, "%s", name ? name : "");
    }
    pthread_mutex_unlock(&T.names_lock);
}

uint64_t lmm_trace_recorded(void) { return atomic_load(&T.head); }

uint64_t lmm_trace_dropped(void) {
    uint64_t n = atomic_load(&T.head);
    return n > T.cap ? n - T.cap : 0;
}

/* ---- recording ---------------------------------------------------------------------- */

static void record(char ph, const char *cat, const char *name, uint64_t ts, uint64_t dur, uint64_t id,
                   const char *k1, int64_t v1, const char *k2, int64_t v2) {
    if (!lmm_trace_on() || !T.ring) return;
    uint64_t i = atomic_fetch_add_explicit(&T.head, 1, memory_order_relaxed);
    trace_event *e = &T.ring[i % T.cap];
    atomic_store_explicit(&e->seq, 0, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    e->ph = ph;
    e->cat = cat;
    e->name = name;
    e->ts = ts;
    e->dur = dur;
    e->id = id;
    e->k[0] = k1;
    e->v[0] = v1;
    e->k[1] = k2;
    e->v[1] = v2;
    e->tid = this_tid();
    atomic_store_explicit(&e->seq, i + 1, memory_order_release);
}

void lmm_trace_complete(const char *cat, const char *name, uint64_t t0_us, uint64_t t1_us, const char *k1,
                        int64_t v1, const char *k2, int64_t v2) {
    if (!lmm_trace_on() || t0_us == 0) return;
    record('X', cat, name, t0_us, t1_us > t0_us ? t1_us - t0_us : 0, 0, k1, v1, k2, v2);
}

void lmm_trace_end(const char *cat, const char *name, uint64_t t0_us, const char *k1, int64_t v1, const char *k2,
                   int64_t v2) {
    if (!lmm_trace_on() || t0_us == 0) return;
    lmm_trace_complete(cat, name, t0_us, lmm_trace_now_us(), k1, v1, k2, v2);
}

void lmm_trace_async_begin(const char *cat, const char *name, uint64_t id, const char *k1, int64_t v1,
                           const char *k2, int64_t v2) {
    if (lmm_trace_on()) record('b', cat, name, lmm_trace_now_us(), 0, id, k1, v1, k2, v2);
}

void lmm_trace_async_end(const char *cat, const char *name, uint64_t id, const char *k1, int64_t v1, const char *k2,
                         int64_t v2) {
    if (lmm_trace_on()) record('e', cat, name, lmm_trace_now_us(), 0, id, k1, v1, k2, v2);
}

void lmm_trace_instant(const char *cat, const char *name, const char *k1, int64_t v1, const char *k2, int64_t v2) {
    if (lmm_trace_on()) record('i', cat, name, lmm_trace_now_us(), 0, 0, k1, v1, k2, v2);
}

void lmm_trace_counter(const char *name, int64_t value) {
    if (lmm_trace_on()) record('C', "counter", name, lmm_trace_now_us(), 0, 0, "value", value, NULL, 0);
}

/* ---- writing ------------------------------------------------------------------------ */

static json_object *meta(const char *what, int pid, int32_t tid, const char *name) {
    json_object *m = json_object_new_object();
    json_object_object_add(m, "name", json_object_new_string(what));
    json_object_object_add(m, "ph", json_object_new_string("M"));
    json_object_object_add(m, "pid", json_object_new_int(pid));
    json_object_object_add(m, "tid", json_object_new_int(tid));
    json_object *args = json_object_new_object();
    json_object_object_add(args, "name", json_object_new_string(name));
    json_object_object_add(m, "args", args);
    return m;
}

static json_object *event_json(const trace_event *e, int pid) {
    char ph[2] = {e->ph, '\0'};
    json_object *j = json_object_new_object();
    json_object_object_add(j, "name", json_object_new_string(e->name ? e->name : "?"));
    json_object_object_add(j, "cat", json_object_new_string(e->cat ? e->cat : ""));
    json_object_object_add(j, "ph", json_object_new_string(ph));
    json_object_object_add(j, "ts", json_object_new_int64((int64_t)e->ts));
    if (e->ph == 'X') json_object_object_add(j, "dur", json_object_new_int64((int64_t)e->dur));
    if (e->ph == 'b' || e->ph == 'e') {
        char id[32];
        snprintf(id, sizeof id, "0x%llx", (unsigned long long)e->id);
        json_object_object_add(j, "id", json_object_new_string(id));
    }
    if (e->ph == 'i') json_object_object_add(j, "s", json_object_new_string("t"));
    json_object_object_add(j, "pid", json_object_new_int(pid));
    json_object_object_add(j, "tid", json_object_new_int(e->tid));
    if (e->k[0] || e->k[1]) {
        json_object *args = json_object_new_object();
        for (int a = 0; a < 2; a++)
            if (e->k[a]) json_object_object_add(args, e->k[a], json_object_new_int64(e->v[a]));
        json_object_object_add(j, "args", args);
    }
    return j;
}

static int put(FILE *f, json_object *j, bool *first) {
    int rc = fputs(*first ? "\n" : ",\n", f) < 0 ||
             fputs(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE), f) < 0;
    json_object_put(j);
    *first = false;
    return rc ? -1 : 0;
}

int lmm_trace_write(const char *path) {
    if (!T.ring) return lmm_error_set("trace: not started");
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%.1000s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return lmm_error_set("%s: %s", tmp, strerror(errno));
    int pid = (int)getpid();
    uint64_t head = atomic_load_explicit(&T.head, memory_order_acquire);
    uint64_t start = head > T.cap ? head - T.cap : 0;
    bool first = true;
    int bad = fputs("{\"traceEvents\":[", f) < 0;
    pthread_mutex_lock(&T.names_lock);
    bad |= put(f, meta("process_name", pid, 0, T.process), &first);
    for (unsigned i = 0; i < T.n_threads; i++)
        bad |= put(f, meta("thread_name", pid, T.threads[i].tid, T.threads[i].name), &first);
    pthread_mutex_unlock(&T.names_lock);
    uint64_t written = 0;
    for (uint64_t i = start; i < head && !bad; i++) {
        const trace_event *e = &T.ring[i % T.cap];
        if (atomic_load_explicit(&e->seq, memory_order_acquire) != i + 1) continue;
        trace_event copy;
        memcpy(&copy, e, sizeof copy);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&e->seq, memory_order_relaxed) != i + 1) continue; /* rewritten meanwhile */
        bad |= put(f, event_json(&copy, pid), &first);
        written++;
    }
    json_object *other = json_object_new_object();
    json_object_object_add(other, "process", json_object_new_string(T.process));
    json_object_object_add(other, "events", json_object_new_int64((int64_t)written));
    json_object_object_add(other, "dropped", json_object_new_int64((int64_t)start));
    json_object_object_add(other, "clock", json_object_new_string("CLOCK_MONOTONIC, microseconds"));
    bad |= fprintf(f, "\n],\"displayTimeUnit\":\"ms\",\"otherData\":%s}\n",
                   json_object_to_json_string_ext(other, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)) < 0;
    json_object_put(other);
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return lmm_error_set("%s: write failed: %s", path, strerror(e));
    }
    return 0;
}

/* ---- from the environment ------------------------------------------------------------ */

int lmm_trace_write_to_dir(void) {
    if (!T.ring) return lmm_error_set("trace: not started");
    char path[1200], name[LMM_TRACE_NAME_MAX];
    pthread_mutex_lock(&T.names_lock);
    snprintf(name, sizeof name, "%s", T.process);
    pthread_mutex_unlock(&T.names_lock);
    for (char *p = name; *p; p++)
        if (*p == '/' || *p == ' ') *p = '_';
    snprintf(path, sizeof path, "%s/trace-%s.json", T.exit_dir[0] ? T.exit_dir : ".", name);
    return lmm_trace_write(path);
}

static void write_at_exit(void) {
    if (!T.ring) return;
    if (lmm_trace_write_to_dir()) fprintf(stderr, "%s: %s\n", T.process, lmm_error_get());
}

int lmm_trace_start_from_env(const char *default_name) {
    const char *on = getenv("LMM_TRACE");
    if (!on || !*on || strcmp(on, "0") == 0) return 0;
    size_t events = 0;
    const char *n = getenv("LMM_TRACE_EVENTS");
    if (n && *n) {
        char *end;
        unsigned long long v = strtoull(n, &end, 10);
        if (*end || v == 0 || v > (1ull << 30)) return lmm_error_set("LMM_TRACE_EVENTS: '%s' is not in [1, 2^30]", n);
        events = (size_t)v;
    }
    const char *dir = getenv("LMM_TRACE_DIR");
    snprintf(T.exit_dir, sizeof T.exit_dir, "%s", dir && *dir ? dir : ".");
    if (lmm_trace_start(default_name, events)) return -1;
    if (!T.exit_handler) {
        if (atexit(write_at_exit) != 0) return lmm_error_set("trace: atexit failed");
        T.exit_handler = true;
    }
    return 1;
}
