/* core/shm_ring.c — shared-memory ring of weight slots (see lmm/shm_ring.h and
 * docs/loader.md): create / attach / detach / destroy a POSIX shm segment, slot state
 * transitions with C11 atomics, cross-process waits on a futex, and the sweep that
 * removes segments left behind by dead creators. */
#include "lmm/shm_ring.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lmm/error.h"

/* The state words are shared between processes: they must be lock-free atomics
 * (a lock-based atomic would keep its lock in one process's memory). */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");
_Static_assert(sizeof(lmm_shm_slot_meta) == 64, "slot metadata is one cache line");
_Static_assert(sizeof(lmm_shm_ring_header) <= LMM_SHM_RING_META_OFFSET,
               "header must fit before the slot metadata");

#define SHM_DIR "/dev/shm"
#define NAME_PREFIX "lmm-"

static _Atomic unsigned name_counter;

/* ------------------------------------------------------------------ helpers */

static uint64_t round_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

/* Start time of process pid in clock ticks since boot (/proc/<pid>/stat field 22),
 * or 0 if unknown. *zombie is set when the process has exited but is not reaped. */
static uint64_t proc_start_time(pid_t pid, int *zombie) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (zombie) *zombie = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    /* comm (field 2) may hold spaces and ')': fields restart after the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p) return 0;
    p++;
    for (int field = 3; field <= 22; field++) {
        while (*p == ' ') p++;
        if (!*p) return 0;
        if (field == 3 && zombie) *zombie = (*p == 'Z' || *p == 'X');
        if (field == 22) return strtoull(p, NULL, 10);
        while (*p && *p != ' ') p++;
    }
    return 0;
}

static void ring_clear(lmm_shm_ring *r) {
    memset(r, 0, sizeof *r);
    r->fd = -1;
}

/* Checks a header read from a segment of st_size bytes; fills the ring's sizes. */
static int header_check(lmm_shm_ring *r, const lmm_shm_ring_header *h, uint64_t st_size) {
    if (h->version != LMM_SHM_RING_VERSION)
        return lmm_error_set("%s: ring version %u, this build reads version %u", r->name,
                             h->version, LMM_SHM_RING_VERSION);
    if (h->meta_size != sizeof(lmm_shm_slot_meta))
        return lmm_error_set("%s: slot metadata of %u bytes, expected %zu", r->name,
                             h->meta_size, sizeof(lmm_shm_slot_meta));
    if (h->n_slots == 0 || h->n_slots > LMM_SHM_RING_MAX_SLOTS || h->slot_size == 0 ||
        h->slot_size % LMM_SHM_RING_ALIGN != 0)
        return lmm_error_set("%s: bad ring geometry (%u slots of %llu bytes)", r->name,
                             h->n_slots, (unsigned long long)h->slot_size);
    uint64_t hb = round_up(LMM_SHM_RING_META_OFFSET +
                               (uint64_t)h->n_slots * sizeof(lmm_shm_slot_meta),
                           LMM_SHM_RING_ALIGN);
    if (h->header_bytes != hb)
        return lmm_error_set("%s: header of %llu bytes, expected %llu", r->name,
                             (unsigned long long)h->header_bytes, (unsigned long long)hb);
    if (h->slot_size > (UINT64_MAX - hb) / h->n_slots ||
        hb + h->slot_size * h->n_slots != h->total_bytes || h->total_bytes != st_size ||
        h->total_bytes > SIZE_MAX)
        return lmm_error_set("%s: segment is %llu bytes, header says %llu", r->name,
                             (unsigned long long)st_size, (unsigned long long)h->total_bytes);
    r->n_slots = h->n_slots;
    r->slot_size = (size_t)h->slot_size;
    r->total_bytes = (size_t)h->total_bytes;
    return 0;
}

static void ring_set_views(lmm_shm_ring *r) {
    r->header = (lmm_shm_ring_header *)r->base;
    r->meta = (lmm_shm_slot_meta *)(r->base + LMM_SHM_RING_META_OFFSET);
    r->data = r->base + r->header->header_bytes;
}

