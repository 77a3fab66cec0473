/* services/cache/kv_serve.h — the cache's side of the KV transport over ZeroMQ, for
 * compute workers that cannot map its shared memory (docs/kv-cache.md, "Transport";
 * the worker's side: services/compute/kv_remote.h).
 *
 * A ROUTER bound at RUN/cache.ipc (or lmm-cache --kv-endpoint tcp://HOST:PORT). Served:
 *   KV_GET {slot, offset, length} -> KV_DATA {slot, offset, data, checksum}: only from a
 *     READY slot whose whole block matches the checksum recorded at commit (checked once
 *     per slot generation); anything else is an ERROR, never data;
 *   KV_DATA {slot, offset, data, checksum} -> ACK {of: KV_DATA}: into a slot the scheduler
 *     has set LOADING for a store; data whose checksum does not match is refused (ERROR)
 *     and the slot's metadata `error` set, so the scheduler never commits that block.
 * The scheduler's index decides every slot, as with the shared-memory transport.
 *
 * LMM_KV_FAULT=N (tests only): every N-th chunk sent is corrupted on the way (a copy with
 * one byte flipped, the checksum of the original), to show it is never used. */
#ifndef LMM_KV_SERVE_H
#define LMM_KV_SERVE_H

#include <stdbool.h>
#include <stdint.h>

#include "kv_region.h"
#include "lmm/service.h"
#include "lmm/shm_ring.h"

typedef struct {
    lmm_service_sock sock;
    bool up;
    lmm_shm_ring *ring;
    const kv_region_info *info;
    uint64_t *verified;        /* [n_slots] generation + 1 whose block checksum was checked */
    uint8_t *fault_buf;        /* [LMM_PROTO_MAX_KV_CHUNK] LMM_KV_FAULT only */
    uint64_t fault_every, sent;
    uint64_t gets, puts, refused, bytes_out, bytes_in;
} kv_server;

int kv_server_bind(kv_server *k, const char *endpoint, lmm_shm_ring *ring, const kv_region_info *info);
void kv_server_close(kv_server *k);
/* Serves every message waiting on the socket (does not block). -1: the socket failed. */
int kv_server_serve(kv_server *k);

#endif
