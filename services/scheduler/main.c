/* services/scheduler/main.c — lmm-scheduler, the front door of the process group.
 *
 * Start-up: opens the model description and tokenizer, cuts the plan (lmm/plan.h), sizes
 * everything the group will hold inside --mem-budget, plans the residency (residency.c;
 * a budget too small says what the minimum is), creates the weight ring and the
 * activation region (group_layout.h) and binds two ROUTER sockets: one for clients, one
 * for the other services. Then one loop (sched_loop) serves both sockets until SHUTDOWN
 * from lmlaunch, SIGINT/SIGTERM, or a service failure.
 *
 * Command line (docs/process-group.md):
 *   lmm-scheduler --run-dir DIR --model PATH [--tokenizer PATH] --client ENDPOINT
 *                 --services ENDPOINT --workers N [--mem-budget BYTES] [--threads N]
 *                 [--ctx N] [--isa NAME] [--max-batch N] [--max-seqs N] [--max-queue N]
 *                 [--piece-bytes BYTES] [--stream-slots N] [--step-timeout-ms MS] [--verbose]
 * Exit: 0 after SHUTDOWN or a stop signal, 1 on an error (one line naming it), 2 usage. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lmm/error.h"
#include "lmm/executor.h"
#include "sched.h"

#define DEFAULT_MAX_BATCH 64u
#define DEFAULT_MAX_SEQS 4u
#define DEFAULT_MAX_QUEUE 64u
#define DEFAULT_STEP_TIMEOUT_MS 120000u /* silence of a worker during a step */

