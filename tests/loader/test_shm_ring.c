/* tests/loader/test_shm_ring.c — the shared-memory slot ring: create in one process and
 * attach from a forked child, slot states and bytes seen across processes, the allowed
 * and refused transitions, no /dev/shm leftovers after destroy, unlink from a SIGINT
 * handler, and the sweep of segments whose creator died (exited, zombie, pid reused). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lmm/error.h"
#include "lmm/shm_ring.h"

#define SLOT (64u * 1024u)

static int shm_exists(const char *name) {
    char path[128];
    struct stat st;
    snprintf(path, sizeof path, "/dev/shm%s", name);
    return stat(path, &st) == 0;
}

/* Number of /dev/shm/lmm-<pid>-* entries of this process. */
static int own_segments(void) {
    char prefix[32];
    snprintf(prefix, sizeof prefix, "lmm-%d-", (int)getpid());
    DIR *d = opendir("/dev/shm");
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, prefix, strlen(prefix)) == 0) n++;
    closedir(d);
    return n;
}

static void fill(uint8_t *p, size_t n, uint32_t seed) {
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(seed * 2654435761u + i * 40503u);
}

static int check(const uint8_t *p, size_t n, uint32_t seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != (uint8_t)(seed * 2654435761u + i * 40503u)) return 0;
    return 1;
}

static void test_create_layout(void **state) {
    (void)state;
    lmm_shm_ring r;
    assert_int_equal(lmm_shm_ring_create(&r, 3, SLOT), 0);
    char want[64];
    snprintf(want, sizeof want, "/lmm-%d-", (int)getpid());
    assert_memory_equal(r.name, want, strlen(want));
    char path[128];
    struct stat st;
    snprintf(path, sizeof path, "/dev/shm%s", r.name);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal((uint64_t)st.st_size, 4096u + 3u * SLOT);
    assert_int_equal(r.header->header_bytes, 4096);
    assert_int_equal((uintptr_t)r.data % 4096, 0);
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(lmm_shm_ring_slot_state(&r, i), LMM_SLOT_FREE);
        assert_int_equal(r.meta[i].generation, 0);
        assert_int_equal((uintptr_t)lmm_shm_ring_slot_data(&r, i) % 4096, 0);
    }
    /* Header larger than one page: 100 slots of metadata. */
    lmm_shm_ring big;
    assert_int_equal(lmm_shm_ring_create(&big, 100, 4096), 0);
    assert_int_equal(big.header->header_bytes, 8192);
    assert_string_not_equal(big.name, r.name);
    lmm_shm_ring_destroy(&big);
    lmm_shm_ring_destroy(&r);

    /* refused geometry */
    assert_int_equal(lmm_shm_ring_create(&r, 0, SLOT), -1);
    assert_int_equal(lmm_shm_ring_create(&r, 2, 4095), -1);
    assert_non_null(strstr(lmm_error_get(), "multiple of 4096"));
    assert_int_equal(lmm_shm_ring_create(&r, 65536, (size_t)1 << 62), -1);
    assert_int_equal(own_segments(), 0);
}

