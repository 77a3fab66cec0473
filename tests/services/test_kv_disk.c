/* tests/services/test_kv_disk.c — the disk tier's size bound as units (services/cache/
 * kv_disk.c, docs/kv-cache.md "Disk tier"): the shared reservation never lets the bytes
 * pass the bound, also with two threads racing; eviction removes the least recently used
 * files (oldest mtime) until the directory is under its target, reports each, and leaves
 * other files alone; touching a file moves it last; dead temporary files are removed;
 * a written block reads back and its file has the size kv_disk_file_bytes says. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../services/cache/kv_disk.h"
#include "test_util.h"

static char g_dir[512];

static void rm_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
    rmdir(dir);
}

static void make_file(const char *name, size_t bytes, time_t mtime) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (size_t i = 0; i < bytes; i++) fputc((int)(i & 0xff), f);
    fclose(f);
    struct timespec ts[2] = {{mtime, 0}, {mtime, 0}};
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static bool exists(const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    return access(path, F_OK) == 0;
}

static void block_name(char *buf, size_t cap, uint64_t model, uint64_t key) {
    snprintf(buf, cap, "%016" PRIx64 "-%016" PRIx64 ".kvb", model, key);
}

static int setup(void **state) {
    (void)state;
    return test_tmpdir(g_dir, sizeof g_dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    rm_dir(g_dir);
    return 0;
}

/* ---- reservations ----------------------------------------------------------------- */

static void test_reserve_bound(void **state) {
    (void)state;
    uint64_t acct[2] = {0, 100};
    assert_true(kv_disk_reserve(acct, 40));
    assert_true(kv_disk_reserve(acct, 60));
    assert_int_equal(acct[0], 100);
    assert_false(kv_disk_reserve(acct, 1)); /* exactly at the bound: nothing more */
    assert_int_equal(acct[0], 100);
    kv_disk_unreserve(acct, 60);
    assert_int_equal(acct[0], 40);
    assert_false(kv_disk_reserve(acct, 61));
    assert_true(kv_disk_reserve(acct, 60));
    kv_disk_unreserve(acct, 1000); /* never below 0 */
    assert_int_equal(acct[0], 0);
    acct[0] = 150; /* a bound lowered under what is there: nothing fits */
    assert_false(kv_disk_reserve(acct, 0));
    assert_false(kv_disk_reserve(acct, UINT64_MAX));
    acct[0] = 0;
    acct[1] = UINT64_MAX;
    assert_true(kv_disk_reserve(acct, UINT64_MAX));
    assert_false(kv_disk_reserve(acct, 1)); /* no wrap-around */
}

typedef struct {
    uint64_t *acct;
    uint64_t step, max_seen;
    int ok;
} racer;

static void *race(void *p) {
    racer *r = p;
    for (int i = 0; i < 200000; i++) {
        if (kv_disk_reserve(r->acct, r->step)) {
            uint64_t now = __atomic_load_n(&r->acct[0], __ATOMIC_RELAXED);
            if (now > r->max_seen) r->max_seen = now;
            r->ok++;
            kv_disk_unreserve(r->acct, r->step);
        }
    }
    return NULL;
}

/* Two writers (the cache and the scheduler) racing never pass the bound together. */
static void test_reserve_race(void **state) {
    (void)state;
    uint64_t acct[2] = {0, 7 * 12288};
    racer a = {acct, 12288, 0, 0}, b = {acct, 3 * 12288, 0, 0};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, race, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, race, &b), 0);
    for (int i = 0; i < 100000; i++) assert_true(__atomic_load_n(&acct[0], __ATOMIC_RELAXED) <= acct[1]);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_true(a.max_seen <= acct[1] && b.max_seen <= acct[1]);
    assert_true(a.ok > 0 && b.ok > 0);
    assert_int_equal(acct[0], 0);
}

/* ---- eviction ------------------------------------------------------------------------ */

typedef struct {
    uint64_t keys[64], bytes;
    int n;
} evicted;

static void on_evict(void *user, uint64_t model, uint64_t key, uint64_t bytes) {
    evicted *e = user;
    assert_int_equal(model, 0xabcull);
    e->keys[e->n++] = key;
    e->bytes += bytes;
}

