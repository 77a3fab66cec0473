/* services/loader/loader_main.c — lmm-loader, the process that reads model files.
 *
 * Connects to the scheduler (DEALER, identity "loader"), says HELLO, and learns the model
 * (HELLO_ACK.model: its file list, in lmm_model_desc order, gives the file indices of
 * LOAD) and the weight ring (HELLO_ACK.weights_shm or RING_ATTACH ring 0). Then:
 *
 *   LOAD {req_id, slot, tag, segments}  ->  slot FREE -> LOADING (lmm_shm_ring_slot_begin_load)
 *        -> every segment read by lmm_uring_reader (O_DIRECT, registered buffers, queue
 *           depth >= 16) to slot byte slot_offset[i]
 *        -> slot LOADING -> READY with tag and new generation (finish_load), or -> FREE
 *           with meta.error when a read failed
 *        -> LOADED {req_id, slot, tag, generation, status, bytes, usec, error}
 *
 * Tracing (LMM_TRACE=1, lmm/trace.h; names in docs/operations.md): an async span "load"
 * per LOAD (bytes, slot), "submit" spans (segments and bytes handed to io_uring),
 * "complete" spans (completions reaped, bytes), the counter "loads_in_flight".
 *
 * Every LOAD gets exactly one LOADED (status 0 or an errno, with `error` naming the file
 * and offset); only undecodable messages get ERROR. The ZeroMQ socket and the reader's
 * eventfd are polled together, so completions go out as soon as they land. Exits on
 * SHUTDOWN, SIGINT/SIGTERM, or when the scheduler goes away.
 *
 * Command line (docs/process-group.md): lmm-loader --run-dir DIR --services ENDPOINT
 * [--queue-depth N]. Exit: 0 stopped cleanly, 1 error, 2 usage. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmm/error.h"
#include "lmm/model.h"
#include "lmm/service.h"
#include "lmm/shm_ring.h"
#include "lmm/trace.h"
#include "lmm/uring_reader.h"

#define HELLO_TIMEOUT_MS 30000
#define MAX_LOADS 64u  /* LOADs in flight (each holds a slot); beyond: LOADED status EBUSY */
#define MIN_QUEUE_DEPTH 16u

/* One LOAD in flight: its segments copied out of the decoder's storage. */
typedef struct {
    bool used;
    uint64_t req_id, tag, generation;
    uint32_t slot;
    uint32_t n_segments;
    uint32_t next_submit;    /* segments [0, next_submit) handed to the reader */
    uint32_t n_done;         /* segments completed */
    int error;               /* first failure's errno, 0 if none */
    char error_text[LMM_PROTO_MAX_ERROR + 1];
    uint64_t bytes;          /* requested bytes read */
    uint64_t data_start;     /* slot byte of segment 0's first file byte */
    uint64_t t0_ms;
    uint32_t *file;          /* [LMM_PROTO_MAX_SEGMENTS] */
    uint64_t *offset;        /* [LMM_PROTO_MAX_SEGMENTS] */
    uint64_t *length;        /* [LMM_PROTO_MAX_SEGMENTS] */
    uint64_t *slot_offset;   /* [LMM_PROTO_MAX_SEGMENTS] */
} load;

typedef struct {
    const char *services;
    unsigned queue_depth;
    lmm_service_sock sock;
    lmm_model_desc desc;
    bool have_desc;
    lmm_shm_ring ring;
    bool have_ring;
    lmm_uring_reader reader;
    bool have_reader;
    load loads[MAX_LOADS];
    uint32_t order[MAX_LOADS];  /* FIFO of loads with segments still to submit */
    uint32_t n_order;
    unsigned active;
    uint64_t served, bytes_read, start_ms;
    lmm_uring_completion comps[64];
} loader;

static void log_line(const char *fmt, const char *arg) {
    fputs("lmm-loader: ", stderr);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
}

static int usage(const char *why) {
    fprintf(stderr, "lmm-loader: %s\nusage: lmm-loader --run-dir DIR --services ENDPOINT [--queue-depth N]\n", why);
    return 2;
}

