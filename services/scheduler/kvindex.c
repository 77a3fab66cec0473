/* services/scheduler/kvindex.c — the scheduler's index over the KV block region of
 * lmm-cache (docs/kv-cache.md): chained block keys, the longest cached prefix of a new
 * request, LRU allocation for finished blocks, commit with a checksum, and the counters
 * STATUS reports.
 *
 * The region (services/cache/kv_region.h) is created by lmm-cache; this process is the
 * only one that changes which slot holds which block, so there are no locks: compute
 * workers copy bytes in (kv_load) or out (kv_store) only for slots a STEP names, and a
 * slot named by a step in flight is pinned. A block is looked up only when its slot
 * state is READY, its metadata tag equals the key and the checksum of its bytes equals
 * the one recorded at commit; anything else is dropped, never served. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lmm/error.h"
#include "sched.h"

static void index_free(kv_index *k) {
    free(k->key);
    free(k->lru);
    free(k->pins);
    free(k->valid);
    k->key = k->lru = NULL;
    k->pins = NULL;
    k->valid = NULL;
}

void kv_try_attach(sched *s) {
    kv_index *k = &s->kv;
    if (k->attached || s->o.no_prefix_cache || !s->o.run_dir || !s->cache_up) return;
    kv_region_info info;
    int r = kv_region_info_read(s->o.run_dir, &info);
    if (r != 0) {
        if (r < 0) sched_log(s, "KV reuse off: %s", lmm_error_get());
        return;
    }
    uint64_t want = kv_model_id(&s->desc, info.block_tokens);
    if (info.model_id != want || info.block_bytes != kv_block_bytes(&s->desc, info.block_tokens)) {
        sched_log(s, "KV reuse off: the cache's region is for another model or geometry");
        return;
    }
    memset(&k->ring, 0, sizeof k->ring);
    if (lmm_shm_ring_attach(&k->ring, info.shm)) {
        sched_log(s, "KV reuse off: %s", lmm_error_get());
        return;
    }
    size_t n = info.n_slots;
    k->key = calloc(n, sizeof *k->key);
    k->lru = calloc(n, sizeof *k->lru);
    k->pins = calloc(n, sizeof *k->pins);
    k->valid = calloc(n, 1);
    if (!k->key || !k->lru || !k->pins || !k->valid || k->ring.n_slots != info.n_slots ||
        k->ring.slot_size < info.block_bytes) {
        index_free(k);
        lmm_shm_ring_detach(&k->ring);
        sched_log(s, "KV reuse off: out of memory or region size mismatch");
        return;
    }
    k->info = info;
    k->model_id = want;
    k->n_valid = 0;
    /* Blocks the cache reloaded from its disk tier are READY already: index them (they
     * are verified again when looked up). */
    for (uint32_t i = 0; i < info.n_slots; i++)
        if (lmm_shm_ring_slot_state(&k->ring, i) == LMM_SLOT_READY) {
            k->key[i] = lmm_shm_ring_slot_meta(&k->ring, i)->tag;
            k->valid[i] = 1;
            k->n_valid++;
        }
    k->attached = true;
    k->gen++;
    k->disk_on = info.disk[0] && kv_disk_io_init(&k->disk, info.block_bytes) == 0;
    k->disk_writes_on = k->disk_on;
    sched_log(s, "KV reuse on: %u blocks of %u tokens in %s", info.n_slots, info.block_tokens, info.shm);
}

void kv_detach(sched *s) {
    kv_index *k = &s->kv;
    if (!k->attached) return;
    /* Requests whose cached prefix is not loaded yet compute it instead. */
    for (uint32_t i = 0; i < s->o.max_queue; i++) {
        request *r = &s->reqs[i];
        if (r->state == REQ_PREFILL && r->kv_load_pending) {
            r->kv_load_pending = false;
            r->n_prefilled = 0;
            r->n_kv_hit = 0;
        }
    }
    index_free(k);
    lmm_shm_ring_detach(&k->ring);
    if (k->disk_on) kv_disk_io_free(&k->disk);
    k->disk_on = false;
    k->attached = false;
    k->n_valid = 0;
}

void kv_free(sched *s) { kv_detach(s); }

static uint32_t alloc_slot(sched *s);

/* A RAM miss: the block from the cache's disk tier into a slot (verified: header and
 * checksum; a bad file is removed). UINT32_MAX when not there. */
