/* services/scheduler/sched.h — lmm-scheduler's state, shared by its files:
 *   main.c      command line, start-up (plan, residency, shared memory, sockets), the loop
 *   services.c  the other services: HELLOs, LOADs (small tensors, pinned, streamed with
 *               the predictor and the adaptive depth, embedding rows), the STEP chain
 *   requests.c  clients: GENERATE checks and queue, batching into steps, sampling,
 *               TOKEN/DONE streaming, CANCEL, STATUS, SHUTDOWN
 *   residency.c, predictor.c: the resident subset and the access predictor. */
#ifndef LMM_SCHED_H
#define LMM_SCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "../cache/kv_disk.h"
#include "../cache/kv_region.h"
#include "../compute/group_layout.h"
#include "lmm/model.h"
#include "lmm/plan.h"
#include "lmm/proto.h"
#include "lmm/sampler.h"
#include "lmm/service.h"
#include "lmm/shm_ring.h"
#include "lmm/tokenizer.h"
#include "predictor.h"
#include "residency.h"

#define SCHED_MAX_WORKERS 64u
#define SCHED_MAX_LAUNCH_PEERS 8u

typedef struct {
    const char *model, *tokenizer, *client_ep, *services_ep, *run_dir;
    uint32_t workers;
    uint64_t mem_budget;     /* 0: no limit */
    uint32_t ctx;            /* 0: the model's */
    uint32_t max_batch;      /* tokens per step */
    uint32_t max_seqs;       /* sequences decoded together */
    uint32_t max_queue;      /* requests waiting or running */
    uint32_t stream_slots;
    uint64_t piece_bytes;    /* 0: plan default */
    bool verbose;
    bool no_prefix_cache;    /* --no-prefix-cache: never reuse KV blocks */
    uint64_t kv_cache;       /* --kv-cache BYTES: the cache's block region, inside --mem-budget */
    uint64_t kv_ram;         /* --kv-ram BYTES: live KV the workers hold in RAM, the rest spilled
                                (docs/kv-cache.md "Long contexts"); 0: all of it in RAM */
    uint32_t step_timeout_ms; /* --step-timeout-ms: a worker silent this long on a step is
                               * killed (its replacement replays the step) */
} sched_opts;

typedef enum { REQ_FREE = 0, REQ_QUEUED, REQ_PREFILL, REQ_DECODE } req_state;

/* One client request. ids/logits buffers are allocated once at start for every entry. */
typedef struct {
    req_state state;
    lmm_service_peer peer;
    uint64_t req_id;
    uint64_t order;          /* arrival number: FIFO admission */
    uint32_t *ids;           /* [n_ctx] prompt, then generated tokens */
    uint32_t n_prompt;
    uint32_t n_cur;          /* tokens in ids */
    uint32_t n_prefilled;    /* prompt tokens already run */
    uint32_t max_tokens;
    uint32_t n_gen;
    uint32_t seq;            /* sequence id (KV slot in the workers), while admitted */
    lmm_sampler_opts sampling;
    lmm_sampler *sampler;
    bool dump_logits;
    bool stats;                        /* GENERATE "stats": TOKENs carry the step's figures */
    bool context_shift;      /* GENERATE.context_shift: slide the window when it is full */
    bool no_prefix_cache;    /* GENERATE.no_prefix_cache: no KV reuse for this request */
    uint32_t n_prompt_user;  /* the prompt as asked (n_prompt changes with a shift) */
    uint32_t n_shifts;
    bool cancelled;
    uint64_t t_start_us;
    uint64_t io_wait_us;     /* STEP_DONE.wait_usec of the steps that ran it (DONE.io_stall_s) */
    /* KV reuse (kvindex.c): keys of the prompt's full blocks, the region slots of the
     * n_kv_hit cached ones (pinned until loaded by the first prefill step) */
    uint64_t *kv_keys;       /* [n_ctx + 1] */
    uint32_t *kv_slots;      /* [n_ctx + 1] */
    uint32_t n_kv_keys, n_kv_hit;
    bool kv_load_pending;
    uint64_t kv_region_gen;  /* kv.gen when looked up: a region replaced since is not touched */
} request;

/* The scheduler's index over the cache service's block region (kvindex.c,
 * docs/kv-cache.md). One writer (this process): no locks. */
typedef struct {
    bool attached;
    uint64_t gen;                      /* bumped at every attach */
    kv_region_info info;
    lmm_shm_ring ring;
    uint64_t model_id;                 /* ours; must equal info.model_id */
    uint64_t *key;                     /* [n_slots] */
    uint64_t *lru;                     /* [n_slots] tick of the last use */
    uint32_t *pins;                    /* [n_slots] steps/requests using the slot */
    uint8_t *valid;                    /* [n_slots] 1: a committed block */
    uint64_t tick;
    uint32_t n_valid;
    kv_disk_io disk;                   /* reads of the cache's disk tier (info.disk) */
    bool disk_on, disk_writes_on;     /* reads; writes through at commit (off after an error) */
    uint64_t hits, misses, stores, evictions, dropped, bytes_loaded, bytes_stored, disk_reads;
    uint64_t disk_evictions;           /* block files removed by the disk tier's bound */
} kv_index;

