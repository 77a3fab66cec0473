/* lmm/shm_ring.h — a ring of weight slots in POSIX shared memory.
 *
 * The scheduler creates the ring; the loader fills slots with byte ranges of model
 * files; compute workers read weights in place. Every process maps the same segment
 * by name (/lmm-<creator pid>-<counter>, shm_open, mode 0600).
 *
 * Segment layout (docs/loader.md):
 *   [0, header_bytes)             lmm_shm_ring_header, then n_slots lmm_shm_slot_meta
 *                                 (header_bytes: a multiple of 4096)
 *   [header_bytes + i*slot_size,  slot i's data, 4096-aligned, slot_size a multiple of
 *    header_bytes + (i+1)*slot_size)   4096 (use a multiple of 2 MiB for large slots)
 *
 * Slot states (one 32-bit C11 atomic per slot, lock-free, so valid across processes):
 *   FREE ──begin_load──► LOADING ──finish_load──► READY ──claim──► IN_USE
 *   FREE ◄─finish_load(error)── LOADING                READY ◄──release(keep)── IN_USE
 *   FREE ◄─────────────── evict ──────────────────── READY
 *   FREE ◄──────────────────────── release(drop) ─────────────────────────── IN_USE
 *   Whoever moves a slot out of FREE or READY owns it until it moves it on. A transition
 *   is a compare-and-swap with release ordering on success (the slot's bytes and
 *   metadata written before it are visible) and acquire ordering on the reader side
 *   (lmm_shm_ring_slot_state, _claim). generation counts FREE->LOADING transitions, so a
 *   holder of (slot, generation) can tell whether the slot was reused.
 *
 * Cleanup (no segment left behind): the creator unlinks on _destroy; it may unlink
 * early with lmm_shm_ring_unlink() (async-signal-safe: call it from a SIGINT/SIGTERM
 * handler, or once every participant has attached — the memory then lives exactly as
 * long as the last mapping); a launcher calls lmm_shm_ring_sweep_stale() at start-up and
 * whenever a child dies, which removes segments whose creator process is gone. */
#ifndef LMM_SHM_RING_H
#define LMM_SHM_RING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define LMM_SHM_RING_MAGIC 0x31474e49524d4d4cull /* "LMMRING1" little-endian */
#define LMM_SHM_RING_VERSION 1u
#define LMM_SHM_RING_NAME_MAX 64   /* "/lmm-<pid>-<counter>" and its NUL */
#define LMM_SHM_RING_ALIGN 4096u   /* slot and header alignment (O_DIRECT needs 4 KiB) */
#define LMM_SHM_RING_MAX_SLOTS 65536u

typedef enum {
    LMM_SLOT_FREE = 0,   /* nobody's; its bytes mean nothing */
    LMM_SLOT_LOADING,    /* the loader is writing it */
    LMM_SLOT_READY,      /* bytes and metadata complete; may be claimed */
    LMM_SLOT_IN_USE      /* a compute worker reads it */
} lmm_slot_state;

/* Per-slot metadata: written by the owner of the slot while it is LOADING, published by
 * the release of LOADING->READY. 64 bytes: one cache line per slot. */
typedef struct {
    _Atomic uint32_t state;        /* lmm_slot_state */
    _Atomic uint32_t waiters;      /* processes sleeping in lmm_shm_ring_slot_wait */
    _Atomic uint64_t generation;   /* number of FREE->LOADING transitions so far */
    uint32_t file;                 /* file index, as the scheduler and loader agree */
    int32_t error;                 /* 0, or the errno of a failed load */
    uint64_t offset;               /* file offset of the requested range */
    uint64_t length;               /* bytes of the requested range */
    uint64_t data_start;           /* slot byte where file byte `offset` lies (offset % 4096) */
    uint64_t tag;                  /* free for the scheduler (e.g. tensor or layer id) */
    uint64_t reserved;
} lmm_shm_slot_meta;

/* The first bytes of the segment. Written once by the creator; magic is stored last
 * (release), so an attacher that sees the magic sees the rest. */
typedef struct {
    _Atomic uint64_t magic;        /* LMM_SHM_RING_MAGIC once initialized */
    uint32_t version;              /* LMM_SHM_RING_VERSION */
    uint32_t n_slots;
    uint64_t slot_size;            /* bytes per slot, multiple of LMM_SHM_RING_ALIGN */
    uint64_t header_bytes;         /* offset of slot 0's data */
    uint64_t total_bytes;          /* header_bytes + n_slots * slot_size */
    int32_t creator_pid;
    uint32_t meta_size;            /* sizeof(lmm_shm_slot_meta), checked on attach */
    uint64_t creator_start_time;   /* /proc/<pid>/stat field 22, tells pid reuse apart */
    char name[LMM_SHM_RING_NAME_MAX];
    uint8_t reserved[64];
    /* followed by lmm_shm_slot_meta slots[n_slots] at offset LMM_SHM_RING_META_OFFSET */
} lmm_shm_ring_header;

