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
#include "lmm/shm_ring.h"

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

/* ---- the tier's size: a bound, shared accounting, least recently used eviction ----------
 *
 * The cache (write behind, reload, eviction) and the scheduler (write through, reads)
 * both write block files, so the accounting is shared: two words in the block region's
 * header spare bytes (kv_disk_acct): [0] bytes of block files in the directory, [1] the
 * bound. A writer reserves a file's bytes before it writes (kv_disk_reserve: a CAS that
 * never lets [0] pass [1]) and gives them back if the write fails; nothing is written
 * without room, so the directory never holds more than the bound. Eviction
 * (kv_disk_evict: files by their modification time, oldest first, down to
 * kv_disk_evict_target) runs in the scheduler when a write finds no room and in the
 * cache's loop; a file's mtime is its last use (written, read back, or its RAM copy
 * served: kv_disk_touch), so the order survives a restart.
 *
 * Slot metadata `file` of a KV block (kv_region.h): 0 not on disk, 1 on disk, 2 removed
 * from disk by the bound (not written again: the least recently used stays out),
 * 3 being written by the scheduler. The cache writes behind only blocks with 0. */

/* Bytes one block takes on disk: the header page and the block padded to 4 KiB. */
uint64_t kv_disk_file_bytes(uint64_t block_bytes);
/* The two shared words of a region: [0] bytes in the directory, [1] the bound. */
uint64_t *kv_disk_acct(lmm_shm_ring *ring);
/* Reserves n bytes: false (nothing changed) when acct[0] + n would pass acct[1]. */
bool kv_disk_reserve(uint64_t *acct, uint64_t n);
/* Gives n bytes back (a failed write, an evicted file). */
void kv_disk_unreserve(uint64_t *acct, uint64_t n);
/* Marks a block's file used now (mtime); a missing file is no error. */
void kv_disk_touch(const char *dir, uint64_t model_id, uint64_t key);
enum { KV_FILE_NONE = 0, KV_FILE_ON_DISK = 1, KV_FILE_EVICTED = 2, KV_FILE_WRITING = 3 };
/* What an eviction leaves: the bound minus a margin of 1/16 of it, at least two files
 * (so a scan runs once per many blocks written); 0 when the bound holds fewer than two. */
uint64_t kv_disk_evict_target(uint64_t bound, uint64_t file_bytes);
/* Default bound of a tier in dir holding `used` bytes: used plus the file system's free
 * space at start minus 10% of the file system (room for everything else). */
uint64_t kv_disk_default_budget(const char *dir, uint64_t used);
/* Scans dir: *total = bytes of every block file (any model, "<16 hex>-<16 hex>.kvb");
 * temporary files left by a writer that died (".kvb.tmp" older than a minute) are
 * removed. Then, while *total > target, removes the least recently used file (oldest
 * mtime) and calls on_evict(user, model id, key, bytes) for it (a file another process
 * removed first is skipped: that one accounts for it). Returns the number removed, or
 * -1 (error set) when dir cannot be read. */
long kv_disk_evict(const char *dir, uint64_t target, uint64_t *total,
                   void (*on_evict)(void *user, uint64_t model_id, uint64_t key, uint64_t bytes), void *user);

#endif
