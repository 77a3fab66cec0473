/* tests/launch/test_ops_units.c — the operations building blocks as units:
 *   config   : lmm_config_load on good and bad files (every problem with its line and
 *              field), relative paths, hosts and endpoint syntax;
 *   trace    : the ring keeps the newest events and counts the dropped ones, every kind
 *              of event comes out as Chrome trace JSON that json-c parses, recording from
 *              several threads, nothing recorded while off, LMM_TRACE=1 writes at exit;
 *   progress : silent when stderr is not a terminal, drawn on a pseudo-terminal, the
 *              formatted line (percent, sizes, rate, ETA);
 *   supervise: lmlaunch's restart policy (launch/supervise.c): the backoff (100 ms doubled
 *              per consecutive crash, 5 s at most, back to 100 ms after 60 s without a
 *              crash), the crash-loop limit (more than 5 crashes within 60 s), restarts
 *              asked for that are no crash. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "lmm/config.h"
#include "lmm/error.h"
#include "lmm/progress.h"
#include "lmm/trace.h"
#include "supervise.h"
#include "test_util.h"

static char g_tmp[512];

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state) {
    (void)state;
    return test_tmpdir(g_tmp, sizeof g_tmp) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- config ------------------------------------------------------------------------ */

static lmm_config g_c; /* large */

static bool has_problem(const lmm_config *c, const char *needle) {
    for (unsigned i = 0; i < c->n_problems; i++)
        if (strstr(c->problems[i].text, needle)) return true;
    return false;
}

static void dump_problems(const lmm_config *c) {
    for (unsigned i = 0; i < c->n_problems; i++) fprintf(stderr, "  problem: %s\n", c->problems[i].text);
}

static void test_config_good(void **state) {
    (void)state;
    char model[700], cfg[700];
    snprintf(model, sizeof model, "%s/m.gguf", g_tmp);
    write_file(model, "x");
    snprintf(cfg, sizeof cfg, "%s/good.ini", g_tmp);
    write_file(cfg, "\xEF\xBB\xBF; the group\n"
                    "# comments both ways\n"
                    "[model]\n"
                    "path = m.gguf   ; relative to this file\n"
                    "tokenizer = /abs/tok.model\n"
                    "\n"
                    "[budget]\n"
                    "mem = 1.5G\n"
                    "live_kv = 512M\n"
                    "ctx = 2048\n"
                    "[services]\n"
                    "compute = 3\n"
                    "loader = 1\n"
                    "cache = 1\n"
                    "threads = 2\n"
                    "[endpoints]\n"
                    "client = tcp://127.0.0.1:5555\n"
                    "services: ipc:///tmp/lmm-test/services.ipc\n"
                    "[hosts]\n"
                    "node1 = 192.168.1.10\n"
                    "gpu-box = gpu-box.lan:5600\n"
                    "v6 = [fe80::1]:7000\n");
    lmm_config_opts o = {.require_model = true, .check_model = true};
    int rc = lmm_config_load(&g_c, cfg, &o);
    if (rc) dump_problems(&g_c);
    assert_int_equal(rc, 0);
    assert_string_equal(g_c.model, model);
    assert_string_equal(g_c.tokenizer, "/abs/tok.model");
    assert_int_equal(g_c.line.model, 4);
    assert_true(g_c.mem_budget == 3ull << 29);
    assert_true(g_c.kv_budget == 512ull << 20);
    assert_int_equal(g_c.ctx, 2048);
    assert_int_equal(g_c.compute, 3);
    assert_int_equal(g_c.line.compute, 12);
    assert_int_equal(g_c.threads, 2);
    assert_string_equal(g_c.client_ep, "tcp://127.0.0.1:5555");
    assert_string_equal(g_c.services_ep, "ipc:///tmp/lmm-test/services.ipc");
    assert_int_equal(g_c.n_hosts, 3);
    assert_string_equal(g_c.hosts[1].name, "gpu-box");
    assert_string_equal(g_c.hosts[1].host, "gpu-box.lan");
    assert_int_equal(g_c.hosts[1].port, 5600);
    assert_string_equal(g_c.hosts[2].host, "fe80::1");
    assert_int_equal(g_c.hosts[2].port, 7000);
    assert_int_equal(g_c.hosts[0].port, 0);
    assert_int_equal(g_c.hosts[0].line, 20);

    /* the model is not required, and absent values keep their defaults */
    write_file(cfg, "[budget]\nmem = 64M\n");
    lmm_config_opts none = {0};
    assert_int_equal(lmm_config_load(&g_c, cfg, &none), 0);
    assert_int_equal(g_c.compute, 1);
    assert_int_equal(g_c.line.compute, 0);
    assert_string_equal(g_c.model, "");
}