/* ---- set-up from HELLO_ACK / RING_ATTACH ---------------------------------------- */

static int open_model(loader *L, const char *path) {
    if (L->have_desc) lmm_model_desc_free(&L->desc);
    L->have_desc = false;
    if (lmm_model_desc_open(&L->desc, path)) return -1;
    L->have_desc = true;
    return 0;
}

static void drop_ring(loader *L) {
    if (L->have_reader) lmm_uring_reader_free(&L->reader);
    if (L->have_ring) lmm_shm_ring_detach(&L->ring);
    L->have_reader = L->have_ring = false;
}

/* Maps the ring and sets up the reader with the model's files. */
static int attach_ring(loader *L, const char *name) {
    if (L->active) return lmm_error_set("RING_ATTACH %s while %u loads are in flight", name, L->active);
    drop_ring(L);
    if (lmm_shm_ring_attach(&L->ring, name)) return -1;
    L->have_ring = true;
    lmm_uring_reader_opts o;
    lmm_uring_reader_opts_default(&o);
    o.queue_depth = L->queue_depth;
    o.max_requests = 4 * L->queue_depth;
    o.max_files = L->have_desc && L->desc.n_files > o.max_files ? L->desc.n_files : o.max_files;
    if (lmm_uring_reader_init_opts(&L->reader, &L->ring, &o)) {
        drop_ring(L);
        return -1;
    }
    L->have_reader = true;
    for (uint32_t i = 0; L->have_desc && i < L->desc.n_files; i++) {
        uint32_t idx;
        if (lmm_uring_reader_add_file(&L->reader, L->desc.files[i], &idx)) {
            drop_ring(L);
            return -1;
        }
    }
    return 0;
}

/* ---- loads ----------------------------------------------------------------------- */

static int send_loaded(loader *L, load *ld) {
    lmm_msg m;
    lmm_proto_msg_init(&m, LMM_MSG_LOADED);
    m.loaded.req_id = ld->req_id;
    m.loaded.slot = ld->slot;
    m.loaded.tag = ld->tag;
    m.loaded.generation = ld->generation;
    m.loaded.status = (uint32_t)ld->error;
    m.loaded.bytes = ld->bytes;
    m.loaded.usec = (lmm_service_now_ms() - ld->t0_ms) * 1000u;
    if (ld->error) snprintf(m.loaded.error, sizeof m.loaded.error, "%s", ld->error_text);
    return lmm_service_send(&L->sock, NULL, &m);
}

/* A LOAD refused before any read: LOADED with status err. */
static int refuse(loader *L, const lmm_msg_load *in, int err, const char *why) {
    load tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.req_id = in->req_id;
    tmp.slot = in->slot;
    tmp.tag = in->tag;
    tmp.error = err;
    tmp.t0_ms = lmm_service_now_ms();
    snprintf(tmp.error_text, sizeof tmp.error_text, "%s", why);
    return send_loaded(L, &tmp);
}

static void load_fail(load *ld, int err, const char *why) {
    if (ld->error) return; /* keep the first cause */
    ld->error = err ? err : EIO;
    snprintf(ld->error_text, sizeof ld->error_text, "%s", why);
}

/* Ends a load whose segments are all accounted for: publishes the slot, sends LOADED. */
static int load_finish(loader *L, uint32_t i) {
    load *ld = &L->loads[i];
    if (lmm_shm_ring_slot_finish_load(&L->ring, ld->slot, ld->data_start, ld->error) && !ld->error)
        load_fail(ld, EINVAL, lmm_error_get());
    if (!ld->error) L->served++;
    int rc = send_loaded(L, ld);
    lmm_trace_async_end("io", "load", ld->req_id, "bytes", (int64_t)ld->bytes, "status", ld->error);
    ld->used = false;
    L->active--;
    lmm_trace_counter("loads_in_flight", L->active);
    return rc;
}