#define LMM_SHM_RING_META_OFFSET 256u

/* One process's view of the ring. */
typedef struct {
    char name[LMM_SHM_RING_NAME_MAX];  /* shm_open name, "/lmm-<pid>-<n>" */
    char path[LMM_SHM_RING_NAME_MAX + 16]; /* "/dev/shm/lmm-<pid>-<n>", for unlink(2) */
    int fd;                            /* -1 once closed */
    int creator;                       /* 1 in the process that created it */
    _Atomic int unlinked;              /* 1 once the name is gone */
    uint8_t *base;                     /* [total_bytes] the mapping */
    size_t total_bytes;
    lmm_shm_ring_header *header;       /* = base */
    lmm_shm_slot_meta *meta;           /* [n_slots] */
    uint8_t *data;                     /* [n_slots][slot_size] */
    uint32_t n_slots;
    size_t slot_size;
} lmm_shm_ring;

/* Creates a new segment (shm_open O_CREAT|O_EXCL, mode 0600) of n_slots slots of
 * slot_size bytes, reserves its memory (fallocate: fails now rather than SIGBUS later),
 * maps it and touches every page. All slots FREE, generation 0. */
int lmm_shm_ring_create(lmm_shm_ring *r, uint32_t n_slots, size_t slot_size);
/* Maps an existing segment by name; checks magic, version and sizes. Pre-faults the
 * mapping (MAP_POPULATE). */
int lmm_shm_ring_attach(lmm_shm_ring *r, const char *name);
/* Unmaps (any process). Does not unlink. Safe on a zeroed or already detached ring. */
void lmm_shm_ring_detach(lmm_shm_ring *r);
/* Creator: unlinks the name (if not yet) and detaches. Others: same as _detach. */
void lmm_shm_ring_destroy(lmm_shm_ring *r);
/* Removes the name now; mappings stay valid, no new process can attach.
 * Async-signal-safe (one unlink(2) of a precomputed path). Returns 0 or -1. */
int lmm_shm_ring_unlink(lmm_shm_ring *r);

/* Removes /dev/shm/lmm-<pid>-* segments whose creator is dead (or whose pid now belongs
 * to a process started after the segment's creator). Returns the number removed, or -1
 * if /dev/shm cannot be listed. Segments of live creators are left alone. */
int lmm_shm_ring_sweep_stale(void);

/* --- slots --- */
static inline uint8_t *lmm_shm_ring_slot_data(const lmm_shm_ring *r, uint32_t slot) {
    return r->data + (size_t)slot * r->slot_size;
}
static inline lmm_shm_slot_meta *lmm_shm_ring_slot_meta(const lmm_shm_ring *r, uint32_t slot) {
    return &r->meta[slot];
}
/* Current state (acquire: if READY, the slot's bytes and metadata are visible). */
lmm_slot_state lmm_shm_ring_slot_state(const lmm_shm_ring *r, uint32_t slot);
const char *lmm_slot_state_name(lmm_slot_state s);

/* Moves slot from `from` to `to` if it is in `from` (CAS; release on success). Only the
 * transitions drawn above are allowed. Fails with a message naming the ring, the slot and
 * the state found. Wakes processes waiting on the slot. */
int lmm_shm_ring_slot_transition(lmm_shm_ring *r, uint32_t slot, lmm_slot_state from,
                                 lmm_slot_state to);
/* FREE -> LOADING; records what will be read, clears error, bumps generation.
 * *generation (optional) receives the new generation. */
int lmm_shm_ring_slot_begin_load(lmm_shm_ring *r, uint32_t slot, uint32_t file,
                                 uint64_t offset, uint64_t length, uint64_t tag,
                                 uint64_t *generation);
/* LOADING -> READY (error == 0; data_start recorded) or LOADING -> FREE (error != 0,
 * meta.error = error). */
int lmm_shm_ring_slot_finish_load(lmm_shm_ring *r, uint32_t slot, uint64_t data_start,
                                  int error);
/* READY -> IN_USE; if generation != UINT64_MAX, also checks the slot still holds that
 * generation (else fails, state unchanged). */
int lmm_shm_ring_slot_claim(lmm_shm_ring *r, uint32_t slot, uint64_t generation);
/* IN_USE -> READY (keep = 1: weights stay resident) or IN_USE -> FREE (keep = 0). */
int lmm_shm_ring_slot_release(lmm_shm_ring *r, uint32_t slot, int keep);

/* READY -> FREE: the scheduler drops resident weights nobody is using. */
int lmm_shm_ring_slot_evict(lmm_shm_ring *r, uint32_t slot);

/* Sleeps until the slot's state is one of the states in mask (bit 1u << state) or
 * timeout_ms passes (-1: no limit). Cross-process futex on the state word.
 * Returns the state reached, or -1 on timeout (message set). */
int lmm_shm_ring_slot_wait(lmm_shm_ring *r, uint32_t slot, uint32_t state_mask,
                           int timeout_ms);

#endif