static void test_config_bad(void **state) {
    (void)state;
    char cfg[700];
    snprintf(cfg, sizeof cfg, "%s/bad.ini", g_tmp);
    write_file(cfg, "; one problem per line\n"          /* 1 */
                    "[model]\n"                         /* 2 */
                    "path = no-such.gguf\n"             /* 3 */
                    "colour = blue\n"                   /* 4 */
                    "[budget]\n"                        /* 5 */
                    "mem = lots\n"                      /* 6 */
                    "live_kv = 12Q\n"                        /* 7 */
                    "[services]\n"                      /* 8 */
                    "compute = 0\n"                     /* 9 */
                    "loader = 2\n"                      /* 10 */
                    "threads = two\n"                   /* 11 */
                    "[endpoints]\n"                     /* 12 */
                    "client = tcp://127.0.0.1\n"        /* 13 */
                    "services = udp://x:1\n"            /* 14 */
                    "[hosts]\n"                         /* 15 */
                    "bad host = 1.2.3.4\n"              /* 16 */
                    "n1 = 999.1.1.1\n"                  /* 17 */
                    "n2 = host:99999\n"                 /* 18 */
                    "[nonsense]\n"                      /* 19 */
                    "x = 1\n"                           /* 20 */
                    "this line is broken\n"             /* 21 */
                    "[services\n"                       /* 22 */
                    "[services]\n"                      /* 23 */
                    "compute = 3\n"                     /* 24 */
                    "  indented = continuation?\n");    /* 25 */
    lmm_config_opts o = {.require_model = true, .check_model = true};
    assert_int_equal(lmm_config_load(&g_c, cfg, &o), -1);
    dump_problems(&g_c);
    static const char want[][160] = {
        ":3: [model] path: ",     ":4: [model] colour: unknown key (expected path or tokenizer)",
        ":6: [budget] mem: 'lots' is not a size", ":7: [budget] live_kv: '12Q' is not a size",
        ":9: [services] compute: 0: the group needs at least 1 compute worker",
        ":10: [services] loader: 2: exactly 1 loader is supported", ":11: [services] threads: 'two' is not a whole number",
        ":13: [endpoints] client: 'tcp://127.0.0.1': tcp:// needs HOST:PORT",
        ":14: [endpoints] services: 'udp://x:1' is not an endpoint", ":16: [hosts] bad host: a host's name",
        ":17: [hosts] n1: '999.1.1.1' is not a host name or address", ":18: [hosts] n2: port '99999'",
        ":19: [nonsense]: unknown section", ":21: 'this line is broken' is not 'key = value'",
        ":22: '[services': a section header needs a closing ']'",
        ":24: [services] compute: given twice (first on line 9)", ":25: [services] indented: unknown key"};
    size_t n_want = sizeof want / sizeof *want;
    for (size_t i = 0; i < n_want; i++) {
        char full[4000];
        snprintf(full, sizeof full, "%s%s", cfg, want[i]);
        if (!has_problem(&g_c, full)) fail_msg("no problem '%s'", full);
    }
    assert_int_equal(g_c.n_problems, n_want);
    assert_true(has_problem(&g_c, "no-such.gguf: No such file or directory"));
    for (unsigned i = 1; i < g_c.n_problems; i++) assert_true(g_c.problems[i - 1].line <= g_c.problems[i].line);
    assert_non_null(strstr(lmm_error_get(), ":3: [model] path:"));

    /* a missing model path, without a line when there is no [model] section */
    write_file(cfg, "[budget]\nmem = 1G\n");
    assert_int_equal(lmm_config_load(&g_c, cfg, &o), -1);
    assert_int_equal(g_c.n_problems, 1);
    char want1[3000];
    snprintf(want1, sizeof want1, "%s: [model] path: missing", cfg);
    assert_true(has_problem(&g_c, want1));
    /* with a [model] section, its line */
    write_file(cfg, "[model]\ntokenizer = t\n");
    assert_int_equal(lmm_config_load(&g_c, cfg, &o), -1);
    snprintf(want1, sizeof want1, "%s:1: [model] path: missing", cfg);
    assert_true(has_problem(&g_c, want1));
    /* a key outside any section, an over-long line */
    char *big = malloc(20000);
    assert_non_null(big);
    memset(big, 'a', 19000);
    memcpy(big, "path = /", 8);
    big[19000] = '\0';
    FILE *f = fopen(cfg, "w");
    fprintf(f, "stray = 1\n[model]\n%s\n", big);
    fclose(f);
    free(big);
    assert_int_equal(lmm_config_load(&g_c, cfg, &o), -1);
    dump_problems(&g_c);
    snprintf(want1, sizeof want1, "%s:1: stray: outside any section", cfg);
    assert_true(has_problem(&g_c, want1));
    snprintf(want1, sizeof want1, "%s:3: line longer than", cfg);
    assert_true(has_problem(&g_c, want1));
    /* a file that does not exist, a directory */
    char none[700];
    snprintf(none, sizeof none, "%s/none.ini", g_tmp);
    assert_int_equal(lmm_config_load(&g_c, none, &o), -1);
    assert_int_equal(g_c.n_problems, 1);
    assert_true(has_problem(&g_c, "none.ini: cannot read it (No such file or directory)"));
    assert_int_equal(lmm_config_load(&g_c, g_tmp, &o), -1);
    assert_true(has_problem(&g_c, "cannot read it (a directory)"));
}

