/* tests/launch/test_launch_kv.c — the cache's settings and the context limit from the
 * command line (lmlaunch run/up/check, lmclient; docs/kv-cache.md, docs/protocol.md).
 * argv[1] picks a group (ctest runs each as its own test):
 *   limits : an explicit --max-tokens beyond the context is refused up front with one
 *            line (the group and --in-process alike, lmclient too); the default ends at
 *            the end of the context (stop ctx, the same logits in and out of process);
 *            --context-shift slides past it, byte-identical to --in-process;
 *   config : [budget] kv_cache and [cache] disk / disk_budget / prefix_cache are checked
 *            by `lmlaunch check` (FILE:LINE lines) and applied by run --config; flags
 *            override the file;
 *   disk   : --kv-disk-budget bounds the disk tier's directory (polled while requests
 *            run, and in STATUS), least recently used files go first: after a restart
 *            the prompt used again and again is still served from disk, the oldest
 *            other one is not;
 *   transport: --kv-transport zmq (blocks as ZeroMQ messages) gives --dump-logits
 *            byte-identical to the shared-memory transport and to no reuse, with 2
 *            workers; with chunks corrupted on the way (LMM_KV_FAULT=2) a corrupt load
 *            is asked again and a corrupt store is refused, never served: still exact. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "proc_util.h"
#include "test_util.h"

static char g_tmp[512];
static char g_tiny[1024];

/* ---- processes ----------------------------------------------------------------------- */

/* Runs a tool to the end: its exit code; stdout and stderr in *out / *err (free them). */
static int run_tool(const char *tool, const char *tag, const char *const *args, char **out, char **err) {
    proc p = start(tool, tag, args);
    int rc = finish(&p, 60);
    *out = slurp(p.out, NULL);
    *err = slurp(p.err, NULL);
    return rc;
}

/* The last line of s parsed as JSON (the --json line). */
static json_object *last_json(const char *s) {
    const char *line = s, *nl;
    while ((nl = strchr(line, '\n')) && nl[1]) line = nl + 1;
    json_object *j = json_tokener_parse(line);
    if (!j) fail_msg("no JSON line in: %s", s);
    return j;
}

static int64_t jint(json_object *j, const char *key) {
    json_object *v;
    if (!json_object_object_get_ex(j, key, &v)) fail_msg("no '%s' in %s", key, json_object_to_json_string(j));
    return json_object_get_int64(v);
}

static const char *jstr(json_object *j, const char *key) {
    json_object *v;
    if (!json_object_object_get_ex(j, key, &v)) fail_msg("no '%s' in %s", key, json_object_to_json_string(j));
    return json_object_get_string(v);
}

static int free_port(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    close(s);
    return ntohs(a.sin_port);
}

static void write_text(const char *path, const char *fmt, ...) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
}

/* Block files in dir: their count and total bytes (names into names[] when given). */
static int kvb_files(const char *dir, uint64_t *bytes, char (*names)[64], int cap) {
    DIR *d = opendir(dir);
    if (bytes) *bytes = 0;
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 4, ".kvb") != 0) continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, 0) != 0) continue;
        if (names && n < cap) snprintf(names[n], 64, "%.63s", e->d_name);
        n++;
        if (bytes) *bytes += (uint64_t)st.st_size;
    }
    closedir(d);
    return n;
}

static int setup(void **state) {
    (void)state;
    if (!test_tmpdir(g_tmp, sizeof g_tmp)) return -1;
    proc_dir_set(g_tmp);
    char cur[700];
    snprintf(cur, sizeof cur, "%s/current", g_tmp);
    setenv("LMM_CURRENT_FILE", cur, 1); /* `up` remembers its group here, not in the user's */
    unsetenv("LMM_SERVICE_BIN_DIR");
    snprintf(g_tiny, sizeof g_tiny, "%s/tiny.gguf", g_tmp);
    const char *a[] = {"--shape", "tiny", "--seed", "7", "--out", g_tiny, NULL};
    proc p = start("lmsynth", "lmsynth", a);
    return finish(&p, 60) == 0 ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    return system(cmd) == 0 ? 0 : -1;
}

static void group_down(void) {
    const char *dn[] = {"down", NULL};
    char *o, *e;
    int rc = run_tool("lmlaunch", "down", dn, &o, &e);
    if (rc != 0) fail_msg("down: exit %d: %s", rc, e);
    free(o);
    free(e);
}

