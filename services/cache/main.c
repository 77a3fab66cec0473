/* services/cache/main.c — lmm-cache, the KV cache service (docs/kv-cache.md).
 *
 * Connects to the scheduler (DEALER, identity "cache"), says HELLO; from the HELLO_ACK it
 * learns the model, computes the KV block geometry (kv_region.h), creates the block
 * region (shared memory, --kv-budget bytes of blocks of --kv-block tokens, pre-faulted)
 * and publishes its name in RUN/kvcache. The scheduler keeps the index over it (keys,
 * LRU, pins) and compute workers copy blocks in and out; this process owns the memory,
 * so a restart comes back empty. Answers STATUS (shm_bytes = the region), PING,
 * SHUTDOWN; every other request gets ERROR "not found". Exits when the scheduler goes
 * away, on SHUTDOWN, SIGINT or SIGTERM, removing the region and RUN/kvcache.
 *
 * Command line (docs/process-group.md, "Command lines"):
 *   lmm-cache --run-dir DIR --services ENDPOINT [--name NAME] [--kv-budget SIZE]
 *             [--kv-block TOKENS] [--kv-disk DIR]
 * With --kv-disk, committed blocks are written behind to DIR (kv_disk.h, O_DIRECT through
 * liburing) and verified blocks found there at start are reloaded into the region.
 * Exit status: 0 stopped cleanly (SHUTDOWN, signal, scheduler gone); 1 error; 2 usage. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <dirent.h>
#include <limits.h>
#include <stdlib.h>

#include "kv_disk.h"
#include "kv_region.h"
#include "lmm/error.h"
#include "lmm/service.h"
#include "lmm/trace.h"

#define HELLO_TIMEOUT_MS 30000

static const char *g_name = "cache";

static void log_line(const char *what) { fprintf(stderr, "lmm-cache: %s\n", what); }

static int usage(const char *why) {
    fprintf(stderr,
            "lmm-cache: %s\nusage: lmm-cache --run-dir DIR --services ENDPOINT [--name NAME] [--kv-budget SIZE] "
            "[--kv-block TOKENS] [--kv-disk DIR]\n",
            why);
    return 2;
}

/* ---- the disk tier (kv_disk.h): reload at start, write behind ------------------------ */

typedef struct {
    const char *dir;          /* NULL: off (not asked for, or degraded to RAM only) */
    kv_disk_io io;
    uint64_t *written_gen;    /* [n_slots] slot generation last written (0: none) */
    uint64_t bytes;           /* bytes of blocks in the directory */
} disk_tier;

/* Published for the scheduler's STATUS in the region header's spare bytes. */
static void disk_publish(lmm_shm_ring *ring, const disk_tier *d) {
    __atomic_store_n((uint64_t *)(void *)ring->header->reserved, d->bytes, __ATOMIC_RELAXED);
}

static void disk_off(disk_tier *d, const char *why) {
    fprintf(stderr, "lmm-cache: warning: --kv-disk %s: %s: RAM tier only\n", d->dir, why);
    d->dir = NULL;
}

/* Verified blocks of this model in the directory go into free slots (READY, tag = key,
 * reserved = checksum); the scheduler indexes them when it attaches. */
static void disk_reload(disk_tier *d, lmm_shm_ring *ring, const kv_region_info *info) {
    DIR *dp = opendir(d->dir);
    if (!dp) return disk_off(d, strerror(errno));
    struct dirent *e;
    uint32_t next = 0, n_ok = 0, n_bad = 0;
    while ((e = readdir(dp))) {
        uint64_t key, sum;
        int r = kv_disk_read(&d->io, d->dir, e->d_name, info, &key, &sum);
        if (r == 1) continue;
        if (r < 0) {
            fprintf(stderr, "lmm-cache: dropped: %s\n", lmm_error_get());
            n_bad++;
            continue;
        }
        d->bytes += info->block_bytes;
        if (next >= ring->n_slots) continue; /* stays on disk */
        uint64_t gen;
        if (lmm_shm_ring_slot_begin_load(ring, next, 0, 0, info->block_bytes, key, &gen)) continue;
        memcpy(lmm_shm_ring_slot_data(ring, next), d->io.buf + KV_DISK_HEADER, info->block_bytes);
        lmm_shm_ring_slot_meta(ring, next)->reserved = sum;
        lmm_shm_ring_slot_finish_load(ring, next, 0, 0);
        lmm_shm_ring_slot_meta(ring, next)->file = 1; /* on disk */
        d->written_gen[next] = gen;
        next++;
        n_ok++;
    }
    closedir(dp);
    disk_publish(ring, d);
    fprintf(stderr, "lmm-cache: disk tier %s: %u blocks reloaded, %u dropped\n", d->dir, n_ok, n_bad);
}

/* Writes blocks committed since the last call (at most `most`). A slot the scheduler
 * reuses meanwhile fails the generation/checksum check and is skipped. */
