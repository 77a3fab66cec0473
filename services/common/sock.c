/* services/common/sock.c — ZeroMQ sockets for the services: DEALER/ROUTER setup, one
 * proto message per frame, receive with timeout (garbage answered with ERROR), poll
 * with peer-loss monitoring, and the HELLO handshake. API and framing: lmm/service.h.
 * When tracing (lmm/trace.h), every message sent and received is an instant event
 * ("send LOAD", "recv STEP_DONE", category "msg", with its bytes) and every poll that
 * waited is a "wait" span (category "wait"). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lmm/error.h"
#include "lmm/service.h"
#include "lmm/trace.h"

/* ---- trace names ------------------------------------------------------------------ */

/* "send LOAD", "recv LOAD", ...: built once, so that events carry static strings. */
static char g_msg_names[2][LMM_MSG_COUNT][32];
static pthread_once_t g_msg_names_once = PTHREAD_ONCE_INIT;

static void msg_names_init(void) {
    for (int t = 0; t < LMM_MSG_COUNT; t++) {
        snprintf(g_msg_names[0][t], sizeof g_msg_names[0][t], "send %s", lmm_proto_type_name((lmm_msg_type)t));
        snprintf(g_msg_names[1][t], sizeof g_msg_names[1][t], "recv %s", lmm_proto_type_name((lmm_msg_type)t));
    }
}

static void trace_msg(int recv, lmm_msg_type t, size_t bytes) {
    if (!lmm_trace_on()) return;
    pthread_once(&g_msg_names_once, msg_names_init);
    const char *name = (unsigned)t < LMM_MSG_COUNT ? g_msg_names[recv][t] : (recv ? "recv ?" : "send ?");
    lmm_trace_instant("msg", name, "bytes", (int64_t)bytes, NULL, 0);
}

/* ---- context ------------------------------------------------------------------- */

static void *g_ctx;

void *lmm_service_ctx(void) {
    if (!g_ctx) {
        g_ctx = zmq_ctx_new();
        if (g_ctx) zmq_ctx_set(g_ctx, ZMQ_BLOCKY, 0); /* zmq_ctx_term never waits on lingering sends */
    }
    return g_ctx;
}

void lmm_service_ctx_term(void) {
    if (!g_ctx) return;
    while (zmq_ctx_term(g_ctx) != 0 && errno == EINTR) {
    }
    g_ctx = NULL;
}

/* ---- sockets ------------------------------------------------------------------- */

static int zfail(const lmm_service_sock *s, const char *what) {
    return lmm_error_set("%s %s: %s", what, s->endpoint[0] ? s->endpoint : "(socket)", zmq_strerror(errno));
}

static int sock_open(lmm_service_sock *s, int type, const char *endpoint) {
    memset(s, 0, sizeof *s);
    s->type = type;
    if (!endpoint || !*endpoint) return lmm_error_set("empty ZeroMQ endpoint");
    if (strlen(endpoint) >= sizeof s->endpoint) return lmm_error_set("ZeroMQ endpoint too long: %.64s...", endpoint);
    strcpy(s->endpoint, endpoint);
    void *ctx = lmm_service_ctx();
    if (!ctx) return lmm_error_set("zmq_ctx_new: %s", zmq_strerror(errno));
    s->sbuf = malloc(LMM_PROTO_MAX_MSG_BYTES);
    s->rbuf = malloc(LMM_PROTO_MAX_MSG_BYTES);
    if (!s->sbuf || !s->rbuf) {
        lmm_service_sock_close(s);
        return lmm_error_set("out of memory");
    }
    if (lmm_proto_decoder_create(&s->dec)) {
        lmm_service_sock_close(s);
        return -1;
    }
    s->zsock = zmq_socket(ctx, type);
    if (!s->zsock) {
        int rc = zfail(s, "zmq_socket for");
        lmm_service_sock_close(s);
        return rc;
    }
    int linger = 0, sndtimeo = LMM_SERVICE_SEND_TIMEOUT_MS;
    zmq_setsockopt(s->zsock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s->zsock, ZMQ_SNDTIMEO, &sndtimeo, sizeof sndtimeo);
    return 0;
}

