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
    bool cancelled;
    uint64_t t_start_us;
} request;

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
    bool small_issued, small_loaded, small_done, unlinked;
    uint32_t small_freed;
    bool embd_busy;                    /* the embedding slot holds rows not yet released */
    uint64_t next_req_id;              /* LOAD req_ids */
    uint64_t bytes_read;

    /* services */
    lmm_service_sock csock, ssock;     /* client and services ROUTERs */
    bool loader_up, cache_up;
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
    uint64_t step_compute_us;          /* sum of the workers' STEP_DONE.usec */
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

/* requests.c */
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

uint64_t sched_now_us(void);
void sched_log(const sched *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