static void disk_write_behind(disk_tier *d, lmm_shm_ring *ring, const kv_region_info *info, uint32_t most) {
    uint8_t *bounce = d->io.buf + KV_DISK_HEADER;
    for (uint32_t i = 0; i < ring->n_slots && most > 0 && d->dir; i++) {
        if (lmm_shm_ring_slot_state(ring, i) != LMM_SLOT_READY) continue;
        lmm_shm_slot_meta *m = lmm_shm_ring_slot_meta(ring, i);
        uint64_t gen = atomic_load_explicit(&m->generation, memory_order_acquire);
        if (gen == d->written_gen[i]) continue;
        uint64_t key = m->tag, sum = m->reserved;
        memcpy(bounce, lmm_shm_ring_slot_data(ring, i), info->block_bytes);
        d->written_gen[i] = gen;
        if (lmm_shm_ring_slot_state(ring, i) != LMM_SLOT_READY ||
            atomic_load_explicit(&m->generation, memory_order_acquire) != gen ||
            kv_checksum(bounce, info->block_bytes) != sum)
            continue;
        char path[4200];
        snprintf(path, sizeof path, "%s/%016llx-%016llx.kvb", d->dir, (unsigned long long)info->model_id,
                 (unsigned long long)key);
        if (access(path, F_OK) != 0) {
            if (kv_disk_write(&d->io, d->dir, info, key, sum, bounce)) return disk_off(d, lmm_error_get());
            d->bytes += info->block_bytes;
            disk_publish(ring, d);
        }
        if (atomic_load_explicit(&m->generation, memory_order_acquire) == gen) m->file = 1; /* on disk */
        most--;
    }
}

/* Creates the block region for the model named in the HELLO_ACK and publishes it.
 * A budget too small for one block leaves the group without reuse (a warning). */
static int region_create(lmm_shm_ring *ring, const char *run_dir, const char *model, uint64_t budget,
                         uint32_t block_tokens, kv_region_info *info) {
    lmm_model_desc d;
    if (lmm_model_desc_open(&d, model)) return -1;
    memset(info, 0, sizeof *info);
    info->block_tokens = block_tokens;
    info->block_bytes = kv_block_bytes(&d, block_tokens);
    info->slot_size = (info->block_bytes + LMM_SHM_RING_ALIGN - 1) / LMM_SHM_RING_ALIGN * LMM_SHM_RING_ALIGN;
    info->model_id = kv_model_id(&d, block_tokens);
    lmm_model_desc_free(&d);
    uint64_t n = budget / info->slot_size;
    if (n > LMM_SHM_RING_MAX_SLOTS - 1) n = LMM_SHM_RING_MAX_SLOTS - 1;
    if (n == 0) {
        fprintf(stderr, "lmm-cache: warning: --kv-budget %" PRIu64 " holds no block of %" PRIu64
                        " bytes: no KV reuse\n", budget, info->slot_size);
        return 1;
    }
    info->n_slots = (uint32_t)n;
    if (lmm_shm_ring_create(ring, info->n_slots, info->slot_size)) return -1;
    snprintf(info->shm, sizeof info->shm, "%s", ring->name);
    (void)run_dir; /* published by the caller once the disk tier is set up */
    fprintf(stderr, "lmm-cache: %u blocks of %u tokens (%" PRIu64 " bytes each) in %s\n", info->n_slots,
            block_tokens, info->block_bytes, ring->name);
    return 0;
}