static void group_up(const char *const *extra, const char *ep) {
    const char *a[32] = {"up", "--model", g_tiny, "--endpoint", ep};
    int n = 5;
    for (; *extra && n < 31; extra++) a[n++] = *extra;
    a[n] = NULL;
    char *o, *e;
    int rc = run_tool("lmlaunch", "up", a, &o, &e);
    if (rc != 0) fail_msg("up: exit %d: %s", rc, e);
    free(o);
    free(e);
}

/* ---- limits ---------------------------------------------------------------------------- */

#define LIMIT_MSG "the prompt (5 tokens) plus max_tokens (90) exceeds the context of 32 tokens; use --context-shift " \
                  "to slide past it"

static void test_limits(void **state) {
    (void)state;
    char *o, *e;
    /* an explicit --max-tokens that does not fit: refused before anything is generated */
    for (int inproc = 0; inproc < 2; inproc++) {
        const char *a[] = {"run", "--model", g_tiny, "--ctx", "32", "--prompt", "Once upon a time", "--max-tokens",
                           "90", inproc ? "--in-process" : NULL, NULL};
        int rc = run_tool("lmlaunch", "limit", a, &o, &e);
        if (rc != 1 || !strstr(e, LIMIT_MSG)) fail_msg("run%s: exit %d: %s", inproc ? " --in-process" : "", rc, e);
        assert_string_equal(o, "");
        free(o);
        free(e);
    }
    /* the default (256) ends at the end of the context; exactly fitting is fine */
    char d[2][700];
    for (int inproc = 0; inproc < 2; inproc++) {
        snprintf(d[inproc], sizeof d[inproc], "%s/default%d.logits", g_tmp, inproc);
        const char *a[] = {"run", "--model", g_tiny, "--ctx", "32", "--prompt", "Once upon a time", "--seed", "3",
                           "--json", "--dump-logits", d[inproc], inproc ? "--in-process" : NULL, NULL};
        int rc = run_tool("lmlaunch", "default", a, &o, &e);
        if (rc != 0) fail_msg("run (default max tokens): exit %d: %s", rc, e);
        json_object *j = last_json(o);
        assert_string_equal(jstr(j, "stop"), "ctx");
        assert_int_equal(jint(j, "n_prompt"), 5);
        assert_int_equal(jint(j, "n_generated"), 32 - 5);
        json_object_put(j);
        free(o);
        free(e);
        const char *b[] = {"run", "--model", g_tiny, "--ctx", "32", "--prompt", "Once upon a time", "--max-tokens",
                           "27", "--json", inproc ? "--in-process" : NULL, NULL};
        rc = run_tool("lmlaunch", "fits", b, &o, &e);
        if (rc != 0) fail_msg("run --max-tokens 27 (fits): exit %d: %s", rc, e);
        j = last_json(o);
        assert_string_equal(jstr(j, "stop"), "max_tokens");
        assert_int_equal(jint(j, "n_generated"), 27);
        json_object_put(j);
        free(o);
        free(e);
    }
    assert_files_equal(d[0], d[1]);
    /* a prompt that fills the context: the default generates nothing (stop ctx), a context
     * shift is refused (it needs a free position) */
    for (int inproc = 0; inproc < 2; inproc++) {
        const char *a[] = {"run", "--model", g_tiny, "--ctx", "5", "--prompt", "Once upon a time", "--json",
                           inproc ? "--in-process" : NULL, NULL};
        int rc = run_tool("lmlaunch", "full", a, &o, &e);
        if (rc != 0) fail_msg("run (prompt = context): exit %d: %s", rc, e);
        json_object *j = last_json(o);
        assert_string_equal(jstr(j, "stop"), "ctx");
        assert_int_equal(jint(j, "n_generated"), 0);
        json_object_put(j);
        free(o);
        free(e);
        const char *b[] = {"run", "--model", g_tiny, "--ctx", "5", "--prompt", "Once upon a time", "--context-shift",
                           inproc ? "--in-process" : NULL, NULL};
        rc = run_tool("lmlaunch", "fullshift", b, &o, &e);
        if (rc != 1 || !strstr(e, "the prompt (5 tokens) fills the context of 5 tokens"))
            fail_msg("run --context-shift (prompt = context): exit %d: %s", rc, e);
        free(o);
        free(e);
    }
    /* --context-shift slides past the context; in process the same logits, byte for byte */
    for (int inproc = 0; inproc < 2; inproc++) {
        snprintf(d[inproc], sizeof d[inproc], "%s/shift%d.logits", g_tmp, inproc);
        const char *a[] = {"run",         "--model",  g_tiny,         "--ctx",   "32", "--prompt", "Once upon a time",
                           "--max-tokens", "90",      "--temperature", "1.5",    "--top-k", "0",  "--seed",   "5",
                           "--context-shift", "--json", "--dump-logits", d[inproc], inproc ? "--in-process" : NULL,
                           NULL};
        int rc = run_tool("lmlaunch", "shift", a, &o, &e);
        if (rc != 0) fail_msg("run --context-shift: exit %d: %s", rc, e);
        json_object *j = last_json(o);
        assert_string_equal(jstr(j, "stop"), "max_tokens");
        assert_int_equal(jint(j, "n_generated"), 90);
        json_object_put(j);
        free(o);
        free(e);
    }
    assert_files_equal(d[0], d[1]);
    /* --context-shift is per request: not for up */
    const char *u[] = {"up", "--model", g_tiny, "--endpoint", "tcp://127.0.0.1:1", "--context-shift", NULL};
    assert_int_equal(run_tool("lmlaunch", "upshift", u, &o, &e), 2);
    assert_non_null(strstr(e, "--context-shift is for run"));
    free(o);
    free(e);

    /* lmclient: the same rules against a group that is up */
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", free_port());
    const char *extra[] = {"--ctx", "32", NULL};
    group_up(extra, ep);
    const char *c1[] = {"--endpoint", ep, "--prompt", "Once upon a time", "--max-tokens", "90", NULL};
    int rc = run_tool("lmclient", "c1", c1, &o, &e);
    if (rc != 1 || !strstr(e, LIMIT_MSG)) fail_msg("lmclient --max-tokens 90: exit %d: %s", rc, e);
    free(o);
    free(e);
    const char *c2[] = {"--endpoint", ep, "--prompt", "Once upon a time", "--json", NULL};
    rc = run_tool("lmclient", "c2", c2, &o, &e);
    if (rc != 0) fail_msg("lmclient (default max tokens): exit %d: %s", rc, e);
    json_object *j = last_json(o);
    assert_string_equal(jstr(j, "stop"), "ctx");
    assert_int_equal(jint(j, "n_generated"), 27);
    json_object_put(j);
    free(o);
    free(e);
    const char *c3[] = {"--endpoint", ep, "--prompt", "Once upon a time", "--max-tokens", "90", "--context-shift",
                        "--json", NULL};
    rc = run_tool("lmclient", "c3", c3, &o, &e);
    if (rc != 0) fail_msg("lmclient --context-shift: exit %d: %s", rc, e);
    j = last_json(o);
    assert_int_equal(jint(j, "n_generated"), 90);
    json_object_put(j);
    free(o);
    free(e);
    group_down();
    fprintf(stderr, "  ok  context limit: refused up front, default clamped, shift allowed (run, in-process, lmclient)\n");
}

