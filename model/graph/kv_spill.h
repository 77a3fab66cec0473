/* model/graph/kv_spill.h — the frame pool of the paged live KV (docs/kv-cache.md,
 * "Long contexts: live KV spill"), private to model/graph.
 *
 * A spill store is a fixed pool of n_frames frames of block_bytes each (4 KiB aligned,
 * allocated by _init) over one spill file in a directory, in which block `id` lives at
 * byte id * block_bytes. The executor decides what a block holds (the K or the V rows
 * of B positions of one layer of one sequence); the store only moves bytes:
 *   _pin makes blocks resident (reading them from the file unless `fresh`: their old
 *     bytes will not be read) and holds them until _unpin; a frame needed for a block
 *     that is not resident is taken from the unpinned frames, written back first when
 *     dirty. Which frame goes: an empty one, else the most recently used clean one, else
 *     the most recently used dirty one. Most-recently-used because attention walks the
 *     blocks in a cycle: evicting the newest keeps a fixed subset resident across steps
 *     (least-recently-used would hit nothing on a cycle larger than the pool).
 * File I/O is O_DIRECT through io_uring (one batch of writes, then one of reads, per
 * _pin); a directory whose file system refuses O_DIRECT gets buffered I/O and one
 * warning line; no io_uring gets pread/pwrite (environment LMM_KV_SPILL_PLAIN_IO=1, a
 * test hook, forces both fallbacks). The file is unlinked as soon as it is
 * open, so it never outlives the process. Nothing is allocated after _init. Not
 * thread-safe: the executor calls it from the thread that runs the step. */
#ifndef LMM_KV_SPILL_H
#define LMM_KV_SPILL_H

#include <stddef.h>
#include <stdint.h>

#define LMM_KV_SPILL_ALIGN 4096u

typedef struct lmm_kv_spill lmm_kv_spill;

/* dir: the spill directory; n_blocks: ids 0..n_blocks-1; block_bytes: a multiple of
 * 4096; n_frames >= 1. */
int lmm_kv_spill_init(lmm_kv_spill **out, const char *dir, uint64_t n_blocks, size_t block_bytes, uint32_t n_frames);
void lmm_kv_spill_free(lmm_kv_spill *s);

/* Makes blocks ids[0..n) resident and pinned (n <= n_frames minus the frames pinned
 * already; ids distinct); frames[i] = the frame of ids[i]. fresh: NULL, or fresh[i]
 * nonzero when the block's present bytes are never read (it is not read from the file).
 * 0, or -1 with a message naming the file (the blocks of the call are then unpinned). */
int lmm_kv_spill_pin(lmm_kv_spill *s, const uint64_t *ids, uint32_t n, const uint8_t *fresh, unsigned char **frames);
/* The same in two halves, to overlap reading the next blocks with computing on the
 * ones pinned before: _pin_start writes back what it evicts, then queues the reads on
 * io_uring and returns (frames[] are set but their bytes are not there yet); _pin_wait
 * waits for them (-1 with a message: the blocks of that _pin_start are then dropped,
 * nothing to unpin but the ones that were resident already: unpin all as usual). One
 * _pin_start in flight at a time (a second one waits for the first). Without io_uring
 * _pin_start reads synchronously. */
int lmm_kv_spill_pin_start(lmm_kv_spill *s, const uint64_t *ids, uint32_t n, const uint8_t *fresh,
                           unsigned char **frames);
int lmm_kv_spill_pin_wait(lmm_kv_spill *s);
/* Releases blocks pinned by _pin; dirty: their frames were written. */
void lmm_kv_spill_unpin(lmm_kv_spill *s, const uint64_t *ids, uint32_t n, int dirty);

uint32_t lmm_kv_spill_n_frames(const lmm_kv_spill *s);
/* Bytes held in RAM (the frames and the tables). */
size_t lmm_kv_spill_ram_bytes(const lmm_kv_spill *s);
/* Counters since _init: blocks read from / written to the file. */
void lmm_kv_spill_counts(const lmm_kv_spill *s, uint64_t *reads, uint64_t *writes);

#endif
