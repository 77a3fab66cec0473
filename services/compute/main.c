/* services/compute/main.c — lmm-compute, a worker that runs a range of layers.
 *
 * Life (docs/process-group.md, "Compute"):
 *   1. DEALER "compute.N" -> the scheduler's services endpoint; HELLO; the HELLO_ACK
 *      names the model, the weight ring, the activation region, this worker's layers
 *      [layer_begin, layer_end), max_batch and piece_bytes.
 *   2. Opens the model description (header only: the loader is the only process that
 *      reads weights), cuts the same plan as the scheduler, maps both regions and reads
 *      the group parameters (group_layout.h) from the activation region.
 *   3. Waits for the small tensors (norms, biases) that the scheduler had the loader put
 *      in the embedding slot, widens its layers' ones to FP32 and says SLOT_FREE for that
 *      slot. Builds the executor (lmm/executor.h) over the ring source (ring_source.c):
 *      KV cache for max_seqs sequences x n_ctx positions of its layers, activations for
 *      max_batch tokens.
 *   4. Serves STEP: input rows from the embedding slot (worker 0: the step's embedding
 *      rows, packed as group_layout.h says) or the activation region's x (the previous
 *      worker's output); output to x, or (last worker, the head) logits of the `out` rows.
 *      Streamed slots are freed piece by piece during the step (SLOT_FREE); the embedding
 *      slot after it; then STEP_DONE with the compute time (waits for slots excluded).
 * Exits on SHUTDOWN, SIGINT/SIGTERM, or when the scheduler goes away.
 *
 * Command line: lmm-compute --run-dir DIR --services ENDPOINT --index N [--threads N]
 *               [--isa NAME] [--slot-timeout-ms MS] [--kv-ram BYTES --kv-spill-dir DIR]
 * --kv-ram: the live KV RAM of the whole group; this worker holds its layer share of it
 * and spills the rest to a file in --kv-spill-dir (docs/kv-cache.md "Long contexts").
 * Exit: 0 stopped cleanly, 1 error (one line naming the cause), 2 bad command line. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../cache/kv_region.h"
#include "group_layout.h"
#include "lmm/error.h"
#include "lmm/executor.h"
#include "lmm/hal.h"
#include "lmm/model.h"
#include "lmm/plan.h"
#include "lmm/service.h"
#include "lmm/shm_ring.h"
#include "lmm/trace.h"
#include "ring_source.h"
#include "kv_remote.h"

#define HELLO_TIMEOUT_MS 30000
#define SMALL_TIMEOUT_MS 120000
#define DEFAULT_SLOT_TIMEOUT_MS 60000

typedef struct {
    const char *services, *isa;
    uint32_t index;
    int threads;
    int slot_timeout_ms;
    uint64_t kv_ram;                    /* --kv-ram: the group's live KV RAM; 0: all in RAM */
    const char *kv_spill_dir;           /* --kv-spill-dir */
    const char *kv_endpoint;            /* --kv-transport zmq: the cache's endpoint (--kv-endpoint) */
    char kv_endpoint_buf[LMM_SERVICE_MAX_ENDPOINT];
    kv_remote kvr;                      /* up with --kv-transport zmq (kv_remote.h) */
    char name[32];

    lmm_service_sock sock;
    lmm_model_desc desc;
    bool have_desc;
    lmm_plan plan;
    bool have_plan;
    lmm_shm_ring ring, act;
    bool have_ring, have_act;
    lmm_group_params params;            /* copy of the activation region's header */
    uint32_t layer_begin, layer_end;
    int head;
    lmm_small_tensors small;
    bool have_small;
    lmm_ring_source rs;
    bool have_rs;
    lmm_executor *ex;
    uint64_t *small_slot_off;           /* [plan.n_small] */

    /* per-step scratch, [max_batch] each, allocated at start */
    uint32_t *distinct, *row_of, *hash;
    uint32_t hash_cap;
    uint64_t *seg_off, *seg_len, *seg_slot;
    const void **embd_rows;
    uint8_t *want;

    uint64_t start_ms, steps, tokens;

    /* the cache's KV block region, attached when a STEP first names it */
    lmm_shm_ring kv;
    bool have_kv;
    uint64_t kv_loaded, kv_stored;      /* blocks */
} worker;

