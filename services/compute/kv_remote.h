/* services/compute/kv_remote.h — KV blocks over ZeroMQ for a compute worker that cannot
 * map the cache's shared memory (another machine): `lmm-compute --kv-transport zmq`
 * (docs/kv-cache.md, "Transport").
 *
 * A DEALER to the cache's ROUTER (RUN/cache.ipc, or the cache's --kv-endpoint). A block's
 * part moves in chunks of at most LMM_PROTO_MAX_KV_CHUNK bytes: KV_GET -> KV_DATA to load,
 * KV_DATA -> ACK to store. Every chunk carries the kv_checksum of its bytes and is
 * verified by the receiver: a load whose chunk does not match is asked again (3 times),
 * then fails; a stored chunk that does not match is refused by the cache, which marks
 * the slot so the scheduler never commits it. One request at a time (a round trip per
 * chunk): blocks are moved once per prompt, not per token.
 * LMM_KV_FAULT=N (tests only): every N-th stored chunk is corrupted on the way (a copy
 * with one byte flipped, the checksum of the original). */
#ifndef LMM_COMPUTE_KV_REMOTE_H
#define LMM_COMPUTE_KV_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lmm/service.h"

typedef struct {
    lmm_service_sock sock;
    bool up;
    uint8_t *buf;          /* [cap] one block part, reused */
    size_t cap;
    uint64_t bytes_in, bytes_out, retries;
    uint8_t *fault_buf;    /* [LMM_PROTO_MAX_KV_CHUNK] LMM_KV_FAULT only */
    uint64_t fault_every, sent;
} kv_remote;

int kv_remote_connect(kv_remote *k, const char *endpoint, const char *name);
void kv_remote_close(kv_remote *k);
/* k->buf holding at least n bytes (grown once per block geometry). */
int kv_remote_reserve(kv_remote *k, size_t n);
/* Bytes [off, off + n) of the block in region slot `slot` into dst. */
int kv_remote_get(kv_remote *k, uint32_t slot, uint64_t off, void *dst, size_t n);
/* src into bytes [off, off + n) of the block in region slot `slot`. 1: the cache refused
 * a chunk (not stored, the step goes on), 0: stored, -1: the transport failed. */
int kv_remote_put(kv_remote *k, uint32_t slot, uint64_t off, const void *src, size_t n);

#endif
