/* services/cache/kv_region.h — the KV block region shared by lmm-cache (which creates and
 * owns it), lmm-scheduler (which keeps the index: keys, LRU, pins) and lmm-compute
 * (which copies its layers' part of a block in and out). docs/kv-cache.md.
 *
 * The region is an lmm_shm_ring (lmm/shm_ring.h) of n_slots blocks; slot_size is the
 * block's bytes rounded up to 4096. A block holds B consecutive positions of one
 * sequence, ALL layers:  [n_layers][2 (K, V)][B][kv_dim] FP32, so the worker running
 * layers [a, b) owns bytes [a, b) * kv_layer_bytes of it (lmm_executor_kv_read/_write
 * layout). Slot metadata while a block is valid: state READY, tag = the block's key,
 * reserved = the checksum of its bytes (kv_checksum).
 *
 * The region's name and geometry are published in RUN/kvcache (one line, written with
 * rename(2) so readers see all of it or nothing):
 *     "<shm name> <block tokens> <n_slots> <slot_size> <block_bytes> <model id hex> <disk>\n"
 * where <disk> is the rest of the line: the disk tier's directory, or "-".
 * Slot metadata `file` = 1: the cache has the block on disk too (the scheduler evicts
 * such blocks first). */
#ifndef LMM_KV_REGION_H
#define LMM_KV_REGION_H

#include <stddef.h>
#include <stdint.h>

#include "lmm/model.h"
#include "lmm/shm_ring.h"

#define KV_REGION_FILE "kvcache"
#define KV_DEFAULT_BLOCK_TOKENS 16u
#define KV_DEFAULT_BUDGET (64ull << 20)
/* Bumped whenever a kernel or the order of any reduction changes the KV's bits: blocks
 * computed by another version are never served (part of every key). */
#define KV_KERNEL_VERSION 1u

typedef struct {
    char shm[LMM_SHM_RING_NAME_MAX];
    uint32_t block_tokens;
    uint32_t n_slots;
    uint64_t slot_size;
    uint64_t block_bytes;
    uint64_t model_id;
    char disk[4096];          /* the disk tier's directory, "" when none */
} kv_region_info;

/* Bytes of one layer's K and V for B positions: 2 * B * kv_dim * 4. */
uint64_t kv_layer_bytes(const lmm_model_desc *d, uint32_t block_tokens);
/* A whole block: n_layers * kv_layer_bytes. */
uint64_t kv_block_bytes(const lmm_model_desc *d, uint32_t block_tokens);
/* Model identity: hyper-parameters, every tensor's name, dtype, shape, file offset and
 * size, the KV dtype (FP32), KV_KERNEL_VERSION and the block size. */
uint64_t kv_model_id(const lmm_model_desc *d, uint32_t block_tokens);
/* Chained key of a block: hash(model id, the parent block's key (0 for the first), the
 * block's B token ids). */
uint64_t kv_block_key(uint64_t model_id, uint64_t parent, const uint32_t *tokens, uint32_t block_tokens);
/* Checksum of a block's bytes (nbytes a multiple of 8). */
uint64_t kv_checksum(const void *data, size_t nbytes);

/* RUN/kvcache: write (atomically) and read. read returns 1 when the file is absent,
 * 0 when read, -1 with an error when it is malformed. */
int kv_region_info_write(const char *run_dir, const kv_region_info *info);
int kv_region_info_read(const char *run_dir, kv_region_info *info);

#endif