static int usage(const char *why) {
    fprintf(stderr,
            "lmm-compute: %s\nusage: lmm-compute --run-dir DIR --services ENDPOINT --index N [--threads N] "
            "[--isa NAME] [--slot-timeout-ms MS] [--kv-ram BYTES --kv-spill-dir DIR] [--kv-transport shm|zmq] "
            "[--kv-endpoint ENDPOINT]\n",
            why);
    return 2;
}

static uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int parse_args(worker *w, int argc, char **argv) {
    const char *run_dir = NULL, *index = NULL, *threads = NULL, *timeout = NULL, *kv_transport = NULL;
    w->slot_timeout_ms = DEFAULT_SLOT_TIMEOUT_MS;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int r;
        if ((r = lmm_service_flag(argc, argv, &i, "--run-dir", &v)) != 0) {
            if (r < 0) return usage(lmm_error_get());
            run_dir = v;
        } else if ((r = lmm_service_flag(argc, argv, &i, "--services", &v)) != 0) {
            if (r < 0) return usage(lmm_error_get());
            w->services = v;
        } else if ((r = lmm_service_flag(argc, argv, &i, "--index", &v)) != 0) {
            if (r < 0) return usage(lmm_error_get());
            index = v;
        } else if ((r = lmm_service_flag(argc, argv, &i, "--threads", &v)) != 0) {
            if (r < 0) return usage(lmm_error_get());
            threads = v;
        } else if ((r = lmm_service_flag(argc, argv, &i, "--isa", &v)) != 0) {
            if (r < 0) return usage(lmm_error_get());
            w->isa = v;
        } else if ((r = lmm_service_flag(argc, argv, &i, "--slot-timeout-ms", &v)) != 0) {
            if (r < 0) return usage(lmm_error_get());
            timeout = v;
        } else if ((r = lmm_service_flag(argc, argv, &i, "--kv-ram", &v)) != 0) {
            if (r < 0 || lmm_service_parse_size(v, &w->kv_ram) || w->kv_ram == 0)
                return usage(r < 0 ? lmm_error_get() : "--kv-ram: not a size");
        } else if ((r = lmm_service_flag(argc, argv, &i, "--kv-transport", &v)) != 0) {
            if (r < 0) return usage(lmm_error_get());
            kv_transport = v;
        } else if ((r = lmm_service_flag(argc, argv, &i, "--kv-endpoint", &v)) != 0) {
            if (r < 0) return usage(lmm_error_get());
            w->kv_endpoint = v;
        } else if ((r = lmm_service_flag(argc, argv, &i, "--kv-spill-dir", &v)) != 0) {
            if (r < 0) return usage(lmm_error_get());
            w->kv_spill_dir = v;
        } else {
            char buf[300];
            snprintf(buf, sizeof buf, "unknown argument '%.200s'", argv[i]);
            return usage(buf);
        }
    }
    /* KV blocks through the cache's shared memory (default) or as ZeroMQ messages
     * (docs/kv-cache.md, "Transport") */
    if (kv_transport && strcmp(kv_transport, "shm") != 0 && strcmp(kv_transport, "zmq") != 0)
        return usage("--kv-transport: expected shm or zmq");
    if (kv_transport && kv_transport[0] == 'z' && !w->kv_endpoint) {
        if (!run_dir) return usage("--kv-transport zmq needs --kv-endpoint ENDPOINT or --run-dir DIR");
        snprintf(w->kv_endpoint_buf, sizeof w->kv_endpoint_buf, "ipc://%s/cache.ipc", run_dir);
        w->kv_endpoint = w->kv_endpoint_buf;
    }
    if (w->kv_endpoint && !(kv_transport && kv_transport[0] == 'z')) w->kv_endpoint = NULL; /* shm */
    if (!w->services) return usage("--services ENDPOINT is required");
    if (!index) return usage("--index N is required");
    if (w->kv_ram && !w->kv_spill_dir) return usage("--kv-ram needs --kv-spill-dir DIR");
    uint64_t u;
    if (lmm_service_parse_u64(index, 0, 4095, &u)) return usage(lmm_error_get());
    w->index = (uint32_t)u;
    if (threads) {
        if (lmm_service_parse_u64(threads, 1, 1024, &u)) return usage(lmm_error_get());
        w->threads = (int)u;
    }
    if (timeout) {
        if (lmm_service_parse_u64(timeout, 1, 3600000, &u)) return usage(lmm_error_get());
        w->slot_timeout_ms = (int)u;
    }
    if (w->isa) {
        lmm_isa isa;
        if (lmm_hal_isa_parse(w->isa, &isa)) return usage("--isa: not scalar, avx2 or avx512");
        if (lmm_hal_isa_set(isa)) return usage(lmm_error_get());
    }
    snprintf(w->name, sizeof w->name, "compute.%u", w->index);
    return 0;
}