static void test_config_syntax_helpers(void **state) {
    (void)state;
    static const char *const good[] = {"tcp://127.0.0.1:5555", "tcp://*:80",      "tcp://localhost:1",
                                       "tcp://[::1]:5555",     "ipc:///tmp/x.ipc", "tcp://node-1.lan:65535"};
    static const char *const bad[] = {"tcp://127.0.0.1",  "tcp://:5555",      "tcp://host:0", "tcp://host:65536",
                                      "tcp://-bad-:1",     "ipc://relative",   "inproc://x",   "",
                                      "tcp://[::1]",       "tcp://1.2.3:5"};
    char why[300];
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        if (lmm_config_check_endpoint(good[i], why, sizeof why)) fail_msg("%s refused: %s", good[i], why);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (lmm_config_check_endpoint(bad[i], why, sizeof why) == 0) fail_msg("%s accepted", bad[i]);
    char longipc[200] = "ipc:///";
    memset(longipc + 7, 'x', 120);
    assert_int_equal(lmm_config_check_endpoint(longipc, why, sizeof why), -1);
    char host[256];
    uint16_t port;
    assert_int_equal(lmm_config_parse_host("10.0.0.2:22", host, sizeof host, &port, why, sizeof why), 0);
    assert_string_equal(host, "10.0.0.2");
    assert_int_equal(port, 22);
    assert_int_equal(lmm_config_parse_host("fe80::1", host, sizeof host, &port, why, sizeof why), -1);
    assert_non_null(strstr(why, "brackets"));
    assert_int_equal(lmm_config_parse_host("a..b", host, sizeof host, &port, why, sizeof why), -1);
}