int main(int argc, char **argv) {
    const char *run_dir = NULL, *services = NULL, *budget_s = NULL, *block_s = NULL, *disk_s = NULL;
    for (int i = 1; i < argc; i++) {
        int r;
        if ((r = lmm_service_flag(argc, argv, &i, "--run-dir", &run_dir)) ||
            (r = lmm_service_flag(argc, argv, &i, "--services", &services)) ||
            (r = lmm_service_flag(argc, argv, &i, "--name", &g_name)) ||
            (r = lmm_service_flag(argc, argv, &i, "--kv-budget", &budget_s)) ||
            (r = lmm_service_flag(argc, argv, &i, "--kv-block", &block_s)) ||
            (r = lmm_service_flag(argc, argv, &i, "--kv-disk", &disk_s))) {
            if (r < 0) return usage(lmm_error_get());
            continue;
        }
        if (strcmp(argv[i], "--help") == 0) { usage("the KV cache service (started by lmlaunch)"); return 0; }
        char msg[256];
        snprintf(msg, sizeof msg, "unknown argument '%s'", argv[i]);
        return usage(msg);
    }
    if (!services) return usage("--services ENDPOINT is required");
    uint64_t budget = KV_DEFAULT_BUDGET, block = KV_DEFAULT_BLOCK_TOKENS;
    if (budget_s && lmm_service_parse_size(budget_s, &budget)) return usage(lmm_error_get());
    if (block_s && lmm_service_parse_u64(block_s, 1, 1024, &block)) return usage(lmm_error_get());

    uint64_t start_ms = lmm_service_now_ms();
    lmm_service_signals_install();
    lmm_service_die_with_parent();
    lmm_service_sock s;
    lmm_msg m, reply;
    uint64_t served = 0;
    lmm_shm_ring ring;
    memset(&ring, 0, sizeof ring);
    ring.fd = -1;
    bool have_ring = false;
    kv_region_info info;
    disk_tier disk;
    memset(&disk, 0, sizeof disk);
    int rc = 1;
    if (lmm_service_dealer_connect(&s, services, g_name)) {
        log_line(lmm_error_get());
        lmm_service_ctx_term();
        return 1;
    }
    if (lmm_service_hello(&s, LMM_PROTO_ROLE_CACHE, g_name, HELLO_TIMEOUT_MS, &m)) {
        rc = lmm_service_stopping() ? 0 : 1;
        if (rc) log_line(lmm_error_get());
        goto out;
    }
    if (run_dir && m.type == LMM_MSG_HELLO_ACK && m.hello_ack.model[0]) {
        char model[LMM_PROTO_MAX_PATH + 1];
        snprintf(model, sizeof model, "%s", m.hello_ack.model);
        if (m.hello_ack.kv_budget) budget = m.hello_ack.kv_budget; /* the scheduler's share of the budget */
        int r = region_create(&ring, run_dir, model, budget, (uint32_t)block, &info);
        if (r < 0) { /* the group works without reuse */
            fprintf(stderr, "lmm-cache: warning: no KV reuse: %s\n", lmm_error_get());
            if (ring.base) lmm_shm_ring_destroy(&ring);
        }
        have_ring = r == 0;
        if (have_ring && disk_s) {
            disk.dir = disk_s;
            disk.written_gen = calloc(info.n_slots, sizeof *disk.written_gen);
            if (!disk.written_gen || kv_disk_io_init(&disk.io, info.block_bytes))
                disk_off(&disk, disk.written_gen ? lmm_error_get() : "out of memory");
            else if (kv_disk_probe(&disk.io, disk.dir))
                disk_off(&disk, lmm_error_get());
            else
                disk_reload(&disk, &ring, &info);
        }
        if (have_ring) {
            char abs[PATH_MAX];
            if (disk.dir) snprintf(info.disk, sizeof info.disk, "%s", realpath(disk.dir, abs) ? abs : disk.dir);
            if (kv_region_info_write(run_dir, &info)) {
                fprintf(stderr, "lmm-cache: warning: no KV reuse: %s\n", lmm_error_get());
                lmm_shm_ring_destroy(&ring);
                have_ring = false;
                disk.dir = NULL;
            }
        }
    }
    /* tells the scheduler the region is published (or that there is none) */
    lmm_proto_msg_init(&reply, LMM_MSG_ACK);
    reply.ack.of = LMM_MSG_HELLO_ACK;
    if (lmm_service_send(&s, NULL, &reply)) log_line(lmm_error_get());
    for (;;) {
        if (lmm_service_stopping() || s.peer_lost) {
            rc = 0;
            break;
        }
        if (disk.dir && have_ring) disk_write_behind(&disk, &ring, &info, 64);
        int r = lmm_service_recv(&s, NULL, &m, disk.dir ? 100 : 1000);
        if (r < 0) {
            log_line(lmm_error_get());
            break;
        }
        if (r != LMM_SERVICE_MSG) continue;
        switch (m.type) {
        case LMM_MSG_SHUTDOWN:
            rc = 0;
            goto out;
        case LMM_MSG_STATUS:
            lmm_service_status_fill(&reply, LMM_PROTO_ROLE_CACHE, g_name, start_ms);
            reply.status_reply.served = served;
            if (have_ring) reply.status_reply.shm_bytes = ring.total_bytes;
            reply.status_reply.kv_disk_bytes = disk.bytes;
            if (lmm_service_send(&s, NULL, &reply)) log_line(lmm_error_get());
            break;
        case LMM_MSG_PING:
            lmm_proto_msg_init(&reply, LMM_MSG_ACK);
            reply.ack.of = LMM_MSG_PING;
            if (lmm_service_send(&s, NULL, &reply)) log_line(lmm_error_get());
            break;
        case LMM_MSG_HELLO:
            lmm_service_hello_reply(&m, LMM_PROTO_ROLE_CACHE, &reply);
            if (lmm_service_send(&s, NULL, &reply)) log_line(lmm_error_get());
            break;
        case LMM_MSG_HELLO_ACK:
        case LMM_MSG_ACK:
        case LMM_MSG_ERROR:
            break; /* answers need no answer */
        default:
            served++;
            lmm_trace_instant("cache", "refused", "type", m.type, NULL, 0);
            if (lmm_service_send_error(&s, NULL, LMM_PROTO_E_NOT_FOUND, 0,
                                       "lmm-cache takes no requests: the scheduler indexes the block region (docs/kv-cache.md)"))
                log_line(lmm_error_get());
            break;
        }
    }
out:
    if (disk.dir && have_ring) disk_write_behind(&disk, &ring, &info, UINT32_MAX); /* what is left */
    kv_disk_io_free(&disk.io);
    free(disk.written_gen);
    if (have_ring) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", run_dir, KV_REGION_FILE);
        unlink(path);
        lmm_shm_ring_destroy(&ring);
    }
    lmm_service_sock_close(&s);
    lmm_service_ctx_term();
    return rc;
}