static void test_cross_process(void **state) {
    (void)state;
    lmm_shm_ring r;
    assert_int_equal(lmm_shm_ring_create(&r, 4, SLOT), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* child: a compute worker, then a loader */
        lmm_shm_ring c;
        char name[LMM_SHM_RING_NAME_MAX];
        memcpy(name, r.name, sizeof name);
        lmm_shm_ring_detach(&r); /* the child maps the ring by name, like a worker would */
        if (lmm_shm_ring_attach(&c, name) != 0) _exit(10);
        if (c.n_slots != 4 || c.slot_size != SLOT) _exit(11);
        if (lmm_shm_ring_slot_wait(&c, 0, 1u << LMM_SLOT_READY, 10000) != LMM_SLOT_READY)
            _exit(12);
        uint64_t gen = c.meta[0].generation;
        if (lmm_shm_ring_slot_claim(&c, 0, gen) != 0) _exit(13);
        const lmm_shm_slot_meta *m = lmm_shm_ring_slot_meta(&c, 0);
        if (m->file != 7 || m->offset != 123 || m->length != 1000 || m->data_start != 123 ||
            m->tag != 99 || gen != 1)
            _exit(14);
        if (!check(lmm_shm_ring_slot_data(&c, 0) + 123, 1000, 5)) _exit(15);
        if (lmm_shm_ring_slot_release(&c, 0, 0) != 0) _exit(16);
        /* now fill slot 2 for the parent */
        if (lmm_shm_ring_slot_begin_load(&c, 2, 1, 4096, SLOT - 4096, 0, NULL) != 0) _exit(17);
        fill(lmm_shm_ring_slot_data(&c, 2), SLOT - 4096, 9);
        if (lmm_shm_ring_slot_finish_load(&c, 2, 0, 0) != 0) _exit(18);
        lmm_shm_ring_detach(&c);
        _exit(0);
    }
    /* parent: the loader fills slot 0 */
    uint64_t gen = 0;
    assert_int_equal(lmm_shm_ring_slot_begin_load(&r, 0, 7, 123, 1000, 99, &gen), 0);
    assert_int_equal(gen, 1);
    assert_int_equal(lmm_shm_ring_slot_state(&r, 0), LMM_SLOT_LOADING);
    usleep(20000); /* let the child go to sleep in slot_wait */
    fill(lmm_shm_ring_slot_data(&r, 0) + 123, 1000, 5);
    assert_int_equal(lmm_shm_ring_slot_finish_load(&r, 0, 123, 0), 0);
    assert_int_equal(lmm_shm_ring_slot_wait(&r, 0, 1u << LMM_SLOT_FREE, 10000), LMM_SLOT_FREE);
    assert_int_equal(lmm_shm_ring_slot_wait(&r, 2, 1u << LMM_SLOT_READY, 10000), LMM_SLOT_READY);
    assert_int_equal(lmm_shm_ring_slot_claim(&r, 2, UINT64_MAX), 0);
    assert_true(check(lmm_shm_ring_slot_data(&r, 2), SLOT - 4096, 9));
    assert_int_equal(r.meta[2].offset, 4096);
    assert_int_equal(lmm_shm_ring_slot_release(&r, 2, 1), 0);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    lmm_shm_ring_destroy(&r);
    assert_int_equal(own_segments(), 0);
}

static void test_transitions(void **state) {
    (void)state;
    lmm_shm_ring r;
    assert_int_equal(lmm_shm_ring_create(&r, 2, 4096), 0);
    /* refused */
    assert_int_equal(lmm_shm_ring_slot_transition(&r, 0, LMM_SLOT_FREE, LMM_SLOT_READY), -1);
    assert_non_null(strstr(lmm_error_get(), "not allowed"));
    assert_int_equal(lmm_shm_ring_slot_claim(&r, 0, UINT64_MAX), -1);
    assert_non_null(strstr(lmm_error_get(), "expected READY, found FREE"));
    assert_non_null(strstr(lmm_error_get(), r.name));
    assert_int_equal(lmm_shm_ring_slot_finish_load(&r, 0, 0, 0), -1);
    assert_int_equal(lmm_shm_ring_slot_release(&r, 0, 1), -1);
    assert_int_equal(lmm_shm_ring_slot_evict(&r, 0), -1);
    assert_int_equal(lmm_shm_ring_slot_transition(&r, 2, LMM_SLOT_FREE, LMM_SLOT_LOADING), -1);
    assert_non_null(strstr(lmm_error_get(), "out of range"));
    /* a full cycle, evict, and a failed load */
    uint64_t g;
    assert_int_equal(lmm_shm_ring_slot_begin_load(&r, 0, 0, 0, 10, 0, &g), 0);
    assert_int_equal(lmm_shm_ring_slot_begin_load(&r, 0, 0, 0, 10, 0, &g), -1);
    assert_int_equal(lmm_shm_ring_slot_finish_load(&r, 0, 0, 0), 0);
    assert_int_equal(lmm_shm_ring_slot_claim(&r, 0, g + 1), -1); /* stale generation */
    assert_non_null(strstr(lmm_error_get(), "reused"));
    assert_int_equal(lmm_shm_ring_slot_state(&r, 0), LMM_SLOT_READY);
    assert_int_equal(lmm_shm_ring_slot_claim(&r, 0, g), 0);
    assert_int_equal(lmm_shm_ring_slot_release(&r, 0, 1), 0);
    assert_int_equal(lmm_shm_ring_slot_evict(&r, 0), 0);
    assert_int_equal(lmm_shm_ring_slot_begin_load(&r, 0, 0, 0, 10, 0, &g), 0);
    assert_int_equal(g, 2);
    assert_int_equal(lmm_shm_ring_slot_finish_load(&r, 0, 0, EIO), 0);
    assert_int_equal(lmm_shm_ring_slot_state(&r, 0), LMM_SLOT_FREE);
    assert_int_equal(r.meta[0].error, EIO);
    /* a wait that times out */
    assert_int_equal(lmm_shm_ring_slot_wait(&r, 1, 1u << LMM_SLOT_READY, 30), -1);
    assert_non_null(strstr(lmm_error_get(), "still FREE"));
    lmm_shm_ring_destroy(&r);
}