static uint32_t from_disk(sched *s, uint64_t key) {
    kv_index *k = &s->kv;
    char name[64];
    snprintf(name, sizeof name, "%016" PRIx64 "-%016" PRIx64 ".kvb", k->info.model_id, key);
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", k->info.disk, name);
    struct stat st;
    if (stat(path, &st) != 0) return UINT32_MAX;
    uint64_t got, sum;
    int r = kv_disk_read(&k->disk, k->info.disk, name, &k->info, &got, &sum);
    if (r != 0) {
        if (r < 0) sched_log(s, "KV block on disk dropped: %s", lmm_error_get());
        if (r < 0 && access(path, F_OK) != 0) /* removed by kv_disk_read: out of the accounting */
            kv_disk_unreserve(kv_disk_acct(&k->ring), (uint64_t)st.st_size);
        return UINT32_MAX;
    }
    uint32_t slot = alloc_slot(s);
    if (slot == UINT32_MAX) return slot;
    if (lmm_shm_ring_slot_begin_load(&k->ring, slot, 0, 0, k->info.block_bytes, key, NULL)) return UINT32_MAX;
    memcpy(lmm_shm_ring_slot_data(&k->ring, slot), k->disk.buf + KV_DISK_HEADER, k->info.block_bytes);
    lmm_shm_slot_meta *m = lmm_shm_ring_slot_meta(&k->ring, slot);
    m->reserved = sum;
    if (lmm_shm_ring_slot_finish_load(&k->ring, slot, 0, 0)) return UINT32_MAX;
    m->file = KV_FILE_ON_DISK;
    kv_disk_touch(k->info.disk, k->info.model_id, key); /* used now: last in the disk tier's LRU */
    k->key[slot] = key;
    k->valid[slot] = 1;
    k->n_valid++;
    k->disk_reads++;
    return slot;
}

/* A slot holding `key`, verified; UINT32_MAX when none (a bad one is dropped). */
static uint32_t find(sched *s, uint64_t key) {
    kv_index *k = &s->kv;
    for (uint32_t i = 0; i < k->info.n_slots; i++) {
        if (!k->valid[i] || k->key[i] != key) continue;
        const lmm_shm_slot_meta *m = lmm_shm_ring_slot_meta(&k->ring, i);
        if (lmm_shm_ring_slot_state(&k->ring, i) == LMM_SLOT_READY && m->tag == key &&
            m->reserved == kv_checksum(lmm_shm_ring_slot_data(&k->ring, i), k->info.block_bytes))
            return i;
        /* corrupt or mismatched: never served */
        sched_log(s, "KV block in slot %u fails its checksum or key: dropped", i);
        k->valid[i] = 0;
        k->n_valid--;
        k->dropped++;
        if (k->pins[i] == 0 && lmm_shm_ring_slot_state(&k->ring, i) == LMM_SLOT_READY)
            (void)lmm_shm_ring_slot_evict(&k->ring, i);
    }
    return k->disk_on ? from_disk(s, key) : UINT32_MAX;
}

void kv_lookup(sched *s, request *r) {
    kv_index *k = &s->kv;
    r->n_kv_keys = r->n_kv_hit = 0;
    r->kv_load_pending = false;
    r->kv_region_gen = 0;
    kv_try_attach(s);
    if (!k->attached || r->no_prefix_cache) return;
    uint32_t B = k->info.block_tokens;
    uint32_t n_full = r->n_prompt / B;
    uint64_t parent = 0;
    for (uint32_t i = 0; i < n_full; i++) {
        parent = kv_block_key(k->model_id, parent, r->ids + (size_t)i * B, B);
        r->kv_keys[i] = parent;
    }
    r->n_kv_keys = n_full;
    /* At least the last prompt token is computed: its logits start the generation. */
    uint32_t n_look = (r->n_prompt - 1) / B;
    if (n_look > LMM_PROTO_MAX_KV_BLOCKS) n_look = LMM_PROTO_MAX_KV_BLOCKS;
    uint32_t n_hit = 0;
    while (n_hit < n_look) {
        uint32_t slot = find(s, r->kv_keys[n_hit]);
        if (slot == UINT32_MAX) break;
        k->pins[slot]++;
        k->lru[slot] = ++k->tick;
        r->kv_slots[n_hit++] = slot;
        if (k->disk_on && lmm_shm_ring_slot_meta(&k->ring, slot)->file == KV_FILE_ON_DISK)
            kv_disk_touch(k->info.disk, k->info.model_id, r->kv_keys[n_hit - 1]); /* the disk tier's LRU */
    }
    k->hits += n_hit;
    k->misses += n_look - n_hit;
    r->n_kv_hit = n_hit;
    r->kv_load_pending = n_hit > 0;
    r->kv_region_gen = k->gen;
    r->n_prefilled = n_hit * B;
    if (n_hit) sched_log(s, "request %" PRIu64 ": %u cached blocks (%u positions)", r->req_id, n_hit, n_hit * B);
}

void kv_request_release(sched *s, request *r) {
    kv_index *k = &s->kv;
    if (r->kv_load_pending && k->attached && r->kv_region_gen == k->gen)
        for (uint32_t i = 0; i < r->n_kv_hit; i++)
            if (k->pins[r->kv_slots[i]]) k->pins[r->kv_slots[i]]--;
    r->kv_load_pending = false;
}

