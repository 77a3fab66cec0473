/* lmm/service.h — ZeroMQ plumbing shared by every process of the group (services/common/).
 *
 * The scheduler binds ROUTER sockets (clients; the other services); the loader, compute
 * workers, cache, lmlaunch and lmclient connect DEALER sockets (docs/process-group.md).
 *
 * Framing: every message is ONE ZeroMQ frame holding one proto message (lmm/proto.h).
 * A DEALER sends [payload]; the ROUTER sees [peer id][payload] and answers
 * [peer id][payload]. (An empty delimiter frame after the peer id, as a REQ socket would
 * send, is accepted and skipped on receive.)
 *
 * A typical service:
 *
 *     lmm_service_signals_install();          // SIGINT/SIGTERM -> lmm_service_stopping()
 *     lmm_service_die_with_parent();          // SIGTERM when lmlaunch dies, even by SIGKILL
 *     lmm_service_sock s;
 *     lmm_service_dealer_connect(&s, a.services, "loader");
 *     lmm_msg ack;
 *     lmm_service_hello(&s, LMM_PROTO_ROLE_LOADER, "loader", 10000, &ack);
 *     while (!lmm_service_stopping() && !s.peer_lost) {
 *         lmm_service_pollitem it[2] = {{.sock = &s, .events = ZMQ_POLLIN},
 *                                       {.fd = reader_fd, .events = ZMQ_POLLIN}};
 *         if (lmm_service_poll(it, 2, 1000) < 0) break;
 *         if (it[0].revents & ZMQ_POLLIN) {
 *             lmm_msg m;
 *             int rc = lmm_service_recv(&s, NULL, &m, 0);
 *             if (rc == LMM_SERVICE_MSG) ... handle m, lmm_service_send(&s, NULL, &reply) ...
 *         }
 *     }
 *     lmm_service_sock_close(&s);
 *     lmm_service_ctx_term();
 *
 * "The scheduler went away": a DEALER socket watches its own connection through a
 * ZeroMQ socket monitor and ZMTP heartbeats; lmm_service_poll() sets peer_lost when
 * a connection that was up goes down (process exit closes the ipc/tcp connection; a
 * hung peer misses heartbeats). Services exit then.
 *
 * All functions return 0 / -1 with lmm_error_get() set, unless said otherwise.
 * Not thread-safe: one thread per socket (ZeroMQ's rule too). */
#ifndef LMM_SERVICE_H
#define LMM_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "lmm/proto.h"

#define LMM_SERVICE_MAX_PEER_ID 255u     /* ZeroMQ routing ids are 1..255 bytes */
#define LMM_SERVICE_MAX_ENDPOINT 256u
#define LMM_SERVICE_SEND_TIMEOUT_MS 10000 /* a send blocked this long fails */
#define LMM_SERVICE_HEARTBEAT_MS 1000     /* ZMTP heartbeat interval; peer lost after 5 */
#define LMM_SERVICE_MAX_POLL 16u          /* items per lmm_service_poll */

/* The sender of a message on a ROUTER socket (its ZeroMQ routing id). */
typedef struct {
    uint8_t id[LMM_SERVICE_MAX_PEER_ID]; /* [len] */
    size_t len;                          /* 0: none (DEALER sockets) */
} lmm_service_peer;

/* One socket with its buffers. Fields are read-only for callers. */
typedef struct {
    void *zsock;           /* the ZeroMQ socket (put it in your own zmq_poll if you like) */
    void *monitor;         /* PAIR socket receiving zsock's connection events, or NULL */
    int type;              /* ZMQ_DEALER or ZMQ_ROUTER */
    char endpoint[LMM_SERVICE_MAX_ENDPOINT];
    bool connected;        /* DEALER: a connection has come up */
    bool peer_lost;        /* DEALER: a connection that was up went down */
    lmm_proto_decoder *dec;
    uint8_t *sbuf;         /* [LMM_PROTO_MAX_MSG_BYTES] encode buffer */
    uint8_t *rbuf;         /* [LMM_PROTO_MAX_MSG_BYTES] last received payload; payloads of a
                            * decoded message point into it until the next recv */
} lmm_service_sock;

/* ---- context ---- */

/* The process's ZeroMQ context, created on first use. */
void *lmm_service_ctx(void);
/* Terminates it (close every socket first). Safe when never created. */
void lmm_service_ctx_term(void);

/* ---- sockets ---- */

/* A DEALER with routing id "<identity>@<pid>" (NULL or "": random) connected to endpoint.
 * LINGER 0, heartbeats on, peer-loss monitor on. The connection comes up in the
 * background: messages sent before it are queued. */
int lmm_service_dealer_connect(lmm_service_sock *s, const char *endpoint, const char *identity);
/* A ROUTER bound at endpoint (ipc:// paths are created; tcp://HOST:PORT). ROUTER_MANDATORY:
 * a send to an unknown or gone peer fails (EHOSTUNREACH) instead of vanishing. */
int lmm_service_router_bind(lmm_service_sock *s, const char *endpoint);
/* Closes the socket and frees the buffers. Safe on a zeroed or closed socket. */
void lmm_service_sock_close(lmm_service_sock *s);

