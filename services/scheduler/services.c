/* services/scheduler/services.c — the scheduler's side of the other services.
 *
 * - HELLO from the loader, each compute worker and the cache: HELLO_ACK with the model,
 *   the two shared-memory regions, the worker's layer range, max_batch and piece_bytes.
 * - LOADs: the small tensors into the embedding slot (every worker copies them, then
 *   says SLOT_FREE; after the last one the slot is evicted and serves embedding rows),
 *   every pinned piece once, streamed pieces ahead of the workers (the predictor says
 *   which, the adaptive depth how many in flight, group_layout.h which slot), and each
 *   step's embedding rows.
 * - The STEP chain: compute.0 .. compute.N-1 in turn, each on its layer range; the last
 *   one's logits are sampled by requests.c.
 * A failed load is fatal for the group: every request gets an ERROR, the scheduler exits
 * 1 and lmlaunch stops the rest. A service that dies, or a failed step, is repaired
 * (recover.c): the replacement's HELLO is taken here. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmm/error.h"
#include "lmm/trace.h"
#include "sched.h"

/* ---- peers ---------------------------------------------------------------------------- */

static bool peer_eq(const lmm_service_peer *a, const lmm_service_peer *b) {
    return a->len == b->len && memcmp(a->id, b->id, a->len) == 0;
}

/* "loader", "compute.3", "cache" or "an unknown service" */
static const char *peer_name(const sched *s, const lmm_service_peer *p, char *buf, size_t cap) {
    if (s->loader_up && peer_eq(p, &s->loader)) return "loader";
    if (s->cache_up && peer_eq(p, &s->cache)) return "cache";
    for (uint32_t w = 0; w < s->o.workers; w++)
        if (s->compute_up[w] && peer_eq(p, &s->compute[w])) {
            snprintf(buf, cap, "compute.%u", w);
            return buf;
        }
    return "an unknown service";
}

static int worker_of(const sched *s, const lmm_service_peer *p) {
    for (uint32_t w = 0; w < s->o.workers; w++)
        if (s->compute_up[w] && peer_eq(p, &s->compute[w])) return (int)w;
    return -1;
}

