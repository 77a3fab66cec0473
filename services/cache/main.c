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
 *             [--kv-block TOKENS] [--kv-disk DIR] [--kv-disk-budget SIZE] [--kv-endpoint ENDPOINT]
 * The region is also served over ZeroMQ (kv_serve.h) at --kv-endpoint (default
 * ipc://RUN/cache.ipc) for compute workers started with --kv-transport zmq.
 * With --kv-disk, committed blocks are written behind to DIR (kv_disk.h, O_DIRECT through
 * liburing) and verified blocks found there at start are reloaded into the region. The
 * files in DIR never take more than --kv-disk-budget bytes (default: DIR's free space at
 * start minus 10% of its file system): this process evicts the least recently used ones
 * (oldest mtime) when less than two blocks' room is left (kv_disk_evict).
 * Exit status: 0 stopped cleanly (SHUTDOWN, signal, scheduler gone); 1 error; 2 usage. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <dirent.h>
#include <sys/stat.h>
#include <limits.h>
#include <stdlib.h>

#include "kv_disk.h"
#include "kv_region.h"
#include "kv_serve.h"
#include "lmm/error.h"
#include "lmm/service.h"
#include "lmm/trace.h"

#define HELLO_TIMEOUT_MS 30000

static const char *g_name = "cache";

static void log_line(const char *what) { fprintf(stderr, "lmm-cache: %s\n", what); }

static int usage(const char *why) {
    fprintf(stderr,
            "lmm-cache: %s\nusage: lmm-cache --run-dir DIR --services ENDPOINT [--name NAME] [--kv-budget SIZE] "
            "[--kv-block TOKENS] [--kv-disk DIR] [--kv-disk-budget SIZE] [--kv-endpoint ENDPOINT]\n",
            why);
    return 2;
}

/* ---- the disk tier (kv_disk.h): reload at start, write behind ------------------------ */

typedef struct {
    const char *dir;          /* NULL: off (not asked for, or degraded to RAM only) */
    kv_disk_io io;
    uint64_t *written_gen;    /* [n_slots] slot generation last written (0: none) */
    uint64_t budget;          /* --kv-disk-budget; 0: the default (kv_disk_default_budget) */
    uint64_t file_bytes;      /* one block's file */
    uint64_t *acct;           /* the region's shared words (kv_disk_acct): [0] bytes in dir, [1] bound */
    uint64_t evicted;         /* files removed by the bound */
} disk_tier;

static void disk_off(disk_tier *d, const char *why) {
    fprintf(stderr, "lmm-cache: warning: --kv-disk %s: %s: RAM tier only\n", d->dir, why);
    d->dir = NULL;
}

/* Verified blocks of this model in the directory go into free slots (READY, tag = key,
 * reserved = checksum); the scheduler indexes them when it attaches. */
static void disk_reload(disk_tier *d, lmm_shm_ring *ring, const kv_region_info *info) {
    /* the bound first: what the directory holds (any model), the least recently used
     * files beyond the bound removed, then the shared accounting starts from there */
    uint64_t total = 0;
    long ev = kv_disk_evict(d->dir, d->budget ? d->budget : UINT64_MAX, &total, NULL, NULL);
    if (ev < 0) return disk_off(d, lmm_error_get());
    d->evicted += (uint64_t)ev;
    if (!d->budget) d->budget = kv_disk_default_budget(d->dir, total);
    d->acct = kv_disk_acct(ring);
    __atomic_store_n(&d->acct[1], d->budget, __ATOMIC_RELAXED);
    __atomic_store_n(&d->acct[0], total, __ATOMIC_RELAXED);
    DIR *dp = opendir(d->dir);
    if (!dp) return disk_off(d, strerror(errno));
    struct dirent *e;
    uint32_t next = 0, n_ok = 0, n_bad = 0;
    while (next < ring->n_slots && (e = readdir(dp))) { /* files beyond the slots are read on demand */
        uint64_t key, sum;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", d->dir, e->d_name);
        struct stat st; /* its bytes as kv_disk_evict counted them */
        uint64_t size = stat(path, &st) == 0 ? (uint64_t)st.st_size : d->file_bytes;
        int r = kv_disk_read(&d->io, d->dir, e->d_name, info, &key, &sum);
        if (r == 1) continue;
        if (r < 0) {
            fprintf(stderr, "lmm-cache: dropped: %s\n", lmm_error_get());
            if (access(path, F_OK) != 0) kv_disk_unreserve(d->acct, size); /* removed by kv_disk_read */
            n_bad++;
            continue;
        }
        uint64_t gen;
        if (lmm_shm_ring_slot_begin_load(ring, next, 0, 0, info->block_bytes, key, &gen)) continue;
        memcpy(lmm_shm_ring_slot_data(ring, next), d->io.buf + KV_DISK_HEADER, info->block_bytes);
        lmm_shm_ring_slot_meta(ring, next)->reserved = sum;
        lmm_shm_ring_slot_finish_load(ring, next, 0, 0);
        lmm_shm_ring_slot_meta(ring, next)->file = KV_FILE_ON_DISK;
        d->written_gen[next] = gen;
        next++;
        n_ok++;
    }
    closedir(dp);
    fprintf(stderr,
            "lmm-cache: disk tier %s: %u blocks reloaded, %u dropped, %ld evicted; %" PRIu64 " bytes of at most %" PRIu64
            "\n",
            d->dir, n_ok, n_bad, ev, __atomic_load_n(&d->acct[0], __ATOMIC_RELAXED), d->budget);
    if (d->budget < d->file_bytes)
        fprintf(stderr, "lmm-cache: warning: --kv-disk %s: a bound of %" PRIu64 " bytes holds no block file of %" PRIu64
                        " bytes: nothing is written\n",
                d->dir, d->budget, d->file_bytes);
}

typedef struct {
    lmm_shm_ring *ring;
    disk_tier *d;
    uint64_t model_id;
} evict_ctx;

/* A file removed by the bound: its bytes leave the accounting, and a RAM copy is marked
 * KV_FILE_EVICTED (the scheduler then keeps it longer in RAM, and it is not written
 * behind again: the least recently used block stays out of the tier). */
static void on_evicted(void *user, uint64_t model_id, uint64_t key, uint64_t bytes) {
    evict_ctx *c = user;
    kv_disk_unreserve(c->d->acct, bytes);
    c->d->evicted++;
    if (model_id != c->model_id) return;
    for (uint32_t i = 0; i < c->ring->n_slots; i++) {
        lmm_shm_slot_meta *m = lmm_shm_ring_slot_meta(c->ring, i);
        if (m->tag != key || lmm_shm_ring_slot_state(c->ring, i) != LMM_SLOT_READY) continue;
        m->file = KV_FILE_EVICTED;
        c->d->written_gen[i] = atomic_load_explicit(&m->generation, memory_order_acquire);
    }
}

/* Keeps room for new blocks: when less than two files' room is left under the bound,
 * removes the least recently used files down to kv_disk_evict_target (the scheduler
 * does the same when a write finds no room). */
static void disk_housekeep(disk_tier *d, lmm_shm_ring *ring, const kv_region_info *info) {
    uint64_t used = __atomic_load_n(&d->acct[0], __ATOMIC_RELAXED), fb = d->file_bytes;
    if (d->budget < 2 * fb) return; /* a bound of at most one file: what fits is written, nothing evicted */
    if (used <= d->budget && d->budget - used >= 2 * fb) return;
    uint64_t total = 0;
    evict_ctx c = {ring, d, info->model_id};
    if (kv_disk_evict(d->dir, kv_disk_evict_target(d->budget, fb), &total, on_evicted, &c) < 0)
        return disk_off(d, lmm_error_get());
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
        if (m->file == KV_FILE_WRITING) continue; /* the scheduler is writing it through */
        if (m->file != KV_FILE_NONE) { /* on disk, or evicted by the bound: never again */
            d->written_gen[i] = gen;
            continue;
        }
        uint64_t key = m->tag, sum = m->reserved;
        char path[4200];
        snprintf(path, sizeof path, "%s/%016llx-%016llx.kvb", d->dir, (unsigned long long)info->model_id,
                 (unsigned long long)key);
        bool exists = access(path, F_OK) == 0;
        if (!exists && !kv_disk_reserve(d->acct, d->file_bytes)) return; /* full: disk_housekeep makes room */
        memcpy(bounce, lmm_shm_ring_slot_data(ring, i), info->block_bytes);
        d->written_gen[i] = gen;
        if (lmm_shm_ring_slot_state(ring, i) != LMM_SLOT_READY ||
            atomic_load_explicit(&m->generation, memory_order_acquire) != gen ||
            kv_checksum(bounce, info->block_bytes) != sum) {
            if (!exists) kv_disk_unreserve(d->acct, d->file_bytes);
            continue;
        }
        if (!exists && kv_disk_write(&d->io, d->dir, info, key, sum, bounce)) {
            kv_disk_unreserve(d->acct, d->file_bytes);
            return disk_off(d, lmm_error_get());
        }
        if (atomic_load_explicit(&m->generation, memory_order_acquire) == gen) m->file = KV_FILE_ON_DISK;
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
    const char *run_dir = NULL, *services = NULL, *budget_s = NULL, *block_s = NULL, *disk_s = NULL,
               *disk_budget_s = NULL, *kv_ep = NULL;
    for (int i = 1; i < argc; i++) {
        int r;
        if ((r = lmm_service_flag(argc, argv, &i, "--run-dir", &run_dir)) ||
            (r = lmm_service_flag(argc, argv, &i, "--services", &services)) ||
            (r = lmm_service_flag(argc, argv, &i, "--name", &g_name)) ||
            (r = lmm_service_flag(argc, argv, &i, "--kv-budget", &budget_s)) ||
            (r = lmm_service_flag(argc, argv, &i, "--kv-block", &block_s)) ||
            (r = lmm_service_flag(argc, argv, &i, "--kv-disk", &disk_s)) ||
            (r = lmm_service_flag(argc, argv, &i, "--kv-disk-budget", &disk_budget_s)) ||
            (r = lmm_service_flag(argc, argv, &i, "--kv-endpoint", &kv_ep))) {
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
    uint64_t disk_budget = 0;
    if (disk_budget_s && (lmm_service_parse_size(disk_budget_s, &disk_budget) || disk_budget == 0))
        return usage("--kv-disk-budget: not a size like 512M or 4G");

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
    kv_server kvs; /* the region over ZeroMQ (kv_serve.h) */
    memset(&kvs, 0, sizeof kvs);
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
            disk.budget = disk_budget;
            disk.file_bytes = kv_disk_file_bytes(info.block_bytes);
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
    if (have_ring) { /* for workers that cannot map the region (--kv-transport zmq) */
        char ep[LMM_SERVICE_MAX_ENDPOINT];
        snprintf(ep, sizeof ep, "ipc://%s/cache.ipc", run_dir);
        if (kv_server_bind(&kvs, kv_ep ? kv_ep : ep, &ring, &info))
            fprintf(stderr, "lmm-cache: warning: KV transport over ZeroMQ off: %s\n", lmm_error_get());
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
        if (disk.dir && have_ring) disk_housekeep(&disk, &ring, &info);
        if (disk.dir && have_ring) disk_write_behind(&disk, &ring, &info, 64);
        int timeout = disk.dir ? 100 : 1000, r;
        if (kvs.up) { /* both sockets: the scheduler's and the workers' */
            lmm_service_pollitem it[2] = {{.sock = &s, .events = ZMQ_POLLIN}, {.sock = &kvs.sock, .events = ZMQ_POLLIN}};
            int n = lmm_service_poll(it, 2, timeout);
            if (n > 0 && (it[1].revents & ZMQ_POLLIN) && kv_server_serve(&kvs)) log_line(lmm_error_get());
            r = n < 0 ? -1 : (n > 0 && (it[0].revents & ZMQ_POLLIN)) ? lmm_service_recv(&s, NULL, &m, 0)
                                                                       : LMM_SERVICE_TIMEOUT;
        } else {
            r = lmm_service_recv(&s, NULL, &m, timeout);
        }
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
            reply.status_reply.served = served + kvs.gets + kvs.puts; /* KV chunks served over ZeroMQ */
            if (have_ring) reply.status_reply.shm_bytes = ring.total_bytes;
            if (disk.acct) reply.status_reply.kv_disk_bytes = __atomic_load_n(&disk.acct[0], __ATOMIC_RELAXED);
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
    if (disk.dir && have_ring) { /* what is left, within the bound */
        disk_housekeep(&disk, &ring, &info);
        disk_write_behind(&disk, &ring, &info, UINT32_MAX);
    }
    kv_server_close(&kvs);
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