/* A free slot, else the least recently used unpinned block (evicted), preferring
 * blocks the cache already has on disk (meta.file = 1). */
static uint32_t alloc_slot(sched *s) {
    kv_index *k = &s->kv;
    uint32_t best = UINT32_MAX;
    bool best_on_disk = false;
    for (uint32_t i = 0; i < k->info.n_slots; i++) {
        if (k->pins[i]) continue;
        if (!k->valid[i]) {
            best = i;
            break;
        }
        bool on_disk = lmm_shm_ring_slot_meta(&k->ring, i)->file == KV_FILE_ON_DISK;
        if (best == UINT32_MAX || (on_disk && !best_on_disk) ||
            (on_disk == best_on_disk && k->lru[i] < k->lru[best])) {
            best = i;
            best_on_disk = on_disk;
        }
    }
    if (best == UINT32_MAX) return best;
    if (k->valid[best]) {
        k->valid[best] = 0;
        k->n_valid--;
        k->evictions++;
    }
    lmm_slot_state st = lmm_shm_ring_slot_state(&k->ring, best);
    if (st == LMM_SLOT_READY && lmm_shm_ring_slot_evict(&k->ring, best)) return UINT32_MAX;
    return best;
}

static bool in_index(const kv_index *k, uint64_t key) {
    for (uint32_t i = 0; i < k->info.n_slots; i++)
        if ((k->valid[i] || k->pins[i]) && k->key[i] == key) return true;
    return false;
}

void kv_step_plan(sched *s, request *r, uint32_t p0, uint32_t c) {
    kv_index *k = &s->kv;
    s->step_n_kv_load = s->step_n_kv_store = 0;
    s->step_kv_gen = k->gen;
    if (!k->attached || r->kv_region_gen != k->gen) {
        r->kv_load_pending = false;
        return;
    }
    uint32_t B = k->info.block_tokens;
    if (r->kv_load_pending) {
        for (uint32_t i = 0; i < r->n_kv_hit; i++) {
            s->step_kv_load[s->step_n_kv_load++] = r->seq;
            s->step_kv_load[s->step_n_kv_load++] = i;
            s->step_kv_load[s->step_n_kv_load++] = r->kv_slots[i];
        }
        r->kv_load_pending = false; /* the pins now belong to the step */
        k->bytes_loaded += (uint64_t)r->n_kv_hit * k->info.block_bytes;
    }
    /* Blocks of the prompt that this chunk completes. */
    for (uint32_t i = r->n_kv_hit; i < r->n_kv_keys; i++) {
        uint32_t end = (i + 1) * B;
        if (end <= p0 || end > p0 + c) continue;
        if (s->step_n_kv_store / 3 >= LMM_PROTO_MAX_KV_BLOCKS) break;
        if (in_index(k, r->kv_keys[i])) continue;
        uint32_t slot = alloc_slot(s);
        if (slot == UINT32_MAX) break; /* every slot pinned: no store this time */
        if (lmm_shm_ring_slot_begin_load(&k->ring, slot, 0, (uint64_t)i * B, k->info.block_bytes, r->kv_keys[i],
                                         NULL)) {
            sched_log(s, "KV store skipped: %s", lmm_error_get());
            continue;
        }
        k->key[slot] = r->kv_keys[i];
        k->pins[slot]++;
        s->step_kv_store[s->step_n_kv_store++] = r->seq;
        s->step_kv_store[s->step_n_kv_store++] = i;
        s->step_kv_store[s->step_n_kv_store++] = slot;
    }
}

/* A file the bound removed (kv_disk_evict): its bytes leave the shared accounting; a RAM
 * copy is marked KV_FILE_EVICTED, so the cache does not write it behind again. */
static void on_disk_evicted(void *user, uint64_t model_id, uint64_t key, uint64_t bytes) {
    kv_index *k = user;
    kv_disk_unreserve(kv_disk_acct(&k->ring), bytes);
    k->disk_evictions++;
    if (model_id != k->model_id) return;
    for (uint32_t i = 0; i < k->info.n_slots; i++)
        if (k->valid[i] && k->key[i] == key) lmm_shm_ring_slot_meta(&k->ring, i)->file = KV_FILE_EVICTED;
}

/* Room for one more file in the disk tier: reserved, after evicting the least recently
 * used files down to kv_disk_evict_target when there was none. false: no room (a bound
 * of less than two files, or the directory unreadable). */