/* Garbage made of INI fragments never crashes the parser (run under ASan in the sanitizer build). */
static void test_config_garbage(void **state) {
    (void)state;
    static const char *const frags[] = {"[", "]", "=", ":", ";", "#", " ", "\n", "\t", "\r\n", "model", "path",
                                        "budget", "mem", "services", "compute", "hosts", "endpoints", "client",
                                        "tcp://", "ipc:///", "[::1]", "999999999999999999999", "0", "1", "4G",
                                        "\xEF\xBB\xBF", "\xff", "a.b-c", ".."};
    char path[700];
    snprintf(path, sizeof path, "%s/garbage.ini", g_tmp);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    lmm_config_opts o = {.require_model = true, .check_model = true, .check_tokenizer = true};
    for (int file = 0; file < 300; file++) {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        int n = (int)(x % 400);
        for (int i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            if (x % 97 == 0) { /* now and then a very long run */
                for (int k = 0; k < 9000; k++) fputc('a' + (int)(x % 26), f);
                continue;
            }
            if (x % 53 == 0) fputc(0, f);
            fputs(frags[x % (sizeof frags / sizeof *frags)], f);
        }
        fclose(f);
        int rc = lmm_config_load(&g_c, path, &o);
        assert_true(rc == 0 || rc == -1);
        assert_true(g_c.n_problems <= LMM_CONFIG_MAX_PROBLEMS);
        for (unsigned i = 0; i < g_c.n_problems; i++) assert_true(strlen(g_c.problems[i].text) < LMM_CONFIG_PROBLEM_MAX);
    }
}

/* ---- trace ------------------------------------------------------------------------- */

static json_object *events_of(const char *path, json_object **root) {
    *root = json_object_from_file(path);
    if (!*root) fail_msg("%s does not parse: %s", path, json_util_get_last_err());
    json_object *evs;
    assert_true(json_object_object_get_ex(*root, "traceEvents", &evs));
    assert_true(json_object_is_type(evs, json_type_array));
    return evs;
}

static const char *jstr(json_object *o, const char *k) {
    json_object *v;
    return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : NULL;
}

static int64_t jint(json_object *o, const char *k) {
    json_object *v;
    return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : -1;
}

static int64_t jarg(json_object *o, const char *k) {
    json_object *a;
    return json_object_object_get_ex(o, "args", &a) ? jint(a, k) : -1;
}

static void test_trace_events(void **state) {
    (void)state;
    lmm_trace_stop();
    assert_false(lmm_trace_on());
    assert_int_equal(lmm_trace_begin(), 0);
    lmm_trace_instant("x", "ignored", NULL, 0, NULL, 0); /* off: nothing */
    assert_int_equal(lmm_trace_start("unit", 64), 0);
    assert_true(lmm_trace_on());
    assert_int_equal(lmm_trace_recorded(), 0);
    lmm_trace_thread_name("main thread");
    uint64_t t0 = lmm_trace_begin();
    assert_true(t0 > 0);
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
    lmm_trace_end("compute", "layer", t0, "layer", 3, "tokens", 7);
    lmm_trace_complete("io", "read", 1000, 1500, "bytes", 4096, NULL, 0);
    lmm_trace_async_begin("io", "load", 42, "bytes", 1 << 20, "slot", 2);
    lmm_trace_async_end("io", "load", 42, "bytes", 1 << 20, NULL, 0);
    lmm_trace_instant("msg", "send STEP", "bytes", 99, NULL, 0);
    lmm_trace_counter("loads_in_flight", 5);
    lmm_trace_end("compute", "not recorded", 0, NULL, 0, NULL, 0); /* t0 0: begun while off */
    assert_int_equal(lmm_trace_recorded(), 6);
    char path[700];
    snprintf(path, sizeof path, "%s/unit.json", g_tmp);
    assert_int_equal(lmm_trace_write(path), 0);
    json_object *root, *evs = events_of(path, &root);
    size_t n = json_object_array_length(evs);
    int seen_x = 0, seen_read = 0, seen_b = 0, seen_e = 0, seen_i = 0, seen_c = 0, seen_pn = 0, seen_tn = 0;
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(evs, i);
        const char *ph = jstr(e, "ph"), *name = jstr(e, "name");
        assert_non_null(ph);
        assert_non_null(name);
        assert_int_equal(jint(e, "pid"), getpid());
        if (!strcmp(ph, "M")) {
            json_object *a;
            assert_true(json_object_object_get_ex(e, "args", &a));
            if (!strcmp(name, "process_name")) seen_pn++, assert_string_equal(jstr(a, "name"), "unit");
            if (!strcmp(name, "thread_name")) seen_tn++, assert_string_equal(jstr(a, "name"), "main thread");
            continue;
        }
        assert_true(jint(e, "ts") > 0);
        if (!strcmp(ph, "X") && !strcmp(name, "layer")) {
            seen_x++;
            assert_string_equal(jstr(e, "cat"), "compute");
            assert_true(jint(e, "dur") >= 2000);
            assert_int_equal(jarg(e, "layer"), 3);
            assert_int_equal(jarg(e, "tokens"), 7);
        } else if (!strcmp(ph, "X")) {
            seen_read++;
            assert_int_equal(jint(e, "ts"), 1000);
            assert_int_equal(jint(e, "dur"), 500);
        } else if (!strcmp(ph, "b") || !strcmp(ph, "e")) {
            ph[0] == 'b' ? seen_b++ : seen_e++;
            assert_string_equal(jstr(e, "id"), "0x2a");
            assert_int_equal(jarg(e, "bytes"), 1 << 20);
        } else if (!strcmp(ph, "i")) {
            seen_i++;
            assert_string_equal(name, "send STEP");
            assert_string_equal(jstr(e, "s"), "t");
        } else if (!strcmp(ph, "C")) {
            seen_c++;
            assert_int_equal(jarg(e, "value"), 5);
        } else {
            fail_msg("unexpected phase %s", ph);
        }
    }
    assert_int_equal(seen_x + seen_read + seen_b + seen_e + seen_i + seen_c + seen_pn + seen_tn, 8);
    assert_int_equal(seen_x * seen_read * seen_b * seen_e * seen_i * seen_c * seen_pn * seen_tn, 1);
    json_object_put(root);
    lmm_trace_stop();
    assert_false(lmm_trace_on());
}