static int fatal(sched *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fatal(sched *s, const char *fmt, ...) {
    char line[LMM_PROTO_MAX_ERROR + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    sched_fail_all(s, line);
    s->fatal = true;
    return lmm_error_set("%s", line);
}

/* ---- HELLO ---------------------------------------------------------------------------- */

static int refuse(sched *s, const lmm_service_peer *from, const lmm_msg *hello, const char *why) {
    lmm_msg ack;
    lmm_service_hello_reply(hello, LMM_PROTO_ROLE_SCHEDULER, &ack);
    ack.hello_ack.ok = false;
    snprintf(ack.hello_ack.error, sizeof ack.hello_ack.error, "%s", why);
    fprintf(stderr, "lmm-scheduler: refused HELLO from %s '%s': %s\n", lmm_proto_role_name(hello->hello.role),
            hello->hello.name, why);
    return lmm_service_send(&s->ssock, from, &ack) != 0 && errno != EHOSTUNREACH ? -1 : 0;
}

static int service_hello(sched *s, const lmm_service_peer *from, const lmm_msg *m) {
    const lmm_msg_hello *h = &m->hello;
    lmm_msg ack;
    if (lmm_service_hello_reply(m, LMM_PROTO_ROLE_SCHEDULER, &ack) != 0)
        return lmm_service_send(&s->ssock, from, &ack) != 0 && errno != EHOSTUNREACH ? -1 : 0;
    lmm_msg_hello_ack *a = &ack.hello_ack;
    char why[160];
    switch (h->role) {
    case LMM_PROTO_ROLE_LOADER:
        /* A loader whose predecessor still runs is a duplicate; one whose predecessor
         * died (not yet seen by the pidfd poll) is its replacement. */
        if (s->loader_up && !sched_watch_dead(s->loader_pidfd))
            return refuse(s, from, m, "a loader has already joined this group");
        if (s->loader_up) sched_loader_lost(s);
        s->loader = *from;
        s->loader_up = true;
        sched_watch(s, &s->loader_pidfd, h->pid);
        break;
    case LMM_PROTO_ROLE_CACHE:
        /* A cache that says HELLO again restarted: its region is new (and empty, or
         * holding its verified disk tier). */
        if (s->cache_up && !sched_watch_dead(s->cache_pidfd))
            return refuse(s, from, m, "a cache has already joined this group");
        if (s->cache_up) sched_cache_lost(s);
        s->cache = *from;
        sched_watch(s, &s->cache_pidfd, h->pid);
        s->cache_settled = false;
        /* Its region's size: --kv-cache (counted in the budget), else under --mem-budget
         * what the residency plan leaves (1: less than a block, no reuse), else the
         * cache's own --kv-budget. */
        if (s->o.kv_cache) a->kv_budget = s->o.kv_cache;
        else if (s->o.mem_budget)
            a->kv_budget = s->o.mem_budget > s->res.used_bytes ? s->o.mem_budget - s->res.used_bytes : 1;
        if (s->o.no_prefix_cache) a->kv_budget = 1;
        s->cache_up = true;
        break;
    case LMM_PROTO_ROLE_COMPUTE: {
        unsigned w;
        char tail;
        if (sscanf(h->name, "compute.%u%c", &w, &tail) != 1 || w >= s->o.workers) {
            snprintf(why, sizeof why, "'%s' is not compute.0 .. compute.%u", h->name, s->o.workers - 1);
            return refuse(s, from, m, why);
        }
        if (s->compute_up[w] && !sched_watch_dead(s->compute_pidfd[w])) {
            snprintf(why, sizeof why, "compute.%u has already joined this group", w);
            return refuse(s, from, m, why);
        }
        if (s->compute_up[w]) sched_compute_lost(s, w);
        s->compute[w] = *from;
        s->compute_up[w] = true;
        s->n_compute_up++;
        sched_watch(s, &s->compute_pidfd[w], h->pid);
        s->compute_pid[w] = h->pid;
        a->layer_begin = s->layer_begin[w];
        a->layer_end = s->layer_end[w];
        a->max_batch = s->o.max_batch;
        break;
    }
    default:
        snprintf(why, sizeof why, "role %s does not connect to the services endpoint", lmm_proto_role_name(h->role));
        return refuse(s, from, m, why);
    }
    snprintf(a->model, sizeof a->model, "%s", s->model_path);
    snprintf(a->weights_shm, sizeof a->weights_shm, "%s", s->ring.name);
    snprintf(a->act_shm, sizeof a->act_shm, "%s", s->act.name);
    a->piece_bytes = s->plan.piece_bytes;
    sched_log(s, "%s '%s' (pid %u) joined", lmm_proto_role_name(h->role), h->name, h->pid);
    if (lmm_service_send(&s->ssock, from, &ack)) return -1;
    if (h->role == LMM_PROTO_ROLE_LOADER) return sched_loader_rejoined(s);
    return 0;
}

/* ---- LOADs ---------------------------------------------------------------------------- */

int sched_send_load(sched *s, uint32_t slot, uint64_t tag, uint32_t n, const uint32_t *file, const uint64_t *off,
                    const uint64_t *len, const uint64_t *slot_off) {
    lmm_msg m;
    lmm_proto_msg_init(&m, LMM_MSG_LOAD);
    m.load.req_id = ++s->next_req_id;
    m.load.slot = slot;
    m.load.tag = tag;
    m.load.n_segments = n;
    m.load.file = file;
    m.load.offset = off;
    m.load.length = len;
    m.load.slot_offset = slot_off;
    if (lmm_service_send(&s->ssock, &s->loader, &m)) {
        if (errno != EHOSTUNREACH) return fatal(s, "sending LOAD to the loader: %s", lmm_error_get());
        /* The loader is gone: this LOAD counts as sent; the replacement gets it again
         * (sched_loader_rejoined looks at the slots). */
        sched_loader_lost(s);
    }
    return 0;
}

int sched_load_piece(sched *s, uint32_t i, uint32_t slot, uint64_t tag) {
    const lmm_plan_piece *pc = &s->plan.pieces[i];
    for (uint32_t j = 0; j < pc->n_segments; j++) {
        const lmm_plan_segment *g = &s->plan.segments[pc->first_segment + j];
        s->seg_file[j] = g->file;
        s->seg_off[j] = g->file_offset;
        s->seg_len[j] = g->nbytes;
        s->seg_slot[j] = g->slot_offset;
    }
    return sched_send_load(s, slot, tag, pc->n_segments, s->seg_file, s->seg_off, s->seg_len, s->seg_slot);
}

void sched_pump_loads(sched *s) {
    if (!s->loader_up || s->fatal) return;
    if (!s->small_issued && !s->small_done) {
        /* Into the embedding slot: at start, or for a restarted worker once no step
         * uses the slot (it may still hold them: then nothing to load). */
        uint32_t n = s->plan.n_small;
        lmm_slot_state st = lmm_shm_ring_slot_state(&s->ring, s->embd_slot);
        for (uint32_t i = 0; i < n; i++) s->seg_file[i] = s->desc.tensors[s->plan.small[i]].file;
        if (n == 0) {
            s->small_loaded = s->small_done = true;
            s->small_issued = true;
        } else if (st == LMM_SLOT_READY && lmm_shm_ring_slot_meta(&s->ring, s->embd_slot)->tag == LMM_TAG_SMALL) {
            s->small_issued = s->small_loaded = true;
            s->embd_busy = true;
        } else if (st == LMM_SLOT_FREE && !s->step_running && !s->embd_loading) {
            if (sched_send_load(s, s->embd_slot, LMM_TAG_SMALL, n, s->seg_file, s->small_off, s->small_len,
                                s->small_slot))
                return;
            s->small_issued = true;
            s->embd_busy = true;
        }
    }
    /* Pinned pieces: all of them, 16 in flight (the loader takes 64); after a loader
     * restart only those whose slot does not hold them. */
    while (s->pinned_next < s->plan.n_pieces && s->pinned_issued - s->pinned_loaded < 16) {
        uint32_t i = s->pinned_next++;
        if (!s->res.pinned[i]) continue;
        uint32_t slot = s->res.slot[i];
        if (lmm_shm_ring_slot_state(&s->ring, slot) == LMM_SLOT_READY &&
            lmm_shm_ring_slot_meta(&s->ring, slot)->tag == lmm_tag_pinned(i))
            continue; /* counted by sched_loader_rejoined */
        if (sched_load_piece(s, i, slot, lmm_tag_pinned(i))) return;
        s->pinned_issued++;
        if (!s->loader_up) return;
    }
    /* After an abandoned step, once its worker is done: no new streamed LOAD until the
     * streaming slots are reset (recover.c). */
    if (s->recovering && s->abort_wait_worker < 0) return;
    /* Streamed pieces, in the predictor's order, the k-th into slot n_pinned + k % n_stream:
     * while that slot is free (the worker freed load k - n_stream) and fewer than `depth`
     * loads are in flight. */
    uint32_t ns = s->res.n_stream;
    while (ns > 0 && s->stream_issued - s->stream_freed < ns &&
           s->stream_issued - s->stream_loaded < lmm_prefetch_depth_get(&s->depth)) {
        lmm_access a;
        if (lmm_predictor_next(s->pred, &a, 1) != 1) break;
        uint32_t slot = lmm_group_stream_slot(s->params, s->stream_issued);
        if (sched_load_piece(s, a.piece, slot, lmm_tag_stream(a.cycle, a.piece))) return;
        s->stream_issued++;
        if (!s->loader_up) return;
    }
}

static const char *tag_what(const sched *s, uint64_t tag, char *buf, size_t cap) {
    uint64_t kind = lmm_tag_kind(tag);
    if (tag == LMM_TAG_SMALL)
        snprintf(buf, cap, "the small tensors");
    else if (kind == LMM_TAG_EMBD)
        snprintf(buf, cap, "the embedding rows of step %" PRIu64, (uint64_t)(tag & ((1ull << 61) - 1)));
    else {
        uint32_t piece = (uint32_t)(tag & 0xffffffffu);
        uint32_t layer = piece < s->plan.n_pieces ? s->plan.pieces[piece].layer : 0;
        if (layer >= s->plan.n_layers)
            snprintf(buf, cap, "piece %u (output head)", piece);
        else
            snprintf(buf, cap, "piece %u (layer %u)", piece, layer);
    }
    return buf;
}

static int on_loaded(sched *s, const lmm_msg_loaded *l) {
    char what[96];
    if (l->status != 0)
        return fatal(s, "the loader could not read %s: %s", tag_what(s, l->tag, what, sizeof what),
                     l->error[0] ? l->error : strerror((int)l->status));
    s->bytes_read += l->bytes;
    s->step_progress_us = sched_now_us();
    uint64_t kind = lmm_tag_kind(l->tag);
    if (kind == LMM_TAG_EMBD && l->tag != LMM_TAG_SMALL) {
        s->embd_loading = false;
    } else if (l->tag == LMM_TAG_SMALL) {
        s->small_loaded = true;
    } else if (kind == LMM_TAG_PINNED) {
        s->pinned_loaded++;
    } else if (kind == LMM_TAG_STREAM) {
        s->stream_loaded++;
        lmm_prefetch_depth_read(&s->depth, (double)l->usec);
    }
    return 0;
}

static int on_slot_free(sched *s, const lmm_service_peer *from, uint32_t slot) {
    char nb[32];
    s->step_progress_us = sched_now_us();
    if (slot == s->embd_slot) {
        if (!s->small_done) {
            /* The worker saw the small tensors READY; the loader's LOADED may still be on
             * its way to us (another socket), so do not wait for it here. */
            int w = worker_of(s, from);
            if (w >= 0) s->need_small[w] = false;
            bool waiting = false;
            for (uint32_t i = 0; i < s->o.workers; i++) waiting |= s->need_small[i];
            if (!waiting) {
                /* Every worker has its copy: the slot now serves embedding rows. */
                if (lmm_shm_ring_slot_evict(&s->ring, slot)) return fatal(s, "%s", lmm_error_get());
                s->small_done = true;
                s->embd_busy = false;
            }
        } else {
            s->embd_busy = false;
        }
        return 0;
    }
    uint32_t ns = s->res.n_stream, first = s->res.n_pinned;
    if (ns > 0 && slot >= first && slot < first + ns) {
        uint32_t expect = lmm_group_stream_slot(s->params, s->stream_freed);
        if (slot != expect || s->stream_freed >= s->stream_issued)
            return fatal(s, "%s freed slot %u out of order (slot %u was next)", peer_name(s, from, nb, sizeof nb), slot,
                         expect);
        s->stream_freed++;
        return 0;
    }
    fprintf(stderr, "lmm-scheduler: %s freed slot %u, which is not a streamed slot\n", peer_name(s, from, nb, sizeof nb),
            slot);
    return 0;
}

/* ---- readiness ------------------------------------------------------------------------- */

void sched_update_ready(sched *s, char *waiting, size_t cap) {
    const char *w = NULL;
    char buf[32];
    if (!s->loader_up)
        w = "loader";
    else {
        for (uint32_t i = 0; i < s->o.workers && !w; i++)
            if (!s->compute_up[i]) {
                snprintf(buf, sizeof buf, "compute.%u", i);
                w = buf;
            }
        /* The cache is needed to start; later the group works on without it (no
         * reuse, same output) while it restarts. */
        if (!w && !s->cache_up && !s->was_ready) w = "cache";
        if (!w && !s->cache_settled && !s->was_ready) w = "cache region";
        if (!w && !s->small_done) w = "small tensors";
        if (!w && s->pinned_loaded < s->res.n_pinned) w = "pinned weights";
        if (!w && s->recovering) w = "recovery";
    }
    if (waiting) snprintf(waiting, cap, "%s", w ? w : "");
    bool was = s->ready;
    s->ready = w == NULL;
    if (s->ready && !was) {
        /* The region names stay while the scheduler lives: a restarted service maps
         * them again. lmlaunch unlinks /dev/shm/lmm-<pid>-* of every child it reaps, and
         * any later lmlaunch sweeps those of dead pids (docs/process-group.md). */
        if (!s->was_ready)
            sched_log(s, "ready: %u pinned pieces loaded, %u workers", s->res.n_pinned, s->o.workers);
        else
            sched_log(s, "ready again after recovery");
        s->was_ready = true;
    }
}

/* ---- the STEP chain -------------------------------------------------------------------- */

static int send_step(sched *s, uint32_t w) {
    lmm_msg m;
    lmm_proto_msg_init(&m, LMM_MSG_STEP);
    lmm_msg_step *st = &m.step;
    st->step_id = s->step_id;
    st->n_tokens = s->step_n;
    st->seq = s->step_seq;
    st->tokens = s->step_tokens;
    st->pos = s->step_pos;
    st->n_out = s->step_n_out;
    st->out = s->step_out;
    st->layer_begin = s->layer_begin[w];
    st->layer_end = s->layer_end[w];
    st->act_offset = s->params->x_offset;
    if (s->step_n_kv_load || s->step_n_kv_store) {
        snprintf(st->kv_shm, sizeof st->kv_shm, "%s", s->kv.ring.name);
        st->kv_block_tokens = s->kv.info.block_tokens;
        st->n_kv_load = s->step_n_kv_load;
        st->kv_load = s->step_kv_load;
        st->n_kv_store = s->step_n_kv_store;
        st->kv_store = s->step_kv_store;
    }
    s->step_worker = w;
    s->step_progress_us = sched_now_us();
    if (lmm_service_send(&s->ssock, &s->compute[w], &m)) {
        if (errno != EHOSTUNREACH) return fatal(s, "sending STEP to compute.%u: %s", w, lmm_error_get());
        sched_compute_lost(s, w); /* gone before its pidfd said so: abandons the step */
    }
    return 0;
}

int sched_send_embd_load(sched *s) {
    /* The step's embedding rows: distinct tokens packed as group_layout.h says, so that
     * compute.0 finds them without being told. */
    uint32_t nd = lmm_group_distinct(s->step_tokens, s->step_n, s->distinct, s->row_of, s->hash, s->hash_cap);
    for (uint32_t j = 0; j < nd; j++) {
        s->seg_file[j] = s->plan.embd.file;
        s->seg_off[j] = lmm_plan_embd_offset(&s->plan, s->distinct[j]);
        s->seg_len[j] = s->plan.embd.row_bytes;
    }
    uint64_t used = lmm_group_pack(s->seg_off, s->seg_len, nd, s->seg_slot);
    if (used > s->slot_bytes) return fatal(s, "embedding rows of step %" PRIu64 " exceed the slot", s->step_id);
    s->embd_loading = true;
    return sched_send_load(s, s->embd_slot, lmm_tag_embd(s->step_id), nd, s->seg_file, s->seg_off, s->seg_len,
                           s->seg_slot);
}

int sched_step_launch(sched *s) {
    s->step_id = s->next_cycle++;
    if (sched_send_embd_load(s)) return -1;
    s->embd_busy = true;
    s->step_running = true;
    s->step_compute_us = 0;
    s->step_wait_us = 0;
    s->step_t0_us = sched_now_us();
    s->step_trace_t0 = lmm_trace_begin();
    s->step_bytes0 = s->bytes_read;
    return send_step(s, 0);
}

static int on_step_done(sched *s, const lmm_service_peer *from, const lmm_msg_step_done *d) {
    int w = worker_of(s, from);
    if (s->recovering && w >= 0 && w == s->abort_wait_worker) {
        s->abort_wait_worker = -1; /* the abandoned step is over: the reset may go on */
        return 0;
    }
    if (!s->step_running || w != (int)s->step_worker || d->step_id != s->step_id) {
        fprintf(stderr, "lmm-scheduler: unexpected STEP_DONE %" PRIu64 " from compute.%d\n", d->step_id, w);
        return 0;
    }
    if (d->status != 0) {
        /* Recomputed from the tokens (KV replay); a step that keeps failing is fatal. */
        char why[128];
        snprintf(why, sizeof why, "compute.%d failed step %" PRIu64 " (%s)", w, d->step_id, strerror((int)d->status));
        if (++s->step_failures > 3) return fatal(s, "%s, the 4th failed step in a row", why);
        sched_step_abort(s, why);
        s->abort_wait_worker = -1; /* it answered: it is done with the step */
        return 0;
    }
    s->step_failures = 0;
    s->step_compute_us += d->usec;
    s->step_wait_us += d->wait_usec;
    if ((uint32_t)w + 1 < s->o.workers) return send_step(s, (uint32_t)w + 1);
    /* Compute time per streamed piece: the pinned pieces between two streamed ones hide
     * the reads too, so the whole step's compute is spread over the S streamed pieces. */
    uint32_t streamed = s->plan.n_pieces - s->res.n_pinned;
    if (streamed > 0) lmm_prefetch_depth_compute(&s->depth, (double)s->step_compute_us / streamed);
    s->step_running = false;
    s->steps_run++;
    s->step_wall_us = sched_now_us() - s->step_t0_us;
    s->busy_us += s->step_wall_us;
    lmm_predictor_observe(s->pred, s->step_id);
    kv_step_done(s);
    lmm_trace_end("sched", "step", s->step_trace_t0, "step", (int64_t)s->step_id, "tokens", s->step_n);
    uint64_t t0 = lmm_trace_begin();
    sched_step_finished(s);
    lmm_trace_end("sched", "sample", t0, "tokens", s->step_n_out, NULL, 0);
    return 0;
}

/* ---- dispatch -------------------------------------------------------------------------- */

int sched_services_message(sched *s, const lmm_service_peer *from, lmm_msg *m) {
    char nb[32];
    switch (m->type) {
    case LMM_MSG_HELLO:
        return service_hello(s, from, m);
    case LMM_MSG_LOADED:
        if (!s->loader_up || !peer_eq(from, &s->loader)) break;
        if (on_loaded(s, &m->loaded)) return s->fatal ? 0 : -1;
        return 0;
    case LMM_MSG_SLOT_FREE:
        if (worker_of(s, from) < 0) break;
        if (on_slot_free(s, from, m->slot_free.slot)) return s->fatal ? 0 : -1;
        return 0;
    case LMM_MSG_STEP_DONE:
        if (worker_of(s, from) < 0) break;
        if (on_step_done(s, from, &m->step_done)) return s->fatal ? 0 : -1;
        return 0;
    case LMM_MSG_ERROR:
        fprintf(stderr, "lmm-scheduler: %s: %s\n", peer_name(s, from, nb, sizeof nb), m->error.message);
        return 0;
    case LMM_MSG_ACK:
        /* the cache has created (or given up on) its block region: docs/kv-cache.md */
        if (s->cache_up && peer_eq(from, &s->cache) && m->ack.of == LMM_MSG_HELLO_ACK) {
            s->cache_settled = true;
            kv_try_attach(s);
        }
        return 0;
    case LMM_MSG_STATUS_REPLY:
        return 0;
    case LMM_MSG_PING: {
        lmm_msg a;
        lmm_proto_msg_init(&a, LMM_MSG_ACK);
        a.ack.of = LMM_MSG_PING;
        lmm_service_send(&s->ssock, from, &a);
        return 0;
    }
    default:
        break;
    }
    char why[128];
    snprintf(why, sizeof why, "the scheduler does not take %s from %s here", lmm_proto_type_name(m->type),
             peer_name(s, from, nb, sizeof nb));
    lmm_service_send_error(&s->ssock, from, LMM_PROTO_E_UNEXPECTED, 0, why);
    return 0;
}

void sched_shutdown_services(sched *s) {
    lmm_msg m;
    lmm_proto_msg_init(&m, LMM_MSG_SHUTDOWN);
    if (s->loader_up) lmm_service_send(&s->ssock, &s->loader, &m);
    if (s->cache_up) lmm_service_send(&s->ssock, &s->cache, &m);
    for (uint32_t w = 0; w < s->o.workers; w++)
        if (s->compute_up[w]) lmm_service_send(&s->ssock, &s->compute[w], &m);
}