/* Encodes and sends m (to: the peer on a ROUTER, NULL on a DEALER). Blocks at most
 * LMM_SERVICE_SEND_TIMEOUT_MS when the peer's queue is full. errno EHOSTUNREACH: the
 * ROUTER peer is gone. */
int lmm_service_send(lmm_service_sock *s, const lmm_service_peer *to, const lmm_msg *m);

enum {
    LMM_SERVICE_TIMEOUT = 0, /* nothing within timeout_ms, or a signal interrupted the wait */
    LMM_SERVICE_MSG = 1,     /* *m holds a decoded message (from: its sender on a ROUTER) */
    LMM_SERVICE_BAD = 2      /* a message that failed to decode was received and answered
                              * with an ERROR (lmm_error_get() says why); keep serving */
};
/* Receives one message, waiting at most timeout_ms (0: do not wait, -1: forever).
 * Returns LMM_SERVICE_* or -1 when the socket failed. */
int lmm_service_recv(lmm_service_sock *s, lmm_service_peer *from, lmm_msg *m, int timeout_ms);

/* Sends an ERROR (code, req_id, message) to `to` (NULL on a DEALER). */
int lmm_service_send_error(lmm_service_sock *s, const lmm_service_peer *to, lmm_proto_errcode code,
                           uint64_t req_id, const char *message);

/* ---- polling ---- */

/* sock (a lmm_service_sock) or fd (a file descriptor, sock NULL); events ZMQ_POLLIN/OUT. */
typedef struct {
    lmm_service_sock *sock;
    int fd;
    short events;
    short revents;
} lmm_service_pollitem;

/* zmq_poll over the items plus their sockets' monitors (which update connected and
 * peer_lost). Returns the number of items with revents != 0; 0 on timeout, when only
 * connection events came, or when a signal interrupted the wait (check
 * lmm_service_stopping()); -1 on error. At most LMM_SERVICE_MAX_POLL items. */
int lmm_service_poll(lmm_service_pollitem *items, unsigned n, int timeout_ms);

/* ---- HELLO ---- */

/* Client side of the handshake: sends HELLO (role, name, this pid) and waits up to
 * timeout_ms for HELLO_ACK, which goes to *ack. Fails with one line when no answer came
 * ("no answer from ipc://... within 5000 ms"), the peer refused ("... refused HELLO:
 * why") or answered something else (an ERROR's message is quoted). Returns early with
 * an error when a signal asks to stop. */
int lmm_service_hello(lmm_service_sock *s, lmm_proto_role role, const char *name, int timeout_ms,
                      lmm_msg *ack);
/* Server side: fills *ack, the HELLO_ACK answering *hello from a process of role
 * `self`: ok when the version matches, else ok = false and the version error. Returns
 * 0 when ok, -1 when refused. */
int lmm_service_hello_reply(const lmm_msg *hello, lmm_proto_role self, lmm_msg *ack);

/* ---- STATUS ---- */

/* Fills *m with a STATUS_REPLY for this process: role, pid, name, uptime since
 * start_ms (lmm_service_now_ms() at start), rss_bytes from /proc/self/statm. The
 * counters (active, served, ...) are left 0 for the caller. */
void lmm_service_status_fill(lmm_msg *m, lmm_proto_role role, const char *name, uint64_t start_ms);

/* ---- signals and process life ---- */

/* SIGINT, SIGTERM, SIGHUP set a flag (no SA_RESTART, so blocking calls return EINTR);
 * SIGPIPE is ignored. SIGUSR2 asks for the trace (`lmlaunch profile`): the next
 * lmm_service_poll writes $LMM_TRACE_DIR/trace-<name>.json when tracing is on. */
int lmm_service_signals_install(void);
/* Writes the trace if SIGUSR2 asked for it (called by lmm_service_poll). */
void lmm_service_trace_dump_pending(void);
/* True once one of those signals came (or lmm_service_request_stop was called). */
bool lmm_service_stopping(void);
/* The signal that asked to stop, 0 if none. */
int lmm_service_stop_signal(void);
void lmm_service_request_stop(void);
/* SIGTERM to this process when its parent dies (PR_SET_PDEATHSIG); if the parent is
 * already gone (re-parented), asks to stop at once. Also starts tracing when the
 * environment has LMM_TRACE=1 (lmm_trace_start_from_env, lmm/trace.h: the trace is
 * written to $LMM_TRACE_DIR/trace-<name>.json at exit; name: the program without "lmm-",
 * then the name said in lmm_service_hello). */
void lmm_service_die_with_parent(void);

/* ---- small helpers for service mains ---- */

/* Monotonic milliseconds. */
uint64_t lmm_service_now_ms(void);
/* Command-line flag "--name VALUE" or "--name=VALUE" at argv[*i]: returns 1 and sets
 * *val (advancing *i past a separate value), 0 when argv[*i] is another flag, -1 with
 * the error when the value is missing. */
int lmm_service_flag(int argc, char **argv, int *i, const char *name, const char **val);
/* "4096", "512K", "64M", "1.5G", "2T" (binary multiples, suffix case-insensitive,
 * optional trailing "B" or "iB") -> bytes. -1 with the error on anything else or overflow. */
int lmm_service_parse_size(const char *s, uint64_t *out);
/* Parses a whole decimal number in [lo, hi]. */
int lmm_service_parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out);

#endif
