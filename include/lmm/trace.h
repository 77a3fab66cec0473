/* lmm/trace.h — a per-process trace-event recorder that writes Chrome trace-event JSON
 * (opens in Perfetto, ui.perfetto.dev, or chrome://tracing). docs/operations.md lists the
 * categories and span names the services use.
 *
 * Events go into a ring allocated once by lmm_trace_start() (the newest
 * `max_events` are kept; older ones are overwritten and counted as dropped), so
 * recording never allocates and is safe from any thread: one atomic add, one clock
 * read, a few stores. When tracing is off every call returns at once.
 *
 * Names, categories and argument keys are NOT copied: pass string literals (or other
 * strings that live until the trace is written). Times are CLOCK_MONOTONIC
 * microseconds, the same clock in every process of a machine, so the traces of the
 * services of a group merge onto one time line.
 *
 *     uint64_t t0 = lmm_trace_begin();                       // 0 when tracing is off
 *     ... compute layer l ...
 *     lmm_trace_end("compute", "layer", t0, "layer", l, "tokens", n);   // an "X" span
 *
 *     lmm_trace_async_begin("io", "load", req_id, "bytes", n, "slot", s); // overlapping
 *     lmm_trace_async_end("io", "load", req_id, "bytes", got, NULL, 0);   // spans
 *     lmm_trace_instant("msg", "recv STEP", "bytes", len, NULL, 0);
 *     lmm_trace_counter("loads_in_flight", active);
 *
 * Services: lmm_service_die_with_parent() (services/common) starts tracing when the
 * environment has LMM_TRACE=1 and writes $LMM_TRACE_DIR/trace-<name>.json when the
 * process exits (lmm_trace_start_from_env). */
#ifndef LMM_TRACE_H
#define LMM_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LMM_TRACE_DEFAULT_EVENTS (1u << 17) /* ~11 MiB of address space, touched as used */
#define LMM_TRACE_NAME_MAX 64u

/* Allocates the ring (max_events 0: LMM_TRACE_DEFAULT_EVENTS) and turns recording on.
 * process_name names this process in the trace ("loader", "compute.0"). Starting again
 * while started only renames. */
int lmm_trace_start(const char *process_name, size_t max_events);
/* Turns recording off and frees the ring. */
void lmm_trace_stop(void);
/* True while recording. */
bool lmm_trace_on(void);
/* Renames this process in the trace (copied). */
void lmm_trace_set_process_name(const char *name);
const char *lmm_trace_process_name(void);
/* Names the calling thread in the trace (copied; up to 64 threads). */
void lmm_trace_thread_name(const char *name);

/* CLOCK_MONOTONIC in microseconds. */
uint64_t lmm_trace_now_us(void);
/* lmm_trace_now_us() while recording, else 0 (then lmm_trace_end does nothing). */
uint64_t lmm_trace_begin(void);

/* A complete span ("X") from t0_us to now / to t1_us, with up to two integer
 * arguments (key NULL: none). */
void lmm_trace_end(const char *cat, const char *name, uint64_t t0_us, const char *k1, int64_t v1, const char *k2,
                   int64_t v2);
void lmm_trace_complete(const char *cat, const char *name, uint64_t t0_us, uint64_t t1_us, const char *k1,
                        int64_t v1, const char *k2, int64_t v2);
/* Async spans ("b"/"e"): may overlap and cross threads; matched by (cat, name, id). */
void lmm_trace_async_begin(const char *cat, const char *name, uint64_t id, const char *k1, int64_t v1,
                           const char *k2, int64_t v2);
void lmm_trace_async_end(const char *cat, const char *name, uint64_t id, const char *k1, int64_t v1, const char *k2,
                         int64_t v2);
/* A point in time ("i", thread scope). */
void lmm_trace_instant(const char *cat, const char *name, const char *k1, int64_t v1, const char *k2, int64_t v2);
/* A counter sample ("C"): one track per name. */
void lmm_trace_counter(const char *name, int64_t value);

/* Events recorded so far (including overwritten ones) and how many were overwritten. */
uint64_t lmm_trace_recorded(void);
uint64_t lmm_trace_dropped(void);

/* Writes the events as a Chrome trace JSON object {"traceEvents": [...],
 * "displayTimeUnit": "ms", "otherData": {...}} with this process's pid, its name and
 * its threads' names (json-c). Recording may go on meanwhile. */
int lmm_trace_write(const char *path);

/* Writes $LMM_TRACE_DIR/trace-<process name>.json now (the directory lmm_trace_start_from_env
 * read; "." otherwise): what the exit handler writes, e.g. for `lmlaunch profile`. */
int lmm_trace_write_to_dir(void);

/* When the environment has LMM_TRACE set to anything but "" or "0": starts tracing as
 * default_name (LMM_TRACE_EVENTS: ring size) and, once, registers an exit handler that
 * writes $LMM_TRACE_DIR/trace-<process name>.json (LMM_TRACE_DIR default "."). Returns
 * 1 when tracing, 0 when not asked, -1 on error. */
int lmm_trace_start_from_env(const char *default_name);

#endif
