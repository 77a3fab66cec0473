/* lmm/progress.h — a progress bar for long work (model loading, packing, writing,
 * benchmarks) on stderr, drawn only when stderr is a terminal; silent otherwise, so logs
 * and pipes never see it.
 *
 *     lmm_progress p;
 *     lmm_progress_init(&p, "lmsynth: writing", total_bytes);
 *     for (...) { ...; lmm_progress_add(&p, n); }
 *     lmm_progress_done(&p);
 *
 *   lmsynth: writing  [#############.........]  61%  1.2/2.0 GiB  812 MiB/s  ETA 1s
 *
 * Redraws at most 10 times a second (updates in between cost one clock read).
 * LMM_PROGRESS=0 turns it off, LMM_PROGRESS=1 forces it on (tests). Not thread-safe:
 * one thread updates a bar. */
#ifndef LMM_PROGRESS_H
#define LMM_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    char label[64];
    uint64_t total, done;      /* bytes (total 0: unknown, no percentage or ETA) */
    uint64_t t0_us, last_us;   /* start, last redraw */
    int fd;                    /* 2 */
    bool on;                   /* drawing (stderr is a terminal) */
    bool drawn;                /* something is on the line */
} lmm_progress;

/* Starts a bar; draws nothing yet. on = stderr is a terminal (see LMM_PROGRESS). */
void lmm_progress_init(lmm_progress *p, const char *label, uint64_t total);
/* Sets / adds the bytes done and redraws when 100 ms have passed. */
void lmm_progress_set(lmm_progress *p, uint64_t done);
void lmm_progress_add(lmm_progress *p, uint64_t n);
/* Draws the final state and ends the line ("... 100%  2.0 GiB in 2.4s, 850 MiB/s"). */
void lmm_progress_done(lmm_progress *p);
/* Erases the bar without a final line (on failure, before printing an error). */
void lmm_progress_clear(lmm_progress *p);

/* Formats the line into buf (what would be drawn, without "\r"; width: terminal
 * columns, 0 for 80). For tests and for callers that print elsewhere. */
void lmm_progress_format(const lmm_progress *p, uint64_t now_us, int width, char *buf, int cap);

#endif
