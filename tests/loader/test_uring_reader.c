/* tests/loader/test_uring_reader.c — io_uring reads into ring slots: random (file, offset,
 * length) ranges with unaligned ends, ranges ending at the end of files whose size is not
 * a multiple of 4096, more requests in flight than the queue depth, slots reused as
 * completions come back; every slot's bytes must equal pread() of the same range. Run
 * with O_DIRECT on a disk directory (the build tree), forced buffered reads, plain
 * (non-fixed) buffers, and on tmpfs (/dev/shm). Bad input must give clear errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lmm/error.h"
#include "lmm/shm_ring.h"
#include "lmm/uring_reader.h"

#ifndef LMM_LOADER_TEST_DIR
#define LMM_LOADER_TEST_DIR "."
#endif

#define N_SLOTS 48u
#define SLOT_SIZE (512u * 1024u)
#define QD 16u
#define CHUNK (64u * 1024u)

/* Test files: sizes chosen so that ends fall mid-block, on a block, and tiny. */
static const uint64_t file_sizes[] = {3u * 1024 * 1024 + 1234, 5000, 1024 * 1024 + 3 * 4096,
                                      4096 * 7 + 1};
#define N_FILES (sizeof file_sizes / sizeof file_sizes[0])

typedef struct {
    char dir[512];
    char paths[N_FILES][600];
    int fds[N_FILES];        /* plain descriptors for the pread reference */
    lmm_shm_ring ring;
} fixture;

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void write_file(const char *path, uint64_t size, uint64_t seed) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    uint8_t buf[65536];
    uint64_t x = seed | 1, done = 0;
    while (done < size) {
        size_t n = size - done < sizeof buf ? (size_t)(size - done) : sizeof buf;
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[i] = (uint8_t)(x >> 24);
        }
        assert_int_equal(write(fd, buf, n), (ssize_t)n);
        done += n;
    }
    assert_int_equal(fsync(fd), 0);
    close(fd);
}

static int setup_dir(fixture *fx, const char *base) {
    snprintf(fx->dir, sizeof fx->dir, "%s/lmm-uring-test.XXXXXX", base);
    if (!mkdtemp(fx->dir)) return -1;
    for (size_t i = 0; i < N_FILES; i++) {
        snprintf(fx->paths[i], sizeof fx->paths[i], "%s/f%zu.bin", fx->dir, i);
        write_file(fx->paths[i], file_sizes[i], 1000 + i);
        fx->fds[i] = open(fx->paths[i], O_RDONLY);
        if (fx->fds[i] < 0) return -1;
    }
    return lmm_shm_ring_create(&fx->ring, N_SLOTS, SLOT_SIZE);
}

static int setup_disk(void **state) {
    static fixture fx;
    *state = &fx;
    return setup_dir(&fx, LMM_LOADER_TEST_DIR);
}

static int setup_tmpfs(void **state) {
    static fixture fx;
    *state = &fx;
    return setup_dir(&fx, "/dev/shm");
}

