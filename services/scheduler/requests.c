/* services/scheduler/requests.c — the scheduler's side of the clients.
 *
 * GENERATE is checked and tokenized at once (an ERROR with its req_id names any problem:
 * a prompt that is not UTF-8 or does not fit the context, a full queue, a req_id already
 * running), then queued. Batching: up to max_seqs requests are admitted (each gets a
 * sequence id = a KV cache slot in the workers, and its own lmm_sampler); each step is
 * either one prefill chunk of one request (its prompt, up to max_batch tokens) or one
 * decode token for EVERY admitted request, so one pass over the weights serves them all.
 * Prefill and decode steps alternate while both are waiting. After a step the logits of
 * its `out` rows are sampled and streamed: TOKEN (with the logits when asked), then DONE
 * when the request ends (length, EOS, context, cancelled). The stop rules and the order
 * of sampler calls are those of `lmlaunch run`, so a request's tokens and logits are
 * exactly the in-process run's. Undecodable input never reaches here: lmm_service_recv
 * answers it with an ERROR (bad message, version, limit) and the loop goes on. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmm/error.h"
#include "sched.h"

static bool peer_eq(const lmm_service_peer *a, const lmm_service_peer *b) {
    return a->len == b->len && memcmp(a->id, b->id, a->len) == 0;
}

int sched_requests_init(sched *s) {
    s->reqs = calloc(s->o.max_queue, sizeof *s->reqs);
    s->seq_used = calloc(s->o.max_seqs, sizeof *s->seq_used);
    s->logits_scratch = malloc((size_t)s->n_vocab * sizeof *s->logits_scratch);
    s->text = malloc(LMM_PROTO_MAX_TEXT_BYTES + 1);
    if (!s->reqs || !s->seq_used || !s->logits_scratch || !s->text) return lmm_error_set("out of memory");
    for (uint32_t i = 0; i < s->o.max_queue; i++) {
        s->reqs[i].ids = malloc((size_t)s->n_ctx * sizeof *s->reqs[i].ids);
        s->reqs[i].kv_keys = malloc(((size_t)s->n_ctx + 1) * sizeof *s->reqs[i].kv_keys);
        s->reqs[i].kv_slots = malloc(((size_t)s->n_ctx + 1) * sizeof *s->reqs[i].kv_slots);
        if (!s->reqs[i].ids || !s->reqs[i].kv_keys || !s->reqs[i].kv_slots) return lmm_error_set("out of memory");
    }
    return 0;
}

void sched_requests_free(sched *s) {
    if (s->reqs)
        for (uint32_t i = 0; i < s->o.max_queue; i++) {
            free(s->reqs[i].ids);
            free(s->reqs[i].kv_keys);
            free(s->reqs[i].kv_slots);
            lmm_sampler_free(s->reqs[i].sampler);
        }
    free(s->reqs);
    free(s->seq_used);
    free(s->logits_scratch);
    free(s->text);
}

uint32_t sched_active_requests(const sched *s) {
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->o.max_queue; i++) n += s->reqs[i].state != REQ_FREE;
    return n;
}

/* ---- sending to a client ---------------------------------------------------------------- */

static void release(sched *s, request *r) {
    kv_request_release(s, r);
    if (r->state == REQ_PREFILL || r->state == REQ_DECODE) s->seq_used[r->seq] = false;
    lmm_sampler_free(r->sampler);
    r->sampler = NULL;
    r->state = REQ_FREE;
}

/* Sends m to the request's client; a client that has gone away ends the request. */
static int send_to(sched *s, request *r, const lmm_msg *m) {
    if (lmm_service_send(&s->csock, &r->peer, m) == 0) return 0;
    sched_log(s, "request %" PRIu64 ": client gone (%s); dropped", r->req_id, lmm_error_get());
    release(s, r);
    return -1;
}

static void finish(sched *s, request *r, lmm_proto_stop stop) {
    lmm_msg m;
    lmm_proto_msg_init(&m, LMM_MSG_DONE);
    m.done.req_id = r->req_id;
    m.done.n_prompt = r->n_prompt_user;
    m.done.n_generated = r->n_gen;
    m.done.stop = stop;
    uint64_t dt = sched_now_us() - r->t_start_us;
    m.done.tokens_per_s = dt > 0 ? (double)r->n_gen * 1e6 / (double)dt : 0.0;
    m.done.io_stall_s = (double)r->io_wait_us * 1e-6;
    s->served++;
    if (send_to(s, r, &m) == 0) release(s, r);
}