/* Hands queued segments to the reader while it has room (FIFO over loads). */
static int pump(loader *L) {
    while (L->n_order) {
        uint32_t i = L->order[0];
        load *ld = &L->loads[i];
        uint64_t t0 = lmm_trace_begin(), bytes = 0;
        uint32_t first = ld->next_submit;
        while (ld->next_submit < ld->n_segments && !ld->error) {
            uint32_t k = ld->next_submit;
            errno = 0;
            if (lmm_uring_reader_submit_at(&L->reader, ld->file[k], ld->offset[k], ld->length[k], ld->slot,
                                           ld->slot_offset[k], i)) {
                if (errno == EAGAIN) { /* table full: after the next completions */
                    lmm_trace_end("io", "submit", t0, "segments", ld->next_submit - first, "bytes", (int64_t)bytes);
                    return 0;
                }
                load_fail(ld, EINVAL, lmm_error_get());
                break;
            }
            bytes += ld->length[k];
            ld->next_submit++;
        }
        lmm_trace_end("io", "submit", t0, "segments", ld->next_submit - first, "bytes", (int64_t)bytes);
        /* all submitted, or failed: segments never submitted count as done */
        if (ld->error) {
            ld->n_done += ld->n_segments - ld->next_submit;
            ld->next_submit = ld->n_segments;
        }
        memmove(L->order, L->order + 1, (L->n_order - 1) * sizeof *L->order);
        L->n_order--;
        if (ld->n_done == ld->n_segments && load_finish(L, i)) return -1;
    }
    return 0;
}

static int on_load(loader *L, const lmm_msg_load *in) {
    char why[LMM_PROTO_MAX_ERROR + 1];
    if (!L->have_reader) return refuse(L, in, ENXIO, "no weight ring attached (RING_ATTACH first)");
    if (!L->have_desc) return refuse(L, in, ENOENT, "no model: HELLO_ACK named none");
    if (in->slot >= L->ring.n_slots) {
        snprintf(why, sizeof why, "slot %u out of range (ring %s has %u slots)", in->slot, L->ring.name,
                 L->ring.n_slots);
        return refuse(L, in, EINVAL, why);
    }
    for (uint32_t k = 0; k < in->n_segments; k++)
        if (in->file[k] >= L->desc.n_files) {
            snprintf(why, sizeof why, "segment %u: file %u out of range (the model has %u files)", k, in->file[k],
                     L->desc.n_files);
            return refuse(L, in, EINVAL, why);
        }
    uint32_t i = 0;
    while (i < MAX_LOADS && L->loads[i].used) i++;
    if (i == MAX_LOADS) return refuse(L, in, EBUSY, "too many loads in flight");
    load *ld = &L->loads[i];
    uint64_t total = 0;
    for (uint32_t k = 0; k < in->n_segments; k++) total += in->length[k]; /* each <= 2^48, n <= 4096 */
    uint64_t gen = 0;
    if (lmm_shm_ring_slot_begin_load(&L->ring, in->slot, in->file[0], in->offset[0], total, in->tag, &gen))
        return refuse(L, in, EBUSY, lmm_error_get());
    ld->used = true;
    ld->req_id = in->req_id;
    ld->tag = in->tag;
    ld->generation = gen;
    ld->slot = in->slot;
    ld->n_segments = in->n_segments;
    ld->next_submit = ld->n_done = 0;
    ld->error = 0;
    ld->error_text[0] = '\0';
    ld->bytes = 0;
    ld->data_start = in->slot_offset[0] + in->offset[0] % LMM_URING_ALIGN;
    ld->t0_ms = lmm_service_now_ms();
    memcpy(ld->file, in->file, in->n_segments * sizeof *ld->file);
    memcpy(ld->offset, in->offset, in->n_segments * sizeof *ld->offset);
    memcpy(ld->length, in->length, in->n_segments * sizeof *ld->length);
    memcpy(ld->slot_offset, in->slot_offset, in->n_segments * sizeof *ld->slot_offset);
    L->active++;
    L->order[L->n_order++] = i;
    lmm_trace_async_begin("io", "load", in->req_id, "bytes", (int64_t)total, "slot", in->slot);
    lmm_trace_counter("loads_in_flight", L->active);
    return pump(L);
}