static void *recorder(void *arg) {
    long k = (long)arg;
    for (int i = 0; i < 1000; i++) lmm_trace_instant("t", "tick", "thread", k, "i", i);
    return NULL;
}

static void test_trace_ring_threads(void **state) {
    (void)state;
    lmm_trace_stop(); /* whatever an earlier test left */
    assert_int_equal(lmm_trace_start("ring", 100), 0);
    pthread_t th[4];
    for (long k = 0; k < 4; k++) assert_int_equal(pthread_create(&th[k], NULL, recorder, (void *)k), 0);
    for (int k = 0; k < 4; k++) pthread_join(th[k], NULL);
    assert_int_equal(lmm_trace_recorded(), 4000);
    assert_int_equal(lmm_trace_dropped(), 3900);
    char path[700];
    snprintf(path, sizeof path, "%s/ring.json", g_tmp);
    assert_int_equal(lmm_trace_write(path), 0);
    json_object *root, *evs = events_of(path, &root);
    size_t ticks = 0;
    for (size_t i = 0; i < json_object_array_length(evs); i++)
        if (!strcmp(jstr(json_object_array_get_idx(evs, i), "ph"), "i")) ticks++;
    assert_int_equal(ticks, 100); /* the newest 100 */
    json_object *other;
    assert_true(json_object_object_get_ex(root, "otherData", &other));
    assert_int_equal(jint(other, "dropped"), 3900);
    json_object_put(root);
    lmm_trace_stop();
}

static void test_trace_from_env(void **state) {
    (void)state;
    lmm_trace_stop();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("LMM_TRACE", "1", 1);
        setenv("LMM_TRACE_DIR", g_tmp, 1);
        if (lmm_trace_start_from_env("envproc") != 1) _exit(3);
        lmm_trace_set_process_name("compute.7");
        lmm_trace_instant("t", "hello", NULL, 0, NULL, 0);
        exit(0); /* the exit handler writes the file */
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    char path[700];
    snprintf(path, sizeof path, "%s/trace-compute.7.json", g_tmp);
    json_object *root, *evs = events_of(path, &root);
    assert_true(json_object_array_length(evs) >= 2);
    json_object_put(root);
    /* not asked: nothing */
    unsetenv("LMM_TRACE");
    assert_int_equal(lmm_trace_start_from_env("x"), 0);
    setenv("LMM_TRACE", "0", 1);
    assert_int_equal(lmm_trace_start_from_env("x"), 0);
    unsetenv("LMM_TRACE");
    assert_false(lmm_trace_on());
}