static void reply_error(sched *s, const lmm_service_peer *to, lmm_proto_errcode code, uint64_t req_id,
                        const char *msg) {
    if (lmm_service_send_error(&s->csock, to, code, req_id, msg) != 0)
        sched_log(s, "error reply to a client failed: %s", lmm_error_get());
}

void sched_fail_all(sched *s, const char *why) {
    for (uint32_t i = 0; i < s->o.max_queue; i++) {
        request *r = &s->reqs[i];
        if (r->state == REQ_FREE) continue;
        reply_error(s, &r->peer, LMM_PROTO_E_INTERNAL, r->req_id, why);
        release(s, r);
    }
}

/* ---- GENERATE ----------------------------------------------------------------------- */

static request *find_request(sched *s, const lmm_service_peer *peer, uint64_t req_id) {
    for (uint32_t i = 0; i < s->o.max_queue; i++) {
        request *r = &s->reqs[i];
        if (r->state != REQ_FREE && r->req_id == req_id && peer_eq(&r->peer, peer)) return r;
    }
    return NULL;
}

static void on_generate(sched *s, const lmm_service_peer *from, const lmm_msg_generate *g) {
    char why[LMM_PROTO_MAX_ERROR + 1];
    if (s->fatal) return reply_error(s, from, LMM_PROTO_E_INTERNAL, g->req_id, "the group has failed");
    if (find_request(s, from, g->req_id)) {
        snprintf(why, sizeof why, "request %" PRIu64 " is already running", g->req_id);
        return reply_error(s, from, LMM_PROTO_E_UNEXPECTED, g->req_id, why);
    }
    request *r = NULL;
    for (uint32_t i = 0; i < s->o.max_queue && !r; i++)
        if (s->reqs[i].state == REQ_FREE) r = &s->reqs[i];
    if (!r) {
        snprintf(why, sizeof why, "%u requests are queued or running (the most this scheduler takes); retry later",
                 s->o.max_queue);
        return reply_error(s, from, LMM_PROTO_E_BUSY, g->req_id, why);
    }
    size_t n = 0;
    if (lmm_tokenizer_encode(s->tok, g->prompt.ptr ? g->prompt.ptr : "", g->prompt.len, LMM_TOK_ADD_SPECIAL, r->ids,
                             s->n_ctx, &n) != 0) {
        snprintf(why, sizeof why, "prompt: %s", lmm_error_get());
        return reply_error(s, from, LMM_PROTO_E_BAD_MESSAGE, g->req_id, why);
    }
    if (n > s->n_ctx) {
        snprintf(why, sizeof why, "the prompt is %zu tokens but the context holds %u", n, s->n_ctx);
        return reply_error(s, from, LMM_PROTO_E_LIMIT, g->req_id, why);
    }
    if (n == 0) { /* empty prompt: start from BOS, as lmlaunch run does */
        uint32_t bos = lmm_tokenizer_bos(s->tok);
        r->ids[n++] = bos == UINT32_MAX ? s->desc.bos_id : bos;
    }
    for (size_t i = 0; i < n; i++)
        if (r->ids[i] >= s->n_vocab) {
            snprintf(why, sizeof why, "prompt token %u is beyond the model's vocabulary", r->ids[i]);
            return reply_error(s, from, LMM_PROTO_E_BAD_MESSAGE, g->req_id, why);
        }
    /* The whole request must fit the context unless it slides (vLLM's rule: prompt +
     * max_tokens <= the context). A client's default max_tokens (max_tokens_default)
     * is not refused: the generation then ends at the end of the context (stop
     * "context"), which on_logits already does. docs/protocol.md, "The context limit". */
    bool fills = n >= s->n_ctx && g->max_tokens > 0; /* no position left for a new token */
    if (!g->context_shift && !g->max_tokens_default && (uint64_t)n + g->max_tokens > s->n_ctx) {
        snprintf(why, sizeof why,
                 "the prompt (%zu tokens) plus max_tokens (%u) exceeds the context of %u tokens; use "
                 "--context-shift to slide past it",
                 n, g->max_tokens, s->n_ctx);
        return reply_error(s, from, LMM_PROTO_E_LIMIT, g->req_id, why);
    }
    if (fills && g->context_shift) {
        snprintf(why, sizeof why,
                 "the prompt (%zu tokens) fills the context of %u tokens: a context shift needs a shorter prompt", n,
                 s->n_ctx);
        return reply_error(s, from, LMM_PROTO_E_LIMIT, g->req_id, why);
    }
    r->peer = *from;
    r->req_id = g->req_id;
    r->n_prompt = (uint32_t)n;
    r->n_prompt_user = (uint32_t)n;
    r->context_shift = g->context_shift;
    r->no_prefix_cache = g->no_prefix_cache;
    r->n_shifts = 0;
    r->n_cur = (uint32_t)n;
    r->n_prefilled = 0;
    r->n_gen = 0;
    r->max_tokens = g->max_tokens;
    r->sampling = g->sampling;
    r->dump_logits = g->dump_logits;
    r->stats = g->stats;
    r->cancelled = false;
    r->sampler = NULL;
    r->order = s->next_order++;
    r->t_start_us = sched_now_us();
    r->io_wait_us = 0;
    r->state = REQ_QUEUED;
    sched_log(s, "request %" PRIu64 ": %u prompt tokens, up to %u new", r->req_id, r->n_prompt, r->max_tokens);
    if (r->max_tokens == 0) finish(s, r, LMM_PROTO_STOP_LENGTH);
    else if (fills) finish(s, r, LMM_PROTO_STOP_CONTEXT); /* a default max_tokens, nothing left */
}

