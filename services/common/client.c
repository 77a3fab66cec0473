/* services/common/client.c — GENERATE and the stream of TOKENs that answers it, for
 * `lmlaunch run` and lmclient (lmm/client.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmm/client.h"
#include "lmm/error.h"

static void cancel(lmm_service_sock *s, uint64_t req_id) {
    lmm_msg c;
    lmm_proto_msg_init(&c, LMM_MSG_CANCEL);
    c.cancel.req_id = req_id;
    char keep[LMM_ERROR_MAX];
    snprintf(keep, sizeof keep, "%s", lmm_error_get());
    lmm_service_send(s, NULL, &c); /* best effort: the caller is failing anyway */
    lmm_error_set("%s", keep);
}

int lmm_client_generate(lmm_service_sock *s, const lmm_msg *gen, const lmm_client_callbacks *cb,
                        lmm_msg_done *done) {
    if (gen->type != LMM_MSG_GENERATE) return lmm_error_set("lmm_client_generate: not a GENERATE");
    uint64_t req = gen->generate.req_id;
    if (lmm_service_send(s, NULL, gen)) return -1;
    uint64_t last = lmm_service_now_ms();
    lmm_msg m;
    for (;;) {
        if (cb && cb->on_idle && cb->on_idle(cb->user)) {
            cancel(s, req);
            return -1;
        }
        if (s->peer_lost) return lmm_error_set("the scheduler at %s went away", s->endpoint);
        int rc = lmm_service_recv(s, NULL, &m, 200);
        if (rc < 0) return -1;
        uint64_t now = lmm_service_now_ms();
        if (rc != LMM_SERVICE_MSG) {
            if (cb && cb->idle_timeout_ms > 0 && now - last > (uint64_t)cb->idle_timeout_ms) {
                lmm_error_set("no answer from the scheduler at %s for %d s", s->endpoint, cb->idle_timeout_ms / 1000);
                cancel(s, req);
                return -1;
            }
            continue;
        }
        last = now;
        switch (m.type) {
        case LMM_MSG_TOKEN:
            if (m.token.req_id != req) break;
            if (cb && cb->on_token && cb->on_token(cb->user, &m.token)) {
                cancel(s, req);
                return -1;
            }
            break;
        case LMM_MSG_DONE:
            if (m.done.req_id != req) break;
            *done = m.done;
            return 0;
        case LMM_MSG_ERROR:
            if (m.error.req_id != req && m.error.req_id != 0) break;
            return lmm_error_set("scheduler: %s", m.error.message);
        default:
            break; /* ACKs, replies to other requests */
        }
    }
}

void lmm_client_print_token_stats(FILE *f, const char *prog, uint32_t index, const lmm_msg_token *t) {
    if (t->step_usec == 0) { /* a scheduler that does not fill them in */
        fprintf(f, "%s: token %u (id %u): no step figures\n", prog, index, t->id);
        return;
    }
    uint64_t other = t->compute_usec + t->io_wait_usec;
    uint64_t transfer = t->step_usec > other ? t->step_usec - other : 0;
    fprintf(f,
            "%s: token %u (id %u): total %.2f ms, compute %.2f ms, I/O wait %.2f ms, transfer %.2f ms, read %.1f "
            "MiB\n",
            prog, index, t->id, (double)t->step_usec / 1e3, (double)t->compute_usec / 1e3,
            (double)t->io_wait_usec / 1e3, (double)transfer / 1e3, (double)t->bytes_read / (1024.0 * 1024.0));
}

/* ---- what a client keeps of the tokens ------------------------------------------- */

int lmm_client_sink_token(lmm_client_sink *s, const lmm_msg_token *t) {
    if (s->n_ids == s->ids_cap) {
        uint32_t cap = s->ids_cap ? 2 * s->ids_cap : 256;
        uint32_t *p = realloc(s->ids, cap * sizeof *p);
        if (!p) return lmm_error_set("out of memory");
        s->ids = p;
        s->ids_cap = cap;
    }
    s->ids[s->n_ids++] = t->id;
    if (t->text.len) {
        if (t->text.len > s->text_cap - s->text_len) {
            size_t cap = 2 * s->text_cap + t->text.len + 256;
            char *p = realloc(s->text, cap);
            if (!p) return lmm_error_set("out of memory");
            s->text = p;
            s->text_cap = cap;
        }
        memcpy(s->text + s->text_len, t->text.ptr, t->text.len);
        s->text_len += t->text.len;
        if (s->out) {
            fwrite(t->text.ptr, 1, t->text.len, s->out);
            fflush(s->out);
        }
    }
    if (s->dump) {
        if (t->n_logits == 0) return lmm_error_set("the scheduler sent a TOKEN without logits (--dump-logits)");
        /* TOKEN.logits are little-endian float32, possibly unaligned: bytes as they are */
        if (fwrite(t->logits, sizeof(float), t->n_logits, s->dump) != t->n_logits)
            return lmm_error_set("%s: write failed: %s", s->dump_path, strerror(errno));
    }
    return 0;
}

void lmm_client_sink_free(lmm_client_sink *s) {
    free(s->ids);
    free(s->text);
    s->ids = NULL;
    s->text = NULL;
    s->n_ids = s->ids_cap = 0;
    s->text_len = s->text_cap = 0;
}
