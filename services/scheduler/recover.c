/* services/scheduler/recover.c — the scheduler's side of supervision: seeing a service
 * die, and putting the group back together around its replacement (docs/process-group.md,
 * "Recovery"). lmlaunch restarts the process; this file makes the restart invisible to
 * the clients except in timing:
 *
 * - Death is seen through a pidfd of the pid each service gave in HELLO (polled every
 *   loop turn), or when a send to it fails with EHOSTUNREACH. A service's routing id is
 *   "<name>@<pid>", so what a dead one left in flight is never taken for its successor's.
 * - Loader: its LOADs in flight are lost. When the replacement says HELLO, every slot it
 *   left LOADING goes back to FREE and whatever is not READY is loaded again: the small
 *   tensors, pinned pieces, the streamed pieces between the workers' last SLOT_FREE and
 *   the last issued, the current step's embedding rows. Workers waiting for a slot simply
 *   wait longer.
 * - Compute worker: its KV (the positions of its layers for every sequence) is gone.
 *   The step in flight is abandoned, and every admitted request recomputes its KV from
 *   its own tokens (the longest prefix the cache holds first: requests.c
 *   sched_requests_replay). Prefill of N tokens is bit-identical to N single steps
 *   (docs/exactness.md), so the request goes on with the same logits. The replacement
 *   gets the small tensors through the embedding slot like at start.
 * - Cache: the index is dropped (kv_detach); the group works on without reuse until the
 *   replacement publishes its region (empty, or its verified disk tier).
 * - An abandoned step leaves the streaming slots out of step with the workers' cycle
 *   arithmetic. Once the worker that was running it (if alive) has answered and no LOAD
 *   is in flight, every streaming slot goes back to FREE and streaming restarts at the
 *   first cycle no slot was used for; step ids jump to it.
 * A failed step (STEP_DONE status != 0) is handled as an abandoned step; four in a row
 * are fatal. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lmm/error.h"
#include "sched.h"

int sched_recover_init(sched *s) {
    s->loader_pidfd = s->cache_pidfd = -1;
    for (uint32_t w = 0; w < SCHED_MAX_WORKERS; w++) {
        s->compute_pidfd[w] = -1;
        s->need_small[w] = w < s->o.workers;
    }
    s->abort_wait_worker = -1;
    s->n_streamed = 0;
    s->stream_piece = malloc(((size_t)s->plan.n_pieces + 1) * sizeof *s->stream_piece);
    if (!s->stream_piece) return lmm_error_set("out of memory");
    for (uint32_t i = 0; i < s->plan.n_pieces; i++)
        if (!s->res.pinned[i]) s->stream_piece[s->n_streamed++] = i;
    return 0;
}

void sched_recover_free(sched *s) {
    if (s->loader_pidfd >= 0) close(s->loader_pidfd);
    if (s->cache_pidfd >= 0) close(s->cache_pidfd);
    for (uint32_t w = 0; w < SCHED_MAX_WORKERS; w++)
        if (s->compute_pidfd[w] >= 0) close(s->compute_pidfd[w]);
    s->loader_pidfd = s->cache_pidfd = -1;
    free(s->stream_piece);
    s->stream_piece = NULL;
}

/* ---- watching --------------------------------------------------------------------- */

void sched_watch(sched *s, int *pidfd, uint32_t pid) {
    if (*pidfd >= 0) close(*pidfd);
    *pidfd = -1;
    if (pid == 0 || pid > INT32_MAX) return;
    long fd = syscall(SYS_pidfd_open, (pid_t)pid, 0);
    if (fd < 0) { /* another pid namespace or machine: only failed sends tell then */
        sched_log(s, "cannot watch pid %u: %s", pid, strerror(errno));
        return;
    }
    *pidfd = (int)fd;
}

bool sched_watch_dead(int pidfd) {
    if (pidfd < 0) return false;
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLIN | POLLHUP | POLLERR));
}