static void test_evict_lru(void **state) {
    (void)state;
    const size_t fb = (size_t)kv_disk_file_bytes(5000); /* 4096 + 8192 */
    assert_int_equal(fb, 12288);
    time_t t0 = time(NULL) - 1000;
    char name[64];
    for (uint64_t k = 1; k <= 10; k++) { /* key k last used at t0 + k */
        block_name(name, sizeof name, 0xabc, k);
        make_file(name, fb, t0 + (time_t)k);
    }
    /* not block files: neither counted nor removed */
    make_file("notes.txt", 50000, t0);
    make_file("0000000000000abc-zzzzzzzzzzzzzzzz.kvb", 4096, t0);
    /* temporary files: a dead writer's (old) is removed, a live one's (new) kept, neither counted */
    block_name(name, sizeof name, 0xabc, 99);
    char tmp[80];
    snprintf(tmp, sizeof tmp, "%s.tmp", name);
    make_file(tmp, fb, t0);
    block_name(name, sizeof name, 0xabc, 98);
    char live[80];
    snprintf(live, sizeof live, "%s.tmp", name);
    make_file(live, fb, time(NULL));

    /* keys 2 and 3 used again (served from RAM or read back): last in the order */
    kv_disk_touch(g_dir, 0xabc, 2);
    kv_disk_touch(g_dir, 0xabc, 3);
    kv_disk_touch(g_dir, 0xabc, 77); /* not there: no error, nothing created */
    block_name(name, sizeof name, 0xabc, 77);
    assert_false(exists(name));

    uint64_t total = 0;
    evicted ev = {{0}, 0, 0};
    /* nothing to do when under the target */
    assert_int_equal(kv_disk_evict(g_dir, UINT64_MAX, &total, on_evict, &ev), 0);
    assert_int_equal(total, 10 * fb);
    assert_int_equal(ev.n, 0);
    assert_false(exists(tmp));
    assert_true(exists(live));
    assert_true(exists("notes.txt"));

    /* down to 4 files: the 6 least recently used go, oldest first */
    assert_int_equal(kv_disk_evict(g_dir, 4 * fb + fb / 2, &total, on_evict, &ev), 6);
    assert_int_equal(total, 4 * fb);
    assert_int_equal(ev.n, 6);
    assert_int_equal(ev.bytes, 6 * fb);
    const uint64_t want_gone[] = {1, 4, 5, 6, 7, 8};
    for (int i = 0; i < 6; i++) assert_int_equal(ev.keys[i], want_gone[i]);
    const uint64_t want_kept[] = {9, 10, 2, 3};
    for (int i = 0; i < 4; i++) {
        block_name(name, sizeof name, 0xabc, want_kept[i]);
        assert_true(exists(name));
    }
    for (int i = 0; i < 6; i++) {
        block_name(name, sizeof name, 0xabc, want_gone[i]);
        assert_false(exists(name));
    }
    assert_true(exists("notes.txt"));
    assert_true(exists("0000000000000abc-zzzzzzzzzzzzzzzz.kvb"));

    /* a target of 0 empties the tier */
    ev.n = 0;
    assert_int_equal(kv_disk_evict(g_dir, 0, &total, on_evict, &ev), 4);
    assert_int_equal(total, 0);
    assert_int_equal(ev.keys[3], 3); /* touched last, evicted last */

    /* an unreadable directory is an error, not a crash */
    assert_true(kv_disk_evict("/nonexistent/kvdisk", 0, &total, NULL, NULL) < 0);
}

/* A block written through kv_disk_write takes kv_disk_file_bytes on disk and reads back
 * verified; the default bound is at least what is there. */
static void test_write_size_and_default(void **state) {
    (void)state;
    kv_region_info info;
    memset(&info, 0, sizeof info);
    info.block_tokens = 4;
    info.block_bytes = 2048 * 3;
    info.model_id = 0x1234;
    kv_disk_io io;
    assert_int_equal(kv_disk_io_init(&io, info.block_bytes), 0);
    if (kv_disk_probe(&io, g_dir) != 0) {
        kv_disk_io_free(&io);
        skip(); /* a file system without O_DIRECT (tmpfs): the services degrade to RAM only */
    }
    uint8_t *data = malloc(info.block_bytes);
    assert_non_null(data);
    for (size_t i = 0; i < info.block_bytes; i++) data[i] = (uint8_t)(i * 13);
    uint64_t sum = kv_checksum(data, info.block_bytes);
    assert_int_equal(kv_disk_write(&io, g_dir, &info, 42, sum, data), 0);
    char name[64], path[1024];
    block_name(name, sizeof name, 0x1234, 42);
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal((uint64_t)st.st_size, kv_disk_file_bytes(info.block_bytes));
    uint64_t key = 0, got = 0;
    assert_int_equal(kv_disk_read(&io, g_dir, name, &info, &key, &got), 0);
    assert_int_equal(key, 42);
    assert_int_equal(got, sum);
    assert_memory_equal(io.buf + KV_DISK_HEADER, data, info.block_bytes);
    uint64_t total = 0;
    assert_int_equal(kv_disk_evict(g_dir, UINT64_MAX, &total, NULL, NULL), 0);
    assert_int_equal(total, (uint64_t)st.st_size);
    assert_true(kv_disk_default_budget(g_dir, total) >= total);
    unlink(path);
    free(data);
    kv_disk_io_free(&io);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reserve_bound),
        cmocka_unit_test(test_reserve_race),
        cmocka_unit_test_setup_teardown(test_evict_lru, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_size_and_default, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