/* ---- config ---------------------------------------------------------------------------- */

static void test_config(void **state) {
    (void)state;
    char cfg[700], bad[700], d1[700], d2[700];
    snprintf(cfg, sizeof cfg, "%s/cache.ini", g_tmp);
    snprintf(bad, sizeof bad, "%s/bad.ini", g_tmp);
    snprintf(d1, sizeof d1, "%s/kv1", g_tmp);
    snprintf(d2, sizeof d2, "%s/kv2", g_tmp);
    assert_int_equal(mkdir(d1, 0700), 0);
    assert_int_equal(mkdir(d2, 0700), 0);
    char *o, *e;
    /* relative paths are taken from the file's folder */
    write_text(cfg, "[model]\npath = tiny.gguf\n[budget]\nkv_cache = 16K\n[cache]\ndisk = kv1\ndisk_budget = 1M\n"
                    "prefix_cache = on\n");
    const char *ck[] = {"check", cfg, NULL};
    int rc = run_tool("lmlaunch", "check", ck, &o, &e);
    if (rc != 0) fail_msg("check: exit %d: %s", rc, e);
    assert_string_equal(o, "OK\n");
    free(o);
    free(e);
    write_text(bad, "[model]\npath = tiny.gguf\n[budget]\nkv_cache = lots\n[cache]\ndisk = nowhere\n"
                    "disk_budget = -1\nprefix_cache = maybe\nblocks = 4\n");
    const char *cb[] = {"check", bad, NULL};
    rc = run_tool("lmlaunch", "checkbad", cb, &o, &e);
    assert_int_equal(rc, 1);
    const char *want[] = {":4: [budget] kv_cache: 'lots' is not a size", ":6: [cache] disk: ",
                          ":7: [cache] disk_budget: '-1' is not a size", ":8: [cache] prefix_cache: 'maybe' is not on or off",
                          ":9: [cache] blocks: unknown key (expected disk, disk_budget or prefix_cache)"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        if (!strstr(e, want[i])) fail_msg("check: '%s' not in: %s", want[i], e);
    assert_non_null(strstr(e, "nowhere: No such file or directory"));
    free(o);
    free(e);

    /* applied: the cache's RAM (16K = 2 blocks of 8 KiB), the disk tier and its bound */
    const char *r1[] = {"run", "--config", cfg, "--prompt", "Once upon a time there was a cat and a dog and a bird",
                        "--max-tokens", "2", NULL};
    rc = run_tool("lmlaunch", "cfgrun", r1, &o, &e);
    if (rc != 0) fail_msg("run --config: exit %d: %s", rc, e);
    assert_non_null(strstr(e, "lmm-cache: 2 blocks of 16 tokens"));
    assert_non_null(strstr(e, "bytes of at most 1048576"));
    free(o);
    free(e);
    int n1 = kvb_files(d1, NULL, NULL, 0);
    assert_true(n1 > 0);
    /* flags win: --kv-disk, --kv-budget, --kv-disk-budget */
    const char *r2[] = {"run",       "--config",  cfg, "--prompt", "A cat and a dog sat in the sun all day long",
                        "--max-tokens", "2", "--kv-disk", d2, "--kv-budget", "24K", "--kv-disk-budget", "2M", NULL};
    rc = run_tool("lmlaunch", "cfgflags", r2, &o, &e);
    if (rc != 0) fail_msg("run --config with flags: exit %d: %s", rc, e);
    assert_non_null(strstr(e, "lmm-cache: 3 blocks of 16 tokens"));
    assert_non_null(strstr(e, "bytes of at most 2097152"));
    free(o);
    free(e);
    assert_true(kvb_files(d2, NULL, NULL, 0) > 0);
    assert_int_equal(kvb_files(d1, NULL, NULL, 0), n1);
    /* prefix_cache = off: no reuse, nothing stored */
    write_text(cfg, "[model]\npath = tiny.gguf\n[cache]\ndisk = kv1\nprefix_cache = off\n");
    const char *r3[] = {"run", "--config", cfg, "--prompt", "The red bird sang a song to the big blue tree",
                        "--max-tokens", "2", NULL};
    rc = run_tool("lmlaunch", "cfgoff", r3, &o, &e);
    if (rc != 0) fail_msg("run --config (prefix_cache off): exit %d: %s", rc, e);
    free(o);
    free(e);
    assert_int_equal(kvb_files(d1, NULL, NULL, 0), n1);
    fprintf(stderr, "  ok  [budget] kv_cache, [cache] disk/disk_budget/prefix_cache checked, applied, overridden\n");
}

/* ---- disk ------------------------------------------------------------------------------ */

/* 20 words, ~52 tokens of the tiny model: 3 blocks of 16 looked up. */
static void prompt_words(char *buf, size_t cap, unsigned seed) {
    static const char *const w[] = {"cat", "dog", "sun", "tree", "red", "blue", "ran", "sat", "big", "small"};
    size_t o = (size_t)snprintf(buf, cap, "%s", w[seed % 10]);
    unsigned x = seed * 2654435761u + 12345u;
    for (int i = 1; i < 20 && o + 8 < cap; i++) {
        x = x * 1103515245u + 12345u;
        o += (size_t)snprintf(buf + o, cap - o, " %s", w[(x >> 16) % 10]);
    }
}

typedef struct {
    uint64_t hits, disk_bytes;
} kv_status;

static kv_status status_kv(void) {
    const char *st[] = {"status", "--json", NULL};
    char *o, *e;
    int rc = run_tool("lmlaunch", "status", st, &o, &e);
    if (rc != 0) fail_msg("status: exit %d: %s", rc, e);
    json_object *j = last_json(o), *kv;
    assert_true(json_object_object_get_ex(j, "kv_cache", &kv));
    kv_status s = {(uint64_t)jint(kv, "hits"), (uint64_t)jint(kv, "disk_bytes")};
    json_object_put(j);
    free(o);
    free(e);
    return s;
}

/* One lmclient request; the directory's size checked while it runs. Returns n_prompt. */
static int64_t request(const char *ep, const char *prompt, const char *dir, uint64_t bound) {
    const char *c[] = {"--endpoint", ep, "--prompt", prompt, "--max-tokens", "2", "--json", NULL};
    proc p = start("lmclient", "req", c);
    int rc;
    for (;;) {
        uint64_t bytes;
        kvb_files(dir, &bytes, NULL, 0);
        if (bytes > bound) fail_msg("the disk tier holds %llu bytes, more than its bound %llu",
                                    (unsigned long long)bytes, (unsigned long long)bound);
        int st;
        if (waitpid(p.pid, &st, WNOHANG) == p.pid) {
            rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
            break;
        }
        sleep_ms(2);
    }
    char *o = slurp(p.out, NULL), *e = slurp(p.err, NULL);
    if (rc != 0) fail_msg("lmclient: exit %d: %s", rc, e);
    json_object *j = last_json(o);
    int64_t n = jint(j, "n_prompt");
    json_object_put(j);
    free(o);
    free(e);
    return n;
}

static void test_disk_budget(void **state) {
    (void)state;
    char dir[700], ep[64];
    snprintf(dir, sizeof dir, "%s/kvdisk", g_tmp);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", free_port());
    /* files of 12 KiB (a 4 KiB header + an 8 KiB block of 16 tokens): the bound holds 10 */
    const uint64_t bound = 123 * 1024;
    const char *extra[] = {"--kv-disk", dir, "--kv-disk-budget", "123K", NULL};
    group_up(extra, ep);
    char hot[256], p[256];
    prompt_words(hot, sizeof hot, 0);
    int64_t n_hot = request(ep, hot, dir, bound);
    uint64_t looked = (uint64_t)(n_hot - 1) / 16; /* blocks of the hot prompt that are looked up */
    assert_true(looked >= 2);
    kv_status s0 = status_kv();
    request(ep, hot, dir, bound);
    kv_status s1 = status_kv();
    assert_int_equal(s1.hits - s0.hits, looked); /* all from the cache */
    /* others, the hot prompt again after each: it stays the most recently used */
    int seen = kvb_files(dir, NULL, NULL, 0);
    for (unsigned i = 1; i <= 6; i++) {
        prompt_words(p, sizeof p, i);
        request(ep, p, dir, bound);
        seen += 3;
        request(ep, hot, dir, bound);
        kv_status s = status_kv();
        assert_true(s.disk_bytes <= bound);
    }
    uint64_t bytes;
    int n_files = kvb_files(dir, &bytes, NULL, 0);
    assert_true(bytes <= bound);
    assert_true(n_files < seen); /* some were evicted */
    group_down();
    kvb_files(dir, &bytes, NULL, 0);
    assert_true(bytes <= bound);

    /* a new group: the RAM tier is what the disk kept. The hot prompt is all there, the
     * first other prompt (least recently used) is gone. */
    group_up(extra, ep);
    kv_status a = status_kv();
    request(ep, hot, dir, bound);
    kv_status b = status_kv();
    assert_int_equal(b.hits - a.hits, looked);
    prompt_words(p, sizeof p, 1);
    request(ep, p, dir, bound);
    kv_status c = status_kv();
    assert_int_equal(c.hits - b.hits, 0);
    assert_true(c.disk_bytes <= bound);
    group_down();
    kvb_files(dir, &bytes, NULL, 0);
    assert_true(bytes <= bound);
    fprintf(stderr, "  ok  disk tier bound %llu: %d files (%llu bytes) kept of %d written; LRU kept the hot prompt\n",
            (unsigned long long)bound, kvb_files(dir, NULL, NULL, 0), (unsigned long long)bytes, seen);
}

/* ---- transport ------------------------------------------------------------------------- */

#define N_TRANSPORT 3

/* Three requests sharing a prefix against a group up with `mode`; their logits files
 * are <g_tmp>/<tag>_<i>.logits. Returns the KV hits. */
static uint64_t transport_run(const char *tag, const char *const *mode, bool show_logs) {
    static const char *const prompts[N_TRANSPORT] = {
        "Once upon a time there was a little cat who liked to play in the big green garden with a red ball",
        "Once upon a time there was a little cat who liked to play in the big green garden with a red ball and "
        "then it ran home to sleep",
        "Once upon a time there was a little cat who liked to play in the big green garden with a red ball and "
        "then it ran home to eat"};
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", free_port());
    group_up(mode, ep);
    for (int i = 0; i < N_TRANSPORT; i++) {
        char d[700];
        snprintf(d, sizeof d, "%s/%s_%d.logits", g_tmp, tag, i);
        const char *c[] = {"--endpoint", ep, "--prompt", prompts[i], "--max-tokens", "8", "--temperature", "0.8",
                           "--seed", "3", "--dump-logits", d, NULL};
        char *o, *e;
        int rc = run_tool("lmclient", "treq", c, &o, &e);
        if (rc != 0) fail_msg("lmclient (%s): exit %d: %s", tag, rc, e);
        free(o);
        free(e);
    }
    uint64_t hits = status_kv().hits;
    if (show_logs) { /* the corrupted chunks were seen and not used */
        const char *lc[] = {"logs", "compute.0", NULL}, *lk[] = {"logs", "cache", NULL};
        char *o, *e;
        assert_int_equal(run_tool("lmlaunch", "logs", lc, &o, &e), 0);
        if (!strstr(o, "checksum mismatch, asked again")) fail_msg("compute.0's log: %s", o);
        free(o);
        free(e);
        assert_int_equal(run_tool("lmlaunch", "logs", lk, &o, &e), 0);
        if (!strstr(o, "fail their checksum: refused, not cached")) fail_msg("the cache's log: %s", o);
        free(o);
        free(e);
    }
    group_down();
    return hits;
}

static void test_transport(void **state) {
    (void)state;
    const char *zmq[] = {"--workers", "2", "--kv-transport", "zmq", NULL};
    const char *shm[] = {"--workers", "2", "--kv-transport", "shm", NULL};
    const char *none[] = {"--workers", "2", "--no-prefix-cache", NULL};
    uint64_t hz = transport_run("zmq", zmq, false), hs = transport_run("shm", shm, false);
    uint64_t hn = transport_run("none", none, false);
    setenv("LMM_KV_FAULT", "2", 1); /* every 2nd chunk each side sends is corrupted */
    uint64_t hf = transport_run("fault", zmq, true);
    unsetenv("LMM_KV_FAULT");
    assert_true(hz > 0);
    assert_int_equal(hz, hs);
    assert_int_equal(hn, 0);
    for (int i = 0; i < N_TRANSPORT; i++) {
        char a[700], b[700];
        snprintf(b, sizeof b, "%s/none_%d.logits", g_tmp, i);
        const char *tags[] = {"zmq", "shm", "fault"};
        for (int t = 0; t < 3; t++) {
            snprintf(a, sizeof a, "%s/%s_%d.logits", g_tmp, tags[t], i);
            assert_files_equal(a, b);
        }
    }
    fprintf(stderr, "  ok  KV over ZeroMQ: %llu blocks hit, logits = shm transport = no reuse; with corrupted "
                    "chunks %llu hit, still exact\n",
            (unsigned long long)hz, (unsigned long long)hf);
}

int main(int argc, char **argv) {
    const char *groups[] = {"limits", "config", "disk", "transport"};
    const struct CMUnitTest all[] = {
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transport, setup, teardown),
    };
    if (argc < 2) return cmocka_run_group_tests(all, NULL, NULL);
    for (size_t i = 0; i < sizeof groups / sizeof *groups; i++)
        if (strcmp(argv[1], groups[i]) == 0) {
            const struct CMUnitTest one[] = {all[i]};
            return cmocka_run_group_tests(one, NULL, NULL);
        }
    fprintf(stderr, "unknown group '%s' (limits, config, disk, transport)\n", argv[1]);
    return 2;
}