void sched_watch_poll(sched *s) {
    if (s->loader_up && sched_watch_dead(s->loader_pidfd)) sched_loader_lost(s);
    if (s->cache_up && sched_watch_dead(s->cache_pidfd)) sched_cache_lost(s);
    for (uint32_t w = 0; w < s->o.workers; w++)
        if (s->compute_up[w] && sched_watch_dead(s->compute_pidfd[w])) sched_compute_lost(s, w);
}

static void unwatch(int *pidfd) {
    if (*pidfd >= 0) close(*pidfd);
    *pidfd = -1;
}

/* ---- losses ----------------------------------------------------------------------- */

void sched_loader_lost(sched *s) {
    if (!s->loader_up) return;
    s->loader_up = false;
    s->loader_lost = true;
    s->services_lost++;
    unwatch(&s->loader_pidfd);
    fprintf(stderr, "lmm-scheduler: the loader is gone; its loads in flight go to its replacement\n");
}

void sched_cache_lost(sched *s) {
    if (!s->cache_up) return;
    s->cache_up = false;
    s->cache_settled = false;
    s->services_lost++;
    unwatch(&s->cache_pidfd);
    kv_detach(s); /* requests that counted on cached blocks compute them */
    fprintf(stderr, "lmm-scheduler: the cache is gone; serving without KV reuse until it is back\n");
}

void sched_compute_lost(sched *s, uint32_t w) {
    if (w >= s->o.workers || !s->compute_up[w]) return;
    s->compute_up[w] = false;
    s->n_compute_up--;
    s->services_lost++;
    unwatch(&s->compute_pidfd[w]);
    /* Its replacement needs the small tensors again. */
    s->need_small[w] = true;
    s->small_done = false;
    s->small_issued = false;
    s->small_loaded = false;
    char why[64];
    snprintf(why, sizeof why, "compute.%u is gone", w);
    fprintf(stderr, "lmm-scheduler: %s; the KV of every request is recomputed on its replacement\n", why);
    if (s->step_running) sched_step_abort(s, why);
    else sched_requests_replay(s);
}

/* ---- the loader's replacement ------------------------------------------------------ */

static void slot_to_free(lmm_shm_ring *r, uint32_t slot) {
    lmm_slot_state st = lmm_shm_ring_slot_state(r, slot);
    if (st != LMM_SLOT_FREE) lmm_shm_ring_slot_transition(r, slot, st, LMM_SLOT_FREE);
}

static bool slot_holds(const sched *s, uint32_t slot, uint64_t tag) {
    lmm_slot_state st = lmm_shm_ring_slot_state(&s->ring, slot);
    return (st == LMM_SLOT_READY || st == LMM_SLOT_IN_USE) && lmm_shm_ring_slot_meta(&s->ring, slot)->tag == tag;
}

int sched_loader_rejoined(sched *s) {
    if (!s->loader_lost) return 0;
    s->loader_lost = false;
    /* Nobody finishes what the dead loader began. */
    for (uint32_t i = 0; i < s->n_slots; i++)
        if (lmm_shm_ring_slot_state(&s->ring, i) == LMM_SLOT_LOADING) slot_to_free(&s->ring, i);
    /* Small tensors */
    if (s->small_issued && !s->small_loaded) {
        if (slot_holds(s, s->embd_slot, LMM_TAG_SMALL)) s->small_loaded = true;
        else s->small_issued = false, s->embd_busy = false;
    }
    /* Pinned pieces: count what is there; the pump loads the rest. */
    uint32_t have = 0;
    for (uint32_t i = 0; i < s->plan.n_pieces; i++)
        if (s->res.pinned[i] && slot_holds(s, s->res.slot[i], lmm_tag_pinned(i))) have++;
    s->pinned_issued = s->pinned_loaded = have;
    s->pinned_next = 0;
    /* Streamed pieces issued and not yet freed by the workers. */
    uint32_t S = s->n_streamed, again = 0;
    for (uint64_t k = s->stream_freed; S > 0 && k < s->stream_issued; k++) {
        uint32_t slot = lmm_group_stream_slot(s->params, k);
        uint32_t piece = s->stream_piece[k % S];
        uint64_t tag = lmm_tag_stream(k / S, piece);
        if (slot_holds(s, slot, tag)) continue;
        if (sched_load_piece(s, piece, slot, tag)) return -1;
        again++;
    }
    s->stream_loaded = s->stream_issued - again;
    /* The current step's embedding rows. */
    if (s->embd_loading) {
        if (!s->step_running || slot_holds(s, s->embd_slot, lmm_tag_embd(s->step_id))) s->embd_loading = false;
        else if (sched_send_embd_load(s)) return -1;
    }
    fprintf(stderr, "lmm-scheduler: the loader is back; %u streamed loads re-issued, %u of %u pinned pieces in place\n",
            again, have, s->res.n_pinned);
    return 0;
}