static int teardown(void **state) {
    fixture *fx = *state;
    for (size_t i = 0; i < N_FILES; i++) {
        close(fx->fds[i]);
        unlink(fx->paths[i]);
    }
    /* what a failed test may have left */
    char path[700];
    snprintf(path, sizeof path, "%s/shrinks.bin", fx->dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/ramfs", fx->dir);
    rmdir(path);
    rmdir(fx->dir);
    lmm_shm_ring_destroy(&fx->ring);
    return 0;
}

/* The slot holds file bytes [c->offset, c->offset + c->length) at c->data_start. */
static void check_completion(fixture *fx, const lmm_uring_reader *r,
                             const lmm_uring_completion *c) {
    static uint8_t want[SLOT_SIZE];
    if (c->error) {
        char msg[1024];
        lmm_uring_completion_describe(r, c, msg, sizeof msg);
        fprintf(stderr, "unexpected error: %s\n", msg);
    }
    assert_int_equal(c->error, 0);
    assert_int_equal(c->bytes, c->length);
    assert_int_equal(c->data_start, c->slot_offset + c->offset % 4096);
    assert_true(c->data_start + c->length <= SLOT_SIZE);
    assert_int_equal(pread(fx->fds[c->file], want, c->length, (off_t)c->offset),
                     (ssize_t)c->length);
    assert_memory_equal(lmm_shm_ring_slot_data(&fx->ring, c->slot) + c->data_start, want,
                        c->length);
}

/* A random request for a slot: small and large, unaligned, some ending exactly at EOF. */
static void random_range(uint32_t *file, uint64_t *off, uint64_t *len) {
    *file = (uint32_t)(rnd() % N_FILES);
    uint64_t size = file_sizes[*file];
    uint64_t max = SLOT_SIZE - 8192; /* always fits once widened */
    switch (rnd() % 4) {
    case 0: *len = 1 + rnd() % 100; break;
    case 1: *len = 1 + rnd() % 20000; break;
    default: *len = 1 + rnd() % max; break;
    }
    if (*len > size) *len = size;
    if (rnd() % 4 == 0) *off = size - *len; /* ends at EOF */
    else *off = rnd() % (size - *len + 1);
}

/* Streams n_requests random reads through the reader, reusing slots as they complete,
 * checking each against pread. Keeps every slot busy: more requests than queue depth. */
static void stream(fixture *fx, lmm_uring_reader *r, unsigned n_requests) {
    uint32_t free_slots[N_SLOTS];
    unsigned n_free = N_SLOTS;
    for (unsigned i = 0; i < N_SLOTS; i++) free_slots[i] = i;
    uint64_t expect_tag[N_SLOTS];
    unsigned submitted = 0, completed = 0, max_pending = 0;
    lmm_uring_completion comps[N_SLOTS];
    while (completed < n_requests) {
        while (n_free > 0 && submitted < n_requests) {
            uint32_t slot = free_slots[--n_free], file;
            uint64_t off, len;
            random_range(&file, &off, &len);
            expect_tag[slot] = 0xABC00000u + submitted;
            if (lmm_uring_reader_submit(r, file, off, len, slot, expect_tag[slot]) != 0)
                fail_msg("submit: %s", lmm_error_get());
            submitted++;
        }
        if (lmm_uring_reader_pending(r) > max_pending) max_pending = lmm_uring_reader_pending(r);
        int n = lmm_uring_reader_wait(r, comps, N_SLOTS, 10000);
        if (n <= 0) fail_msg("wait returned %d: %s", n, lmm_error_get());
        for (int i = 0; i < n; i++) {
            assert_int_equal(comps[i].user_tag, expect_tag[comps[i].slot]);
            check_completion(fx, r, &comps[i]);
            free_slots[n_free++] = comps[i].slot;
            completed++;
        }
    }
    assert_int_equal(lmm_uring_reader_pending(r), 0);
    assert_true(max_pending > QD);
    assert_int_equal(lmm_uring_reader_wait(r, comps, N_SLOTS, 0), 0); /* nothing pending */
}

/* Whole files and the ranges at their ends, one at a time. */
static void edges(fixture *fx, lmm_uring_reader *r) {
    lmm_uring_completion c;
    for (uint32_t f = 0; f < N_FILES; f++) {
        uint64_t size = file_sizes[f];
        uint64_t cases[][2] = {{size - 1, 1}, {0, size < SLOT_SIZE - 8192 ? size : 4096},
                               {size % 4096 ? size - size % 4096 : size - 4096,
                                size % 4096 ? size % 4096 : 4096},
                               {size > 5000 ? size - 5000 : 0, size > 5000 ? 5000 : size},
                               {4095 % size, 2 < size - 4095 % size ? 2 : 1}};
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            if (lmm_uring_reader_submit(r, f, cases[k][0], cases[k][1], 3, k) != 0)
                fail_msg("submit: %s", lmm_error_get());
            assert_int_equal(lmm_uring_reader_wait(r, &c, 1, 10000), 1);
            assert_int_equal(c.user_tag, k);
            check_completion(fx, r, &c);
        }
    }
}