/* ---- messages to the scheduler ---------------------------------------------------- */

static int send_slot_free(void *user, uint32_t slot) {
    worker *w = user;
    lmm_msg m;
    lmm_proto_msg_init(&m, LMM_MSG_SLOT_FREE);
    m.slot_free.slot = slot;
    return lmm_service_send(&w->sock, NULL, &m);
}

/* ---- start-up --------------------------------------------------------------------- */

/* Reads the group parameters the scheduler wrote at the start of the activation region. */
static int read_params(worker *w) {
    const lmm_group_params *h = (const lmm_group_params *)lmm_shm_ring_slot_data(&w->act, 0);
    if (w->act.slot_size < LMM_GROUP_HEADER_BYTES ||
        __atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != LMM_GROUP_MAGIC || h->version != LMM_GROUP_VERSION)
        return lmm_error_set("%s: no group parameters (magic/version) in the activation region", w->act.name);
    w->params = *h;
    const lmm_group_params *p = &w->params;
    if (p->n_pieces != w->plan.n_pieces || p->embd_slot != p->n_pinned + p->n_stream ||
        p->embd_slot + 1 != w->ring.n_slots || p->slot_bytes != w->ring.slot_size || p->slot_bytes < w->plan.slot_bytes ||
        p->act_bytes > w->act.slot_size || p->n_small != w->plan.n_small || p->max_seqs == 0 || p->n_ctx == 0 ||
        p->max_batch == 0 || p->n_workers == 0 || w->index >= p->n_workers)
        return lmm_error_set("%s: group parameters do not match this worker's plan (%u pieces, slot %" PRIu64
                             " bytes; ring: %u slots of %zu)",
                             w->act.name, w->plan.n_pieces, w->plan.slot_bytes, w->ring.n_slots, w->ring.slot_size);
    uint64_t xo, lo;
    uint64_t need = lmm_group_act_layout(p->max_batch, w->desc.hp.dim, w->desc.hp.n_vocab, &xo, &lo);
    if (xo != p->x_offset || lo != p->logits_offset || need > w->act.slot_size)
        return lmm_error_set("%s: activation layout does not match", w->act.name);
    return 0;
}

/* lmm_tensor_read_fn over the embedding slot holding the packed small tensors. */
static int read_small(void *ctx, uint32_t tensor, void *dst, uint64_t nbytes) {
    worker *w = ctx;
    for (uint32_t i = 0; i < w->plan.n_small; i++) {
        if (w->plan.small[i] != tensor) continue;
        const lmm_tensor_desc *t = &w->desc.tensors[tensor];
        if (nbytes != t->nbytes) return lmm_error_set("small tensor '%s': %" PRIu64 " bytes asked", t->name, nbytes);
        const uint8_t *slot = lmm_shm_ring_slot_data(&w->ring, w->params.embd_slot);
        memcpy(dst, slot + w->small_slot_off[i] + t->offset % LMM_GROUP_ALIGN, nbytes);
        return 0;
    }
    return lmm_error_set("tensor %u is not among the plan's small tensors", tensor);
}