/* Starts a monitor of connect/disconnect events on s->zsock, read in lmm_service_poll. */
static int monitor_start(lmm_service_sock *s) {
    static atomic_uint counter;
    char addr[64];
    snprintf(addr, sizeof addr, "inproc://lmm-monitor-%d-%u", (int)getpid(), atomic_fetch_add(&counter, 1));
    if (zmq_socket_monitor(s->zsock, addr, ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED) != 0)
        return zfail(s, "zmq_socket_monitor for");
    s->monitor = zmq_socket(lmm_service_ctx(), ZMQ_PAIR);
    if (!s->monitor) return zfail(s, "monitor socket for");
    int linger = 0;
    zmq_setsockopt(s->monitor, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(s->monitor, addr) != 0) return zfail(s, "monitor connect for");
    return 0;
}

/* Reads every pending monitor event (two frames each: [u16 event][u32 value], address). */
static void monitor_drain(lmm_service_sock *s) {
    if (!s->monitor) return;
    for (;;) {
        zmq_msg_t f;
        zmq_msg_init(&f);
        if (zmq_msg_recv(&f, s->monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&f);
            return;
        }
        uint16_t ev = 0;
        if (zmq_msg_size(&f) >= 6) memcpy(&ev, zmq_msg_data(&f), sizeof ev);
        int more = zmq_msg_more(&f);
        zmq_msg_close(&f);
        while (more) { /* the address frame */
            zmq_msg_init(&f);
            if (zmq_msg_recv(&f, s->monitor, 0) < 0) more = 0;
            else more = zmq_msg_more(&f);
            zmq_msg_close(&f);
        }
        if (ev == ZMQ_EVENT_CONNECTED) s->connected = true;
        else if (ev == ZMQ_EVENT_DISCONNECTED && s->connected) s->peer_lost = true;
    }
}