static void test_attach_errors(void **state) {
    (void)state;
    lmm_shm_ring r;
    assert_int_equal(lmm_shm_ring_attach(&r, "/lmm-nonexistent-0"), -1);
    assert_non_null(strstr(lmm_error_get(), "/lmm-nonexistent-0"));
    assert_int_equal(lmm_shm_ring_attach(&r, "no-slash"), -1);
    /* a segment that is not a ring */
    char name[64];
    snprintf(name, sizeof name, "/lmmtest-notaring-%d", (int)getpid());
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 8192), 0);
    close(fd);
    assert_int_equal(lmm_shm_ring_attach(&r, name), -1);
    assert_non_null(strstr(lmm_error_get(), "not an initialized"));
    shm_unlink(name);
    /* after unlink, nobody attaches, but the creator's mapping stays valid */
    lmm_shm_ring c;
    assert_int_equal(lmm_shm_ring_create(&c, 1, 4096), 0);
    assert_int_equal(lmm_shm_ring_attach(&r, c.name), 0);
    assert_int_equal(lmm_shm_ring_unlink(&c), 0);
    assert_false(shm_exists(c.name));
    lmm_shm_ring r2;
    assert_int_equal(lmm_shm_ring_attach(&r2, c.name), -1);
    lmm_shm_ring_slot_data(&c, 0)[5] = 42;
    assert_int_equal(lmm_shm_ring_slot_data(&r, 0)[5], 42);
    lmm_shm_ring_detach(&r);
    lmm_shm_ring_destroy(&c);
    lmm_shm_ring_detach(&c); /* twice: harmless */
}

static lmm_shm_ring *sig_ring;
static void on_sigint(int sig) {
    (void)sig;
    lmm_shm_ring_unlink(sig_ring);
    _exit(3);
}

static void test_unlink_on_sigint(void **state) {
    (void)state;
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        static lmm_shm_ring r;
        if (lmm_shm_ring_create(&r, 2, 4096) != 0) _exit(1);
        sig_ring = &r;
        signal(SIGINT, on_sigint);
        if (write(pfd[1], r.name, sizeof r.name) != (ssize_t)sizeof r.name) _exit(2);
        for (;;) pause();
    }
    char name[LMM_SHM_RING_NAME_MAX];
    assert_int_equal(read(pfd[0], name, sizeof name), (ssize_t)sizeof name);
    assert_true(shm_exists(name));
    kill(pid, SIGINT);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 3);
    assert_false(shm_exists(name));
    close(pfd[0]);
    close(pfd[1]);
}