static int load_small(worker *w) {
    uint32_t n = w->plan.n_small;
    uint64_t *off = malloc(((size_t)n + 1) * sizeof *off), *len = malloc(((size_t)n + 1) * sizeof *len);
    w->small_slot_off = malloc(((size_t)n + 1) * sizeof *w->small_slot_off);
    if (!off || !len || !w->small_slot_off) {
        free(off);
        free(len);
        return lmm_error_set("out of memory");
    }
    for (uint32_t i = 0; i < n; i++) {
        off[i] = w->desc.tensors[w->plan.small[i]].offset;
        len[i] = w->desc.tensors[w->plan.small[i]].nbytes;
    }
    uint64_t used = lmm_group_pack(off, len, n, w->small_slot_off);
    free(off);
    free(len);
    if (used > w->ring.slot_size) return lmm_error_set("small tensors (%" PRIu64 " bytes packed) exceed a slot", used);

    /* Shared by every worker: wait for READY without claiming; the scheduler frees the
     * slot once every worker has said SLOT_FREE. Waits in short slices to notice stops. */
    uint32_t slot = w->params.embd_slot;
    if (n == 0) { /* nothing to wait for (the scheduler loads nothing either) */
        if (lmm_small_tensors_read_with(&w->small, &w->desc, w->layer_begin, w->layer_end, w->head, read_small, w))
            return -1;
        w->have_small = true;
        return send_slot_free(w, slot);
    }
    uint64_t t_end = now_us() + (uint64_t)SMALL_TIMEOUT_MS * 1000u;
    for (;;) {
        if (lmm_service_stopping()) return lmm_error_set("stopped while waiting for the small tensors");
        if (lmm_shm_ring_slot_state(&w->ring, slot) == LMM_SLOT_READY &&
            lmm_shm_ring_slot_meta(&w->ring, slot)->tag == LMM_TAG_SMALL)
            break;
        if (now_us() > t_end)
            return lmm_error_set("the small tensors did not arrive in slot %u within %d s", slot,
                                 SMALL_TIMEOUT_MS / 1000);
        (void)lmm_shm_ring_slot_wait(&w->ring, slot, 1u << LMM_SLOT_READY, 200);
    }
    if (lmm_small_tensors_read_with(&w->small, &w->desc, w->layer_begin, w->layer_end, w->head, read_small, w))
        return -1;
    w->have_small = true;
    return send_slot_free(w, slot);
}