static int reap(loader *L) {
    for (;;) {
        uint64_t t0 = lmm_trace_begin(), bytes = 0;
        int n = lmm_uring_reader_poll(&L->reader, L->comps, sizeof L->comps / sizeof *L->comps);
        if (n < 0) return -1;
        if (n == 0) break;
        for (int j = 0; j < n; j++) bytes += L->comps[j].bytes;
        lmm_trace_end("io", "complete", t0, "completions", n, "bytes", (int64_t)bytes);
        for (int j = 0; j < n; j++) {
            const lmm_uring_completion *c = &L->comps[j];
            uint32_t i = (uint32_t)c->user_tag;
            if (i >= MAX_LOADS || !L->loads[i].used) continue;
            load *ld = &L->loads[i];
            ld->bytes += c->bytes;
            L->bytes_read += c->bytes;
            if (c->error) {
                char why[LMM_PROTO_MAX_ERROR + 1];
                lmm_uring_completion_describe(&L->reader, c, why, sizeof why);
                load_fail(ld, c->error, why);
            }
            ld->n_done++;
            /* finished when every segment is done and none waits in the FIFO */
            if (ld->n_done == ld->n_segments && ld->next_submit == ld->n_segments && load_finish(L, i)) return -1;
        }
    }
    return pump(L);
}

/* ---- messages -------------------------------------------------------------------- */

/* 1: stop; 0: go on; -1: fatal. */
static int on_message(loader *L, const lmm_msg *m) {
    lmm_msg r;
    switch (m->type) {
    case LMM_MSG_SHUTDOWN:
        return 1;
    case LMM_MSG_STATUS:
        lmm_service_status_fill(&r, LMM_PROTO_ROLE_LOADER, "loader", L->start_ms);
        r.status_reply.active = L->active;
        r.status_reply.served = L->served;
        r.status_reply.bytes_read = L->bytes_read;
        r.status_reply.shm_bytes = L->have_ring ? L->ring.total_bytes : 0;
        return lmm_service_send(&L->sock, NULL, &r) ? -1 : 0;
    case LMM_MSG_PING:
        lmm_proto_msg_init(&r, LMM_MSG_ACK);
        r.ack.of = LMM_MSG_PING;
        return lmm_service_send(&L->sock, NULL, &r) ? -1 : 0;
    case LMM_MSG_RING_ATTACH:
        if (m->ring_attach.ring == 0 && attach_ring(L, m->ring_attach.shm)) {
            log_line("%s", lmm_error_get());
            return lmm_service_send_error(&L->sock, NULL, LMM_PROTO_E_IO, 0, lmm_error_get()) ? -1 : 0;
        }
        lmm_proto_msg_init(&r, LMM_MSG_ACK);
        r.ack.of = LMM_MSG_RING_ATTACH;
        return lmm_service_send(&L->sock, NULL, &r) ? -1 : 0;
    case LMM_MSG_LOAD:
        return on_load(L, &m->load) ? -1 : 0;
    case LMM_MSG_ACK:
    case LMM_MSG_ERROR:
    case LMM_MSG_HELLO_ACK:
        return 0;
    default: {
        char why[128];
        snprintf(why, sizeof why, "the loader does not take %s", lmm_proto_type_name(m->type));
        return lmm_service_send_error(&L->sock, NULL, LMM_PROTO_E_UNEXPECTED, 0, why) ? -1 : 0;
    }
    }
}