static int set_names(lmm_shm_ring *r, const char *name) {
    size_t n = strlen(name);
    if (n < 2 || n >= LMM_SHM_RING_NAME_MAX || name[0] != '/' || strchr(name + 1, '/'))
        return lmm_error_set("'%s': not a shared-memory ring name (\"/name\", < %d bytes)",
                             name, LMM_SHM_RING_NAME_MAX);
    memcpy(r->name, name, n + 1);
    snprintf(r->path, sizeof r->path, SHM_DIR "%s", name);
    return 0;
}

/* ------------------------------------------------------------------ create / attach */

int lmm_shm_ring_create(lmm_shm_ring *r, uint32_t n_slots, size_t slot_size) {
    ring_clear(r);
    if (n_slots == 0 || n_slots > LMM_SHM_RING_MAX_SLOTS)
        return lmm_error_set("shm ring: %u slots (allowed 1..%u)", n_slots,
                             LMM_SHM_RING_MAX_SLOTS);
    if (slot_size == 0 || slot_size % LMM_SHM_RING_ALIGN != 0)
        return lmm_error_set("shm ring: slot size %zu is not a positive multiple of %u",
                             slot_size, LMM_SHM_RING_ALIGN);
    uint64_t header_bytes = round_up(LMM_SHM_RING_META_OFFSET +
                                         (uint64_t)n_slots * sizeof(lmm_shm_slot_meta),
                                     LMM_SHM_RING_ALIGN);
    if ((uint64_t)slot_size > (UINT64_MAX - header_bytes) / n_slots ||
        header_bytes + (uint64_t)slot_size * n_slots > (uint64_t)INT64_MAX ||
        header_bytes + (uint64_t)slot_size * n_slots > SIZE_MAX)
        return lmm_error_set("shm ring: %u slots of %zu bytes overflow", n_slots, slot_size);
    uint64_t total = header_bytes + (uint64_t)slot_size * n_slots;

    /* A unique name; O_EXCL so that we never adopt someone else's (or a stale) segment. */
    char name[LMM_SHM_RING_NAME_MAX];
    int fd = -1;
    for (int tries = 0; tries < 1000 && fd < 0; tries++) {
        unsigned k = atomic_fetch_add_explicit(&name_counter, 1, memory_order_relaxed);
        snprintf(name, sizeof name, "/" NAME_PREFIX "%d-%u", (int)getpid(), k);
        fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST)
            return lmm_error_set("%s: shm_open: %s", name, strerror(errno));
    }
    if (fd < 0) return lmm_error_set("shm ring: no free name /" NAME_PREFIX "%d-*", (int)getpid());
    set_names(r, name);
    r->fd = fd;
    r->creator = 1;

    /* Reserve the memory now: a tmpfs that runs out later would SIGBUS every process
     * touching the slot. */
    int e = posix_fallocate(fd, 0, (off_t)total);
    if (e == EOPNOTSUPP || e == EINVAL) e = ftruncate(fd, (off_t)total) == 0 ? 0 : errno;
    if (e != 0) {
        lmm_error_set("%s: cannot reserve %llu bytes of shared memory: %s", name,
                      (unsigned long long)total, strerror(e));
        goto fail;
    }
    void *p = mmap(NULL, (size_t)total, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                   fd, 0);
    if (p == MAP_FAILED) {
        lmm_error_set("%s: mmap of %llu bytes: %s", name, (unsigned long long)total,
                      strerror(errno));
        goto fail;
    }
    r->base = p;
    r->total_bytes = (size_t)total;
    /* Pre-fault: first touch runs at ~1 GB/s; pay it at start-up, not in the token loop.
     * MAP_POPULATE maps the pages; the writes make sure every page is present and
     * writable in this process's page tables. */
    for (size_t off = 0; off < r->total_bytes; off += 4096) ((volatile uint8_t *)r->base)[off] = 0;

    lmm_shm_ring_header *h = (lmm_shm_ring_header *)r->base;
    h->version = LMM_SHM_RING_VERSION;
    h->n_slots = n_slots;
    h->slot_size = slot_size;
    h->header_bytes = header_bytes;
    h->total_bytes = total;
    h->creator_pid = (int32_t)getpid();
    h->meta_size = sizeof(lmm_shm_slot_meta);
    h->creator_start_time = proc_start_time(getpid(), NULL);
    memcpy(h->name, name, sizeof h->name);
    /* slot metadata is zero: FREE, generation 0 (fallocate gives zeroed pages) */
    r->n_slots = n_slots;
    r->slot_size = slot_size;
    ring_set_views(r);
    atomic_store_explicit(&h->magic, LMM_SHM_RING_MAGIC, memory_order_release);
    return 0;