static int start(worker *w) {
    if (lmm_service_dealer_connect(&w->sock, w->services, w->name)) return -1;
    if (w->kv_endpoint && kv_remote_connect(&w->kvr, w->kv_endpoint, w->name)) return -1;
    lmm_msg ack;
    if (lmm_service_hello(&w->sock, LMM_PROTO_ROLE_COMPUTE, w->name, HELLO_TIMEOUT_MS, &ack)) return -1;
    const lmm_msg_hello_ack *a = &ack.hello_ack;
    if (!a->model[0] || !a->weights_shm[0] || !a->act_shm[0] || a->layer_end == 0 || a->max_batch == 0)
        return lmm_error_set("the scheduler's HELLO_ACK lacks the model, rings or layer range");
    w->layer_begin = a->layer_begin;
    w->layer_end = a->layer_end;
    char model[LMM_PROTO_MAX_PATH + 1], wshm[LMM_PROTO_MAX_SHM_NAME + 1], ashm[LMM_PROTO_MAX_SHM_NAME + 1];
    snprintf(model, sizeof model, "%s", a->model);
    snprintf(wshm, sizeof wshm, "%s", a->weights_shm);
    snprintf(ashm, sizeof ashm, "%s", a->act_shm);
    uint32_t max_batch = a->max_batch;
    uint64_t piece_bytes = a->piece_bytes;

    if (lmm_model_desc_open(&w->desc, model)) return -1;
    w->have_desc = true;
    if (w->layer_end > w->desc.hp.n_layers || w->layer_begin >= w->layer_end)
        return lmm_error_set("layer range [%u, %u) is not within the model's %u layers", w->layer_begin, w->layer_end,
                             w->desc.hp.n_layers);
    w->head = w->layer_end == w->desc.hp.n_layers;
    if (lmm_plan_build(&w->plan, &w->desc, piece_bytes)) return -1;
    w->have_plan = true;
    if (lmm_shm_ring_attach(&w->ring, wshm)) return -1;
    w->have_ring = true;
    if (lmm_shm_ring_attach(&w->act, ashm)) return -1;
    w->have_act = true;
    if (read_params(w)) return -1;
    if (max_batch != w->params.max_batch) return lmm_error_set("HELLO_ACK max_batch differs from the group's");

    size_t mb = max_batch;
    w->hash_cap = lmm_group_hash_cap(max_batch);
    w->distinct = malloc(mb * sizeof *w->distinct);
    w->row_of = malloc(mb * sizeof *w->row_of);
    w->hash = malloc((size_t)w->hash_cap * sizeof *w->hash);
    w->seg_off = malloc(mb * sizeof *w->seg_off);
    w->seg_len = malloc(mb * sizeof *w->seg_len);
    w->seg_slot = malloc(mb * sizeof *w->seg_slot);
    w->embd_rows = malloc(mb * sizeof *w->embd_rows);
    w->want = malloc(mb);
    if (!w->distinct || !w->row_of || !w->hash || !w->seg_off || !w->seg_len || !w->seg_slot || !w->embd_rows ||
        !w->want)
        return lmm_error_set("out of memory");

    if (load_small(w)) return -1;

    lmm_weight_source src;
    if (lmm_ring_source_init(&w->rs, &src, &w->ring, &w->plan, &w->params, w->slot_timeout_ms, send_slot_free, w))
        return -1;
    w->have_rs = true;
    lmm_executor_opts eo = {.layer_begin = w->layer_begin,
                            .layer_end = w->layer_end,
                            .head = w->head,
                            .max_batch = max_batch,
                            .max_seqs = w->params.max_seqs,
                            .n_ctx = w->params.n_ctx,
                            .n_threads = w->threads};
    if (w->kv_ram) { /* this worker's layer share of the group's live KV RAM */
        eo.kv_ram_bytes = w->kv_ram / w->desc.hp.n_layers * (w->layer_end - w->layer_begin);
        if (eo.kv_ram_bytes == 0) eo.kv_ram_bytes = 1; /* refused below with the block size */
        eo.kv_spill_dir = w->kv_spill_dir;
    }
    if (lmm_executor_init(&w->ex, &w->plan, &w->small, &src, &eo)) return -1;
    size_t kv_frames;
    uint64_t rd, wr;
    if (lmm_executor_kv_spill_stats(w->ex, &kv_frames, &rd, &wr))
        fprintf(stderr, "lmm-compute %u: live KV paged: %zu bytes of frames in RAM, the rest spilled to %s\n", w->index,
                kv_frames, w->kv_spill_dir);
    return 0;
}

/* ---- KV blocks (docs/kv-cache.md) ------------------------------------------------- */

/* This worker's part of block `block` in a region slot: layers [layer_begin, layer_end)
 * of [n_layers][2][B][kv_dim]. */
static uint8_t *kv_part(worker *w, uint32_t slot, uint32_t B) {
    uint64_t layer = kv_layer_bytes(&w->desc, B);
    return lmm_shm_ring_slot_data(&w->kv, slot) + (size_t)(w->layer_begin * layer);
}

static int kv_attach(worker *w, const lmm_msg_step *s) {
    if (w->have_kv && strcmp(w->kv.name, s->kv_shm) == 0) return 0;
    if (w->have_kv) lmm_shm_ring_detach(&w->kv);
    w->have_kv = false;
    memset(&w->kv, 0, sizeof w->kv);
    if (lmm_shm_ring_attach(&w->kv, s->kv_shm)) return -1;
    w->have_kv = true;
    if (w->kv.slot_size < kv_block_bytes(&w->desc, s->kv_block_tokens))
        return lmm_error_set("KV region %s: slots of %zu bytes hold no block of %u tokens", s->kv_shm,
                             w->kv.slot_size, s->kv_block_tokens);
    return 0;
}

/* kv_copy over ZeroMQ (--kv-transport zmq, kv_remote.h): this worker's part of each block
 * is fetched from / sent to the cache in verified chunks; the same bytes as through the
 * region. A store the cache refuses is not cached (the step goes on). */