static void add_files(fixture *fx, lmm_uring_reader *r, const char *label) {
    for (uint32_t i = 0; i < N_FILES; i++) {
        uint32_t idx;
        if (lmm_uring_reader_add_file(r, fx->paths[i], &idx) != 0)
            fail_msg("add_file: %s", lmm_error_get());
        assert_int_equal(idx, i);
        assert_int_equal(lmm_uring_reader_file_size(r, i), file_sizes[i]);
    }
    int direct = lmm_uring_reader_file_direct(r, 0);
    fprintf(stderr, "[ %s ] %s: %s reads, %s buffers, queue depth %u, chunk %zu\n", label,
            fx->dir, direct ? "O_DIRECT" : "buffered", r->fixed_buffers ? "fixed" : "plain",
            r->opts.queue_depth, r->opts.chunk_bytes);
}

static void run_mode(void **state, unsigned flags, const char *label) {
    fixture *fx = *state;
    lmm_uring_reader r;
    lmm_uring_reader_opts o;
    lmm_uring_reader_opts_default(&o);
    o.queue_depth = QD;
    o.chunk_bytes = CHUNK;
    o.max_requests = N_SLOTS;
    o.flags = flags;
    if (lmm_uring_reader_init_opts(&r, &fx->ring, &o) != 0) fail_msg("init: %s", lmm_error_get());
    add_files(fx, &r, label);
    if (flags & LMM_URING_FORCE_BUFFERED) assert_int_equal(lmm_uring_reader_file_direct(&r, 0), 0);
    if (flags & LMM_URING_NO_FIXED_BUFFERS) assert_int_equal(r.fixed_buffers, 0);
    edges(fx, &r);
    stream(fx, &r, 400);
    lmm_uring_reader_free(&r);
}

static void test_disk_default(void **state) { run_mode(state, 0, "disk"); }
static void test_disk_buffered(void **state) {
    run_mode(state, LMM_URING_FORCE_BUFFERED, "disk, forced buffered");
}
static void test_disk_plain_buffers(void **state) {
    run_mode(state, LMM_URING_NO_FIXED_BUFFERS, "disk, no fixed buffers");
}
static void test_tmpfs(void **state) { run_mode(state, 0, "tmpfs"); }