/* ---- the watchdog ------------------------------------------------------------------------ */

void sched_watchdog(sched *s) {
    if (!s->step_running || s->o.step_timeout_ms == 0) return;
    uint32_t w = s->step_worker;
    if (w >= s->o.workers || !s->compute_up[w] || s->compute_pid[w] == 0) return;
    uint64_t now = sched_now_us();
    if (now - s->step_progress_us < (uint64_t)s->o.step_timeout_ms * 1000u) return;
    fprintf(stderr,
            "lmm-scheduler: compute.%u (pid %u) gave no sign of life for %u s during step %" PRIu64
            " (--step-timeout-ms); killing it so that it is restarted\n",
            w, s->compute_pid[w], s->o.step_timeout_ms / 1000, s->step_id);
    kill((pid_t)s->compute_pid[w], SIGKILL);
    s->step_progress_us = now; /* the pidfd reports the death on a later turn */
}

/* ---- abandoned steps ------------------------------------------------------------------- */

void sched_step_abort(sched *s, const char *why) {
    if (s->step_running) {
        uint32_t w = s->step_worker;
        s->abort_wait_worker = w < s->o.workers && s->compute_up[w] ? (int)w : -1;
        s->step_running = false;
        fprintf(stderr, "lmm-scheduler: step %" PRIu64 " abandoned (%s); recomputing the KV of the active requests\n",
                s->step_id, why);
    }
    s->recovering = true;
    s->recoveries++;
    sched_requests_replay(s);
}

void sched_recover_pump(sched *s) {
    if (!s->recovering) return;
    if (s->abort_wait_worker >= 0) {
        if (s->compute_up[s->abort_wait_worker]) return; /* still running the old step */
        s->abort_wait_worker = -1;
    }
    /* A live loader must finish what it is loading before the slots change hands. */
    if (s->loader_up && (s->stream_issued != s->stream_loaded || s->embd_loading ||
                         (s->small_issued && !s->small_loaded) || s->pinned_issued != s->pinned_loaded))
        return;
    kv_step_abort(s);
    if (!s->loader_up) /* dead loads: sched_loader_rejoined loads again what is missing */
        for (uint32_t i = 0; i < s->n_slots; i++)
            if (lmm_shm_ring_slot_state(&s->ring, i) == LMM_SLOT_LOADING) slot_to_free(&s->ring, i);
    for (uint32_t i = s->res.n_pinned; i < s->res.n_pinned + s->res.n_stream; i++) slot_to_free(&s->ring, i);
    if (!slot_holds(s, s->embd_slot, LMM_TAG_SMALL)) {
        slot_to_free(&s->ring, s->embd_slot);
        s->embd_busy = false;
    }
    s->embd_loading = false;
    uint32_t S = s->n_streamed;
    if (S > 0) {
        uint64_t c = (s->stream_issued + S - 1) / S;
        if (c < s->next_cycle) c = s->next_cycle;
        s->stream_issued = s->stream_loaded = s->stream_freed = c * S;
        lmm_predictor_restart(s->pred, c);
        s->next_cycle = c;
    }
    s->recovering = false;
    fprintf(stderr, "lmm-scheduler: streaming slots reset; the next step is %" PRIu64 "\n", s->next_cycle);
}