fail:
    shm_unlink(name);
    close(fd);
    ring_clear(r);
    return -1;
}

int lmm_shm_ring_attach(lmm_shm_ring *r, const char *name) {
    ring_clear(r);
    if (set_names(r, name) != 0) return -1;
    int fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) return lmm_error_set("%s: shm_open: %s", name, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        lmm_error_set("%s: fstat: %s", name, strerror(errno));
        goto fail;
    }
    if ((uint64_t)st.st_size < LMM_SHM_RING_ALIGN) {
        lmm_error_set("%s: %lld bytes, too small for a ring", name, (long long)st.st_size);
        goto fail;
    }
    /* Look at the header alone before mapping (and pre-faulting) the whole thing. */
    void *hp = mmap(NULL, LMM_SHM_RING_ALIGN, PROT_READ, MAP_SHARED, fd, 0);
    if (hp == MAP_FAILED) {
        lmm_error_set("%s: mmap: %s", name, strerror(errno));
        goto fail;
    }
    lmm_shm_ring_header *h = hp;
    uint64_t magic = atomic_load_explicit(&h->magic, memory_order_acquire);
    int ok = -1;
    if (magic != LMM_SHM_RING_MAGIC)
        lmm_error_set("%s: not an initialized LowMemoryLLM ring (magic %016llx)", name,
                      (unsigned long long)magic);
    else
        ok = header_check(r, h, (uint64_t)st.st_size);
    munmap(hp, LMM_SHM_RING_ALIGN);
    if (ok != 0) goto fail;

    void *p = mmap(NULL, r->total_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                   fd, 0);
    if (p == MAP_FAILED) {
        lmm_error_set("%s: mmap of %zu bytes: %s", name, r->total_bytes, strerror(errno));
        goto fail;
    }
    r->base = p;
    r->fd = fd;
    ring_set_views(r);
    return 0;

fail:
    close(fd);
    ring_clear(r);
    return -1;
}

void lmm_shm_ring_detach(lmm_shm_ring *r) {
    if (r->base) munmap(r->base, r->total_bytes);
    if (r->fd >= 0) close(r->fd);
    ring_clear(r);
}

int lmm_shm_ring_unlink(lmm_shm_ring *r) {
    if (!r->path[0]) return -1;
    if (atomic_exchange(&r->unlinked, 1)) return 0;
    /* unlink(2), not shm_unlink(3): async-signal-safe, and glibc's shm_unlink is the
     * same unlink of /dev/shm/<name>. The path was computed beforehand. */
    if (unlink(r->path) != 0 && errno != ENOENT) return -1;
    return 0;
}

void lmm_shm_ring_destroy(lmm_shm_ring *r) {
    if (r->creator) lmm_shm_ring_unlink(r);
    lmm_shm_ring_detach(r);
}

/* ------------------------------------------------------------------ sweep */

/* Parses "lmm-<pid>-<counter>"; returns the pid or 0 when the name is not ours. */
static pid_t parse_ring_name(const char *d) {
    if (strncmp(d, NAME_PREFIX, strlen(NAME_PREFIX)) != 0) return 0;
    const char *p = d + strlen(NAME_PREFIX);
    if (!isdigit((unsigned char)*p)) return 0;
    char *end;
    errno = 0;
    long pid = strtol(p, &end, 10);
    if (errno || *end != '-' || pid <= 0 || pid > INT_MAX) return 0;
    p = end + 1;
    if (!isdigit((unsigned char)*p)) return 0;
    strtoul(p, &end, 10);
    if (*end != '\0') return 0;
    return (pid_t)pid;
}