typedef enum { LOAD_NONE = 0, LOAD_SMALL, LOAD_PINNED, LOAD_STREAM, LOAD_EMBD } load_kind;

typedef struct sched {
    sched_opts o;
    uint64_t start_ms;

    /* model */
    lmm_model_desc desc;
    bool have_desc;
    lmm_tokenizer *tok;
    lmm_plan plan;
    bool have_plan;
    char model_path[LMM_PROTO_MAX_PATH + 1];
    uint32_t n_ctx, n_vocab, eos, bos_stop;

    /* residency and shared memory */
    lmm_residency res;
    bool have_res;
    uint64_t slot_bytes, other_bytes, embd_span;
    uint32_t n_slots, embd_slot;
    lmm_shm_ring ring, act;
    bool have_ring, have_act;
    lmm_group_params *params;          /* in the activation region */
    uint64_t *small_off, *small_len, *small_slot; /* [plan.n_small] */

    /* prefetch of streamed pieces */
    lmm_predictor *pred;
    lmm_prefetch_depth depth;
    uint64_t stream_issued, stream_loaded, stream_freed;
    uint32_t pinned_issued, pinned_loaded;
    uint32_t pinned_next;              /* next piece index to look at for a pinned LOAD */
    bool small_issued, small_loaded, small_done;
    uint32_t small_freed;
    bool embd_busy;                    /* the embedding slot holds rows not yet released */
    uint64_t next_req_id;              /* LOAD req_ids */
    uint64_t bytes_read;

    /* services */
    lmm_service_sock csock, ssock;     /* client and services ROUTERs */
    bool loader_up, cache_up;
    bool cache_settled;                /* the cache said ACK {of: HELLO_ACK}: its region is
                                        * published in RUN/kvcache (or it has none) */
    lmm_service_peer loader, cache;
    uint32_t n_compute_up;
    bool compute_up[SCHED_MAX_WORKERS];
    lmm_service_peer compute[SCHED_MAX_WORKERS];
    uint32_t layer_begin[SCHED_MAX_WORKERS], layer_end[SCHED_MAX_WORKERS];
    lmm_service_peer launch_peers[SCHED_MAX_LAUNCH_PEERS];
    uint32_t n_launch_peers;
    bool ready;
    bool fatal;                        /* a service failed: stop serving */
    bool shutdown;

    /* the step in flight */
    bool step_running;
    uint32_t step_worker;              /* worker the STEP was sent to */
    uint64_t next_cycle;               /* step ids = cycle numbers, from 0 */
    uint64_t step_id;
    uint32_t step_n, step_n_out;
    uint32_t *step_seq, *step_tokens, *step_pos, *step_out; /* [max_batch] */
    request **step_out_req;            /* [max_batch] the request of each out row */
    bool last_was_prefill;
    uint64_t step_t0_us;
    uint64_t step_trace_t0;            /* lmm_trace_begin() at launch (0: not tracing) */
    uint64_t step_wall_us;             /* STEP to compute.0 -> last STEP_DONE, of the last step */
    uint64_t step_bytes0;              /* bytes_read at launch (bytes read during the step) */
    uint64_t step_compute_us;          /* sum of the workers' STEP_DONE.usec */
    uint64_t step_wait_us;             /* sum of the workers' STEP_DONE.wait_usec */
    uint32_t *distinct, *row_of, *hash, hash_cap; /* [max_batch], [hash_cap] */
    uint32_t *seg_file;                           /* [seg_cap] LOAD segments being built */
    uint64_t *seg_off, *seg_len, *seg_slot;       /* [seg_cap] */
    uint32_t seg_cap;

    /* requests */
    request *reqs;                     /* [max_queue] */
    uint64_t next_order;
    bool *seq_used;                    /* [max_seqs] */
    float *logits_scratch;             /* [n_vocab] what the sampler may modify */
    char *text;                        /* [LMM_PROTO_MAX_TEXT_BYTES] */

    /* KV reuse: the index, and the step's (seq, block, slot) triples */
    kv_index kv;
    uint32_t *step_kv_load, *step_kv_store; /* [3 * LMM_PROTO_MAX_KV_BLOCKS] */
    uint32_t step_n_kv_load, step_n_kv_store; /* elements (3 per block) */

    /* Supervision (recover.c, docs/process-group.md "Recovery"): a pidfd per service
     * from the pid it gave in HELLO; the death of the loader, a worker or the cache is
     * seen here, repaired here, and the replacement's HELLO taken. */
    int loader_pidfd, cache_pidfd, compute_pidfd[SCHED_MAX_WORKERS]; /* -1: none */
    uint32_t compute_pid[SCHED_MAX_WORKERS];
    uint64_t step_progress_us;         /* last sign of life of a step: launch, STEP, SLOT_FREE, LOADED */
    bool was_ready;                    /* READY once: the cache is no longer required */
    bool embd_loading;                 /* an embedding-row LOAD is in flight */
    bool loader_lost;                  /* the loader died: re-issue its loads at re-HELLO */
    bool recovering;                   /* a step was aborted: reset the streaming slots */
    int abort_wait_worker;             /* live worker still running the aborted step; -1 */
    bool need_small[SCHED_MAX_WORKERS];/* a (re)started worker waits for the small tensors */
    uint32_t *stream_piece;            /* [n_stream pieces] the streamed pieces, cycle order */
    uint32_t n_streamed;
    uint64_t step_kv_gen;              /* kv.gen when the step's KV loads/stores were planned */
    uint32_t step_failures;            /* failed steps in a row (fatal beyond a limit) */
    uint64_t recoveries, services_lost;

    /* stats */
    uint64_t served, tokens_generated, steps_run;
    uint64_t busy_us;                  /* time with a step in flight */
} sched;