int lmm_service_dealer_connect(lmm_service_sock *s, const char *endpoint, const char *identity) {
    if (sock_open(s, ZMQ_DEALER, endpoint)) return -1;
    if (identity && *identity) {
        /* "<identity>@<pid>": a restarted service is a new peer for the ROUTER, so a
         * message its dead predecessor left in flight is never taken for its own. */
        char id[LMM_SERVICE_MAX_PEER_ID + 1];
        int n = snprintf(id, sizeof id, "%s@%d", identity, (int)getpid());
        if (n < 0 || (size_t)n > LMM_SERVICE_MAX_PEER_ID) {
            lmm_service_sock_close(s);
            return lmm_error_set("routing id '%.32s...' longer than %u bytes", identity, LMM_SERVICE_MAX_PEER_ID);
        }
        zmq_setsockopt(s->zsock, ZMQ_ROUTING_ID, id, (size_t)n);
    }
    int ivl = LMM_SERVICE_HEARTBEAT_MS, tmo = 5 * LMM_SERVICE_HEARTBEAT_MS;
    zmq_setsockopt(s->zsock, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(s->zsock, ZMQ_HEARTBEAT_TIMEOUT, &tmo, sizeof tmo);
    if (monitor_start(s) || (zmq_connect(s->zsock, endpoint) != 0 && zfail(s, "connect to"))) {
        lmm_service_sock_close(s);
        return -1;
    }
    return 0;
}

int lmm_service_router_bind(lmm_service_sock *s, const char *endpoint) {
    if (sock_open(s, ZMQ_ROUTER, endpoint)) return -1;
    int one = 1;
    zmq_setsockopt(s->zsock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    if (zmq_bind(s->zsock, endpoint) != 0) {
        int rc = zfail(s, "bind");
        lmm_service_sock_close(s);
        return rc;
    }
    return 0;
}

void lmm_service_sock_close(lmm_service_sock *s) {
    /* Stop the monitor while its reader still exists: libzmq's I/O thread sends events
     * with a blocking send under the monitor's mutex, so closing the reader first lets an
     * event (a DISCONNECTED as the peer exits) block that thread forever, and then
     * zmq_socket_monitor(NULL) below waits for the mutex forever. */
    if (s->zsock && s->monitor) zmq_socket_monitor(s->zsock, NULL, 0);
    if (s->monitor) zmq_close(s->monitor);
    if (s->zsock) zmq_close(s->zsock);
    lmm_proto_decoder_free(s->dec);
    free(s->sbuf);
    free(s->rbuf);
    memset(s, 0, sizeof *s);
}

/* ---- send and receive ---------------------------------------------------------- */

int lmm_service_send(lmm_service_sock *s, const lmm_service_peer *to, const lmm_msg *m) {
    size_t len;
    if (lmm_proto_encode(m, s->sbuf, LMM_PROTO_MAX_MSG_BYTES, &len))
        return lmm_error_prefix("encoding %s", lmm_proto_type_name(m->type));
    if (s->type == ZMQ_ROUTER) {
        if (!to || !to->len) return lmm_error_set("send %s on %s: no peer given", lmm_proto_type_name(m->type), s->endpoint);
        while (zmq_send(s->zsock, to->id, to->len, ZMQ_SNDMORE) < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            lmm_error_set("send %s to a peer of %s: %s", lmm_proto_type_name(m->type), s->endpoint,
                          e == EHOSTUNREACH ? "the peer is gone" : zmq_strerror(e));
            errno = e;
            return -1;
        }
    }
    while (zmq_send(s->zsock, s->sbuf, len, 0) < 0) {
        if (errno == EINTR) continue;
        int e = errno;
        lmm_error_set("send %s on %s: %s", lmm_proto_type_name(m->type), s->endpoint,
                      e == EAGAIN ? "timed out (the peer does not read)" : zmq_strerror(e));
        errno = e;
        return -1;
    }
    trace_msg(0, m->type, len);
    return 0;
}

int lmm_service_send_error(lmm_service_sock *s, const lmm_service_peer *to, lmm_proto_errcode code,
                           uint64_t req_id, const char *message) {
    lmm_msg m;
    lmm_proto_error_init(&m, code, req_id, message);
    return lmm_service_send(s, to, &m);
}

/* Discards the remaining frames of a multi-part message. */
static void drain_frames(void *zs) {
    int more = 1;
    size_t sz = sizeof more;
    while (zmq_getsockopt(zs, ZMQ_RCVMORE, &more, &sz) == 0 && more) {
        zmq_msg_t f;
        zmq_msg_init(&f);
        int rc = zmq_msg_recv(&f, zs, 0);
        zmq_msg_close(&f);
        if (rc < 0 && errno != EINTR) return;
    }
}

static bool has_more(void *zs) {
    int more = 0;
    size_t sz = sizeof more;
    return zmq_getsockopt(zs, ZMQ_RCVMORE, &more, &sz) == 0 && more;
}

/* One message without waiting: LMM_SERVICE_* or -1. */
static int recv_now(lmm_service_sock *s, lmm_service_peer *from, lmm_msg *m) {
    lmm_service_peer tmp;
    lmm_service_peer *peer = from ? from : &tmp;
    peer->len = 0;
    if (s->type == ZMQ_ROUTER) {
        int n = zmq_recv(s->zsock, peer->id, sizeof peer->id, ZMQ_DONTWAIT);
        if (n < 0) return errno == EAGAIN || errno == EINTR ? LMM_SERVICE_TIMEOUT : zfail(s, "receive on");
        peer->len = (size_t)n > sizeof peer->id ? sizeof peer->id : (size_t)n;
        if (!has_more(s->zsock)) return LMM_SERVICE_TIMEOUT; /* an id without payload: ignore */
    }
    int n;
    for (;;) { /* skip empty delimiter frames */
        n = zmq_recv(s->zsock, s->rbuf, LMM_PROTO_MAX_MSG_BYTES, s->type == ZMQ_ROUTER ? 0 : ZMQ_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR && s->type == ZMQ_ROUTER) continue; /* rest of a started message */
            return errno == EAGAIN || errno == EINTR ? LMM_SERVICE_TIMEOUT : zfail(s, "receive on");
        }
        if (n > 0 || !has_more(s->zsock)) break;
    }
    bool extra = has_more(s->zsock);
    if (extra) drain_frames(s->zsock);
    int rc;
    if ((size_t)n > LMM_PROTO_MAX_MSG_BYTES) {
        rc = lmm_error_set("message of %d bytes exceeds the limit of %u bytes", n, LMM_PROTO_MAX_MSG_BYTES);
        lmm_proto_error_init(m, LMM_PROTO_E_LIMIT, 0, lmm_error_get());
    } else if (extra) {
        rc = lmm_error_set("message of several frames (one proto message per frame expected)");
        lmm_proto_error_init(m, LMM_PROTO_E_BAD_MESSAGE, 0, lmm_error_get());
    } else if ((rc = lmm_proto_decode(s->dec, s->rbuf, (size_t)n, m)) != 0) {
        lmm_proto_decoder_error_reply(s->dec, m);
    }
    if (rc == 0) {
        trace_msg(1, m->type, (size_t)n);
        return LMM_SERVICE_MSG;
    }
    /* Answer garbage with ERROR and keep serving; the error line stays for the caller. */
    char why[LMM_ERROR_MAX];
    snprintf(why, sizeof why, "%s", lmm_error_get());
    lmm_msg reply = *m;
    if (lmm_service_send(s, peer, &reply) != 0) { /* peer gone: nothing to answer */
    }
    lmm_error_set("%s", why);
    return LMM_SERVICE_BAD;
}

int lmm_service_recv(lmm_service_sock *s, lmm_service_peer *from, lmm_msg *m, int timeout_ms) {
    uint64_t deadline = timeout_ms > 0 ? lmm_service_now_ms() + (uint64_t)timeout_ms : 0;
    for (;;) {
        int rc = recv_now(s, from, m);
        if (rc != LMM_SERVICE_TIMEOUT) return rc;
        int wait = timeout_ms;
        if (timeout_ms > 0) {
            uint64_t now = lmm_service_now_ms();
            if (now >= deadline) return LMM_SERVICE_TIMEOUT;
            wait = (int)(deadline - now);
        }
        if (timeout_ms == 0) return LMM_SERVICE_TIMEOUT;
        lmm_service_pollitem it = {.sock = s, .events = ZMQ_POLLIN};
        int n = lmm_service_poll(&it, 1, wait);
        if (n < 0) return -1;
        if (n == 0 && (lmm_service_stopping() || s->peer_lost)) return LMM_SERVICE_TIMEOUT;
        if (n == 0 && timeout_ms < 0) continue;
    }
}

/* ---- poll ---------------------------------------------------------------------- */

int lmm_service_poll(lmm_service_pollitem *items, unsigned n, int timeout_ms) {
    if (n > LMM_SERVICE_MAX_POLL) return lmm_error_set("lmm_service_poll: %u items (at most %u)", n, LMM_SERVICE_MAX_POLL);
    zmq_pollitem_t zi[2 * LMM_SERVICE_MAX_POLL];
    lmm_service_sock *mon_of[LMM_SERVICE_MAX_POLL];
    unsigned nm = 0;
    for (unsigned i = 0; i < n; i++) {
        items[i].revents = 0;
        zi[i] = (zmq_pollitem_t){.socket = items[i].sock ? items[i].sock->zsock : NULL,
                                 .fd = items[i].sock ? 0 : items[i].fd,
                                 .events = items[i].events};
        if (items[i].sock && items[i].sock->monitor) {
            zi[n + nm] = (zmq_pollitem_t){.socket = items[i].sock->monitor, .events = ZMQ_POLLIN};
            mon_of[nm++] = items[i].sock;
        }
    }
    uint64_t t0 = timeout_ms != 0 ? lmm_trace_begin() : 0;
    int rc = zmq_poll(zi, (int)(n + nm), timeout_ms);
    int e = errno;
    lmm_trace_end("wait", "wait", t0, "ready", rc, NULL, 0);
    lmm_service_trace_dump_pending(); /* SIGUSR2: `lmlaunch profile` */
    errno = e;
    if (rc < 0) {
        if (errno == EINTR) return 0;
        return lmm_error_set("zmq_poll: %s", zmq_strerror(errno));
    }
    int ready = 0;
    for (unsigned j = 0; j < nm; j++)
        if (zi[n + j].revents & ZMQ_POLLIN) monitor_drain(mon_of[j]);
    for (unsigned i = 0; i < n; i++) {
        items[i].revents = zi[i].revents;
        if (zi[i].revents) ready++;
    }
    return ready;
}

/* ---- HELLO --------------------------------------------------------------------- */

int lmm_service_hello(lmm_service_sock *s, lmm_proto_role role, const char *name, int timeout_ms,
                      lmm_msg *ack) {
    lmm_msg h;
    lmm_proto_msg_init(&h, LMM_MSG_HELLO);
    h.hello.role = role;
    h.hello.pid = (uint32_t)getpid();
    snprintf(h.hello.name, sizeof h.hello.name, "%s", name ? name : "");
    if (name && *name && lmm_trace_on()) lmm_trace_set_process_name(name); /* "compute.1" */
    if (lmm_service_send(s, NULL, &h)) return -1;
    uint64_t deadline = lmm_service_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        uint64_t now = lmm_service_now_ms();
        if (lmm_service_stopping()) return lmm_error_set("interrupted while waiting for HELLO_ACK from %s", s->endpoint);
        if (s->peer_lost) return lmm_error_set("%s went away before answering HELLO", s->endpoint);
        if (now >= deadline)
            return lmm_error_set("no answer to HELLO from %s within %d ms", s->endpoint, timeout_ms);
        int wait = (int)(deadline - now);
        int rc = lmm_service_recv(s, NULL, ack, wait < 200 ? wait : 200);
        if (rc < 0) return -1;
        if (rc != LMM_SERVICE_MSG) continue;
        if (ack->type == LMM_MSG_HELLO_ACK) {
            if (!ack->hello_ack.ok)
                return lmm_error_set("%s refused HELLO: %s", s->endpoint, ack->hello_ack.error);
            if (lmm_proto_version_check(ack->hello_ack.version)) return lmm_error_prefix("%s", s->endpoint);
            return 0;
        }
        if (ack->type == LMM_MSG_ERROR)
            return lmm_error_set("%s answered HELLO with an error: %s", s->endpoint, ack->error.message);
        return lmm_error_set("%s answered HELLO with %s", s->endpoint, lmm_proto_type_name(ack->type));
    }
}

int lmm_service_hello_reply(const lmm_msg *hello, lmm_proto_role self, lmm_msg *ack) {
    lmm_proto_msg_init(ack, LMM_MSG_HELLO_ACK);
    ack->hello_ack.role = self;
    if (hello->type != LMM_MSG_HELLO) {
        ack->hello_ack.ok = false;
        snprintf(ack->hello_ack.error, sizeof ack->hello_ack.error, "expected HELLO, got %s",
                 lmm_proto_type_name(hello->type));
        return -1;
    }
    if (lmm_proto_version_check(hello->hello.version)) {
        ack->hello_ack.ok = false;
        snprintf(ack->hello_ack.error, sizeof ack->hello_ack.error, "%s", lmm_error_get());
        return -1;
    }
    ack->hello_ack.ok = true;
    return 0;
}