int lmm_shm_ring_sweep_stale(void) {
    DIR *dir = opendir(SHM_DIR);
    if (!dir) return lmm_error_set(SHM_DIR ": %s", strerror(errno));
    int removed = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        pid_t pid = parse_ring_name(de->d_name);
        if (pid == 0 || pid == getpid()) continue;
        int zombie = 0;
        int stale = 0;
        if (kill(pid, 0) != 0 && errno == ESRCH) {
            stale = 1;
        } else {
            uint64_t now_start = proc_start_time(pid, &zombie);
            if (zombie) {
                stale = 1;
            } else if (now_start != 0) {
                /* The pid is alive: is it still the process that created the segment? */
                int fd = openat(dirfd(dir), de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
                lmm_shm_ring_header h;
                if (fd >= 0) {
                    if (pread(fd, &h, sizeof h, 0) == (ssize_t)sizeof h &&
                        atomic_load(&h.magic) == LMM_SHM_RING_MAGIC &&
                        h.creator_pid == (int32_t)pid && h.creator_start_time != 0 &&
                        h.creator_start_time != now_start)
                        stale = 1;
                    close(fd);
                }
            }
        }
        if (stale && unlinkat(dirfd(dir), de->d_name, 0) == 0) removed++;
    }
    closedir(dir);
    return removed;
}

/* ------------------------------------------------------------------ slot states */

const char *lmm_slot_state_name(lmm_slot_state s) {
    switch (s) {
    case LMM_SLOT_FREE: return "FREE";
    case LMM_SLOT_LOADING: return "LOADING";
    case LMM_SLOT_READY: return "READY";
    case LMM_SLOT_IN_USE: return "IN_USE";
    }
    return "?";
}

static int slot_check(const lmm_shm_ring *r, uint32_t slot) {
    if (!r->base) return lmm_error_set("shm ring: not mapped");
    if (slot >= r->n_slots)
        return lmm_error_set("%s: slot %u out of range (%u slots)", r->name, slot, r->n_slots);
    return 0;
}

lmm_slot_state lmm_shm_ring_slot_state(const lmm_shm_ring *r, uint32_t slot) {
    return (lmm_slot_state)atomic_load_explicit(&r->meta[slot].state, memory_order_acquire);
}

static long futex(_Atomic uint32_t *addr, int op, uint32_t val, const struct timespec *ts) {
    /* Not FUTEX_PRIVATE_FLAG: the word is shared between processes. */
    return syscall(SYS_futex, (uint32_t *)addr, op, val, ts, NULL, 0);
}

static int allowed(lmm_slot_state from, lmm_slot_state to) {
    switch (from) {
    case LMM_SLOT_FREE: return to == LMM_SLOT_LOADING;
    case LMM_SLOT_LOADING: return to == LMM_SLOT_READY || to == LMM_SLOT_FREE;
    case LMM_SLOT_READY: return to == LMM_SLOT_IN_USE || to == LMM_SLOT_FREE;
    case LMM_SLOT_IN_USE: return to == LMM_SLOT_READY || to == LMM_SLOT_FREE;
    }
    return 0;
}

int lmm_shm_ring_slot_transition(lmm_shm_ring *r, uint32_t slot, lmm_slot_state from,
                                 lmm_slot_state to) {
    if (slot_check(r, slot) != 0) return -1;
    if (!allowed(from, to))
        return lmm_error_set("%s: slot %u: transition %s -> %s is not allowed", r->name, slot,
                             lmm_slot_state_name(from), lmm_slot_state_name(to));
    lmm_shm_slot_meta *m = &r->meta[slot];
    uint32_t expect = (uint32_t)from;
    /* seq_cst (a superset of acq_rel): release publishes the slot's bytes and metadata,
     * acquire takes over what the previous owner wrote, and the total order with the
     * waiters counter below makes the futex wake-up reliable. */
    if (!atomic_compare_exchange_strong_explicit(&m->state, &expect, (uint32_t)to,
                                                 memory_order_seq_cst, memory_order_acquire))
        return lmm_error_set("%s: slot %u: expected %s, found %s", r->name, slot,
                             lmm_slot_state_name(from),
                             lmm_slot_state_name((lmm_slot_state)expect));
    if (atomic_load_explicit(&m->waiters, memory_order_seq_cst) != 0)
        futex(&m->state, FUTEX_WAKE, INT_MAX, NULL);
    return 0;
}