/* ---- STATUS ------------------------------------------------------------------------- */

static void on_status(sched *s, const lmm_service_peer *from) {
    lmm_msg m;
    lmm_service_status_fill(&m, LMM_PROTO_ROLE_SCHEDULER, "scheduler", s->start_ms);
    lmm_msg_status_reply *r = &m.status_reply;
    r->active = sched_active_requests(s);
    r->served = s->served;
    r->tokens = s->tokens_generated;
    r->bytes_read = s->bytes_read;
    r->shm_bytes = s->ring.total_bytes + s->act.total_bytes;
    sched_update_ready(s, r->waiting, sizeof r->waiting);
    r->ready = s->ready;
    /* ring occupancy, speed and budget use */
    uint32_t busy = 0;
    for (uint32_t i = s->res.n_pinned; i < s->res.n_pinned + s->res.n_stream; i++)
        busy += lmm_shm_ring_slot_state(&s->ring, i) != LMM_SLOT_FREE;
    r->ring_slots = s->n_slots;
    r->ring_pinned = s->res.n_pinned;
    r->ring_streaming = s->res.n_stream;
    r->ring_busy = busy;
    r->prefetch_depth = lmm_prefetch_depth_get(&s->depth);
    r->steps = s->steps_run;
    r->tokens_per_s = s->busy_us > 0 ? (double)s->tokens_generated * 1e6 / (double)s->busy_us : 0.0;
    r->budget_bytes = s->o.mem_budget;
    r->budget_used = s->res.used_bytes;
    r->budget_min = s->res.min_budget;
    r->kv_hits = s->kv.hits;
    r->kv_misses = s->kv.misses;
    r->kv_blocks = s->kv.n_valid;
    r->kv_ram_bytes = (uint64_t)s->kv.n_valid * s->kv.info.block_bytes;
    r->kv_bytes_loaded = s->kv.bytes_loaded;
    if (s->kv.attached) /* the cache's disk tier, published in the region header */
        r->kv_disk_bytes = __atomic_load_n((const uint64_t *)(const void *)s->kv.ring.header->reserved, __ATOMIC_RELAXED);
    if (lmm_service_send(&s->csock, from, &m)) sched_log(s, "STATUS reply failed: %s", lmm_error_get());
}

/* ---- dispatch ----------------------------------------------------------------------- */

static void ack(sched *s, const lmm_service_peer *to, lmm_msg_type of) {
    lmm_msg a;
    lmm_proto_msg_init(&a, LMM_MSG_ACK);
    a.ack.of = of;
    if (lmm_service_send(&s->csock, to, &a)) sched_log(s, "ACK failed: %s", lmm_error_get());
}