/* A child creates a ring and dies without destroying it (SIGKILL: no handler runs). */
static pid_t crashing_child(char *name, int reap) {
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        lmm_shm_ring r;
        if (lmm_shm_ring_create(&r, 2, 4096) != 0) _exit(1);
        if (write(pfd[1], r.name, sizeof r.name) != (ssize_t)sizeof r.name) _exit(2);
        for (;;) pause();
    }
    assert_int_equal(read(pfd[0], name, LMM_SHM_RING_NAME_MAX), LMM_SHM_RING_NAME_MAX);
    close(pfd[0]);
    close(pfd[1]);
    kill(pid, SIGKILL);
    if (reap) {
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
    } else {
        /* wait until it is a zombie */
        siginfo_t si;
        assert_int_equal(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
    }
    return pid;
}

/* A hand-made segment claiming to be created by `pid` at process start time `start`. */
static void fake_segment(char *name, pid_t pid, uint64_t start, int k) {
    snprintf(name, LMM_SHM_RING_NAME_MAX, "/lmm-%d-%d", (int)pid, k * 1000000 + (int)getpid());
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    lmm_shm_ring_header h;
    memset(&h, 0, sizeof h);
    atomic_init(&h.magic, LMM_SHM_RING_MAGIC);
    h.version = LMM_SHM_RING_VERSION;
    h.creator_pid = (int32_t)pid;
    h.creator_start_time = start;
    assert_int_equal(pwrite(fd, &h, sizeof h, 0), (ssize_t)sizeof h);
    close(fd);
}

static void test_sweep_stale(void **state) {
    (void)state;
    lmm_shm_ring live;
    assert_int_equal(lmm_shm_ring_create(&live, 1, 4096), 0);

    char dead[LMM_SHM_RING_NAME_MAX], zombie[LMM_SHM_RING_NAME_MAX];
    crashing_child(dead, 1);
    pid_t zpid = crashing_child(zombie, 0);
    assert_true(shm_exists(dead));
    assert_true(shm_exists(zombie));

    /* The parent process (ctest or a shell) is alive. A segment naming it with the
     * wrong start time was made by an earlier process with the same pid: stale. One with
     * its real start time is live and stays. */
    char reused[LMM_SHM_RING_NAME_MAX], alive[LMM_SHM_RING_NAME_MAX];
    pid_t ppid = getppid();
    lmm_shm_ring probe_ring;
    assert_int_equal(lmm_shm_ring_create(&probe_ring, 1, 4096), 0);
    uint64_t my_start = probe_ring.header->creator_start_time;
    lmm_shm_ring_destroy(&probe_ring);
    assert_true(my_start > 0);
    /* the parent's start time, read the same way the sweep reads it */
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)ppid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    assert_non_null(p);
    unsigned long long pstart = 0;
    int field = 2;
    for (char *tok = strtok(p + 1, " "); tok; tok = strtok(NULL, " "))
        if (++field == 22) {
            pstart = strtoull(tok, NULL, 10);
            break;
        }
    assert_true(pstart > 0);
    fake_segment(reused, ppid, pstart + 12345, 1);
    fake_segment(alive, ppid, pstart, 2);

    int removed = lmm_shm_ring_sweep_stale();
    assert_true(removed >= 3);
    assert_false(shm_exists(dead));
    assert_false(shm_exists(zombie));
    assert_false(shm_exists(reused));
    assert_true(shm_exists(alive));
    assert_true(shm_exists(live.name));
    shm_unlink(alive);
    int status;
    assert_int_equal(waitpid(zpid, &status, 0), zpid);
    lmm_shm_ring_destroy(&live);
    assert_int_equal(own_segments(), 0);
    fprintf(stderr, "sweep removed %d stale segment(s)\n", removed);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_layout),
        cmocka_unit_test(test_cross_process),
        cmocka_unit_test(test_transitions),
        cmocka_unit_test(test_attach_errors),
        cmocka_unit_test(test_unlink_on_sigint),
        cmocka_unit_test(test_sweep_stale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