/* ---- progress ---------------------------------------------------------------------- */

/* Runs a short bar with stderr on fd; returns what was written there. */
static void run_bar(int fd, char *out, size_t cap, int readfd) {
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    lmm_progress p;
    lmm_progress_init(&p, "unit: copying", 4u << 20);
    for (int i = 0; i < 4; i++) {
        struct timespec ts = {0, 60000000};
        nanosleep(&ts, NULL);
        lmm_progress_add(&p, 1u << 20);
    }
    lmm_progress_done(&p);
    dup2(saved, 2);
    close(saved);
    fcntl(readfd, F_SETFL, O_NONBLOCK);
    size_t len = 0;
    for (;;) { /* a terminal hands it over in pieces */
        ssize_t n = read(readfd, out + len, cap - 1 - len);
        if (n <= 0) break;
        len += (size_t)n;
    }
    out[len] = '\0';
}

static void test_progress_tty_or_not(void **state) {
    (void)state;
    unsetenv("LMM_PROGRESS");
    setenv("TERM", "xterm", 1);
    char out[4096];
    /* a pipe: silent */
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    run_bar(pfd[1], out, sizeof out, pfd[0]);
    close(pfd[0]);
    close(pfd[1]);
    assert_string_equal(out, "");
    /* a pseudo-terminal: drawn, then one final line */
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0 || grantpt(m) || unlockpt(m)) skip();
    int s = open(ptsname(m), O_RDWR | O_NOCTTY);
    assert_true(s >= 0);
    run_bar(s, out, sizeof out, m);
    close(s);
    close(m);
    if (!strstr(out, "\runit: copying [") || !strstr(out, "4.00 MiB in") || !strchr(out, '\n'))
        fail_msg("terminal got: %s", out);
    /* forced off on a terminal too */
    setenv("LMM_PROGRESS", "0", 1);
    lmm_progress p;
    lmm_progress_init(&p, "x", 1);
    assert_false(p.on);
    unsetenv("LMM_PROGRESS");
}

static void test_progress_format(void **state) {
    (void)state;
    lmm_progress p;
    setenv("LMM_PROGRESS", "0", 1);
    lmm_progress_init(&p, "loading", 1u << 20);
    unsetenv("LMM_PROGRESS");
    p.done = 512u << 10;
    char line[512];
    lmm_progress_format(&p, p.t0_us + 1000000u, 100, line, sizeof line);
    if (!strstr(line, "loading [") || !strstr(line, " 50%") || !strstr(line, "512 KiB/1.00 MiB") ||
        !strstr(line, "512 KiB/s") || !strstr(line, "ETA 1s"))
        fail_msg("line: '%s'", line);
    assert_true(strlen(line) <= 99);
    /* narrow terminal: no bar, never wider than the terminal */
    lmm_progress_format(&p, p.t0_us + 1000000u, 40, line, sizeof line);
    assert_true(strlen(line) <= 39);
    /* unknown total: bytes and rate only */
    p.total = 0;
    lmm_progress_format(&p, p.t0_us + 1000000u, 100, line, sizeof line);
    assert_null(strstr(line, "%"));
    assert_non_null(strstr(line, "512 KiB"));
}

/* ---- supervise --------------------------------------------------------------------- */

static void test_supervise_backoff(void **state) {
    (void)state;
    static const unsigned want[] = {100, 100, 200, 400, 800, 1600, 3200, 5000, 5000};
    for (unsigned n = 0; n < sizeof want / sizeof *want; n++) assert_int_equal(supervise_backoff_ms(n), want[n]);
    assert_int_equal(supervise_backoff_ms(1000), 5000);
    assert_int_equal(supervise_backoff_ms(UINT32_MAX), 5000);
}

