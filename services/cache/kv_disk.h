/* services/cache/kv_disk.h — the disk tier of lmm-cache (docs/kv-cache.md): one file per
 * KV block, written and read with O_DIRECT through liburing.
 *
 * File DIR/<model id hex>-<key hex>.kvb: a 4096-byte header (kv_disk_header), then the
 * block's bytes padded to a multiple of 4096. Written to a temporary name and renamed,
 * so a reader sees a whole file or none; read back only when the magic, version, model
 * id, key, geometry and the checksum of the bytes all match (else the file is removed). */
#ifndef LMM_KV_DISK_H
#define LMM_KV_DISK_H

#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv_region.h"

#define KV_DISK_MAGIC 0x314b4c424b564d4dull /* "MMVKBLK1" */

typedef struct {
    uint64_t magic, version, model_id, key, checksum, block_bytes, block_tokens;
} kv_disk_header;

typedef struct {
    struct io_uring ring;
    bool up;
    uint8_t *buf;        /* [buf_bytes] 4096-aligned: header page + block, padded */
    size_t buf_bytes;
} kv_disk_io;

int kv_disk_io_init(kv_disk_io *io, uint64_t block_bytes);
void kv_disk_io_free(kv_disk_io *io);
/* Checks that dir takes an O_DIRECT write (a probe file, removed). */
int kv_disk_probe(kv_disk_io *io, const char *dir);
/* Writes one block (block_bytes of data, which may already be io->buf + KV_DISK_HEADER)
 * under its key. */
int kv_disk_write(kv_disk_io *io, const char *dir, const kv_region_info *info, uint64_t key, uint64_t checksum,
                  const void *data);
/* Reads the file `name` in dir; on success its block is in io->buf + 4096 and *key,
 * *checksum are set. 1: not a block of this model (left alone); -1: unreadable or
 * corrupt (removed, error set). */
int kv_disk_read(kv_disk_io *io, const char *dir, const char *name, const kv_region_info *info, uint64_t *key,
                 uint64_t *checksum);
/* Bytes of data at io->buf + KV_DISK_HEADER after kv_disk_read. */
#define KV_DISK_HEADER 4096u

#endif