static void test_bad_input(void **state) {
    fixture *fx = *state;
    lmm_uring_reader r;
    assert_int_equal(lmm_uring_reader_init(&r, 0, &fx->ring), 0);
    assert_int_equal(r.opts.queue_depth, LMM_URING_DEFAULT_QUEUE_DEPTH);
    add_files(fx, &r, "bad input");

    char missing[700];
    snprintf(missing, sizeof missing, "%s/no-such-file.gguf", fx->dir);
    assert_int_equal(lmm_uring_reader_add_file(&r, missing, NULL), -1);
    assert_non_null(strstr(lmm_error_get(), missing));
    assert_non_null(strstr(lmm_error_get(), "No such file"));
    assert_int_equal(lmm_uring_reader_add_file(&r, fx->dir, NULL), -1); /* a directory */

    uint64_t size = file_sizes[1];
    assert_int_equal(lmm_uring_reader_submit(&r, 1, size, 1, 0, 0), -1);
    assert_non_null(strstr(lmm_error_get(), fx->paths[1]));
    assert_non_null(strstr(lmm_error_get(), "beyond the end of the file (5000 bytes)"));
    assert_int_equal(lmm_uring_reader_submit(&r, 1, 4000, 1001, 0, 0), -1);
    assert_non_null(strstr(lmm_error_get(), "[4000, 5001)"));
    assert_int_equal(lmm_uring_reader_submit(&r, 1, UINT64_MAX - 10, 100, 0, 0), -1);
    assert_int_equal(lmm_uring_reader_submit(&r, 1, 10, 0, 0, 0), -1);
    assert_non_null(strstr(lmm_error_get(), "empty range"));
    assert_int_equal(lmm_uring_reader_submit(&r, 9, 0, 1, 0, 0), -1);
    assert_non_null(strstr(lmm_error_get(), "not added"));
    assert_int_equal(lmm_uring_reader_submit(&r, 1, 0, 1, N_SLOTS, 0), -1);
    assert_non_null(strstr(lmm_error_get(), "slot 48 out of range"));
    /* fits the slot only before widening: [4095, SLOT_SIZE + 95) becomes [0, SLOT + 4096) */
    assert_int_equal(lmm_uring_reader_submit(&r, 0, 4095, SLOT_SIZE - 4000, 0, 0), -1);
    assert_non_null(strstr(lmm_error_get(), "a slot holds"));
    if (lmm_uring_reader_submit(&r, 0, 4096, SLOT_SIZE, 0, 0) != 0)
        fail_msg("submit: %s", lmm_error_get());
    lmm_uring_completion c;
    assert_int_equal(lmm_uring_reader_wait(&r, &c, 1, 10000), 1);
    check_completion(fx, &r, &c);
    assert_int_equal(lmm_uring_reader_pending(&r), 0);
    lmm_uring_reader_free(&r);

    /* a full request table */
    lmm_uring_reader_opts o;
    lmm_uring_reader_opts_default(&o);
    o.queue_depth = 2;
    o.max_requests = 3;
    assert_int_equal(lmm_uring_reader_init_opts(&r, &fx->ring, &o), 0);
    add_files(fx, &r, "table full");
    for (uint32_t i = 0; i < 3; i++)
        assert_int_equal(lmm_uring_reader_submit(&r, 0, 0, 100000, i, i), 0);
    assert_int_equal(lmm_uring_reader_submit(&r, 0, 0, 10, 3, 3), -1);
    assert_int_equal(errno, EAGAIN);
    assert_non_null(strstr(lmm_error_get(), "request table full"));
    /* the eventfd signals completions */
    struct pollfd pfd = {lmm_uring_reader_event_fd(&r), POLLIN, 0};
    assert_int_equal(poll(&pfd, 1, 10000), 1);
    unsigned got = 0;
    lmm_uring_completion cs[4];
    while (got < 3) {
        int n = lmm_uring_reader_wait(&r, cs, 4, 10000);
        assert_true(n > 0);
        for (int i = 0; i < n; i++) check_completion(fx, &r, &cs[i]);
        got += (unsigned)n;
    }
    lmm_uring_reader_free(&r);

    /* bad options */
    o.chunk_bytes = 1000;
    assert_int_equal(lmm_uring_reader_init_opts(&r, &fx->ring, &o), -1);
    assert_non_null(strstr(lmm_error_get(), "multiple of 4096"));
    lmm_uring_reader_opts_default(&o);
    o.queue_depth = 0;
    assert_int_equal(lmm_uring_reader_init_opts(&r, &fx->ring, &o), -1);
}

/* Several ranges into one slot at 4 KiB aligned slot offsets (a piece of several segments):
 * each lands at slot_offset + offset % 4096, neighbours untouched; bad offsets refused. */
