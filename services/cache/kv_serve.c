/* services/cache/kv_serve.c — KV blocks over ZeroMQ, the cache's side (kv_serve.h,
 * docs/kv-cache.md "Transport"). */
#include "kv_serve.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmm/error.h"

int kv_server_bind(kv_server *k, const char *endpoint, lmm_shm_ring *ring, const kv_region_info *info) {
    memset(k, 0, sizeof *k);
    k->ring = ring;
    k->info = info;
    k->verified = calloc(info->n_slots, sizeof *k->verified);
    if (!k->verified) return lmm_error_set("out of memory");
    const char *f = getenv("LMM_KV_FAULT");
    if (f && *f) {
        k->fault_every = strtoull(f, NULL, 10);
        if (k->fault_every && !(k->fault_buf = malloc(LMM_PROTO_MAX_KV_CHUNK))) k->fault_every = 0;
    }
    if (lmm_service_router_bind(&k->sock, endpoint)) {
        kv_server_close(k);
        return -1;
    }
    k->up = true;
    return 0;
}

void kv_server_close(kv_server *k) {
    if (k->up) lmm_service_sock_close(&k->sock);
    free(k->verified);
    free(k->fault_buf);
    memset(k, 0, sizeof *k);
}

static int refuse(kv_server *k, const lmm_service_peer *to, lmm_proto_errcode code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int refuse(kv_server *k, const lmm_service_peer *to, lmm_proto_errcode code, const char *fmt, ...) {
    char line[LMM_PROTO_MAX_ERROR + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    k->refused++;
    fprintf(stderr, "lmm-cache: %s\n", line);
    return lmm_service_send_error(&k->sock, to, code, 0, line);
}

/* The bytes of a range inside a slot's block: 0, or an ERROR sent. */
static int range_ok(kv_server *k, const lmm_service_peer *from, const char *type, uint32_t slot, uint64_t off,
                    uint64_t len) {
    if (slot >= k->ring->n_slots)
        return refuse(k, from, LMM_PROTO_E_NOT_FOUND, "%s: slot %" PRIu32 " beyond the region's %" PRIu32, type, slot,
                      k->ring->n_slots) ? -1 : 1;
    if (off > k->info->block_bytes || len > k->info->block_bytes - off)
        return refuse(k, from, LMM_PROTO_E_LIMIT, "%s: bytes %" PRIu64 "+%" PRIu64 " beyond a block of %" PRIu64, type,
                      off, len, k->info->block_bytes) ? -1 : 1;
    return 0;
}

static int on_get(kv_server *k, const lmm_service_peer *from, const lmm_msg_kv_get *g) {
    int r = range_ok(k, from, "KV_GET", g->slot, g->offset, g->length);
    if (r) return r < 0 ? -1 : 0;
    lmm_shm_slot_meta *m = lmm_shm_ring_slot_meta(k->ring, g->slot);
    uint64_t gen = atomic_load_explicit(&m->generation, memory_order_acquire);
    const uint8_t *block = lmm_shm_ring_slot_data(k->ring, g->slot);
    if (lmm_shm_ring_slot_state(k->ring, g->slot) != LMM_SLOT_READY)
        return refuse(k, from, LMM_PROTO_E_NOT_FOUND, "KV_GET: slot %" PRIu32 " holds no block", g->slot);
    if (k->verified[g->slot] != gen + 1) {
        if (kv_checksum(block, k->info->block_bytes) != m->reserved)
            return refuse(k, from, LMM_PROTO_E_NOT_FOUND,
                          "KV_GET: the block in slot %" PRIu32 " fails its checksum: never served", g->slot);
        k->verified[g->slot] = gen + 1;
    }
    lmm_msg d;
    lmm_proto_msg_init(&d, LMM_MSG_KV_DATA);
    d.kv_data.slot = g->slot;
    d.kv_data.offset = g->offset;
    d.kv_data.data = (lmm_proto_bytes){block + g->offset, g->length};
    d.kv_data.checksum = kv_checksum(block + g->offset, g->length);
    if (k->fault_every && ++k->sent % k->fault_every == 0) { /* LMM_KV_FAULT: corrupted on the way */
        memcpy(k->fault_buf, block + g->offset, g->length);
        k->fault_buf[g->length / 2] ^= 0x40;
        d.kv_data.data.ptr = k->fault_buf;
    }
    k->gets++;
    k->bytes_out += g->length;
    return lmm_service_send(&k->sock, from, &d);
}

static int on_put(kv_server *k, const lmm_service_peer *from, const lmm_msg_kv_data *p) {
    int r = range_ok(k, from, "KV_DATA", p->slot, p->offset, p->data.len);
    if (r) return r < 0 ? -1 : 0;
    lmm_shm_slot_meta *m = lmm_shm_ring_slot_meta(k->ring, p->slot);
    if (lmm_shm_ring_slot_state(k->ring, p->slot) != LMM_SLOT_LOADING)
        return refuse(k, from, LMM_PROTO_E_UNEXPECTED, "KV_DATA: slot %" PRIu32 " is not being stored", p->slot);
    if (kv_checksum(p->data.ptr, p->data.len) != p->checksum) {
        m->error = EIO; /* the scheduler does not commit this block (kvindex.c) */
        return refuse(k, from, LMM_PROTO_E_IO,
                      "KV_DATA: slot %" PRIu32 " bytes %" PRIu64 "+%zu fail their checksum: refused, not cached",
                      p->slot, p->offset, p->data.len);
    }
    memcpy(lmm_shm_ring_slot_data(k->ring, p->slot) + p->offset, p->data.ptr, p->data.len);
    k->puts++;
    k->bytes_in += p->data.len;
    lmm_msg a;
    lmm_proto_msg_init(&a, LMM_MSG_ACK);
    a.ack.of = LMM_MSG_KV_DATA;
    return lmm_service_send(&k->sock, from, &a);
}

int kv_server_serve(kv_server *k) {
    for (;;) {
        lmm_service_peer from;
        lmm_msg m;
        int r = lmm_service_recv(&k->sock, &from, &m, 0);
        if (r < 0) return -1;
        if (r != LMM_SERVICE_MSG) return 0; /* nothing more (a bad message was answered) */
        int rc = 0;
        switch (m.type) {
        case LMM_MSG_KV_GET: rc = on_get(k, &from, &m.kv_get); break;
        case LMM_MSG_KV_DATA: rc = on_put(k, &from, &m.kv_data); break;
        case LMM_MSG_PING: {
            lmm_msg a;
            lmm_proto_msg_init(&a, LMM_MSG_ACK);
            a.ack.of = LMM_MSG_PING;
            rc = lmm_service_send(&k->sock, &from, &a);
            break;
        }
        default:
            rc = refuse(k, &from, LMM_PROTO_E_UNEXPECTED, "the cache's KV endpoint does not take %s",
                        lmm_proto_type_name(m.type));
        }
        /* a worker that went away (EHOSTUNREACH) is no reason to stop serving */
        if (rc != 0) fprintf(stderr, "lmm-cache: KV transport: %s\n", lmm_error_get());
    }
}