static bool is_launch(const sched *s, const lmm_service_peer *p) {
    for (uint32_t i = 0; i < s->n_launch_peers; i++)
        if (peer_eq(&s->launch_peers[i], p)) return true;
    return false;
}

int sched_client_message(sched *s, const lmm_service_peer *from, lmm_msg *m) {
    char why[LMM_PROTO_MAX_ERROR + 1];
    switch (m->type) {
    case LMM_MSG_HELLO: {
        lmm_msg a;
        if (lmm_service_hello_reply(m, LMM_PROTO_ROLE_SCHEDULER, &a) == 0) {
            lmm_proto_role role = m->hello.role;
            if (role == LMM_PROTO_ROLE_LAUNCH) {
                if (!is_launch(s, from) && s->n_launch_peers < SCHED_MAX_LAUNCH_PEERS)
                    s->launch_peers[s->n_launch_peers++] = *from;
            } else if (role != LMM_PROTO_ROLE_CLIENT) {
                a.hello_ack.ok = false;
                snprintf(a.hello_ack.error, sizeof a.hello_ack.error,
                         "role %s connects to the services endpoint, not the client endpoint",
                         lmm_proto_role_name(role));
            }
        }
        if (lmm_service_send(&s->csock, from, &a)) sched_log(s, "HELLO_ACK failed: %s", lmm_error_get());
        return 0;
    }
    case LMM_MSG_GENERATE:
        on_generate(s, from, &m->generate);
        return 0;
    case LMM_MSG_CANCEL: {
        request *r = find_request(s, from, m->cancel.req_id);
        if (!r) {
            snprintf(why, sizeof why, "no request %" PRIu64 " is running", m->cancel.req_id);
            reply_error(s, from, LMM_PROTO_E_NOT_FOUND, m->cancel.req_id, why);
        } else if (r->state == REQ_QUEUED) {
            finish(s, r, LMM_PROTO_STOP_CANCELLED);
        } else {
            r->cancelled = true; /* ends before its next step */
        }
        return 0;
    }
    case LMM_MSG_STATUS:
        on_status(s, from);
        return 0;
    case LMM_MSG_PING:
        ack(s, from, LMM_MSG_PING);
        return 0;
    case LMM_MSG_SHUTDOWN:
        if (!is_launch(s, from)) {
            reply_error(s, from, LMM_PROTO_E_UNEXPECTED, 0, "SHUTDOWN is taken only from lmlaunch (role launch)");
            return 0;
        }
        sched_fail_all(s, "the group is shutting down");
        sched_shutdown_services(s);
        ack(s, from, LMM_MSG_SHUTDOWN);
        s->shutdown = true;
        return 0;
    default:
        snprintf(why, sizeof why, "the scheduler does not take %s from clients", lmm_proto_type_name(m->type));
        reply_error(s, from, LMM_PROTO_E_UNEXPECTED, 0, why);
        return 0;
    }
}

/* ---- batching ----------------------------------------------------------------------- */

/* Admits queued requests (oldest first) while sequence ids are free. */
static void admit(sched *s) {
    for (;;) {
        uint32_t seq = UINT32_MAX;
        for (uint32_t i = 0; i < s->o.max_seqs && seq == UINT32_MAX; i++)
            if (!s->seq_used[i]) seq = i;
        if (seq == UINT32_MAX) return;
        request *r = NULL;
        for (uint32_t i = 0; i < s->o.max_queue; i++)
            if (s->reqs[i].state == REQ_QUEUED && (!r || s->reqs[i].order < r->order)) r = &s->reqs[i];
        if (!r) return;
        if (lmm_sampler_init(&r->sampler, s->n_vocab, &r->sampling) != 0) {
            char why[LMM_PROTO_MAX_ERROR + 1];
            snprintf(why, sizeof why, "sampler: %s", lmm_error_get());
            reply_error(s, &r->peer, LMM_PROTO_E_BAD_MESSAGE, r->req_id, why);
            release(s, r);
            continue;
        }
        for (uint32_t i = 0; i < r->n_prompt; i++) lmm_sampler_accept(r->sampler, r->ids[i]);
        r->seq = seq;
        s->seq_used[seq] = true;
        r->state = REQ_PREFILL;
        kv_lookup(s, r); /* the longest cached prefix: n_prefilled starts after it */
    }
}

