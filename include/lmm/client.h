/* lmm/client.h — the client side of a generation over ZeroMQ (services/common/client.c).
 *
 * Used by `lmlaunch run` (process-group mode) and lmclient: connect a DEALER to the
 * scheduler's client endpoint, say HELLO, send GENERATE, and receive TOKEN... DONE
 * (or ERROR) for that req_id, calling back for each TOKEN as it arrives. DONE carries
 * the scheduler's stats: tokens_per_s, and io_stall_s (seconds the compute workers
 * waited for streamed weight slots in the request's steps; 0 when all are resident). */
#ifndef LMM_CLIENT_H
#define LMM_CLIENT_H

#include <stdint.h>
#include <stdio.h>

#include "lmm/proto.h"
#include "lmm/service.h"

typedef struct {
    /* Called for each TOKEN of the request, in order; non-zero return aborts (the
     * request is CANCELled, lmm_client_generate returns -1 with the error set). */
    int (*on_token)(void *user, const lmm_msg_token *t);
    /* Called whenever the wait wakes up (at least every 200 ms, and on signals);
     * non-zero return aborts as above (e.g. a child process died, Ctrl-C). */
    int (*on_idle)(void *user);
    void *user;
    /* Longest silence between two messages from the scheduler before giving up, ms
     * (0: no limit). The error line then says "no answer from ENDPOINT for N s". */
    int idle_timeout_ms;
} lmm_client_callbacks;

/* Sends GENERATE *gen (type LMM_MSG_GENERATE) on s and streams the answer. On success
 * *done holds the DONE message. -1 with one line when the scheduler answered ERROR
 * ("scheduler: <message>"), went away, timed out, or a callback aborted. */
int lmm_client_generate(lmm_service_sock *s, const lmm_msg *gen, const lmm_client_callbacks *cb,
                        lmm_msg_done *done);

/* One line on f for a TOKEN of a GENERATE with "stats" (run --verbose, lmclient --verbose):
 *   "PROG: token INDEX (id ID): total 12.34 ms, compute 10.10 ms, I/O wait 1.20 ms,
 *    transfer 1.04 ms, read 4.0 MiB"
 * transfer = total - compute - I/O wait (messages, copies, the scheduler's own work). */
void lmm_client_print_token_stats(FILE *f, const char *prog, uint32_t index, const lmm_msg_token *t);

/* What a client keeps of the TOKENs it receives (lmlaunch run and lmclient): the ids and
 * the text as they come, the text also streamed to `out` as it arrives, and each TOKEN's
 * logits written raw (little-endian float32, as sent) to `dump`. Zero-initialise, set
 * out/dump/dump_path, feed every TOKEN to lmm_client_sink_token, then lmm_client_sink_free
 * (which frees ids and text, not the files). */
typedef struct {
    FILE *out;              /* where text is streamed, or NULL */
    FILE *dump;             /* --dump-logits file, or NULL */
    const char *dump_path;  /* for messages */
    uint32_t *ids;          /* [ids_cap] token ids as they came */
    uint32_t n_ids, ids_cap;
    char *text;             /* [text_cap] the generated text (not NUL-terminated) */
    size_t text_len, text_cap;
} lmm_client_sink;

/* -1 with the error when out of memory, when a dump is asked for and the TOKEN has no
 * logits, or when writing the dump fails. */
int lmm_client_sink_token(lmm_client_sink *s, const lmm_msg_token *t);
void lmm_client_sink_free(lmm_client_sink *s);

#endif