static void test_submit_at(void **state) {
    fixture *fx = *state;
    lmm_uring_reader r;
    assert_int_equal(lmm_uring_reader_init(&r, 16, &fx->ring), 0);
    add_files(fx, &r, "submit_at");
    const uint32_t slot = 7;
    memset(lmm_shm_ring_slot_data(&fx->ring, slot), 0xAB, SLOT_SIZE);
    /* (file, offset, length, slot_offset) */
    const uint64_t seg[3][4] = {{0, 12345, 70000, 0}, {2, 4096, 8192, 81920}, {1, 4000, 1000, 98304}};
    for (int k = 0; k < 3; k++)
        if (lmm_uring_reader_submit_at(&r, (uint32_t)seg[k][0], seg[k][1], seg[k][2], slot, seg[k][3], (uint64_t)k))
            fail_msg("submit_at: %s", lmm_error_get());
    lmm_uring_completion cs[3];
    unsigned got = 0;
    while (got < 3) {
        int n = lmm_uring_reader_wait(&r, cs + got, 3 - got, 10000);
        assert_true(n > 0);
        got += (unsigned)n;
    }
    for (unsigned i = 0; i < 3; i++) {
        const uint64_t *s = seg[cs[i].user_tag];
        assert_int_equal(cs[i].slot_offset, s[3]);
        assert_int_equal(cs[i].data_start, s[3] + s[1] % 4096);
        check_completion(fx, &r, &cs[i]);
    }
    /* bytes between the widened ranges are untouched: [86016 = 81920 + 4096, 98304) */
    const uint8_t *d = lmm_shm_ring_slot_data(&fx->ring, slot);
    for (size_t b = 81920 + 8192; b < 98304; b++) assert_int_equal(d[b], 0xAB);
    assert_int_equal(lmm_uring_reader_submit_at(&r, 0, 0, 10, slot, 100, 0), -1);
    assert_non_null(strstr(lmm_error_get(), "not a multiple of 4096"));
    assert_int_equal(lmm_uring_reader_submit_at(&r, 0, 0, 8192, slot, SLOT_SIZE - 4096, 0), -1);
    assert_non_null(strstr(lmm_error_get(), "a slot holds"));
    assert_int_equal(lmm_uring_reader_submit_at(&r, 0, 0, 10, slot, (uint64_t)SLOT_SIZE + 4096, 0), -1);
    assert_int_equal(lmm_uring_reader_submit_at(&r, 0, 0, 4096, slot, SLOT_SIZE - 4096, 9), 0);
    assert_int_equal(lmm_uring_reader_wait(&r, cs, 1, 10000), 1);
    check_completion(fx, &r, &cs[0]);
    lmm_uring_reader_free(&r);
}

/* A file that shrinks after it was opened: the read of a range that was valid hits the end
 * of file; the completion names the file and the offset. */
static void test_file_shrinks(void **state) {
    fixture *fx = *state;
    char path[700];
    snprintf(path, sizeof path, "%s/shrinks.bin", fx->dir);
    write_file(path, 300000, 77);
    lmm_uring_reader r;
    assert_int_equal(lmm_uring_reader_init(&r, 4, &fx->ring), 0);
    uint32_t f;
    assert_int_equal(lmm_uring_reader_add_file(&r, path, &f), 0);
    assert_int_equal(truncate(path, 100000), 0);
    assert_int_equal(lmm_uring_reader_submit(&r, f, 50000, 200000, 0, 1), 0);
    lmm_uring_completion c;
    assert_int_equal(lmm_uring_reader_wait(&r, &c, 1, 10000), 1);
    assert_int_equal(c.error, ENODATA);
    assert_true(c.error_offset >= 100000 && c.error_offset <= 106496);
    assert_true(c.bytes < 200000);
    char msg[1024];
    lmm_uring_completion_describe(&r, &c, msg, sizeof msg);
    fprintf(stderr, "expected error: %s\n", msg);
    assert_non_null(strstr(msg, path));
    assert_non_null(strstr(msg, "end of file at offset"));
    /* bytes before the failure are there */
    uint8_t *want = malloc(c.bytes + 1);
    assert_non_null(want);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, want, c.bytes, 50000), (ssize_t)c.bytes);
    close(fd);
    assert_memory_equal(lmm_shm_ring_slot_data(&fx->ring, 0) + c.data_start, want, c.bytes);
    free(want);
    lmm_uring_reader_free(&r);
    unlink(path);
}

/* A file system that really refuses O_DIRECT (ramfs), mounted in a private mount
 * namespace of a child process, so nothing is left mounted whatever happens. Needs
 * CAP_SYS_ADMIN; skipped otherwise. The child reports by exit status (77: skip). */
