/* services/compute/kv_remote.c — KV blocks over ZeroMQ (kv_remote.h, docs/kv-cache.md
 * "Transport"). */
#include "kv_remote.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../cache/kv_region.h"
#include "lmm/error.h"

#define KV_REMOTE_TIMEOUT_MS 30000
#define KV_REMOTE_TRIES 3

int kv_remote_connect(kv_remote *k, const char *endpoint, const char *name) {
    memset(k, 0, sizeof *k);
    const char *f = getenv("LMM_KV_FAULT");
    if (f && *f) {
        k->fault_every = strtoull(f, NULL, 10);
        if (k->fault_every && !(k->fault_buf = malloc(LMM_PROTO_MAX_KV_CHUNK))) k->fault_every = 0;
    }
    if (lmm_service_dealer_connect(&k->sock, endpoint, name)) {
        free(k->fault_buf);
        return -1;
    }
    k->up = true;
    return 0;
}

void kv_remote_close(kv_remote *k) {
    if (k->up) lmm_service_sock_close(&k->sock);
    free(k->buf);
    free(k->fault_buf);
    memset(k, 0, sizeof *k);
}

int kv_remote_reserve(kv_remote *k, size_t n) {
    if (n <= k->cap) return 0;
    uint8_t *b = realloc(k->buf, n);
    if (!b) return lmm_error_set("out of memory (%zu bytes of KV block)", n);
    k->buf = b;
    k->cap = n;
    return 0;
}

/* The next message on the socket: an answer, or an error naming what was asked. */
static int reply(kv_remote *k, lmm_msg *m, const char *what) {
    int r = lmm_service_recv(&k->sock, NULL, m, KV_REMOTE_TIMEOUT_MS);
    if (r < 0) return -1;
    if (r == LMM_SERVICE_TIMEOUT)
        return lmm_error_set("KV transport %s: no answer to %s within %d ms", k->sock.endpoint, what,
                             KV_REMOTE_TIMEOUT_MS);
    if (r != LMM_SERVICE_MSG) return lmm_error_set("KV transport %s: %s: %s", k->sock.endpoint, what, lmm_error_get());
    return 0;
}

int kv_remote_get(kv_remote *k, uint32_t slot, uint64_t off, void *dst, size_t n) {
    uint8_t *out = dst;
    for (size_t done = 0; done < n;) {
        size_t len = n - done < LMM_PROTO_MAX_KV_CHUNK ? n - done : LMM_PROTO_MAX_KV_CHUNK;
        char what[96];
        snprintf(what, sizeof what, "KV_GET slot %" PRIu32 " bytes %" PRIu64 "+%zu", slot, off + done, len);
        int tries = 0;
        for (;;) {
            lmm_msg m;
            lmm_proto_msg_init(&m, LMM_MSG_KV_GET);
            m.kv_get.slot = slot;
            m.kv_get.offset = off + done;
            m.kv_get.length = (uint32_t)len;
            if (lmm_service_send(&k->sock, NULL, &m) || reply(k, &m, what)) return -1;
            if (m.type == LMM_MSG_ERROR)
                return lmm_error_set("KV transport: %s: the cache says: %s", what, m.error.message);
            if (m.type != LMM_MSG_KV_DATA || m.kv_data.slot != slot || m.kv_data.offset != off + done ||
                m.kv_data.data.len != len)
                return lmm_error_set("KV transport: %s: unexpected %s", what, lmm_proto_type_name(m.type));
            if (kv_checksum(m.kv_data.data.ptr, len) == m.kv_data.checksum) {
                memcpy(out + done, m.kv_data.data.ptr, len);
                break;
            }
            k->retries++; /* corrupted on the way: never used */
            fprintf(stderr, "lmm-compute: KV transport: %s: checksum mismatch, asked again\n", what);
            if (++tries == KV_REMOTE_TRIES)
                return lmm_error_set("KV transport: %s: checksum mismatch %d times", what, KV_REMOTE_TRIES);
        }
        done += len;
        k->bytes_in += len;
    }
    return 0;
}

int kv_remote_put(kv_remote *k, uint32_t slot, uint64_t off, const void *src, size_t n) {
    const uint8_t *in = src;
    for (size_t done = 0; done < n;) {
        size_t len = n - done < LMM_PROTO_MAX_KV_CHUNK ? n - done : LMM_PROTO_MAX_KV_CHUNK;
        char what[96];
        snprintf(what, sizeof what, "KV_DATA slot %" PRIu32 " bytes %" PRIu64 "+%zu", slot, off + done, len);
        lmm_msg m;
        lmm_proto_msg_init(&m, LMM_MSG_KV_DATA);
        m.kv_data.slot = slot;
        m.kv_data.offset = off + done;
        m.kv_data.data = (lmm_proto_bytes){in + done, len};
        m.kv_data.checksum = kv_checksum(in + done, len);
        if (k->fault_every && ++k->sent % k->fault_every == 0) { /* LMM_KV_FAULT: corrupted on the way */
            memcpy(k->fault_buf, in + done, len);
            k->fault_buf[len / 2] ^= 0x40;
            m.kv_data.data.ptr = k->fault_buf;
        }
        if (lmm_service_send(&k->sock, NULL, &m) || reply(k, &m, what)) return -1;
        if (m.type == LMM_MSG_ERROR) { /* refused: this block is not cached, the output is unchanged */
            fprintf(stderr, "lmm-compute: KV transport: %s refused: %s\n", what, m.error.message);
            return 1;
        }
        /* the rest of a refused block is not sent: the scheduler drops it */
        if (m.type != LMM_MSG_ACK || m.ack.of != LMM_MSG_KV_DATA)
            return lmm_error_set("KV transport: %s: unexpected %s", what, lmm_proto_type_name(m.type));
        done += len;
        k->bytes_out += len;
    }
    return 0;
}
