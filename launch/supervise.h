/* launch/supervise.h — when lmlaunch restarts a service that died: the policy, as pure
 * functions of a service's history and the time (launch/group.c applies it).
 *
 * - Backoff: 100 ms before the first restart of a service, doubled with each consecutive
 *   crash up to 5 s; a service that has not crashed for 60 s starts again at 100 ms.
 * - Crash-loop limit: a service that crashed more than 5 times within 60 s is not
 *   restarted: the group is stopped and the failure reported.
 * - A restart asked for (`lmlaunch restart SERVICE`) is no crash: it counts in
 *   `restarts` (status) but neither in the backoff nor towards the limit. */
#ifndef LMM_LAUNCH_SUPERVISE_H
#define LMM_LAUNCH_SUPERVISE_H

#include <stdbool.h>
#include <stdint.h>

#define SUPERVISE_BACKOFF_FIRST_MS 100u
#define SUPERVISE_BACKOFF_MAX_MS 5000u
#define SUPERVISE_QUIET_MS 60000u   /* no crash for this long: the backoff starts again */
#define SUPERVISE_WINDOW_MS 60000u  /* the crash-loop window */
#define SUPERVISE_MAX_CRASHES 5u    /* more crashes than this within the window: give up */

typedef struct {
    uint64_t crash_ms[SUPERVISE_MAX_CRASHES + 1]; /* times of the newest crashes, oldest first */
    unsigned n_crashes;                            /* entries of crash_ms in use */
    unsigned streak;                               /* consecutive crashes (the backoff) */
    unsigned restarts;                             /* restarts so far: after crashes and on request */
} supervise_history;

typedef struct {
    bool give_up;       /* the crash-loop limit: do not restart */
    unsigned delay_ms;  /* else: wait this long, then restart */
    unsigned in_window; /* crashes within the last SUPERVISE_WINDOW_MS, this one included */
} supervise_verdict;

/* The backoff before the restart after the n-th consecutive crash (n >= 1): 100 ms
 * doubled n - 1 times, at most 5 s. */
unsigned supervise_backoff_ms(unsigned n);
/* Records a crash at now_ms (any monotonic clock in ms, never decreasing) and says what
 * to do about it. */
supervise_verdict supervise_history_add_crash(supervise_history *h, uint64_t now_ms);
/* Counts one restart (after a crash the verdict allowed, or one asked for); returns the
 * count so far. */
unsigned supervise_history_add_restart(supervise_history *h);

#endif
