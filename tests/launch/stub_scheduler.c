/* tests/launch/stub_scheduler.c — a stand-in lmm-scheduler for the lmlaunch tests.
 *
 * Speaks the scheduler's side of docs/process-group.md to lmlaunch, lmclient and the
 * other services (same command line, same endpoints), but computes every token with the
 * in-process engine (lmm_transformer), so its output equals `lmlaunch run --in-process`.
 * What it checks of the real services: the loader really loads — before READY it creates
 * a weight ring, asks the loader for the first bytes of the model file (two segments,
 * the second at a slot offset) and compares the slot with the file. Used by
 * tests/launch/test_launch.c when the real scheduler/compute are not built, or when
 * LMM_LAUNCH_TEST_STUBS=1. Several GENERATE requests are served round-robin, one token
 * each in turn. A service restarted by lmlaunch may say HELLO again (its new peer is
 * kept). LMM_STUB_TOKEN_DELAY_MS slows each token down (tests of Ctrl-C and crashes
 * mid-generation). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lmm/error.h"
#include "lmm/model.h"
#include "lmm/sampler.h"
#include "lmm/service.h"
#include "lmm/shm_ring.h"
#include "lmm/tokenizer.h"
#include "lmm/transformer.h"

#define MAX_REQ 8
#define MAX_SVC 70
#define PROBE_BYTES 8192u

typedef struct {
    bool used;
    lmm_service_peer peer;
    uint64_t req_id;
    uint32_t max_tokens, n_prompt, n_gen, pos, n_ctx;
    bool dump;
    lmm_transformer *t;
    lmm_sampler *s;
    uint32_t *ids;   /* [n_prompt + max_tokens + 1] */
    float *logits;   /* [n_vocab] */
    float *raw;      /* [n_vocab] the logits before sampling (the sampler scales in place) */
    double t0;
} request;

static struct {
    const char *model, *tokenizer, *client_ep, *services_ep;
    unsigned workers;
    int threads;
    uint32_t ctx;
    lmm_service_sock cli, svc;
    lmm_model_desc desc;
    lmm_tokenizer *tok;
    lmm_weights w;
    lmm_shm_ring ring;
    bool have_ring, probe_sent, probe_ok;
    char said_hello[MAX_SVC][LMM_PROTO_MAX_NAME + 1];
    lmm_service_peer svc_peer[MAX_SVC];
    unsigned n_hello;
    request req[MAX_REQ];
    unsigned rr;
    int delay_ms;
    uint64_t start_ms, served, tokens;
} S;