/* Crashes 1 s apart: restarts after 100, 200, 400, 800, 1600 ms; the 6th within 60 s gives up. */
static void test_supervise_crash_loop(void **state) {
    (void)state;
    supervise_history h;
    memset(&h, 0, sizeof h);
    uint64_t t = 5000;
    for (unsigned i = 0; i < 5; i++, t += 1000) {
        supervise_verdict v = supervise_history_add_crash(&h, t);
        assert_false(v.give_up);
        assert_int_equal(v.delay_ms, 100u << i);
        assert_int_equal(v.in_window, i + 1);
        assert_int_equal(supervise_history_add_restart(&h), i + 1);
    }
    supervise_verdict v = supervise_history_add_crash(&h, t);
    assert_true(v.give_up);
    assert_int_equal(v.in_window, 6);
    assert_int_equal(h.restarts, 5);
}

/* The window is 60 s: a crash exactly 60 s after the oldest no longer counts it. */
static void test_supervise_window_edge(void **state) {
    (void)state;
    supervise_history h;
    memset(&h, 0, sizeof h);
    for (uint64_t t = 0; t <= 40; t += 10) assert_false(supervise_history_add_crash(&h, t).give_up);
    supervise_verdict v = supervise_history_add_crash(&h, 60000); /* the crash at 0 left the window */
    assert_false(v.give_up);
    assert_int_equal(v.in_window, 5);
    v = supervise_history_add_crash(&h, 60005); /* 10, 20, 30, 40, 60000, 60005 */
    assert_true(v.give_up);
    assert_int_equal(v.in_window, 6);
}

/* A crash every 15 s never reaches the limit; the backoff grows to 5 s and stays there. */
static void test_supervise_spread(void **state) {
    (void)state;
    supervise_history h;
    memset(&h, 0, sizeof h);
    unsigned delay = 0;
    for (unsigned i = 0; i < 40; i++) {
        supervise_verdict v = supervise_history_add_crash(&h, 1000 + (uint64_t)i * 15000);
        assert_false(v.give_up);
        assert_true(v.in_window <= 4);
        assert_true(v.delay_ms >= delay);
        delay = v.delay_ms;
    }
    assert_int_equal(delay, 5000);
}

/* 60 s without a crash: the backoff starts again at 100 ms; restarts asked for are no crash. */
static void test_supervise_quiet_and_asked(void **state) {
    (void)state;
    supervise_history h;
    memset(&h, 0, sizeof h);
    assert_int_equal(supervise_history_add_crash(&h, 0).delay_ms, 100);
    assert_int_equal(supervise_history_add_crash(&h, 1000).delay_ms, 200);
    assert_int_equal(supervise_history_add_crash(&h, 2000).delay_ms, 400);
    supervise_verdict v = supervise_history_add_crash(&h, 62000); /* quiet for 60 s */
    assert_int_equal(v.delay_ms, 100);
    assert_int_equal(v.in_window, 1);
    assert_int_equal(supervise_history_add_crash(&h, 62500).delay_ms, 200);
    /* restarts asked for: counted, but neither backoff nor limit */
    for (unsigned i = 0; i < 20; i++) supervise_history_add_restart(&h);
    assert_int_equal(h.restarts, 20);
    v = supervise_history_add_crash(&h, 63000);
    assert_int_equal(v.delay_ms, 400);
    assert_int_equal(v.in_window, 3);
    assert_false(v.give_up);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_good),        cmocka_unit_test(test_config_bad),
        cmocka_unit_test(test_config_syntax_helpers), cmocka_unit_test(test_config_garbage),
        cmocka_unit_test(test_trace_events),
        cmocka_unit_test(test_trace_ring_threads), cmocka_unit_test(test_trace_from_env),
        cmocka_unit_test(test_progress_tty_or_not), cmocka_unit_test(test_progress_format),
        cmocka_unit_test(test_supervise_backoff), cmocka_unit_test(test_supervise_crash_loop),
        cmocka_unit_test(test_supervise_window_edge), cmocka_unit_test(test_supervise_spread),
        cmocka_unit_test(test_supervise_quiet_and_asked),
    };
    return cmocka_run_group_tests_name("ops_units", tests, setup, teardown);
}