bool sched_form_step(sched *s) {
    /* Cancelled requests end here, between steps. */
    for (uint32_t i = 0; i < s->o.max_queue; i++) {
        request *r = &s->reqs[i];
        if ((r->state == REQ_PREFILL || r->state == REQ_DECODE) && r->cancelled) finish(s, r, LMM_PROTO_STOP_CANCELLED);
    }
    admit(s);
    request *pre = NULL;
    uint32_t n_decode = 0;
    for (uint32_t i = 0; i < s->o.max_queue; i++) {
        request *r = &s->reqs[i];
        if (r->state == REQ_PREFILL && (!pre || r->order < pre->order)) pre = r;
        n_decode += r->state == REQ_DECODE;
    }
    s->step_n = s->step_n_out = 0;
    if (pre && (n_decode == 0 || !s->last_was_prefill)) {
        /* one chunk of one prompt */
        uint32_t left = pre->n_prompt - pre->n_prefilled;
        uint32_t c = left < s->o.max_batch ? left : s->o.max_batch;
        kv_step_plan(s, pre, pre->n_prefilled, c);
        for (uint32_t i = 0; i < c; i++) {
            s->step_seq[i] = pre->seq;
            s->step_tokens[i] = pre->ids[pre->n_prefilled + i];
            s->step_pos[i] = pre->n_prefilled + i;
        }
        s->step_n = c;
        pre->n_prefilled += c;
        if (pre->n_prefilled == pre->n_prompt) {
            s->step_out[0] = c - 1;
            s->step_out_req[0] = pre;
            s->step_n_out = 1;
        }
        s->last_was_prefill = true;
        return true;
    }
    if (n_decode == 0) return false;
    s->step_n_kv_load = s->step_n_kv_store = 0;
    /* one token for every decoding sequence, oldest request first */
    for (uint32_t i = 0; i < s->o.max_queue && s->step_n < s->o.max_batch; i++) {
        request *r = &s->reqs[i];
        if (r->state != REQ_DECODE) continue;
        uint32_t row = s->step_n++;
        s->step_seq[row] = r->seq;
        s->step_tokens[row] = r->ids[r->n_cur - 1];
        s->step_pos[row] = r->n_cur - 1;
        s->step_out[row] = row;
        s->step_out_req[row] = r;
    }
    s->step_n_out = s->step_n;
    s->last_was_prefill = false;
    return true;
}

/* ---- recovery (recover.c) ------------------------------------------------------------- */

/* A worker lost (or may have half-written) the KV of every sequence. Each admitted
 * request becomes a prefill of all the tokens it has so far (prompt and generated),
 * starting after the longest prefix the cache holds; the last row of that prefill gives
 * the logits the interrupted step would have given (prefill of N tokens = N single
 * steps, docs/exactness.md), and sampling goes on from the sampler's state, which never
 * saw the failure. Nothing is sent to the client until then. */
void sched_requests_replay(sched *s) {
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->o.max_queue; i++) {
        request *r = &s->reqs[i];
        if (r->state != REQ_PREFILL && r->state != REQ_DECODE) continue;
        kv_request_release(s, r);
        if (r->state == REQ_DECODE) r->n_prompt = r->n_cur;
        r->n_prefilled = 0;
        r->state = REQ_PREFILL;
        kv_lookup(s, r);
        n++;
    }
    if (n) sched_log(s, "%u requests recompute their KV", n);
}

/* ---- sampling and streaming ---------------------------------------------------------- */

/* Context shift (opt-in, GENERATE.context_shift; CHANGES the output, docs/kv-cache.md):
 * the context is full, so the request goes on from a window of its first token (BOS)
 * and the last n_ctx/2 - 1 tokens, recomputed as a new prompt (the KV of the old
 * positions is not reused: RoPE bound it to positions that change). The next token is
 * sampled from the last row of that prefill, as after any prompt. */