static bool disk_room(sched *s, uint64_t fb) {
    kv_index *k = &s->kv;
    uint64_t *acct = kv_disk_acct(&k->ring);
    if (kv_disk_reserve(acct, fb)) return true;
    uint64_t bound = __atomic_load_n(&acct[1], __ATOMIC_RELAXED), total = 0;
    if (bound < 2 * fb) return false;
    if (kv_disk_evict(k->info.disk, kv_disk_evict_target(bound, fb), &total, on_disk_evicted, k) < 0) {
        sched_log(s, "KV disk tier: %s", lmm_error_get());
        return false;
    }
    return kv_disk_reserve(acct, fb);
}

/* The step's loaded blocks are no longer in use by it. */
static void unpin_step_loads(sched *s) {
    kv_index *k = &s->kv;
    for (uint32_t j = 0; j < s->step_n_kv_load; j += 3) {
        uint32_t slot = s->step_kv_load[j + 2];
        if (slot < k->info.n_slots && k->pins[slot]) k->pins[slot]--;
    }
}

void kv_step_done(sched *s) {
    kv_index *k = &s->kv;
    if (!k->attached || s->step_kv_gen != k->gen) { /* the region was replaced meanwhile */
        s->step_n_kv_load = s->step_n_kv_store = 0;
        return;
    }
    unpin_step_loads(s);
    for (uint32_t j = 0; j < s->step_n_kv_store; j += 3) {
        uint32_t slot = s->step_kv_store[j + 2];
        if (slot >= k->info.n_slots) continue;
        lmm_shm_slot_meta *m = lmm_shm_ring_slot_meta(&k->ring, slot);
        if (k->pins[slot]) k->pins[slot]--;
        if (m->error != 0) { /* the cache refused a chunk of it (KV transport over ZeroMQ): not cached */
            sched_log(s, "KV block in slot %u was not stored whole (a chunk failed its checksum): dropped", slot);
            (void)lmm_shm_ring_slot_finish_load(&k->ring, slot, 0, m->error); /* LOADING -> FREE */
            k->dropped++;
            continue;
        }
        m->reserved = kv_checksum(lmm_shm_ring_slot_data(&k->ring, slot), k->info.block_bytes);
        if (k->disk_writes_on) m->file = KV_FILE_WRITING; /* the cache leaves it to us */
        if (lmm_shm_ring_slot_finish_load(&k->ring, slot, 0, 0)) {
            sched_log(s, "KV commit of slot %u: %s", slot, lmm_error_get());
            continue;
        }
        k->valid[slot] = 1;
        k->n_valid++;
        k->lru[slot] = ++k->tick;
        k->stores++;
        if (k->disk_writes_on) { /* write through: a block evicted from RAM stays on disk */
            /* within the tier's bound (kv_disk.h): the least recently used files make room;
             * none (a bound under two files): RAM only, the cache may write it later */
            uint64_t fb = kv_disk_file_bytes(k->info.block_bytes);
            char path[4200];
            snprintf(path, sizeof path, "%s/%016" PRIx64 "-%016" PRIx64 ".kvb", k->info.disk, k->info.model_id,
                     m->tag);
            if (access(path, F_OK) == 0) {
                kv_disk_touch(k->info.disk, k->info.model_id, m->tag);
                m->file = KV_FILE_ON_DISK;
            } else if (disk_room(s, fb)) {
                if (kv_disk_write(&k->disk, k->info.disk, &k->info, m->tag, m->reserved,
                                  lmm_shm_ring_slot_data(&k->ring, slot))) {
                    kv_disk_unreserve(kv_disk_acct(&k->ring), fb);
                    m->file = KV_FILE_NONE;
                    fprintf(stderr, "lmm-scheduler: warning: KV disk tier %s: %s: RAM tier only from now on\n",
                            k->info.disk, lmm_error_get());
                    k->disk_writes_on = false;
                } else {
                    m->file = KV_FILE_ON_DISK;
                }
            } else {
                m->file = KV_FILE_NONE;
            }
        }
        k->bytes_stored += k->info.block_bytes;
    }
    s->step_n_kv_load = s->step_n_kv_store = 0;
}

void kv_step_abort(sched *s) {
    kv_index *k = &s->kv;
    if (k->attached && s->step_kv_gen == k->gen) {
        unpin_step_loads(s);
        /* A store slot is LOADING and may hold half a block: back to FREE, never indexed. */
        for (uint32_t j = 0; j < s->step_n_kv_store; j += 3) {
            uint32_t slot = s->step_kv_store[j + 2];
            if (slot >= k->info.n_slots) continue;
            if (k->pins[slot]) k->pins[slot]--;
            k->key[slot] = 0;
            if (lmm_shm_ring_slot_finish_load(&k->ring, slot, 0, ECANCELED))
                sched_log(s, "KV store of slot %u abandoned: %s", slot, lmm_error_get());
        }
    }
    s->step_n_kv_load = s->step_n_kv_store = 0;
}