static int kv_copy_remote(worker *w, const lmm_msg_step *s, bool load) {
    const uint32_t *t = load ? s->kv_load : s->kv_store;
    uint32_t n = load ? s->n_kv_load : s->n_kv_store, B = s->kv_block_tokens;
    uint64_t layer = kv_layer_bytes(&w->desc, B), off = (uint64_t)w->layer_begin * layer;
    size_t part = (size_t)((w->layer_end - w->layer_begin) * layer);
    if (kv_remote_reserve(&w->kvr, part)) return -1;
    float *buf = (float *)(void *)w->kvr.buf;
    for (uint32_t j = 0; j + 2 < n; j += 3) {
        uint32_t seq = t[j], block = t[j + 1], slot = t[j + 2];
        if ((uint64_t)block * B + B > w->params.n_ctx)
            return lmm_error_set("KV block %u of %u tokens beyond the context", block, B);
        if (load) {
            if (kv_remote_get(&w->kvr, slot, off, buf, part) ||
                lmm_executor_kv_write(w->ex, seq, block * B, block * B + B, buf))
                return -1;
        } else if (lmm_executor_kv_read(w->ex, seq, block * B, block * B + B, buf) ||
                   kv_remote_put(&w->kvr, slot, off, buf, part) < 0) {
            return -1;
        }
    }
    if (load) w->kv_loaded += n / 3;
    else w->kv_stored += n / 3;
    return 0;
}

/* kv_load (before the step: positions of cached blocks into the executor's KV) or
 * kv_store (after it: the finished blocks out to the region). */
static int kv_copy(worker *w, const lmm_msg_step *s, bool load) {
    const uint32_t *t = load ? s->kv_load : s->kv_store;
    uint32_t n = load ? s->n_kv_load : s->n_kv_store;
    if (n == 0) return 0;
    if (w->kvr.up) return kv_copy_remote(w, s, load);
    if (kv_attach(w, s)) return -1;
    uint32_t B = s->kv_block_tokens;
    for (uint32_t j = 0; j + 2 < n; j += 3) {
        uint32_t seq = t[j], block = t[j + 1], slot = t[j + 2];
        if (slot >= w->kv.n_slots) return lmm_error_set("KV slot %u beyond the region's %u", slot, w->kv.n_slots);
        if ((uint64_t)block * B + B > w->params.n_ctx)
            return lmm_error_set("KV block %u of %u tokens beyond the context", block, B);
        float *part = (float *)kv_part(w, slot, B);
        int rc = load ? lmm_executor_kv_write(w->ex, seq, block * B, block * B + B, part)
                      : lmm_executor_kv_read(w->ex, seq, block * B, block * B + B, part);
        if (rc) return -1;
    }
    if (load) w->kv_loaded += n / 3;
    else w->kv_stored += n / 3;
    return 0;
}

/* ---- one step --------------------------------------------------------------------- */

static int step_error(worker *w, const lmm_msg_step *s, int status, const char *what) {
    char line[LMM_PROTO_MAX_ERROR + 1];
    snprintf(line, sizeof line, "%s: step %" PRIu64 ": %s", w->name, s->step_id, what);
    fprintf(stderr, "lmm-compute: %s\n", line);
    lmm_service_send_error(&w->sock, NULL, LMM_PROTO_E_INTERNAL, 0, line);
    lmm_msg m;
    lmm_proto_msg_init(&m, LMM_MSG_STEP_DONE);
    m.step_done.step_id = s->step_id;
    m.step_done.status = (uint32_t)(status ? status : EIO);
    return lmm_service_send(&w->sock, NULL, &m);
}

/* Points embd_rows[i] at the embedding row of tokens[i] in the embedding slot, packed
 * as the scheduler packed them (distinct tokens in order of first appearance). */
static int embd_rows_of(worker *w, const lmm_msg_step *s, const uint8_t *slot) {
    const lmm_plan_embd *e = &w->plan.embd;
    uint32_t nd = lmm_group_distinct(s->tokens, s->n_tokens, w->distinct, w->row_of, w->hash, w->hash_cap);
    for (uint32_t j = 0; j < nd; j++) {
        if (w->distinct[j] >= e->n_rows) return lmm_error_set("token %u is beyond the vocabulary", w->distinct[j]);
        w->seg_off[j] = lmm_plan_embd_offset(&w->plan, w->distinct[j]);
        w->seg_len[j] = e->row_bytes;
    }
    uint64_t used = lmm_group_pack(w->seg_off, w->seg_len, nd, w->seg_slot);
    if (used > w->ring.slot_size) return lmm_error_set("embedding rows of the step exceed the slot");
    for (uint32_t i = 0; i < s->n_tokens; i++) {
        uint32_t j = w->row_of[i];
        w->embd_rows[i] = slot + w->seg_slot[j] + w->seg_off[j] % LMM_GROUP_ALIGN;
    }
    return 0;
}