int lmm_shm_ring_slot_begin_load(lmm_shm_ring *r, uint32_t slot, uint32_t file,
                                 uint64_t offset, uint64_t length, uint64_t tag,
                                 uint64_t *generation) {
    if (lmm_shm_ring_slot_transition(r, slot, LMM_SLOT_FREE, LMM_SLOT_LOADING) != 0) return -1;
    lmm_shm_slot_meta *m = &r->meta[slot];
    m->file = file;
    m->offset = offset;
    m->length = length;
    m->data_start = 0;
    m->tag = tag;
    m->error = 0;
    uint64_t g = atomic_fetch_add_explicit(&m->generation, 1, memory_order_relaxed) + 1;
    if (generation) *generation = g;
    return 0;
}

int lmm_shm_ring_slot_finish_load(lmm_shm_ring *r, uint32_t slot, uint64_t data_start,
                                  int error) {
    if (slot_check(r, slot) != 0) return -1;
    lmm_shm_slot_meta *m = &r->meta[slot];
    if (atomic_load_explicit(&m->state, memory_order_acquire) != LMM_SLOT_LOADING)
        return lmm_error_set("%s: slot %u: finish_load in state %s", r->name, slot,
                             lmm_slot_state_name(lmm_shm_ring_slot_state(r, slot)));
    m->data_start = data_start;
    m->error = error;
    return lmm_shm_ring_slot_transition(r, slot, LMM_SLOT_LOADING,
                                        error ? LMM_SLOT_FREE : LMM_SLOT_READY);
}

int lmm_shm_ring_slot_claim(lmm_shm_ring *r, uint32_t slot, uint64_t generation) {
    if (lmm_shm_ring_slot_transition(r, slot, LMM_SLOT_READY, LMM_SLOT_IN_USE) != 0) return -1;
    if (generation != UINT64_MAX) {
        /* Check after the claim: the generation cannot change while we hold the slot. */
        uint64_t g = atomic_load_explicit(&r->meta[slot].generation, memory_order_relaxed);
        if (g != generation) {
            lmm_shm_ring_slot_transition(r, slot, LMM_SLOT_IN_USE, LMM_SLOT_READY);
            return lmm_error_set("%s: slot %u: holds generation %llu, not %llu (reused)",
                                 r->name, slot, (unsigned long long)g,
                                 (unsigned long long)generation);
        }
    }
    return 0;
}

int lmm_shm_ring_slot_release(lmm_shm_ring *r, uint32_t slot, int keep) {
    return lmm_shm_ring_slot_transition(r, slot, LMM_SLOT_IN_USE,
                                        keep ? LMM_SLOT_READY : LMM_SLOT_FREE);
}

int lmm_shm_ring_slot_evict(lmm_shm_ring *r, uint32_t slot) {
    return lmm_shm_ring_slot_transition(r, slot, LMM_SLOT_READY, LMM_SLOT_FREE);
}

int lmm_shm_ring_slot_wait(lmm_shm_ring *r, uint32_t slot, uint32_t state_mask,
                           int timeout_ms) {
    if (slot_check(r, slot) != 0) return -1;
    lmm_shm_slot_meta *m = &r->meta[slot];
    struct timespec deadline = {0, 0};
    if (timeout_ms >= 0) {
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    atomic_fetch_add_explicit(&m->waiters, 1, memory_order_seq_cst);
    int result = -1;
    for (;;) {
        uint32_t s = atomic_load_explicit(&m->state, memory_order_seq_cst);
        if (s < 32 && (state_mask & (1u << s))) {
            result = (int)s;
            break;
        }
        struct timespec rel, *tsp = NULL;
        if (timeout_ms >= 0) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            long long ns = (long long)(deadline.tv_sec - now.tv_sec) * 1000000000LL +
                           (deadline.tv_nsec - now.tv_nsec);
            if (ns <= 0) {
                lmm_error_set("%s: slot %u: still %s after %d ms", r->name, slot,
                              lmm_slot_state_name((lmm_slot_state)s), timeout_ms);
                break;
            }
            rel.tv_sec = (time_t)(ns / 1000000000LL);
            rel.tv_nsec = (long)(ns % 1000000000LL);
            tsp = &rel;
        }
        /* Returns at once (EAGAIN) if the state already moved on. */
        futex(&m->state, FUTEX_WAIT, s, tsp);
    }
    atomic_fetch_sub_explicit(&m->waiters, 1, memory_order_seq_cst);
    /* A value read with seq_cst above is also an acquire. */
    return result;
}