uint64_t sched_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void sched_log(const sched *s, const char *fmt, ...) {
    if (!s->o.verbose) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("lmm-scheduler: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int usage(const char *why) {
    fprintf(stderr,
            "lmm-scheduler: %s\n"
            "usage: lmm-scheduler --run-dir DIR --model PATH [--tokenizer PATH] --client ENDPOINT\n"
            "                     --services ENDPOINT --workers N [--mem-budget BYTES] [--threads N]\n"
            "                     [--ctx N] [--isa NAME] [--max-batch N] [--max-seqs N] [--max-queue N]\n"
            "                     [--piece-bytes BYTES] [--stream-slots N] [--no-prefix-cache]\n"
            "                     [--kv-cache BYTES] [--step-timeout-ms MS] [--kv-ram BYTES] [--verbose]\n",
            why);
    return 2;
}

/* ---- command line ---------------------------------------------------------------- */

static int parse_args(sched_opts *o, int argc, char **argv, int *threads) {
    memset(o, 0, sizeof *o);
    o->max_batch = DEFAULT_MAX_BATCH;
    o->max_seqs = DEFAULT_MAX_SEQS;
    o->max_queue = DEFAULT_MAX_QUEUE;
    o->step_timeout_ms = DEFAULT_STEP_TIMEOUT_MS;
    const char *workers = NULL;
    for (int i = 1; i < argc; i++) {
        static const char *const flags[] = {"--run-dir",   "--model",     "--tokenizer", "--client",
                                            "--services",  "--workers",   "--mem-budget", "--threads",
                                            "--ctx",       "--isa",       "--max-batch", "--max-seqs",
                                            "--max-queue", "--piece-bytes", "--stream-slots", "--kv-cache",
                                            "--step-timeout-ms", "--kv-ram"};
        if (strcmp(argv[i], "--verbose") == 0) {
            o->verbose = true;
            continue;
        }
        if (strcmp(argv[i], "--no-prefix-cache") == 0) {
            o->no_prefix_cache = true;
            continue;
        }
        const char *v = NULL;
        int k = -1, r = 0;
        for (size_t f = 0; f < sizeof flags / sizeof *flags && r == 0; f++)
            if ((r = lmm_service_flag(argc, argv, &i, flags[f], &v)) != 0) k = (int)f;
        if (r < 0) return usage(lmm_error_get());
        if (k < 0) {
            char buf[300];
            snprintf(buf, sizeof buf, "unknown argument '%.200s'", argv[i]);
            return usage(buf);
        }
        uint64_t u;
        switch (k) {
        case 0: o->run_dir = v; break;
        case 1: o->model = v; break;
        case 2: o->tokenizer = v; break;
        case 3: o->client_ep = v; break;
        case 4: o->services_ep = v; break;
        case 5: workers = v; break;
        case 6:
            if (lmm_service_parse_size(v, &o->mem_budget)) return usage(lmm_error_get());
            break;
        case 7:
            if (lmm_service_parse_u64(v, 1, 1024, &u)) return usage(lmm_error_get());
            *threads = (int)u;
            break;
        case 8:
            if (lmm_service_parse_u64(v, 1, LMM_PROTO_MAX_POS, &u)) return usage(lmm_error_get());
            o->ctx = (uint32_t)u;
            break;
        case 9: break; /* the scheduler runs no kernels */
        case 10:
            if (lmm_service_parse_u64(v, 1, LMM_PROTO_MAX_STEP_TOKENS, &u)) return usage(lmm_error_get());
            o->max_batch = (uint32_t)u;
            break;
        case 11:
            if (lmm_service_parse_u64(v, 1, LMM_PROTO_MAX_SEQS, &u)) return usage(lmm_error_get());
            o->max_seqs = (uint32_t)u;
            break;
        case 12:
            if (lmm_service_parse_u64(v, 1, 4096, &u)) return usage(lmm_error_get());
            o->max_queue = (uint32_t)u;
            break;
        case 13:
            if (lmm_service_parse_size(v, &o->piece_bytes)) return usage(lmm_error_get());
            break;
        case 14:
            if (lmm_service_parse_u64(v, 2, 1024, &u)) return usage(lmm_error_get());
            o->stream_slots = (uint32_t)u;
            break;
        case 15:
            if (lmm_service_parse_size(v, &o->kv_cache)) return usage(lmm_error_get());
            break;
        case 16:
            if (lmm_service_parse_u64(v, 100, 86400000, &u)) return usage(lmm_error_get());
            o->step_timeout_ms = (uint32_t)u;
            break;
        case 17:
            if (lmm_service_parse_size(v, &o->kv_ram)) return usage(lmm_error_get());
            break;
        }
    }
    if (!o->model) return usage("--model PATH is required");
    if (!o->client_ep) return usage("--client ENDPOINT is required");
    if (!o->services_ep) return usage("--services ENDPOINT is required");
    if (!workers) return usage("--workers N is required");
    uint64_t u;
    if (lmm_service_parse_u64(workers, 1, SCHED_MAX_WORKERS, &u)) return usage(lmm_error_get());
    o->workers = (uint32_t)u;
    return 0;
}

/* ---- sizes ------------------------------------------------------------------------- */

static uint64_t align4k(uint64_t v) { return (v + 4095) / 4096 * 4096; }

/* The largest 4 KiB widened span of one embedding row (the remainders of the row
 * offsets mod 4096 repeat within 4096 rows). */
static uint64_t embd_row_span(const lmm_plan *p) {
    uint64_t best = 0, n = p->embd.n_rows < 4096 ? p->embd.n_rows : 4096;
    for (uint64_t r = 0; r < n; r++) {
        uint64_t s = lmm_plan_span(p->embd.offset + r * p->embd.row_bytes, p->embd.row_bytes);
        if (s > best) best = s;
    }
    return best;
}

/* What one compute worker holds besides its share of the KV cache: the executor's
 * activations, RoPE table and attention scratch (model/graph/executor.c), its FP32 small
 * tensors and its step scratch. An upper bound, counted inside the budget. */
static uint64_t worker_state_bytes(const sched *s, int threads) {
    const lmm_hparams *hp = &s->desc.hp;
    uint64_t q_dim = (uint64_t)hp->n_heads * hp->head_dim, kv_dim = (uint64_t)hp->n_kv_heads * hp->head_dim;
    uint64_t widest = hp->n_vocab > hp->hidden_dim ? hp->n_vocab : hp->hidden_dim;
    uint64_t per_token = 3u * hp->dim + 2u * q_dim + 2u * kv_dim + 2u * hp->hidden_dim + widest;
    uint64_t floats = (uint64_t)s->n_ctx * hp->head_dim + (uint64_t)s->o.max_batch * per_token +
                      (uint64_t)threads * s->n_ctx;
    uint64_t small = 0;
    for (uint32_t i = 0; i < s->plan.n_small; i++) small += s->desc.tensors[s->plan.small[i]].shape[0] * 4u;
    uint64_t scratch = (uint64_t)s->o.max_batch * 64u + 65536u;
    /* paged live KV: the scores of a batch's items over the context (model/graph/executor.c) */
    if (s->o.kv_ram) floats += (uint64_t)(s->o.max_batch < 16 ? s->o.max_batch : 16) * hp->n_heads * s->n_ctx;
    return floats * 4u + small + scratch + 64u * 1024u; /* + allocator rounding */
}

/* Scheduler buffers that grow with the configuration (not the fixed per-process
 * overhead): token buffers of every request, samplers, logits scratch. */
static uint64_t scheduler_bytes(const sched *s) {
    uint64_t per_req = (uint64_t)s->n_ctx * 4u;
    uint64_t per_sampler = (uint64_t)s->n_vocab * 16u + 4096u;
    return (uint64_t)s->o.max_queue * per_req + (uint64_t)s->o.max_seqs * per_sampler + (uint64_t)s->n_vocab * 4u +
           (uint64_t)s->o.max_batch * 64u;
}

static int setup_model(sched *s, int threads) {
    const sched_opts *o = &s->o;
    if (!realpath(o->model, s->model_path)) return lmm_error_set("%s: %s", o->model, strerror(errno));
    if (lmm_model_desc_open(&s->desc, s->model_path)) return -1;
    s->have_desc = true;
    if (lmm_tokenizer_load_for_model(&s->tok, &s->desc, o->tokenizer)) return -1;
    const lmm_hparams *hp = &s->desc.hp;
    s->n_vocab = hp->n_vocab;
    if (lmm_tokenizer_vocab_size(s->tok) > hp->n_vocab)
        return lmm_error_set("the tokenizer has %u tokens but the model only %u", lmm_tokenizer_vocab_size(s->tok),
                             hp->n_vocab);
    if (hp->n_vocab > LMM_PROTO_MAX_VOCAB)
        return lmm_error_set("the model's vocabulary of %u tokens exceeds the protocol's %u", hp->n_vocab,
                             LMM_PROTO_MAX_VOCAB);
    s->eos = lmm_tokenizer_eos(s->tok);
    if (s->eos == UINT32_MAX) s->eos = s->desc.eos_id;
    /* as lmlaunch run: llama2.c's run.c also ends a story at BOS */
    s->bos_stop = s->desc.format == LMM_FORMAT_LLAMA2C ? lmm_tokenizer_bos(s->tok) : UINT32_MAX;
    s->n_ctx = o->ctx ? o->ctx : hp->max_seq_len;
    if (s->n_ctx == 0 || s->n_ctx > LMM_PROTO_MAX_POS)
        return lmm_error_set("context of %u positions is out of range", s->n_ctx);
    if (o->workers > hp->n_layers)
        return lmm_error_set("--workers %u: the model has only %u layers to split", o->workers, hp->n_layers);
    if (lmm_plan_build(&s->plan, &s->desc, o->piece_bytes)) return -1;
    s->have_plan = true;

    /* One slot size for pieces, the small tensors and a step's embedding rows. */
    uint32_t ns = s->plan.n_small;
    s->small_off = malloc(((size_t)ns + 1) * sizeof *s->small_off);
    s->small_len = malloc(((size_t)ns + 1) * sizeof *s->small_len);
    s->small_slot = malloc(((size_t)ns + 1) * sizeof *s->small_slot);
    if (!s->small_off || !s->small_len || !s->small_slot) return lmm_error_set("out of memory");
    for (uint32_t i = 0; i < ns; i++) {
        s->small_off[i] = s->desc.tensors[s->plan.small[i]].offset;
        s->small_len[i] = s->desc.tensors[s->plan.small[i]].nbytes;
    }
    uint64_t small_bytes = lmm_group_pack(s->small_off, s->small_len, ns, s->small_slot);
    s->embd_span = embd_row_span(&s->plan);
    uint64_t slot = s->plan.slot_bytes;
    if (small_bytes > slot) slot = small_bytes;
    if (s->embd_span > slot) slot = s->embd_span;
    s->slot_bytes = align4k(slot);
    /* A step's embedding rows must fit the embedding slot: that bounds the batch. */
    uint64_t rows_fit = s->slot_bytes / s->embd_span;
    if (s->o.max_batch > rows_fit) s->o.max_batch = (uint32_t)rows_fit;
    if (s->o.max_seqs > s->o.max_batch) s->o.max_seqs = s->o.max_batch;

    /* Everything else inside the budget (docs/process-group.md, "Scheduler"). */
    uint64_t x_off, l_off;
    uint64_t act_bytes = align4k(lmm_group_act_layout(s->o.max_batch, hp->dim, hp->n_vocab, &x_off, &l_off));
    uint64_t ring_header = align4k(256u + 64u * ((uint64_t)s->plan.n_pieces + 1));
    uint64_t kv = lmm_model_desc_kv_bytes(&s->desc, s->n_ctx) * s->o.max_seqs;
    if (o->kv_ram && o->kv_ram < kv) kv = o->kv_ram; /* the rest of the live KV spills to disk */
    uint64_t workers = (uint64_t)o->workers * worker_state_bytes(s, threads);
    s->other_bytes = ring_header + 4096u + act_bytes + kv + workers + scheduler_bytes(s);
    /* The cache's block region (docs/kv-cache.md) is inside the budget when asked for. */
    if (o->mem_budget && o->kv_cache && !o->no_prefix_cache) s->other_bytes += o->kv_cache;

    lmm_residency_opts ro = {.budget = o->mem_budget,
                             .slot_bytes = s->slot_bytes,
                             .other_bytes = s->other_bytes,
                             .n_pieces = s->plan.n_pieces,
                             .stream_slots = o->stream_slots};
    if (lmm_residency_plan(&s->res, &ro)) return -1;
    s->have_res = true;
    s->n_slots = s->res.n_pinned + s->res.n_stream + 1;
    s->embd_slot = s->n_slots - 1;

    for (uint32_t w = 0; w < o->workers; w++) {
        lmm_group_layers(hp->n_layers, o->workers, w, &s->layer_begin[w], &s->layer_end[w]);
        uint32_t a, b; /* checks the range against the plan */
        if (lmm_plan_pieces_of(&s->plan, s->layer_begin[w], s->layer_end[w], s->layer_end[w] == hp->n_layers, &a, &b))
            return -1;
    }

    /* The two shared-memory regions (named /lmm-<our pid>-<n>, 0600, pre-faulted). */
    if (lmm_shm_ring_create(&s->ring, s->n_slots, s->slot_bytes)) return -1;
    s->have_ring = true;
    if (lmm_shm_ring_create(&s->act, 1, act_bytes)) return -1;
    s->have_act = true;
    lmm_group_params *p = (lmm_group_params *)lmm_shm_ring_slot_data(&s->act, 0);
    memset(p, 0, sizeof *p);
    p->version = LMM_GROUP_VERSION;
    p->n_workers = o->workers;
    p->n_ctx = s->n_ctx;
    p->max_seqs = s->o.max_seqs;
    p->max_batch = s->o.max_batch;
    p->n_pieces = s->plan.n_pieces;
    p->n_pinned = s->res.n_pinned;
    p->n_stream = s->res.n_stream;
    p->embd_slot = s->embd_slot;
    p->n_small = ns;
    p->piece_bytes = s->plan.piece_bytes;
    p->slot_bytes = s->slot_bytes;
    p->x_offset = x_off;
    p->logits_offset = l_off;
    p->act_bytes = act_bytes;
    __atomic_store_n(&p->magic, LMM_GROUP_MAGIC, __ATOMIC_RELEASE);
    s->params = p;

    uint8_t *streamed = malloc(s->plan.n_pieces);
    if (!streamed) return lmm_error_set("out of memory");
    for (uint32_t i = 0; i < s->plan.n_pieces; i++) streamed[i] = !s->res.pinned[i];
    int rc = lmm_predictor_create_dense(&s->pred, streamed, s->plan.n_pieces);
    free(streamed);
    if (rc) return -1;
    lmm_prefetch_depth_init(&s->depth, s->res.n_stream ? s->res.n_stream : 1);

    char b1[32], b2[32], b3[32], b4[32], b5[32];
    fprintf(stderr,
            "lmm-scheduler: %u pieces of <= %s: %u pinned, %u streamed through %u slots; budget %s, planned %s "
            "(minimum %s, all resident %s); context %u, batch %u, %u sequences, %u workers\n",
            s->plan.n_pieces, lmm_residency_fmt_bytes(s->slot_bytes, b1, sizeof b1), s->res.n_pinned,
            s->plan.n_pieces - s->res.n_pinned, s->res.n_stream,
            o->mem_budget ? lmm_residency_fmt_bytes(o->mem_budget, b2, sizeof b2) : "unlimited",
            lmm_residency_fmt_bytes(s->res.used_bytes, b3, sizeof b3),
            lmm_residency_fmt_bytes(s->res.min_budget, b4, sizeof b4),
            lmm_residency_fmt_bytes(s->res.full_budget, b5, sizeof b5), s->n_ctx, s->o.max_batch, s->o.max_seqs,
            o->workers);
    return 0;
}

/* ---- the loop ---------------------------------------------------------------------- */

static int sched_loop(sched *s) {
    while (!lmm_service_stopping() && !s->shutdown && !s->fatal) {
        lmm_service_pollitem it[2] = {{.sock = &s->csock, .events = ZMQ_POLLIN},
                                      {.sock = &s->ssock, .events = ZMQ_POLLIN}};
        int n = lmm_service_poll(it, 2, 100);
        if (n < 0) return -1;
        /* Services first: their messages free slots and finish steps. Drain each socket. */
        for (int k = 0; k < 2 && n > 0; k++) {
            int idx = k == 0 ? 1 : 0;
            if (!(it[idx].revents & ZMQ_POLLIN)) continue;
            for (int burst = 0; burst < 256; burst++) {
                lmm_service_peer from;
                lmm_msg m;
                int rc = lmm_service_recv(idx == 1 ? &s->ssock : &s->csock, &from, &m, 0);
                if (rc < 0) return -1;
                if (rc == LMM_SERVICE_TIMEOUT) break;
                if (rc == LMM_SERVICE_BAD) {
                    if (idx == 1) fprintf(stderr, "lmm-scheduler: undecodable message from a service: %s\n", lmm_error_get());
                    continue;
                }
                int r = idx == 1 ? sched_services_message(s, &from, &m) : sched_client_message(s, &from, &m);
                if (r < 0) return -1;
                if (s->fatal || s->shutdown) break;
            }
        }
        if (s->fatal || s->shutdown) break;
        sched_watch_poll(s);
        sched_watchdog(s);
        sched_recover_pump(s);
        sched_pump_loads(s);
        sched_update_ready(s, NULL, 0);
        if (s->ready && !s->step_running && !s->embd_busy && sched_form_step(s)) {
            if (sched_step_launch(s)) return -1;
        }
    }
    return s->fatal ? -1 : 0;
}

static void cleanup(sched *s) {
    kv_free(s); /* before the requests: it looks at them */
    sched_recover_free(s);
    sched_requests_free(s);
    lmm_predictor_free(s->pred);
    free(s->small_off);
    free(s->small_len);
    free(s->small_slot);
    free(s->step_seq);
    free(s->step_tokens);
    free(s->step_pos);
    free(s->step_out);
    free(s->step_out_req);
    free(s->step_kv_load);
    free(s->step_kv_store);
    free(s->distinct);
    free(s->row_of);
    free(s->hash);
    free(s->seg_file);
    free(s->seg_off);
    free(s->seg_len);
    free(s->seg_slot);
    /* Let the SHUTDOWNs (and last replies) reach their peers before the sockets go:
     * the services' sockets otherwise linger 0. */
    int linger = 500;
    if (s->ssock.zsock) zmq_setsockopt(s->ssock.zsock, ZMQ_LINGER, &linger, sizeof linger);
    if (s->csock.zsock) zmq_setsockopt(s->csock.zsock, ZMQ_LINGER, &linger, sizeof linger);
    lmm_service_sock_close(&s->csock);
    lmm_service_sock_close(&s->ssock);
    lmm_service_ctx_term();
    if (s->have_act) lmm_shm_ring_destroy(&s->act);
    if (s->have_ring) lmm_shm_ring_destroy(&s->ring);
    if (s->have_res) lmm_residency_free(&s->res);
    if (s->have_plan) lmm_plan_free(&s->plan);
    lmm_tokenizer_free(s->tok);
    if (s->have_desc) lmm_model_desc_free(&s->desc);
}

static int alloc_step_buffers(sched *s) {
    size_t mb = s->o.max_batch;
    s->hash_cap = lmm_group_hash_cap(s->o.max_batch);
    uint32_t max_seg = 0;
    for (uint32_t i = 0; i < s->plan.n_pieces; i++)
        if (s->plan.pieces[i].n_segments > max_seg) max_seg = s->plan.pieces[i].n_segments;
    s->seg_cap = s->o.max_batch;
    if (s->plan.n_small > s->seg_cap) s->seg_cap = s->plan.n_small;
    if (max_seg > s->seg_cap) s->seg_cap = max_seg;
    if (s->seg_cap > LMM_PROTO_MAX_SEGMENTS)
        return lmm_error_set("a piece of %u segments exceeds the protocol's %u", s->seg_cap, LMM_PROTO_MAX_SEGMENTS);
    s->step_seq = malloc(mb * sizeof *s->step_seq);
    s->step_tokens = malloc(mb * sizeof *s->step_tokens);
    s->step_pos = malloc(mb * sizeof *s->step_pos);
    s->step_out = malloc(mb * sizeof *s->step_out);
    s->step_out_req = malloc(mb * sizeof *s->step_out_req);
    s->step_kv_load = malloc(3u * LMM_PROTO_MAX_KV_BLOCKS * sizeof *s->step_kv_load);
    s->step_kv_store = malloc(3u * LMM_PROTO_MAX_KV_BLOCKS * sizeof *s->step_kv_store);
    s->distinct = malloc(mb * sizeof *s->distinct);
    s->row_of = malloc(mb * sizeof *s->row_of);
    s->hash = malloc((size_t)s->hash_cap * sizeof *s->hash);
    s->seg_file = malloc((size_t)s->seg_cap * sizeof *s->seg_file);
    s->seg_off = malloc((size_t)s->seg_cap * sizeof *s->seg_off);
    s->seg_len = malloc((size_t)s->seg_cap * sizeof *s->seg_len);
    s->seg_slot = malloc((size_t)s->seg_cap * sizeof *s->seg_slot);
    if (!s->step_seq || !s->step_tokens || !s->step_pos || !s->step_out || !s->step_out_req || !s->step_kv_load ||
        !s->step_kv_store || !s->distinct || !s->row_of || !s->hash || !s->seg_file || !s->seg_off || !s->seg_len || !s->seg_slot)
        return lmm_error_set("out of memory");
    return 0;
}

int main(int argc, char **argv) {
    static sched s; /* zeroed */
    int threads = 0;
    int rc = parse_args(&s.o, argc, argv, &threads);
    if (rc) return rc;
    if (threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        threads = c > 0 ? (int)c : 1;
    }
    s.start_ms = lmm_service_now_ms();
    lmm_service_signals_install();
    lmm_service_die_with_parent();
    rc = 0;
    s.loader_pidfd = s.cache_pidfd = -1;
    for (uint32_t w = 0; w < SCHED_MAX_WORKERS; w++) s.compute_pidfd[w] = -1;
    if (setup_model(&s, threads) || alloc_step_buffers(&s) || sched_recover_init(&s) || sched_requests_init(&s) ||
        lmm_service_router_bind(&s.csock, s.o.client_ep) || lmm_service_router_bind(&s.ssock, s.o.services_ep) ||
        sched_loop(&s)) {
        if (!lmm_service_stopping() || s.fatal) {
            fprintf(stderr, "lmm-scheduler: %s\n", lmm_error_get());
            rc = 1;
        }
    }
    if (s.ssock.zsock) sched_shutdown_services(&s);
    cleanup(&s);
    return rc;
}