static int run_step(worker *w, const lmm_msg_step *s) {
    const lmm_group_params *p = &w->params;
    if (s->layer_begin != w->layer_begin || s->layer_end != w->layer_end) {
        char why[160];
        snprintf(why, sizeof why, "layers [%u, %u) asked, this worker runs [%u, %u)", s->layer_begin, s->layer_end,
                 w->layer_begin, w->layer_end);
        return step_error(w, s, EINVAL, why);
    }
    if (s->n_tokens > p->max_batch) return step_error(w, s, EINVAL, "more tokens than max_batch");
    if (!w->rs.mapped && lmm_ring_source_map_pinned(&w->rs)) return step_error(w, s, EIO, lmm_error_get());

    uint8_t *act = lmm_shm_ring_slot_data(&w->act, 0);
    float *x = (float *)(act + p->x_offset);                 /* [max_batch][dim] */
    float *logits = (float *)(act + p->logits_offset);       /* [max_batch][n_vocab] */
    lmm_executor_batch b;
    memset(&b, 0, sizeof b);
    b.n = s->n_tokens;
    b.seq = s->seq;
    b.pos = s->pos;
    uint64_t t0 = now_us(), waited = 0, tr0 = lmm_trace_begin();
    bool embd_claimed = false;
    if (w->layer_begin == 0) {
        char what[64];
        snprintf(what, sizeof what, "embedding rows of step %" PRIu64, s->step_id);
        if (lmm_ring_source_wait_claim(&w->ring, p->embd_slot, lmm_tag_embd(s->step_id), w->slot_timeout_ms, what,
                                       &waited))
            return step_error(w, s, EIO, lmm_error_get());
        embd_claimed = true;
        if (embd_rows_of(w, s, lmm_shm_ring_slot_data(&w->ring, p->embd_slot))) {
            lmm_shm_ring_slot_release(&w->ring, p->embd_slot, 0);
            send_slot_free(w, p->embd_slot);
            return step_error(w, s, EINVAL, lmm_error_get());
        }
        b.embd_rows = w->embd_rows;
    } else {
        b.x_in = x;
    }
    if (w->head) {
        memset(w->want, 0, s->n_tokens);
        for (uint32_t i = 0; i < s->n_out; i++) w->want[s->out[i]] = 1;
        b.want_logits = w->want;
        b.logits = logits;
    } else {
        b.x_out = x;
    }
    lmm_ring_source_begin_step(&w->rs, s->step_id);
    int rc = kv_copy(w, s, true);
    if (rc == 0) rc = lmm_executor_step(w->ex, &b);
    if (rc == 0) rc = kv_copy(w, s, false);
    uint64_t t1 = now_us();
    if (embd_claimed) {
        if (lmm_shm_ring_slot_release(&w->ring, p->embd_slot, 0) || send_slot_free(w, p->embd_slot))
            return step_error(w, s, EIO, lmm_error_get());
    }
    if (rc != 0) return step_error(w, s, EIO, lmm_error_get());

    w->steps++;
    w->tokens += s->n_tokens;
    lmm_msg m;
    lmm_proto_msg_init(&m, LMM_MSG_STEP_DONE);
    m.step_done.step_id = s->step_id;
    m.step_done.status = 0;
    if (w->head) {
        m.step_done.out_offset = p->logits_offset;
        m.step_done.out_bytes = (uint64_t)s->n_out * w->desc.hp.n_vocab * sizeof(float);
    } else {
        m.step_done.out_offset = p->x_offset;
        m.step_done.out_bytes = (uint64_t)s->n_tokens * w->desc.hp.dim * sizeof(float);
    }
    uint64_t busy = t1 - t0, wait = waited + w->rs.wait_us;
    m.step_done.usec = busy > wait ? busy - wait : 0;
    /* the I/O stall: waits for streamed weight pieces only (0 when all are pinned) */
    m.step_done.wait_usec = w->rs.wait_us;
    lmm_trace_end("compute", "step", tr0, "step", (int64_t)s->step_id, "tokens", s->n_tokens);
    return lmm_service_send(&w->sock, NULL, &m);
}

