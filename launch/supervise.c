/* launch/supervise.c — the restart policy of launch/supervise.h: backoff and crash-loop
 * limit, from a service's history of crashes. No clock, no I/O: the caller passes the time. */
#include "supervise.h"

#include <string.h>

unsigned supervise_backoff_ms(unsigned n) {
    unsigned ms = SUPERVISE_BACKOFF_FIRST_MS;
    for (unsigned i = 1; i < n && ms < SUPERVISE_BACKOFF_MAX_MS; i++) ms *= 2;
    return ms < SUPERVISE_BACKOFF_MAX_MS ? ms : SUPERVISE_BACKOFF_MAX_MS;
}

supervise_verdict supervise_history_add_crash(supervise_history *h, uint64_t now_ms) {
    /* a quiet spell since the last crash: the backoff starts again */
    if (h->n_crashes > 0 && now_ms - h->crash_ms[h->n_crashes - 1] >= SUPERVISE_QUIET_MS) h->streak = 0;
    /* keep the crashes of the window only, then add this one (the oldest goes when full) */
    unsigned keep = 0;
    for (unsigned i = 0; i < h->n_crashes; i++)
        if (now_ms - h->crash_ms[i] < SUPERVISE_WINDOW_MS) h->crash_ms[keep++] = h->crash_ms[i];
    if (keep == SUPERVISE_MAX_CRASHES + 1) {
        memmove(h->crash_ms, h->crash_ms + 1, (size_t)(keep - 1) * sizeof *h->crash_ms);
        keep--;
    }
    h->crash_ms[keep++] = now_ms;
    h->n_crashes = keep;
    h->streak++;
    supervise_verdict v;
    v.in_window = keep;
    v.give_up = keep > SUPERVISE_MAX_CRASHES;
    v.delay_ms = v.give_up ? 0 : supervise_backoff_ms(h->streak);
    return v;
}

unsigned supervise_history_add_restart(supervise_history *h) { return ++h->restarts; }