static void context_shift(sched *s, request *r) {
    uint32_t keep = s->n_ctx / 2 > 1 ? s->n_ctx / 2 : 1;
    if (keep > 1) memmove(r->ids + 1, r->ids + r->n_cur - (keep - 1), (size_t)(keep - 1) * sizeof *r->ids);
    else r->ids[0] = r->ids[r->n_cur - 1];
    r->n_prompt = keep;
    r->n_cur = keep;
    r->n_prefilled = 0;
    r->n_shifts++;
    r->state = REQ_PREFILL;
    kv_lookup(s, r); /* a window seen before is reused like any prompt */
    sched_log(s, "request %" PRIu64 ": context full, shifted to the last %u tokens (shift %u)", r->req_id, keep,
              r->n_shifts);
}

/* The logits of one out row: sample, stream, and end the request when it is done. The
 * order of operations is lmlaunch run's: logits (dumped as they are), sample, stop at
 * EOS (or BOS for llama2.c), decode the text, accept, stop at max_tokens or the end of
 * the context. */
static void on_logits(sched *s, request *r, const float *logits) {
    if (r->cancelled) return finish(s, r, LMM_PROTO_STOP_CANCELLED);
    memcpy(s->logits_scratch, logits, (size_t)s->n_vocab * sizeof *logits);
    uint32_t next = lmm_sampler_sample(r->sampler, s->logits_scratch);
    lmm_msg m;
    lmm_proto_msg_init(&m, LMM_MSG_TOKEN);
    m.token.req_id = r->req_id;
    m.token.id = next;
    if (r->stats) {
        uint64_t step = s->step_wall_us > 0 ? s->step_wall_us : 1; /* 0 would be left out */
        m.token.step_usec = step;
        m.token.compute_usec = s->step_compute_us;
        m.token.io_wait_usec = s->step_wait_us;
        m.token.bytes_read = s->bytes_read - s->step_bytes0;
    }
    if (r->dump_logits) {
        m.token.logits = logits;
        m.token.n_logits = s->n_vocab;
    }
    if (next == s->eos || next == s->bos_stop) {
        /* With dump_logits the client also gets the logits of the step that chose EOS
         * (the in-process run writes them too); the TOKEN has no text and is not counted. */
        if (r->dump_logits && send_to(s, r, &m) != 0) return;
        return finish(s, r, LMM_PROTO_STOP_EOS);
    }
    size_t len = 0;
    if (lmm_tokenizer_decode_token(s->tok, r->ids[r->n_cur - 1], next, s->text, LMM_PROTO_MAX_TEXT_BYTES, &len) != 0)
        len = 0; /* a piece longer than a TOKEN can carry (none in real vocabularies) */
    m.token.text.ptr = s->text;
    m.token.text.len = len;
    if (send_to(s, r, &m) != 0) return;
    lmm_sampler_accept(r->sampler, next);
    r->ids[r->n_cur++] = next;
    r->n_gen++;
    s->tokens_generated++;
    if (r->n_gen >= r->max_tokens) return finish(s, r, LMM_PROTO_STOP_LENGTH);
    if (r->n_cur >= s->n_ctx) {
        if (!r->context_shift) return finish(s, r, LMM_PROTO_STOP_CONTEXT);
        return context_shift(s, r);
    }
    r->state = REQ_DECODE;
}

void sched_step_finished(sched *s) {
    const uint8_t *act = lmm_shm_ring_slot_data(&s->act, 0);
    const float *logits = (const float *)(act + s->params->logits_offset); /* [n_out][n_vocab] */
    /* The step's wait for streamed weights counts for every request it ran a token of
     * (rows without output included: prefill chunks). */
    if (s->step_wait_us > 0)
        for (uint32_t q = 0; q < s->o.max_queue; q++) {
            request *r = &s->reqs[q];
            if (r->state != REQ_PREFILL && r->state != REQ_DECODE) continue;
            for (uint32_t i = 0; i < s->step_n; i++)
                if (s->step_seq[i] == r->seq) {
                    r->io_wait_us += s->step_wait_us;
                    break;
                }
        }
    for (uint32_t i = 0; i < s->step_n_out; i++) {
        request *r = s->step_out_req[i];
        if (r->state != REQ_PREFILL && r->state != REQ_DECODE) continue; /* dropped meanwhile */
        on_logits(s, r, logits + (size_t)i * s->n_vocab);
    }
}