static int refusing_fs_child(fixture *fx, const char *mnt) {
    if (unshare(CLONE_NEWNS) != 0) return 77;
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) return 77;
    if (mount("ramfs", mnt, "ramfs", 0, NULL) != 0) return 77;
    char path[800];
    snprintf(path, sizeof path, "%s/model.bin", mnt);
    int out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (out < 0) return 1;
    static uint8_t buf[65536];
    ssize_t n;
    while ((n = read(fx->fds[0], buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t)n) != n) return 1;
    close(out);
    lmm_uring_reader r;
    if (lmm_uring_reader_init(&r, QD, &fx->ring) != 0) return 2;
    uint32_t f;
    if (lmm_uring_reader_add_file(&r, path, &f) != 0) return 3;
    fprintf(stderr, "[ ramfs ] %s: %s reads\n", path,
            lmm_uring_reader_file_direct(&r, f) ? "O_DIRECT" : "buffered");
    if (lmm_uring_reader_file_direct(&r, f) != 0) return 4;
    int in = open(path, O_RDONLY);
    for (uint32_t k = 0; k < 40; k++) {
        uint32_t file;
        uint64_t off, len;
        do random_range(&file, &off, &len);
        while (file != 0);
        if (lmm_uring_reader_submit(&r, f, off, len, k, k) != 0) return 5;
    }
    lmm_uring_completion cs[40];
    for (unsigned got = 0; got < 40;) {
        int m = lmm_uring_reader_wait(&r, cs, 40, 10000);
        if (m <= 0) return 6;
        for (int i = 0; i < m; i++, got++) {
            const lmm_uring_completion *c = &cs[i];
            if (c->error || c->bytes != c->length || c->data_start != c->offset % 4096) return 7;
            if (pread(in, buf, c->length < sizeof buf ? c->length : sizeof buf,
                      (off_t)c->offset) < 0)
                return 8;
            size_t cmp = c->length < sizeof buf ? (size_t)c->length : sizeof buf;
            if (memcmp(lmm_shm_ring_slot_data(&fx->ring, c->slot) + c->data_start, buf, cmp))
                return 9;
        }
    }
    lmm_uring_reader_free(&r);
    close(in);
    umount(mnt);
    return 0;
}

static void test_refusing_fs(void **state) {
    fixture *fx = *state;
    char mnt[700];
    snprintf(mnt, sizeof mnt, "%s/ramfs", fx->dir);
    assert_int_equal(mkdir(mnt, 0700), 0);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(refusing_fs_child(fx, mnt));
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    rmdir(mnt);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77) {
        fprintf(stderr, "SKIP: cannot mount ramfs in a private namespace (needs root)\n");
        skip();
    }
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* The probe reads the test file and gives a positive bandwidth; refuses absurd input. */
static void test_probe(void **state) {
    fixture *fx = *state;
    double d = lmm_uring_probe_seq_read(fx->paths[0], 0, 8, 256 * 1024);
    if (d < 0) fail_msg("probe: %s", lmm_error_get());
    double b = lmm_uring_probe_seq_read_buffered(fx->paths[0], 0, 8, 256 * 1024);
    if (b < 0) fail_msg("probe: %s", lmm_error_get());
    fprintf(stderr, "probe on a %llu-byte file (cache state unknown): direct %.2f GB/s, "
            "buffered %.2f GB/s\n", (unsigned long long)file_sizes[0], d, b);
    assert_true(lmm_uring_probe_seq_read(fx->paths[0], 0, 8, 1000) < 0);
    assert_true(lmm_uring_probe_seq_read("/nonexistent/x", 0, 8, 4096) < 0);
    assert_non_null(strstr(lmm_error_get(), "/nonexistent/x"));
}

int main(void) {
    const struct CMUnitTest disk[] = {
        cmocka_unit_test(test_disk_default),
        cmocka_unit_test(test_disk_buffered),
        cmocka_unit_test(test_disk_plain_buffers),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_submit_at),
        cmocka_unit_test(test_file_shrinks),
        cmocka_unit_test(test_refusing_fs),
        cmocka_unit_test(test_probe),
    };
    const struct CMUnitTest tmpfs[] = {
        cmocka_unit_test(test_tmpfs),
    };
    int fails = cmocka_run_group_tests_name("disk", disk, setup_disk, teardown);
    fails += cmocka_run_group_tests_name("tmpfs", tmpfs, setup_tmpfs, teardown);
    return fails;
}