/* ---- the loop --------------------------------------------------------------------- */

static int serve(worker *w) {
    while (!lmm_service_stopping() && !w->sock.peer_lost) {
        lmm_service_pollitem it = {.sock = &w->sock, .events = ZMQ_POLLIN};
        int n = lmm_service_poll(&it, 1, 1000);
        if (n < 0) return -1;
        if (n == 0 || !(it.revents & ZMQ_POLLIN)) continue;
        lmm_msg m;
        int rc = lmm_service_recv(&w->sock, NULL, &m, 0);
        if (rc < 0) return -1;
        if (rc != LMM_SERVICE_MSG) continue;
        switch (m.type) {
        case LMM_MSG_STEP:
            if (run_step(w, &m.step)) return -1;
            break;
        case LMM_MSG_SHUTDOWN:
            return 0;
        case LMM_MSG_PING: {
            lmm_msg a;
            lmm_proto_msg_init(&a, LMM_MSG_ACK);
            a.ack.of = LMM_MSG_PING;
            if (lmm_service_send(&w->sock, NULL, &a)) return -1;
            break;
        }
        case LMM_MSG_STATUS: {
            lmm_msg r;
            lmm_service_status_fill(&r, LMM_PROTO_ROLE_COMPUTE, w->name, w->start_ms);
            r.status_reply.served = w->steps;
            r.status_reply.tokens = w->tokens;
            r.status_reply.shm_bytes = w->ring.total_bytes + w->act.total_bytes;
            if (lmm_service_send(&w->sock, NULL, &r)) return -1;
            break;
        }
        default: {
            char why[96];
            snprintf(why, sizeof why, "%s does not take %s", w->name, lmm_proto_type_name(m.type));
            if (lmm_service_send_error(&w->sock, NULL, LMM_PROTO_E_UNEXPECTED, 0, why)) return -1;
        }
        }
    }
    return 0;
}

static void cleanup(worker *w) {
    size_t kv_frames;
    uint64_t rd, wr;
    if (w->ex && lmm_executor_kv_spill_stats(w->ex, &kv_frames, &rd, &wr))
        fprintf(stderr, "lmm-compute %u: live KV spill: %" PRIu64 " blocks read, %" PRIu64 " written\n", w->index, rd,
                wr);
    lmm_executor_free(w->ex);
    if (w->have_rs) lmm_ring_source_free(&w->rs);
    if (w->have_small) lmm_small_tensors_free(&w->small);
    free(w->small_slot_off);
    free(w->distinct);
    free(w->row_of);
    free(w->hash);
    free(w->seg_off);
    free(w->seg_len);
    free(w->seg_slot);
    free(w->embd_rows);
    free(w->want);
    if (w->have_kv) lmm_shm_ring_detach(&w->kv);
    kv_remote_close(&w->kvr);
    if (w->have_act) lmm_shm_ring_detach(&w->act);
    if (w->have_ring) lmm_shm_ring_detach(&w->ring);
    if (w->have_plan) lmm_plan_free(&w->plan);
    if (w->have_desc) lmm_model_desc_free(&w->desc);
    lmm_service_sock_close(&w->sock);
    lmm_service_ctx_term();
}

int main(int argc, char **argv) {
    static worker w; /* zeroed */
    int rc = parse_args(&w, argc, argv);
    if (rc) return rc;
    w.start_ms = lmm_service_now_ms();
    lmm_service_signals_install();
    lmm_service_die_with_parent();
    rc = 0;
    if (start(&w) || serve(&w)) {
        if (!lmm_service_stopping()) {
            fprintf(stderr, "lmm-compute: %s: %s\n", w.name, lmm_error_get());
            rc = 1;
        }
    }
    cleanup(&w);
    return rc;
}