static int run(loader *L) {
    lmm_msg m;
    if (lmm_service_hello(&L->sock, LMM_PROTO_ROLE_LOADER, "loader", HELLO_TIMEOUT_MS, &m))
        return lmm_service_stopping() ? 0 : -1;
    if (m.hello_ack.model[0] && open_model(L, m.hello_ack.model)) return -1;
    if (m.hello_ack.weights_shm[0] && attach_ring(L, m.hello_ack.weights_shm)) return -1;
    for (;;) {
        if (lmm_service_stopping() || L->sock.peer_lost) return 0;
        lmm_service_pollitem it[2] = {{.sock = &L->sock, .events = ZMQ_POLLIN},
                                      {.fd = L->have_reader ? lmm_uring_reader_event_fd(&L->reader) : -1,
                                       .events = ZMQ_POLLIN}};
        int n = lmm_service_poll(it, L->have_reader ? 2 : 1, 1000);
        if (n < 0) return -1;
        if (L->have_reader && (it[1].revents || L->active) && reap(L)) return -1;
        if (!(it[0].revents & ZMQ_POLLIN)) continue;
        for (;;) { /* everything queued on the socket */
            int rc = lmm_service_recv(&L->sock, NULL, &m, 0);
            if (rc < 0) return -1;
            if (rc == LMM_SERVICE_TIMEOUT) break;
            if (rc == LMM_SERVICE_BAD) {
                log_line("bad message: %s", lmm_error_get());
                continue;
            }
            int h = on_message(L, &m);
            if (h < 0) return -1;
            if (h > 0) return 0;
        }
    }
}

int main(int argc, char **argv) {
    static loader L; /* large: the load table */
    const char *run_dir = NULL, *qd = NULL;
    for (int i = 1; i < argc; i++) {
        int r;
        if ((r = lmm_service_flag(argc, argv, &i, "--run-dir", &run_dir)) ||
            (r = lmm_service_flag(argc, argv, &i, "--services", &L.services)) ||
            (r = lmm_service_flag(argc, argv, &i, "--queue-depth", &qd))) {
            if (r < 0) return usage(lmm_error_get());
            continue;
        }
        char msg[256];
        snprintf(msg, sizeof msg, "unknown argument '%s'", argv[i]);
        return usage(msg);
    }
    (void)run_dir;
    if (!L.services) return usage("--services ENDPOINT is required");
    L.queue_depth = LMM_URING_DEFAULT_QUEUE_DEPTH;
    if (qd) {
        uint64_t v;
        if (lmm_service_parse_u64(qd, MIN_QUEUE_DEPTH, 4096, &v)) return usage(lmm_error_get());
        L.queue_depth = (unsigned)v;
    }
    for (uint32_t i = 0; i < MAX_LOADS; i++) {
        load *ld = &L.loads[i];
        ld->file = malloc(LMM_PROTO_MAX_SEGMENTS * sizeof *ld->file);
        ld->offset = malloc(LMM_PROTO_MAX_SEGMENTS * sizeof *ld->offset);
        ld->length = malloc(LMM_PROTO_MAX_SEGMENTS * sizeof *ld->length);
        ld->slot_offset = malloc(LMM_PROTO_MAX_SEGMENTS * sizeof *ld->slot_offset);
        if (!ld->file || !ld->offset || !ld->length || !ld->slot_offset) {
            log_line("%s", "out of memory");
            return 1;
        }
    }
    L.start_ms = lmm_service_now_ms();
    lmm_service_signals_install();
    lmm_service_die_with_parent();
    int rc = 1;
    if (lmm_service_dealer_connect(&L.sock, L.services, "loader") == 0) {
        rc = run(&L) == 0 ? 0 : 1;
        if (rc) log_line("%s", lmm_error_get());
    } else {
        log_line("%s", lmm_error_get());
    }
    drop_ring(&L);
    if (L.have_desc) lmm_model_desc_free(&L.desc);
    lmm_service_sock_close(&L.sock);
    lmm_service_ctx_term();
    for (uint32_t i = 0; i < MAX_LOADS; i++) {
        free(L.loads[i].file);
        free(L.loads[i].offset);
        free(L.loads[i].length);
        free(L.loads[i].slot_offset);
    }
    return rc;
}