/* services.c */
int sched_services_message(sched *s, const lmm_service_peer *from, lmm_msg *m);
void sched_pump_loads(sched *s);
int sched_step_launch(sched *s);
void sched_update_ready(sched *s, char *waiting, size_t cap);
void sched_shutdown_services(sched *s);
int sched_send_load(sched *s, uint32_t slot, uint64_t tag, uint32_t n, const uint32_t *file, const uint64_t *off,
                    const uint64_t *len, const uint64_t *slot_off);
/* LOAD of plan piece i (its segments) into slot with tag. */
int sched_load_piece(sched *s, uint32_t i, uint32_t slot, uint64_t tag);

/* recover.c */
int sched_recover_init(sched *s);
void sched_recover_free(sched *s);
/* Starts watching the process that said HELLO as `name` (its pid). */
void sched_watch(sched *s, int *pidfd, uint32_t pid);
/* True when the process behind pidfd has exited (or pidfd is -1). */
bool sched_watch_dead(int pidfd);
/* Polls every watched service; handles each one found dead. */
void sched_watch_poll(sched *s);
/* The loader, worker w or the cache is gone (dead, or its socket refused a send). */
void sched_loader_lost(sched *s);
void sched_compute_lost(sched *s, uint32_t w);
void sched_cache_lost(sched *s);
/* A restarted loader said HELLO: re-issue what its predecessor left unfinished. */
int sched_loader_rejoined(sched *s);
/* The step in flight is abandoned (a worker died or failed it): every active request
 * recomputes its KV; the streaming slots are reset once nothing touches them. */
void sched_step_abort(sched *s, const char *why);
/* A worker that has run one step for longer than --step-timeout-ms is hung: SIGKILL,
 * so that lmlaunch restarts it and the step is replayed (the client never hangs). */
void sched_watchdog(sched *s);
/* Drives a pending reset; called every loop turn. */
void sched_recover_pump(sched *s);
/* Sends the embedding-row LOAD of the current step (s->step_tokens). */
int sched_send_embd_load(sched *s);

/* requests.c */
/* After a worker lost its KV: every admitted request recomputes its KV from its tokens
 * (the cached prefix first), then goes on exactly where it was. */
void sched_requests_replay(sched *s);
int sched_requests_init(sched *s);
void sched_requests_free(sched *s);
int sched_client_message(sched *s, const lmm_service_peer *from, lmm_msg *m);
/* Forms the next batch into s->step_* (false: nothing to run). */
bool sched_form_step(sched *s);
/* The last worker finished: sample and stream for every out row. */
void sched_step_finished(sched *s);
/* Ends every request with an ERROR (a service failed). */
void sched_fail_all(sched *s, const char *why);
uint32_t sched_active_requests(const sched *s);

/* kvindex.c */
/* Attaches the cache's region when RUN/kvcache names one we do not hold (no-op when
 * attached, with --no-prefix-cache, or when the cache has not published yet). */
void kv_try_attach(sched *s);
/* The cache said HELLO again (restarted): forget the old region. */
void kv_detach(sched *s);
void kv_free(sched *s);
/* A newly admitted request: keys of its blocks, the longest cached prefix (pinned);
 * sets r->n_prefilled to the positions it covers. */
void kv_lookup(sched *s, request *r);
/* Unpins what r still holds (it ends before its loads ran). */
void kv_request_release(sched *s, request *r);
/* Fills s->step_kv_load/_store for a prefill chunk [p0, p0 + c) of r. */
void kv_step_plan(sched *s, request *r, uint32_t p0, uint32_t c);
/* After the last worker's STEP_DONE: commit stored blocks, unpin loaded ones. */
void kv_step_done(sched *s);
/* The step was abandoned: unpin its loads, drop its half-written stores. */
void kv_step_abort(sched *s);

uint64_t sched_now_us(void);
void sched_log(const sched *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