static void die(const char *what) {
    fprintf(stderr, "lmm-scheduler (stub): %s: %s\n", what, lmm_error_get());
    if (S.have_ring) lmm_shm_ring_destroy(&S.ring);
    exit(1);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static bool has_hello(const char *name) {
    for (unsigned i = 0; i < S.n_hello; i++)
        if (strcmp(S.said_hello[i], name) == 0) return true;
    return false;
}

/* What READY still waits for, or NULL. */
static const char *waiting_for(char *buf, size_t cap) {
    if (!has_hello("loader")) return "loader";
    for (unsigned w = 0; w < S.workers; w++) {
        snprintf(buf, cap, "compute.%u", w);
        if (!has_hello(buf)) return buf;
    }
    if (!has_hello("cache")) return "cache";
    if (!S.probe_ok) return "pinned weights";
    return NULL;
}

/* LOAD of two segments of file 0 into slot 0: [0, 4096) at 0 and [4096, 8192) at 8192. */
static void send_probe(void) {
    unsigned li = MAX_SVC;
    for (unsigned i = 0; i < S.n_hello; i++)
        if (strcmp(S.said_hello[i], "loader") == 0) li = i;
    if (li == MAX_SVC || S.probe_sent) return;
    uint64_t size = S.desc.file_sizes[0];
    uint64_t len0 = size < 4096 ? size : 4096, len1 = size > 8192 ? 4096 : (size > 4096 ? size - 4096 : 0);
    static uint32_t file[2];
    static uint64_t off[2], len[2], soff[2];
    off[0] = 0, len[0] = len0, soff[0] = 0;
    off[1] = 4096, len[1] = len1, soff[1] = 8192;
    lmm_msg m;
    lmm_proto_msg_init(&m, LMM_MSG_LOAD);
    m.load.req_id = 77;
    m.load.slot = 0;
    m.load.tag = 1234;
    m.load.n_segments = len1 ? 2 : 1;
    m.load.file = file;
    m.load.offset = off;
    m.load.length = len;
    m.load.slot_offset = soff;
    if (lmm_service_send(&S.svc, &S.svc_peer[li], &m)) die("LOAD");
    S.probe_sent = true;
}

static void check_probe(const lmm_msg_loaded *l) {
    if (l->req_id != 77 || l->status != 0) {
        lmm_error_set("LOADED req %llu status %u: %s", (unsigned long long)l->req_id, l->status, l->error);
        die("loader");
    }
    if (lmm_shm_ring_slot_state(&S.ring, 0) != LMM_SLOT_READY || S.ring.meta[0].tag != 1234 ||
        l->generation != 1) {
        lmm_error_set("slot 0 not READY with tag 1234, generation 1 after LOADED");
        die("loader");
    }
    unsigned char want[PROBE_BYTES];
    int fd = open(S.desc.files[0], O_RDONLY);
    ssize_t n = fd >= 0 ? pread(fd, want, sizeof want, 0) : -1;
    if (fd >= 0) close(fd);
    const unsigned char *slot = lmm_shm_ring_slot_data(&S.ring, 0);
    size_t n0 = n < 4096 ? (size_t)n : 4096;
    bool ok = n > 0 && memcmp(slot, want, n0) == 0 && (n <= 4096 || memcmp(slot + 8192, want + 4096, (size_t)n - 4096) == 0);
    if (!ok) {
        lmm_error_set("the slot's bytes differ from %s", S.desc.files[0]);
        die("loader");
    }
    S.probe_ok = true;
}

static void on_service(const lmm_service_peer *from, const lmm_msg *m) {
    lmm_msg r;
    if (m->type == LMM_MSG_HELLO) {
        lmm_service_hello_reply(m, LMM_PROTO_ROLE_SCHEDULER, &r);
        snprintf(r.hello_ack.model, sizeof r.hello_ack.model, "%s", S.model);
        if (m->hello.role == LMM_PROTO_ROLE_LOADER) snprintf(r.hello_ack.weights_shm, sizeof r.hello_ack.weights_shm, "%s", S.ring.name);
        if (lmm_service_send(&S.svc, from, &r)) return; /* it died at once (killed by a test) */
        bool known = false; /* a restarted service says HELLO again from a new peer */
        for (unsigned i = 0; i < S.n_hello; i++)
            if (strcmp(S.said_hello[i], m->hello.name) == 0) {
                S.svc_peer[i] = *from;
                known = true;
            }
        if (S.n_hello < MAX_SVC && !known) {
            snprintf(S.said_hello[S.n_hello], sizeof S.said_hello[0], "%s", m->hello.name);
            S.svc_peer[S.n_hello++] = *from;
        }
        if (m->hello.role == LMM_PROTO_ROLE_LOADER) send_probe();
    } else if (m->type == LMM_MSG_LOADED) {
        check_probe(&m->loaded);
    }
}

static void shutdown_services(void) {
    lmm_msg m;
    lmm_proto_msg_init(&m, LMM_MSG_SHUTDOWN);
    for (unsigned i = 0; i < S.n_hello; i++) lmm_service_send(&S.svc, &S.svc_peer[i], &m);
}

static void req_free(request *q) {
    lmm_transformer_free(q->t);
    lmm_sampler_free(q->s);
    free(q->ids);
    free(q->logits);
    free(q->raw);
    memset(q, 0, sizeof *q);
}

static void send_error(const lmm_service_peer *to, uint64_t req_id, const char *why) {
    lmm_service_send_error(&S.cli, to, LMM_PROTO_E_BAD_MESSAGE, req_id, why);
}

static void on_generate(const lmm_service_peer *from, const lmm_msg_generate *g) {
    unsigned i = 0;
    while (i < MAX_REQ && S.req[i].used) i++;
    if (i == MAX_REQ) {
        lmm_service_send_error(&S.cli, from, LMM_PROTO_E_BUSY, g->req_id, "busy");
        return;
    }
    request *q = &S.req[i];
    memset(q, 0, sizeof *q);
    const lmm_hparams *hp = &S.desc.hp;
    char *prompt = malloc(g->prompt.len + 1);
    size_t cap = g->prompt.len + 16, n = 0;
    q->ids = malloc((cap + g->max_tokens + 1) * sizeof *q->ids);
    q->logits = malloc((size_t)hp->n_vocab * sizeof *q->logits);
    q->raw = malloc((size_t)hp->n_vocab * sizeof *q->raw);
    if (!prompt || !q->ids || !q->logits || !q->raw) die("out of memory");
    memcpy(prompt, g->prompt.ptr, g->prompt.len);
    prompt[g->prompt.len] = '\0';
    int rc = lmm_tokenizer_encode(S.tok, prompt, g->prompt.len, LMM_TOK_ADD_SPECIAL, q->ids, cap, &n);
    free(prompt);
    if (rc || n > cap) {
        send_error(from, g->req_id, "prompt could not be tokenized");
        req_free(q);
        return;
    }
    if (n == 0) {
        uint32_t bos = lmm_tokenizer_bos(S.tok);
        q->ids[n++] = bos == UINT32_MAX ? S.desc.bos_id : bos;
    }
    q->n_prompt = (uint32_t)n;
    q->n_ctx = S.ctx;
    if (!q->n_ctx) {
        uint64_t want = (uint64_t)n + g->max_tokens;
        q->n_ctx = want < hp->max_seq_len ? (uint32_t)want : hp->max_seq_len;
    }
    lmm_transformer_opts topts = {q->n_ctx, 0, S.threads};
    lmm_sampler_opts so = g->sampling;
    if (n > q->n_ctx || lmm_transformer_init(&q->t, &S.w, &topts) || lmm_sampler_init(&q->s, hp->n_vocab, &so)) {
        send_error(from, g->req_id, "cannot start the request");
        req_free(q);
        return;
    }
    for (size_t k = 0; k < n; k++) lmm_sampler_accept(q->s, q->ids[k]);
    q->used = true;
    q->peer = *from;
    q->req_id = g->req_id;
    q->max_tokens = g->max_tokens;
    q->dump = g->dump_logits;
    q->pos = (uint32_t)n;
    q->t0 = now_s();
    if (lmm_transformer_forward(q->t, q->ids, (uint32_t)n, 0, q->logits, 0)) die("prefill");
}

static void finish(request *q, lmm_proto_stop stop) {
    lmm_msg m;
    lmm_proto_msg_init(&m, LMM_MSG_DONE);
    m.done.req_id = q->req_id;
    m.done.n_prompt = q->n_prompt;
    m.done.n_generated = q->n_gen;
    m.done.stop = stop;
    double dt = now_s() - q->t0;
    m.done.tokens_per_s = dt > 0 ? q->n_gen / dt : 0.0;
    lmm_service_send(&S.cli, &q->peer, &m); /* a gone client: nothing to do */
    S.served++;
    req_free(q);
}

/* One token of request q (the same steps as `lmlaunch run --in-process`). */
static void step(request *q) {
    if (q->n_gen == q->max_tokens) {
        finish(q, LMM_PROTO_STOP_LENGTH);
        return;
    }
    uint32_t eos = lmm_tokenizer_eos(S.tok);
    if (eos == UINT32_MAX) eos = S.desc.eos_id;
    uint32_t bos_stop = S.desc.format == LMM_FORMAT_LLAMA2C ? lmm_tokenizer_bos(S.tok) : UINT32_MAX;
    if (q->dump) memcpy(q->raw, q->logits, S.desc.hp.n_vocab * sizeof *q->raw);
    uint32_t next = lmm_sampler_sample(q->s, q->logits);
    lmm_msg m;
    lmm_proto_msg_init(&m, LMM_MSG_TOKEN);
    m.token.req_id = q->req_id;
    m.token.id = next;
    if (q->dump) {
        m.token.logits = q->raw;
        m.token.n_logits = S.desc.hp.n_vocab;
    }
    if (next == eos || next == bos_stop) {
        if (q->dump && lmm_service_send(&S.cli, &q->peer, &m)) {
            req_free(q);
            return;
        }
        finish(q, LMM_PROTO_STOP_EOS);
        return;
    }
    char piece[1024];
    size_t plen = 0;
    if (lmm_tokenizer_decode_token(S.tok, q->ids[q->pos - 1], next, piece, sizeof piece, &plen)) die("decode");
    m.token.text = (lmm_proto_bytes){piece, plen};
    if (lmm_service_send(&S.cli, &q->peer, &m)) { /* client gone */
        req_free(q);
        return;
    }
    S.tokens++;
    lmm_sampler_accept(q->s, next);
    q->ids[q->pos] = next;
    q->n_gen++;
    if (q->n_gen == q->max_tokens) {
        finish(q, LMM_PROTO_STOP_LENGTH);
        return;
    }
    if (q->pos + 1 >= q->n_ctx) {
        finish(q, LMM_PROTO_STOP_CONTEXT);
        return;
    }
    if (lmm_transformer_forward(q->t, &q->ids[q->pos], 1, q->pos, q->logits, 0)) die("forward");
    q->pos++;
}

/* 1: SHUTDOWN received. */
static int on_client(const lmm_service_peer *from, const lmm_msg *m) {
    lmm_msg r;
    char buf[32];
    switch (m->type) {
    case LMM_MSG_HELLO:
        lmm_service_hello_reply(m, LMM_PROTO_ROLE_SCHEDULER, &r);
        lmm_service_send(&S.cli, from, &r);
        return 0;
    case LMM_MSG_STATUS: {
        lmm_service_status_fill(&r, LMM_PROTO_ROLE_SCHEDULER, "scheduler", S.start_ms);
        const char *w = waiting_for(buf, sizeof buf);
        r.status_reply.ready = w == NULL;
        snprintf(r.status_reply.waiting, sizeof r.status_reply.waiting, "%s", w ? w : "");
        r.status_reply.served = S.served;
        r.status_reply.tokens = S.tokens;
        lmm_service_send(&S.cli, from, &r);
        return 0;
    }
    case LMM_MSG_SHUTDOWN:
        shutdown_services();
        lmm_proto_msg_init(&r, LMM_MSG_ACK);
        r.ack.of = LMM_MSG_SHUTDOWN;
        lmm_service_send(&S.cli, from, &r);
        return 1;
    case LMM_MSG_GENERATE:
        if (waiting_for(buf, sizeof buf)) {
            lmm_service_send_error(&S.cli, from, LMM_PROTO_E_BUSY, m->generate.req_id, "not ready");
            return 0;
        }
        on_generate(from, &m->generate);
        return 0;
    case LMM_MSG_CANCEL:
        for (unsigned i = 0; i < MAX_REQ; i++)
            if (S.req[i].used && S.req[i].req_id == m->cancel.req_id && S.req[i].peer.len == from->len &&
                memcmp(S.req[i].peer.id, from->id, from->len) == 0)
                finish(&S.req[i], LMM_PROTO_STOP_CANCELLED);
        return 0;
    default:
        return 0;
    }
}

int main(int argc, char **argv) {
    S.workers = 1;
    const char *v;
    for (int i = 1; i < argc; i++) {
        uint64_t u;
        if (lmm_service_flag(argc, argv, &i, "--model", &S.model) > 0 ||
            lmm_service_flag(argc, argv, &i, "--tokenizer", &S.tokenizer) > 0 ||
            lmm_service_flag(argc, argv, &i, "--client", &S.client_ep) > 0 ||
            lmm_service_flag(argc, argv, &i, "--services", &S.services_ep) > 0)
            continue;
        if (lmm_service_flag(argc, argv, &i, "--workers", &v) > 0 && !lmm_service_parse_u64(v, 1, 64, &u)) {
            S.workers = (unsigned)u;
            continue;
        }
        if (lmm_service_flag(argc, argv, &i, "--threads", &v) > 0 && !lmm_service_parse_u64(v, 1, 1024, &u)) {
            S.threads = (int)u;
            continue;
        }
        if (lmm_service_flag(argc, argv, &i, "--ctx", &v) > 0 && !lmm_service_parse_u64(v, 1, 1u << 24, &u)) {
            S.ctx = (uint32_t)u;
            continue;
        }
        /* --run-dir, --mem-budget, --isa: accepted, not needed here */
        if (strncmp(argv[i], "--", 2) == 0 && i + 1 < argc && !strchr(argv[i], '=')) i++;
    }
    if (!S.model || !S.client_ep || !S.services_ep) {
        fprintf(stderr, "lmm-scheduler (stub): --model, --client and --services are required\n");
        return 2;
    }
    const char *d = getenv("LMM_STUB_TOKEN_DELAY_MS");
    S.delay_ms = d ? atoi(d) : 0;
    S.start_ms = lmm_service_now_ms();
    lmm_service_signals_install();
    lmm_service_die_with_parent();
    if (lmm_model_desc_open(&S.desc, S.model)) die("model");
    if (lmm_tokenizer_load_for_model(&S.tok, &S.desc, S.tokenizer)) die("tokenizer");
    if (lmm_weights_load(&S.w, &S.desc)) die("weights");
    if (lmm_shm_ring_create(&S.ring, 2, 4 * 4096)) die("ring");
    S.have_ring = true;
    if (lmm_service_router_bind(&S.svc, S.services_ep)) die("services endpoint");
    if (lmm_service_router_bind(&S.cli, S.client_ep)) die("client endpoint");
    int rc = 0;
    while (!lmm_service_stopping()) {
        bool busy = false;
        for (unsigned i = 0; i < MAX_REQ; i++) busy |= S.req[i].used;
        lmm_service_pollitem it[2] = {{.sock = &S.svc, .events = ZMQ_POLLIN}, {.sock = &S.cli, .events = ZMQ_POLLIN}};
        if (lmm_service_poll(it, 2, busy ? (S.delay_ms > 0 ? S.delay_ms : 0) : 500) < 0) die("poll");
        lmm_service_peer from;
        lmm_msg m;
        while (lmm_service_recv(&S.svc, &from, &m, 0) == LMM_SERVICE_MSG) on_service(&from, &m);
        int stop = 0;
        while (!stop && lmm_service_recv(&S.cli, &from, &m, 0) == LMM_SERVICE_MSG) stop = on_client(&from, &m);
        if (stop) break;
        if (busy) { /* one token of the next request in turn */
            for (unsigned k = 0; k < MAX_REQ; k++) {
                request *q = &S.req[(S.rr + k) % MAX_REQ];
                if (!q->used) continue;
                S.rr = (S.rr + k + 1) % MAX_REQ;
                step(q);
                break;
            }
        }
    }
    if (lmm_service_stopping()) shutdown_services();
    for (unsigned i = 0; i < MAX_REQ; i++)
        if (S.req[i].used) req_free(&S.req[i]);
    lmm_shm_ring_destroy(&S.ring);
    lmm_service_sock_close(&S.cli);
    lmm_service_sock_close(&S.svc);
    lmm_service_ctx_term();
    lmm_weights_free(&S.w);
    lmm_tokenizer_free(S.tok);
    lmm_model_desc_free(&S.desc);
    return rc;
}
