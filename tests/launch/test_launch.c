/* tests/launch/test_launch.c — lmlaunch's process group from the outside.
 *
 * After every run: no process of the group left (found by LMM_LAUNCHER_PID=<launcher> in
 * /proc/<pid>/environ), no new /dev/shm/lmm-* segment, no RUN directory. Cases:
 *   run     : a missing model fails fast naming it; lmlaunch run on an lmsynth model and
 *             on stories260K (skipped when ../shared is absent) gives the same text and
 *             logits as `run --in-process`, with 1 and 2 workers; the --json line's
 *             io_stall_s is >= 0 at a budget that streams and 0 when all is resident;
 *             run --verbose prints one line of step figures per token;
 *   crash   : SIGINT to lmlaunch mid-generation -> exit 130 promptly; kill -9 of the
 *             loader, compute.0 or the cache mid-run -> a line naming it, restarted, and
 *             the run ends 0 with exactly the text of `run --in-process`; kill -9 of the
 *             scheduler -> exit 1 at once naming it; nothing left behind in every case;
 *   updown  : up / status / two lmclients at once / lmclient --dump-logits / down, and
 *             lmclient against nothing -> a clear timeout; kill -9 of compute.0 during an
 *             lmclient request -> the same text as in-process, restarts 1; kill -9 of the
 *             scheduler during one -> lmclient fails at once naming it, the group comes
 *             back, the next lmclient is exact; `lmlaunch restart loader` -> the next
 *             lmclient is exact; down leaves nothing;
 *   config  : `lmlaunch check` on good and bad files (one "FILE:LINE: [section] key:" line
 *             per problem, exit 1); run --config gives what the same flags give, flags
 *             override the file; a bad file stops run before anything starts;
 *   status  : up --config, status --json (name, pid, state, restarts, rss_bytes of each
 *             service; ring occupancy and tokens/s), logs SERVICE, down;
 *   profile : run --profile FILE on an lmsynth model with 2 workers -> FILE is Chrome
 *             trace JSON (json-c parses it) with events from every process, `layer`,
 *             `step` and `head` spans from the workers, `step` and `sample` from the
 *             scheduler; `up --trace` + `profile --seconds 2` during a request -> a trace
 *             with events of every service; profile of a group without --trace fails;
 *   supervise: (stand-ins always) `run`: kill -9 of the loader mid-run -> restarted with
 *             a line on stderr, status --run-dir shows its new pid and restarts 1, the run
 *             ends 0; compute.0 killed 6 times -> exit 1 "keeps crashing", nothing left;
 *   restart : (stand-ins always) `up`: `lmlaunch restart loader` -> new pid, restarts 1;
 *             `restart cache` -> its log appended to (two start lines); unknown service
 *             -> exit 2; kill -9 of compute.0 -> restarted; kill -9 of the scheduler
 *             -> the whole group restarted, clients served; `restart scheduler`; down
 *             leaves nothing; restart without a group -> exit 1; the cache killed 6
 *             times -> the supervisor stops the group, status says why.
 * The services are the real build/bin/lmm-* when lmm-scheduler and lmm-compute are built
 * (and LMM_LAUNCH_TEST_STUBS is not 1); else the test's stand-ins (stub_scheduler.c,
 * stub_compute.c) with the real loader and cache. argv[1] picks a group (ctest runs each
 * as its own test). */
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
static char g_bins[1024];      /* LMM_SERVICE_BIN_DIR for lmlaunch */
static char g_tiny[1024];      /* lmsynth tiny model */
static char g_big[1024];       /* lmsynth stories15M-shaped model (slower tokens) */
static char g_stories[2048], g_stories_tok[2048];
static int g_have_stories;
static int g_stubs;

/* ---- processes ------------------------------------------------------------------ */

/* Pids of processes whose environment holds LMM_LAUNCHER_PID=launcher. */
static int group_pids(pid_t launcher, pid_t *out, int cap) {
    char want[64];
    int wl = snprintf(want, sizeof want, "LMM_LAUNCHER_PID=%d", (int)launcher);
    DIR *d = opendir("/proc");
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 1) continue;
        char path[64], env[16384];
        snprintf(path, sizeof path, "/proc/%ld/environ", pid);
        int fd = open(path, O_RDONLY);
        if (fd < 0) continue;
        ssize_t len = read(fd, env, sizeof env);
        close(fd);
        for (ssize_t i = 0; i < len;) {
            size_t l = strnlen(env + i, (size_t)(len - i));
            if (l == (size_t)wl && memcmp(env + i, want, (size_t)wl) == 0) {
                /* alive (not a zombie) */
                char st[64], buf[512];
                snprintf(st, sizeof st, "/proc/%ld/stat", pid);
                int sf = open(st, O_RDONLY);
                ssize_t k = sf >= 0 ? read(sf, buf, sizeof buf - 1) : -1;
                if (sf >= 0) close(sf);
                if (k > 0) {
                    buf[k] = '\0';
                    char *rp = strrchr(buf, ')');
                    if (rp && rp[2] != 'Z' && n < cap) out[n++] = (pid_t)pid;
                }
                break;
            }
            i += (ssize_t)l + 1;
        }
    }
    closedir(d);
    return n;
}

/* Alive and not a zombie (an orphan's zombie waits for an init that may never reap it). */
static bool alive(pid_t pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return false;
    ssize_t k = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (k <= 0) return false;
    buf[k] = '\0';
    char *rp = strrchr(buf, ')');
    return rp && rp[1] && rp[2] != 'Z' && rp[2] != 'X';
}

/* Pid of the child of launcher whose command name is comm (e.g. "lmm-loader"), or 0. */
static pid_t child_named(pid_t launcher, const char *comm) {
    pid_t pids[128];
    int n = group_pids(launcher, pids, 128);
    for (int i = 0; i < n; i++) {
        char path[64], c[64] = "";
        snprintf(path, sizeof path, "/proc/%d/comm", (int)pids[i]);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (fgets(c, sizeof c, f)) c[strcspn(c, "\n")] = '\0';
        fclose(f);
        if (strcmp(c, comm) == 0) return pids[i];
    }
    return 0;
}

/* /dev/shm/lmm-* names now. */
typedef struct {
    char names[256][256];
    int n;
} shm_list;

static void shm_snapshot(shm_list *l) {
    l->n = 0;
    DIR *d = opendir("/dev/shm");
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && l->n < 256)
        if (strncmp(de->d_name, "lmm-", 4) == 0) snprintf(l->names[l->n++], sizeof l->names[0], "%s", de->d_name);
    closedir(d);
}

/* No process of launcher's group alive, no segment of it, no RUN dir. */
static void assert_clean(pid_t launcher, const shm_list *before) {
    pid_t pids[64];
    int n = 0;
    for (int tries = 0; tries < 100; tries++) { /* reparented orphans die within ~1 s */
        n = group_pids(launcher, pids, 64);
        if (n == 0) break;
        sleep_ms(20);
    }
    if (n) fail_msg("%d process(es) of the group (launcher %d) still alive, e.g. pid %d", n, (int)launcher, (int)pids[0]);
    shm_list after;
    shm_snapshot(&after);
    for (int i = 0; i < after.n; i++) {
        bool old = false;
        for (int j = 0; j < before->n; j++) old |= strcmp(after.names[i], before->names[j]) == 0;
        if (old) continue;
        /* new: fine only when its creator (lmm-<pid>-n) is alive and not ours (a neighbour's test) */
        int cpid = atoi(after.names[i] + 4);
        if (cpid <= 0 || kill(cpid, 0) != 0)
            fail_msg("segment /dev/shm/%s left behind (creator %d is gone)", after.names[i], cpid);
    }
    char run[64];
    snprintf(run, sizeof run, "/tmp/lmm-%d", (int)launcher);
    struct stat st;
    if (stat(run, &st) == 0) fail_msg("%s left behind", run);
}

/* ---- fixtures ------------------------------------------------------------------- */

static int synth(const char *shape, const char *dtype, const char *out) {
    const char *a[] = {"--shape", shape, "--dtype", dtype, "--format", "gguf", "--seed", "7", "--out", out, NULL};
    proc p = start("lmsynth", "lmsynth", a);
    return finish(&p, 50);
}

static int setup(void **state) {
    (void)state;
    if (!test_tmpdir(g_tmp, sizeof g_tmp)) return -1;
    proc_dir_set(g_tmp);
    char bin[1024], sched[1024], comp[1024];
    const char *bd = getenv("LMM_BIN_DIR");
    test_bin(sched, sizeof sched, "lmm-scheduler");
    test_bin(comp, sizeof comp, "lmm-compute");
    const char *force = getenv("LMM_LAUNCH_TEST_STUBS");
    g_stubs = (force && strcmp(force, "1") == 0) || access(sched, X_OK) != 0 || access(comp, X_OK) != 0;
    if (g_stubs) {
        /* the stand-ins for scheduler and compute, the real loader and cache */
        const char *stub = getenv("LMM_STUB_BIN_DIR");
        if (!stub) return -1;
        snprintf(g_bins, sizeof g_bins, "%s/bin", g_tmp);
        mkdir(g_bins, 0700);
        const char *pairs[4][2] = {{"lmm-scheduler", stub}, {"lmm-compute", stub}, {"lmm-loader", bd}, {"lmm-cache", bd}};
        for (int i = 0; i < 4; i++) {
            char from[1024], to[1200];
            snprintf(from, sizeof from, "%s/%s", pairs[i][1] ? pairs[i][1] : "build/bin", pairs[i][0]);
            snprintf(to, sizeof to, "%s/%s", g_bins, pairs[i][0]);
            if (symlink(from, to) != 0) return -1;
        }
        setenv("LMM_SERVICE_BIN_DIR", g_bins, 1);
        fprintf(stderr, "NOTE: lmm-scheduler/lmm-compute not built (or LMM_LAUNCH_TEST_STUBS=1): "
                        "testing with the stand-ins in %s\n", stub);
    } else {
        unsetenv("LMM_SERVICE_BIN_DIR");
    }
    setenv("LMM_CURRENT_FILE", (snprintf(bin, sizeof bin, "%s/current", g_tmp), bin), 1);
    snprintf(g_tiny, sizeof g_tiny, "%s/tiny.gguf", g_tmp);
    snprintf(g_big, sizeof g_big, "%s/big.gguf", g_tmp);
    if (synth("tiny", "f32", g_tiny) != 0) return -1;
    g_big[0] = '\0';
    g_have_stories = test_shared_file(g_stories, sizeof g_stories, "models/stories260K/stories260K.bin") &&
                     test_shared_file(g_stories_tok, sizeof g_stories_tok, "models/stories260K/tok512.bin");
    return 0;
}

static const char *big_model(void) {
    if (!g_big[0]) {
        snprintf(g_big, sizeof g_big, "%s/big.gguf", g_tmp);
        assert_int_equal(synth("stories15M", "f16", g_big), 0);
    }
    return g_big;
}

static int teardown(void **state) {
    (void)state;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- run ---------------------------------------------------------------------------- */

static void test_missing_model(void **state) {
    (void)state;
    char missing[700];
    snprintf(missing, sizeof missing, "%s/no-such-model.gguf", g_tmp);
    shm_list before;
    shm_snapshot(&before);
    const char *a[] = {"run", "--model", missing, "--max-tokens", "4", NULL};
    double t0 = now_s();
    proc p = start("lmlaunch", "missing", a);
    int rc = finish(&p, 20);
    char *err = slurp(p.err, NULL);
    assert_int_equal(rc, 1);
    assert_true(now_s() - t0 < 5.0);
    if (!strstr(err, missing) || !strstr(err, "No such file")) fail_msg("stderr: %s", err);
    assert_clean(p.pid, &before);
    free(err);
    /* a file that is not a model: also fails before anything starts, naming it */
    char junk[700];
    snprintf(junk, sizeof junk, "%s/junk.bin", g_tmp);
    FILE *f = fopen(junk, "wb");
    fputs("not a model", f);
    fclose(f);
    const char *b[] = {"run", "--model", junk, NULL};
    p = start("lmlaunch", "junk", b);
    assert_int_equal(finish(&p, 20), 1);
    err = slurp(p.err, NULL);
    if (!strstr(err, "junk.bin")) fail_msg("stderr: %s", err);
    assert_clean(p.pid, &before);
    free(err);
}

/* lmlaunch run (group) vs run --in-process: same stdout text and logits. */
static void compare_with_inprocess(const char *tag, const char *const *model_args, const char *workers) {
    char d1[700], d2[700];
    snprintf(d1, sizeof d1, "%s/%s.group.logits", g_tmp, tag);
    snprintf(d2, sizeof d2, "%s/%s.inproc.logits", g_tmp, tag);
    const char *common[] = {"--prompt", "Once upon a time", "--temperature", "0.9", "--seed", "42", "--max-tokens", "40"};
    const char *a[40], *b[40];
    int n = 0, m = 0;
    a[n++] = "run", b[m++] = "run";
    b[m++] = "--in-process";
    for (int i = 0; model_args[i]; i++) a[n++] = b[m++] = model_args[i];
    for (size_t i = 0; i < sizeof common / sizeof *common; i++) a[n++] = b[m++] = common[i];
    a[n++] = "--workers", a[n++] = workers;
    a[n++] = "--dump-logits", a[n++] = d1;
    b[m++] = "--dump-logits", b[m++] = d2;
    a[n] = b[m] = NULL;
    shm_list before;
    shm_snapshot(&before);
    char t1[64], t2[64];
    snprintf(t1, sizeof t1, "%s.group", tag);
    snprintf(t2, sizeof t2, "%s.inproc", tag);
    proc p = start("lmlaunch", t1, a);
    int rc = finish(&p, 50);
    char *err = slurp(p.err, NULL);
    if (rc != 0) fail_msg("lmlaunch run exit %d: %s", rc, err);
    assert_clean(p.pid, &before);
    proc q = start("lmlaunch", t2, b);
    assert_int_equal(finish(&q, 50), 0);
    assert_files_equal(p.out, q.out);
    assert_files_equal(d1, d2);
    free(err);
}

static void test_run_synth(void **state) {
    (void)state;
    const char *m[] = {"--model", g_tiny, NULL};
    compare_with_inprocess("tiny1", m, "1");
    compare_with_inprocess("tiny2", m, "2");
}

static void test_run_stories(void **state) {
    (void)state;
    if (!g_have_stories) skip();
    /* greedy: the published story */
    const char *a[] = {"run", "--model", g_stories, "--tokenizer", g_stories_tok, "--temperature", "0",
                       "--max-tokens", "60", "--json", "--mem-budget", "64M", NULL};
    shm_list before;
    shm_snapshot(&before);
    proc p = start("lmlaunch", "stories", a);
    int rc = finish(&p, 50);
    char *out = slurp(p.out, NULL), *err = slurp(p.err, NULL);
    if (rc != 0) fail_msg("exit %d: %s", rc, err);
    if (strncmp(out, "Once upon a time, there was a little girl named Lily.", 53) != 0) fail_msg("got: %s", out);
    assert_non_null(strstr(out, "\"n_generated\":60"));
    assert_clean(p.pid, &before);
    free(out);
    free(err);
    const char *m[] = {"--model", g_stories, "--tokenizer", g_stories_tok, NULL};
    compare_with_inprocess("stories", m, "2");
}

/* run --verbose: one stderr line per token with the step's figures; returns the bytes
 * read over all of them. total = compute + I/O wait + transfer (to the printed 0.01 ms). */
static double verbose_lines(const char *tag, const char *err, int n_gen) {
    int lines = 0;
    double read_mib = 0;
    for (const char *p = strstr(err, "lmlaunch: token "); p; p = strstr(p + 1, "lmlaunch: token ")) {
        unsigned idx, id;
        double total, comp, wait, xfer, mib;
        if (sscanf(p, "lmlaunch: token %u (id %u): total %lf ms, compute %lf ms, I/O wait %lf ms, transfer %lf ms, "
                      "read %lf MiB",
                   &idx, &id, &total, &comp, &wait, &xfer, &mib) != 7)
            fail_msg("%s: bad --verbose line: %.200s", tag, p);
        if ((int)idx != lines) fail_msg("%s: token line %u, expected %d", tag, idx, lines);
        if (!(total > 0) || comp < 0 || wait < 0 || xfer < 0 || mib < 0) fail_msg("%s: %.200s", tag, p);
        double rest = total - comp - wait - xfer;
        if ((rest > 0.03 || rest < -0.03) && xfer > 0) fail_msg("%s: parts do not add up: %.200s", tag, p);
        read_mib += mib;
        lines++;
    }
    if (lines != n_gen) fail_msg("%s: %d --verbose lines for %d tokens: %s", tag, lines, n_gen, err);
    return read_mib;
}

/* The JSON line's io_stall_s (the engine's wait for streamed weights, summed by the
 * scheduler over the request's steps) and io_stall_s_per_token, at a budget; with
 * --verbose, whose lines are checked too. */
static double run_io_stall(const char *tag, const char *budget) {
    const char *a[] = {"run", "--model", g_tiny, "--prompt", "Once upon", "--seed", "1", "--max-tokens", "8",
                       "--json", "--verbose", budget ? "--mem-budget" : NULL, budget, NULL};
    shm_list before;
    shm_snapshot(&before);
    proc p = start("lmlaunch", tag, a);
    int rc = finish(&p, 50);
    char *out = slurp(p.out, NULL), *err = slurp(p.err, NULL);
    if (rc != 0) fail_msg("%s: exit %d: %s", tag, rc, err);
    assert_clean(p.pid, &before);
    const char *line = strstr(out, "\n{");
    json_object *j = line ? json_tokener_parse(line + 1) : NULL, *v = NULL, *per = NULL, *ng = NULL;
    if (!j) fail_msg("%s: no JSON line: %s", tag, out);
    if (!json_object_object_get_ex(j, "io_stall_s", &v) || !json_object_object_get_ex(j, "io_stall_s_per_token", &per) ||
        !json_object_object_get_ex(j, "n_generated", &ng))
        fail_msg("%s: no io_stall_s / io_stall_s_per_token in %s", tag, line + 1);
    double stall = json_object_get_double(v), per_tok = json_object_get_double(per);
    int n_gen = json_object_get_int(ng);
    if (!(stall >= 0.0) || !(per_tok >= 0.0)) fail_msg("%s: negative stall in %s", tag, line + 1);
    assert_true(n_gen > 0);
    double d = per_tok * n_gen - stall;
    if (d < -1e-9 - 1e-6 * stall || d > 1e-9 + 1e-6 * stall) fail_msg("%s: per token * n_generated != io_stall_s", tag);
    if (!g_stubs) {
        double mib = verbose_lines(tag, err, n_gen);
        /* streaming re-reads pieces every step; all resident reads only embedding rows */
        if (budget && !(mib > 0.5)) fail_msg("%s: %.2f MiB read while streaming", tag, mib);
    }
    json_object_put(j);
    free(out);
    free(err);
    return stall;
}

/* A budget just above the tiny model's minimum (1.7 MiB; all resident: 2.0 MiB) streams
 * pieces: io_stall_s is reported (>= 0); with no budget every piece is pinned: 0. */
static void test_run_io_stall(void **state) {
    (void)state;
    double streamed = run_io_stall("stall-streamed", "1800K");
    double resident = run_io_stall("stall-resident", NULL);
    assert_true(streamed >= 0.0);
    if (resident != 0.0) fail_msg("all resident: io_stall_s %g, want 0", resident);
}

/* ---- crash ------------------------------------------------------------------------ */

/* Starts a generation of max_tokens and returns once its first text has arrived. */
static proc start_generation(const char *tag, const char *max_tokens) {
    const char *a[] = {"run", "--model", big_model(), "--prompt", "Hello", "--temperature", "1", "--seed", "1",
                       "--max-tokens", max_tokens, NULL};
    setenv("LMM_STUB_TOKEN_DELAY_MS", "40", 1); /* the stand-in scheduler only */
    proc p = start("lmlaunch", tag, a);
    unsetenv("LMM_STUB_TOKEN_DELAY_MS");
    double t0 = now_s();
    while (file_size(p.out) == 0) {
        int st;
        if (waitpid(p.pid, &st, WNOHANG) == p.pid) {
            char *err = slurp(p.err, NULL);
            fail_msg("lmlaunch ended before generating: %s", err);
        }
        if (now_s() - t0 > 40) {
            kill(p.pid, SIGKILL);
            fail_msg("no token within 40 s");
        }
        sleep_ms(5);
    }
    return p;
}

/* A long generation (250 tokens). */
static proc start_long(const char *tag) { return start_generation(tag, "250"); }

/* SIGINT to lmlaunch alone, then to its whole process group (Ctrl-C at a terminal). */
static void test_sigint(void **state) {
    (void)state;
    for (int whole_group = 0; whole_group < 2; whole_group++) {
        shm_list before;
        shm_snapshot(&before);
        proc p = start_long(whole_group ? "sigint-group" : "sigint");
        kill(whole_group ? -p.pid : p.pid, SIGINT);
        double t0 = now_s();
        int rc = finish(&p, 15);
        double dt = now_s() - t0;
        char *err = slurp(p.err, NULL);
        if (rc != 130) fail_msg("exit %d after SIGINT: %s", rc, err);
        if (dt > 5.0) fail_msg("took %.1f s to stop after SIGINT", dt);
        if (!strstr(err, "interrupted")) fail_msg("stderr: %s", err);
        assert_clean(p.pid, &before);
        free(err);
    }
}

/* The output of `run --in-process` with start_long's arguments (computed once). */
static const char *long_reference(void) {
    static char out[800];
    if (out[0]) return out;
    const char *a[] = {"run", "--in-process", "--model", big_model(), "--prompt", "Hello", "--temperature", "1",
                       "--seed", "1", "--max-tokens", "250", NULL};
    proc q = start("lmlaunch", "long-inproc", a);
    assert_int_equal(finish(&q, 60), 0);
    snprintf(out, sizeof out, "%s", q.out);
    return out;
}

/* kill -9 of one service of `lmlaunch run` mid-generation: lmlaunch restarts it
 * (docs/operations.md, "Supervision"), the scheduler repairs the group (docs/
 * process-group.md, "Recovery"), and the run ends 0 with exactly the text of
 * `run --in-process`. With the stand-ins: the restart line and no leak only. */
static void kill_service(const char *comm, const char *name) {
    const char *ref = g_stubs ? NULL : long_reference();
    shm_list before;
    shm_snapshot(&before);
    proc p = start_long(name);
    pid_t victim = child_named(p.pid, comm);
    if (!victim) {
        kill(p.pid, SIGKILL);
        fail_msg("no %s child of lmlaunch %d", comm, (int)p.pid);
    }
    kill(victim, SIGKILL);
    int rc = finish(&p, 60);
    char *err = slurp(p.err, NULL);
    char want[96];
    snprintf(want, sizeof want, "%s (pid %d) was killed by signal 9", name, (int)victim);
    if (!strstr(err, want) || !strstr(err, "restarting it")) fail_msg("stderr does not say '%s; ... restarting it': %s", want, err);
    if (!g_stubs) {
        if (rc != 0) fail_msg("exit %d after kill -9 of %s: %s", rc, name, err);
        assert_files_equal(p.out, ref);
    } else if (rc != 0 && rc != 1) {
        fail_msg("exit %d after kill -9 of %s: %s", rc, name, err);
    }
    assert_clean(p.pid, &before);
    free(err);
}

static void test_kill_loader(void **state) {
    (void)state;
    kill_service("lmm-loader", "loader");
}

static void test_kill_compute(void **state) {
    (void)state;
    kill_service("lmm-compute", "compute.0");
}

static void test_kill_cache(void **state) {
    (void)state;
    kill_service("lmm-cache", "cache");
}

/* The scheduler holds the requests: its death ends `run` at once with one line naming
 * it, and nothing is left behind. */
static void test_kill_scheduler(void **state) {
    (void)state;
    shm_list before;
    shm_snapshot(&before);
    proc p = start_long("scheduler");
    pid_t victim = child_named(p.pid, "lmm-scheduler");
    if (!victim) {
        kill(p.pid, SIGKILL);
        fail_msg("no lmm-scheduler child of lmlaunch %d", (int)p.pid);
    }
    kill(victim, SIGKILL);
    double t0 = now_s();
    int rc = finish(&p, 30);
    double dt = now_s() - t0;
    char *err = slurp(p.err, NULL);
    if (rc != 1) fail_msg("exit %d after kill -9 of the scheduler: %s", rc, err);
    if (dt > 8.0) fail_msg("took %.1f s to notice", dt);
    char want[96];
    snprintf(want, sizeof want, "scheduler (pid %d) was killed by signal 9", (int)victim);
    if (!strstr(err, want)) fail_msg("stderr does not say '%s': %s", want, err);
    assert_clean(p.pid, &before);
    free(err);
}

/* ---- up / down ------------------------------------------------------------------ */

static int free_port(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &l), 0);
    close(s);
    return ntohs(a.sin_port);
}

static void test_up_clients_down(void **state) {
    (void)state;
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", free_port());
    shm_list before;
    shm_snapshot(&before);
    const char *up[] = {"up", "--model", g_tiny, "--endpoint", ep, "--mem-budget", "256M", NULL};
    proc u = start("lmlaunch", "up", up);
    int rc = finish(&u, 50);
    char *err = slurp(u.err, NULL);
    if (rc != 0) fail_msg("up: exit %d: %s", rc, err);
    free(err);

    /* status names the services and the supervisor */
    const char *st[] = {"status", "--json", NULL};
    proc s = start("lmlaunch", "status", st);
    assert_int_equal(finish(&s, 20), 0);
    char *js = slurp(s.out, NULL);
    json_object *j = json_tokener_parse(js);
    assert_non_null(j);
    json_object *v;
    assert_true(json_object_object_get_ex(j, "launcher_pid", &v));
    pid_t sup = (pid_t)json_object_get_int64(v);
    assert_true(json_object_object_get_ex(j, "ready", &v) && json_object_get_boolean(v));
    assert_true(json_object_object_get_ex(j, "services", &v));
    assert_int_equal(json_object_array_length(v), 4);
    json_object_put(j);
    free(js);

    /* two clients at once, each the same as the in-process engine */
    char d1[700], d2[700];
    snprintf(d1, sizeof d1, "%s/c1.logits", g_tmp);
    snprintf(d2, sizeof d2, "%s/r1.logits", g_tmp);
    const char *c1[] = {"--endpoint", ep, "--prompt", "Once upon", "--max-tokens", "30", "--temperature", "0.8",
                        "--seed", "5", "--dump-logits", d1, NULL};
    const char *c2[] = {"--endpoint", ep, "--prompt", "A cat", "--max-tokens", "25", "--temperature", "0",
                        "--seed", "9", NULL};
    proc a = start("lmclient", "c1", c1), b = start("lmclient", "c2", c2);
    int ra = finish(&a, 40), rb = finish(&b, 40);
    char *ea = slurp(a.err, NULL), *eb = slurp(b.err, NULL);
    if (ra != 0 || rb != 0) fail_msg("lmclient exits %d, %d: %s / %s", ra, rb, ea, eb);
    free(ea);
    free(eb);
    const char *r1[] = {"run", "--in-process", "--model", g_tiny, "--prompt", "Once upon", "--max-tokens", "30",
                        "--temperature", "0.8", "--seed", "5", "--dump-logits", d2, NULL};
    const char *r2[] = {"run", "--in-process", "--model", g_tiny, "--prompt", "A cat", "--max-tokens", "25",
                        "--temperature", "0", "--seed", "9", NULL};
    proc x = start("lmlaunch", "r1", r1), y = start("lmlaunch", "r2", r2);
    assert_int_equal(finish(&x, 40), 0);
    assert_int_equal(finish(&y, 40), 0);
    assert_files_equal(a.out, x.out);
    assert_files_equal(b.out, y.out);
    assert_files_equal(d1, d2);

    /* down: everything gone */
    const char *dn[] = {"down", NULL};
    proc d = start("lmlaunch", "down", dn);
    rc = finish(&d, 40);
    err = slurp(d.err, NULL);
    if (rc != 0) fail_msg("down: exit %d: %s", rc, err);
    if (strstr(err, "by signal")) fail_msg("down had to use signals: %s", err);
    free(err);
    assert_false(alive(sup));
    assert_clean(sup, &before);
    char cur[700];
    snprintf(cur, sizeof cur, "%s/current", g_tmp);
    assert_int_not_equal(access(cur, F_OK), 0);

    /* nothing up any more: status and down say so */
    s = start("lmlaunch", "status2", st);
    assert_int_equal(finish(&s, 20), 1);
    /* a client with nobody at the endpoint: a clear timeout */
    const char *c3[] = {"--endpoint", ep, "--prompt", "x", "--timeout", "2", NULL};
    double t0 = now_s();
    proc c = start("lmclient", "c3", c3);
    assert_int_equal(finish(&c, 20), 1);
    assert_true(now_s() - t0 < 10);
    err = slurp(c.err, NULL);
    if (!strstr(err, "no answer")) fail_msg("lmclient stderr: %s", err);
    free(err);
}

/* Waits until `lmlaunch status --json` says ready with at least `min` restarts of `name`
 * (the supervisor rewrites group.json only once the restarted group is ready, so a
 * status in between may see the new scheduler ready and the old count); returns them. */
static int wait_ready_restarts(const char *name, int min, double secs) {
    double t_end = now_s() + secs;
    for (;;) {
        const char *st[] = {"status", "--json", NULL};
        proc s = start("lmlaunch", "status-wait", st);
        int rc = finish(&s, 20);
        char *js = slurp(s.out, NULL);
        json_object *j = rc == 0 ? json_tokener_parse(js) : NULL;
        free(js);
        json_object *v, *svcs;
        int restarts = -1;
        if (j && json_object_object_get_ex(j, "ready", &v) && json_object_get_boolean(v) &&
            json_object_object_get_ex(j, "services", &svcs))
            for (size_t i = 0; i < json_object_array_length(svcs); i++) {
                json_object *e = json_object_array_get_idx(svcs, i), *n, *r;
                if (json_object_object_get_ex(e, "name", &n) && strcmp(json_object_get_string(n), name) == 0 &&
                    json_object_object_get_ex(e, "restarts", &r))
                    restarts = (int)json_object_get_int(r);
            }
        if (j) json_object_put(j);
        if (restarts >= min) return restarts;
        if (now_s() > t_end)
            fail_msg("the group did not become ready with %d restart(s) of %s within %.0f s", min, name, secs);
        sleep_ms(100);
    }
}

/* An `up` group under fire (real services): kill -9 of compute.0 during an lmclient
 * request -> the client gets exactly the in-process text; kill -9 of the scheduler during
 * one -> the client fails at once with a clear line (never hangs), the supervisor brings
 * the whole group back, and the next client is served exactly; down leaves nothing. */
static void test_up_kill(void **state) {
    (void)state;
    if (g_stubs) skip();
    const char *ref = long_reference();
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", free_port());
    shm_list before;
    shm_snapshot(&before);
    const char *up[] = {"up", "--model", big_model(), "--endpoint", ep, NULL};
    proc u = start("lmlaunch", "up-kill", up);
    int rc = finish(&u, 50);
    char *err = slurp(u.err, NULL);
    if (rc != 0) fail_msg("up: exit %d: %s", rc, err);
    free(err);
    const char *st[] = {"status", "--json", NULL};
    proc s = start("lmlaunch", "status-kill", st);
    assert_int_equal(finish(&s, 20), 0);
    char *js = slurp(s.out, NULL);
    json_object *j = json_tokener_parse(js), *v;
    assert_non_null(j);
    assert_true(json_object_object_get_ex(j, "launcher_pid", &v));
    pid_t sup = (pid_t)json_object_get_int64(v);
    json_object_put(j);
    free(js);

    const char *c[] = {"--endpoint", ep, "--prompt", "Hello", "--temperature", "1", "--seed", "1", "--max-tokens",
                       "250", NULL};
    const char *victims[] = {"lmm-compute", "lmm-scheduler"};
    for (int k = 0; k < 2; k++) {
        proc cl = start("lmclient", k ? "client-sched" : "client-compute", c);
        double t0 = now_s();
        while (file_size(cl.out) == 0 && now_s() - t0 < 40) sleep_ms(5);
        pid_t victim = child_named(sup, victims[k]);
        assert_true(victim > 0);
        kill(victim, SIGKILL);
        double tk = now_s();
        rc = finish(&cl, 60);
        err = slurp(cl.err, NULL);
        if (k == 0) {
            if (rc != 0) fail_msg("lmclient exit %d after kill -9 of compute.0: %s", rc, err);
            assert_files_equal(cl.out, ref);
            assert_int_equal(wait_ready_restarts("compute.0", 1, 30), 1);
        } else {
            if (rc != 1) fail_msg("lmclient exit %d after kill -9 of the scheduler: %s", rc, err);
            if (now_s() - tk > 15) fail_msg("lmclient took %.1f s to give up", now_s() - tk);
            if (!strstr(err, "scheduler")) fail_msg("lmclient stderr does not name the scheduler: %s", err);
            assert_true(wait_ready_restarts("scheduler", 1, 60) >= 1);
            proc again = start("lmclient", "client-again", c);
            int ra = finish(&again, 60);
            char *ea = slurp(again.err, NULL);
            if (ra != 0) fail_msg("lmclient after the group came back: exit %d: %s", ra, ea);
            free(ea);
            assert_files_equal(again.out, ref);
        }
        free(err);
    }
    /* `lmlaunch restart` of a service of the real group, then a client: exact */
    const char *rs[] = {"restart", "loader", NULL};
    proc r = start("lmlaunch", "restart-loader", rs);
    rc = finish(&r, 60);
    char *rout = slurp(r.out, NULL), *rerr = slurp(r.err, NULL);
    if (rc != 0 || !strstr(rout, "restarted loader")) fail_msg("restart loader: exit %d: %s%s", rc, rout, rerr);
    free(rout);
    free(rerr);
    proc after = start("lmclient", "client-after-restart", c);
    rc = finish(&after, 60);
    err = slurp(after.err, NULL);
    if (rc != 0) fail_msg("lmclient after restart loader: exit %d: %s", rc, err);
    free(err);
    assert_files_equal(after.out, ref);
    const char *dn[] = {"down", NULL};
    proc d = start("lmlaunch", "down-kill", dn);
    rc = finish(&d, 40);
    err = slurp(d.err, NULL);
    if (rc != 0) fail_msg("down: exit %d: %s", rc, err);
    free(err);
    assert_false(alive(sup));
    assert_clean(sup, &before);
}

/* ---- config ---------------------------------------------------------------------- */

static void write_text(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void write_text(const char *path, const char *fmt, ...) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static void test_check_config(void **state) {
    (void)state;
    char good[700], bad[700], junk[700];
    snprintf(good, sizeof good, "%s/good.ini", g_tmp);
    /* relative: the model beside the file */
    write_text(good,
               "[model]\npath = tiny.gguf\n[budget]\nmem = 256M\nlive_kv = 1M\nctx = 128\n"
               "[services]\ncompute = 2\nloader = 1\ncache = 1\nthreads = 1\n"
               "[endpoints]\nclient = tcp://127.0.0.1:5555\n"
               "[hosts]\nnode1 = 192.168.1.10\nnode2 = box.lan:5600\n");
    const char *a[] = {"check", good, NULL};
    proc p = start("lmlaunch", "check-good", a);
    int rc = finish(&p, 20);
    char *out = slurp(p.out, NULL), *err = slurp(p.err, NULL);
    if (rc != 0 || strcmp(out, "OK\n") != 0) fail_msg("check good: exit %d, out '%s', err '%s'", rc, out, err);
    free(out);
    free(err);

    snprintf(junk, sizeof junk, "%s/junk.model", g_tmp);
    write_text(junk, "not a model\n");
    snprintf(bad, sizeof bad, "%s/bad.ini", g_tmp);
    write_text(bad,
               "[model]\n"                 /* 1 */
               "path = junk.model\n"       /* 2: does not open as a model */
               "[budget]\n"                /* 3 */
               "mem = 12 apples\n"         /* 4 */
               "[services]\n"              /* 5 */
               "compute = 0\n"             /* 6 */
               "gpus = 2\n"                /* 7 */
               "[endpoints]\n"             /* 8 */
               "client = http://x:80\n"    /* 9 */
               "[colours]\n"               /* 10 */
               "red = 1\n");               /* 11 */
    const char *b[] = {"check", bad, NULL};
    p = start("lmlaunch", "check-bad", b);
    rc = finish(&p, 20);
    out = slurp(p.out, NULL);
    err = slurp(p.err, NULL);
    assert_int_equal(rc, 1);
    assert_string_equal(out, "");
    static const char *const want[] = {":2: [model] path: ", ":4: [budget] mem: '12 apples' is not a size",
                                       ":6: [services] compute: 0", ":7: [services] gpus: unknown key",
                                       ":9: [endpoints] client: 'http://x:80' is not an endpoint",
                                       ":10: [colours]: unknown section"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        char line[1000];
        snprintf(line, sizeof line, "%s%s", bad, want[i]);
        if (!strstr(err, line)) fail_msg("no '%s' in:\n%s", line, err);
    }
    if (count_lines(err) != 6) fail_msg("expected 6 lines:\n%s", err);
    if (!strstr(err, "junk.model")) fail_msg("the model's problem does not name it:\n%s", err);
    free(out);
    free(err);

    /* the model missing; a KV budget too small for one sequence; no file at all */
    write_text(bad, "[model]\npath = gone.gguf\n");
    p = start("lmlaunch", "check-gone", b);
    assert_int_equal(finish(&p, 20), 1);
    err = slurp(p.err, NULL);
    if (!strstr(err, ":2: [model] path: ") || !strstr(err, "gone.gguf: No such file")) fail_msg("%s", err);
    free(err);
    write_text(bad, "[model]\npath = tiny.gguf\n[budget]\nlive_kv = 1K\n");
    p = start("lmlaunch", "check-kv", b);
    assert_int_equal(finish(&p, 20), 1);
    err = slurp(p.err, NULL);
    if (!strstr(err, ":4: [budget] live_kv: 1.0 KiB holds no sequence")) fail_msg("%s", err);
    free(err);
    const char *c[] = {"check", "/nonexistent/lmm.ini", NULL};
    p = start("lmlaunch", "check-none", c);
    assert_int_equal(finish(&p, 20), 1);
    err = slurp(p.err, NULL);
    if (!strstr(err, "/nonexistent/lmm.ini: cannot read it")) fail_msg("%s", err);
    free(err);
    const char *d[] = {"check", NULL};
    p = start("lmlaunch", "check-usage", d);
    assert_int_equal(finish(&p, 20), 2);
}

/* lmlaunch run --config == the same settings as flags; flags override the file. */
static void test_run_config(void **state) {
    (void)state;
    char cfg[700];
    snprintf(cfg, sizeof cfg, "%s/run.ini", g_tmp);
    write_text(cfg, "[model]\npath = %s\n[budget]\nmem = 256M\nlive_kv = 4M\n[services]\ncompute = 2\nthreads = 1\n", g_tiny);
    const char *gen[] = {"--prompt", "Once upon a time", "--temperature", "0.9", "--seed", "42", "--max-tokens", "24",
                         "--json"};
    const char *a[32], *b[32];
    int n = 0, m = 0;
    a[n++] = "run", a[n++] = "--config", a[n++] = cfg;
    b[m++] = "run", b[m++] = "--in-process", b[m++] = "--model", b[m++] = g_tiny;
    for (size_t i = 0; i < sizeof gen / sizeof *gen; i++) a[n++] = b[m++] = gen[i];
    a[n] = b[m] = NULL;
    shm_list before;
    shm_snapshot(&before);
    proc p = start("lmlaunch", "run-config", a);
    int rc = finish(&p, 50);
    char *out = slurp(p.out, NULL), *err = slurp(p.err, NULL);
    if (rc != 0) fail_msg("run --config: exit %d: %s", rc, err);
    assert_clean(p.pid, &before);
    if (!strstr(out, "\"workers\":2") || !strstr(out, "\"mem_budget\":268435456")) fail_msg("out: %s", out);
    /* the service logs come through lmlaunch's stderr (the real scheduler says how it sized the group) */
    if (!g_stubs && !strstr(err, "lmm-scheduler:")) fail_msg("no scheduler line in stderr: %s", err);
    proc q = start("lmlaunch", "run-config-inproc", b);
    assert_int_equal(finish(&q, 50), 0);
    char *ref = slurp(q.out, NULL);
    /* the same text: everything before the JSON line */
    size_t tl = (size_t)(strstr(out, "\n{") - out), rl = (size_t)(strstr(ref, "\n{") - ref);
    if (tl != rl || memcmp(out, ref, tl) != 0) fail_msg("group '%.*s' vs in-process '%.*s'", (int)tl, out, (int)rl, ref);
    free(out);
    free(err);
    free(ref);

    /* flags win: --workers 1, and --model replaces a model path that does not exist */
    write_text(cfg, "[model]\npath = missing.gguf\n[services]\ncompute = 2\n");
    const char *c[] = {"run", "--config", cfg, "--model", g_tiny, "--workers", "1", "--max-tokens", "4", "--json", NULL};
    p = start("lmlaunch", "run-config-override", c);
    rc = finish(&p, 50);
    out = slurp(p.out, NULL);
    err = slurp(p.err, NULL);
    if (rc != 0 || !strstr(out, "\"workers\":1")) fail_msg("exit %d: %s / %s", rc, out, err);
    assert_clean(p.pid, &before);
    free(out);
    free(err);

    /* a bad file: its problems, exit 1, nothing started */
    write_text(cfg, "[model]\npath = %s\n[services]\ncompute = many\n", g_tiny);
    const char *d[] = {"run", "--config", cfg, NULL};
    p = start("lmlaunch", "run-config-bad", d);
    assert_int_equal(finish(&p, 20), 1);
    err = slurp(p.err, NULL);
    char want[800];
    snprintf(want, sizeof want, "%s:4: [services] compute: 'many' is not a whole number", cfg);
    if (!strstr(err, want)) fail_msg("stderr: %s", err);
    assert_clean(p.pid, &before);
    free(err);
}

/* ---- status / logs ------------------------------------------------------------------ */

static json_object *status_json(const char *tag, int want_rc) {
    const char *st[] = {"status", "--json", NULL};
    proc s = start("lmlaunch", tag, st);
    assert_int_equal(finish(&s, 20), want_rc);
    char *js = slurp(s.out, NULL);
    json_object *j = json_tokener_parse(js);
    if (!j) fail_msg("status --json is not JSON: %s", js);
    free(js);
    return j;
}

static json_object *get(json_object *o, const char *k) {
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, k, &v)) fail_msg("no '%s' in %s", k, json_object_to_json_string(o));
    return v;
}

static void test_status_logs(void **state) {
    (void)state;
    char ep[64], cfg[700];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", free_port());
    snprintf(cfg, sizeof cfg, "%s/up.ini", g_tmp);
    write_text(cfg, "[model]\npath = %s\n[budget]\nmem = 256M\n[services]\ncompute = 2\n[endpoints]\nclient = %s\n",
               g_tiny, ep);
    shm_list before;
    shm_snapshot(&before);
    const char *up[] = {"up", "--config", cfg, NULL};
    proc u = start("lmlaunch", "up-config", up);
    int rc = finish(&u, 50);
    char *err = slurp(u.err, NULL);
    if (rc != 0) fail_msg("up --config: exit %d: %s", rc, err);
    free(err);

    /* some tokens, so that tokens/s means something */
    const char *c1[] = {"--endpoint", ep, "--prompt", "Once", "--max-tokens", "16", "--temperature", "0", NULL};
    proc cl = start("lmclient", "status-client", c1);
    assert_int_equal(finish(&cl, 40), 0);

    json_object *j = status_json("status-json", 0);
    pid_t sup = (pid_t)json_object_get_int64(get(j, "launcher_pid"));
    json_object *svcs = get(j, "services");
    assert_true(json_object_is_type(svcs, json_type_array));
    assert_int_equal(json_object_array_length(svcs), 5); /* scheduler, loader, compute.0, compute.1, cache */
    static const char *const names[] = {"scheduler", "loader", "compute.0", "compute.1", "cache"};
    for (size_t i = 0; i < 5; i++) {
        json_object *k = json_object_array_get_idx(svcs, i);
        assert_int_equal(json_object_object_length(k), 5);
        assert_string_equal(json_object_get_string(get(k, "name")), names[i]);
        assert_true(json_object_get_int64(get(k, "pid")) > 1);
        assert_string_equal(json_object_get_string(get(k, "state")), "running");
        assert_int_equal(json_object_get_int64(get(k, "restarts")), 0);
        assert_true(json_object_is_type(get(k, "rss_bytes"), json_type_int));
        assert_true(json_object_get_int64(get(k, "rss_bytes")) > 100 * 1024);
    }
    assert_true(json_object_get_boolean(get(j, "ready")));
    json_object *ring = get(j, "ring");
    assert_true(json_object_is_type(ring, json_type_object));
    assert_true(json_object_get_int64(get(ring, "slots")) >= 0);
    get(ring, "busy");
    json_object *tps = get(j, "tokens_per_s");
    assert_true(json_object_is_type(tps, json_type_double) || json_object_is_type(tps, json_type_int));
    if (!g_stubs) {
        assert_true(json_object_get_int64(get(ring, "slots")) > 0);
        assert_true(json_object_get_double(tps) > 0.0);
        assert_true(json_object_get_int64(get(j, "tokens")) >= 16);
    }
    json_object_put(j);

    /* the plain table names each service and its state */
    const char *plain[] = {"status", NULL};
    proc s = start("lmlaunch", "status-plain", plain);
    assert_int_equal(finish(&s, 20), 0);
    char *out = slurp(s.out, NULL);
    if (!strstr(out, "compute.1") || !strstr(out, "running") || !strstr(out, "RSS")) fail_msg("status: %s", out);
    free(out);

    /* logs: each service's log; an unknown service lists the ones there are */
    const char *lg[] = {"logs", "scheduler", NULL};
    s = start("lmlaunch", "logs-scheduler", lg);
    assert_int_equal(finish(&s, 20), 0);
    out = slurp(s.out, NULL);
    if (!g_stubs && !strstr(out, "lmm-scheduler:")) fail_msg("logs scheduler: '%s'", out);
    free(out);
    const char *lg2[] = {"logs", "lmlaunch", NULL};
    s = start("lmlaunch", "logs-lmlaunch", lg2);
    assert_int_equal(finish(&s, 20), 0);
    out = slurp(s.out, NULL);
    if (!strstr(out, "group ready")) fail_msg("logs lmlaunch: '%s'", out);
    free(out);
    const char *lg3[] = {"logs", "nosuch", NULL};
    s = start("lmlaunch", "logs-nosuch", lg3);
    assert_int_equal(finish(&s, 20), 1);
    err = slurp(s.err, NULL);
    if (!strstr(err, "no log for 'nosuch'") || !strstr(err, "compute.1")) fail_msg("logs nosuch: %s", err);
    free(err);
    const char *lg4[] = {"logs", "../etc/passwd", NULL};
    s = start("lmlaunch", "logs-path", lg4);
    assert_int_equal(finish(&s, 20), 2);

    const char *dn[] = {"down", NULL};
    proc d = start("lmlaunch", "down-config", dn);
    assert_int_equal(finish(&d, 40), 0);
    assert_false(alive(sup));
    assert_clean(sup, &before);
    j = status_json("status-down", 1);
    assert_false(json_object_get_boolean(get(j, "up")));
    json_object_put(j);
}

/* ---- profile ---------------------------------------------------------------------- */

static void test_profile(void **state) {
    (void)state;
    char prof[700];
    snprintf(prof, sizeof prof, "%s/profile.json", g_tmp);
    const char *a[] = {"run", "--model", g_tiny, "--workers", "2", "--prompt", "Once upon", "--max-tokens", "12",
                       "--profile", prof, NULL};
    shm_list before;
    shm_snapshot(&before);
    proc p = start("lmlaunch", "profile", a);
    int rc = finish(&p, 50);
    char *err = slurp(p.err, NULL);
    if (rc != 0) fail_msg("run --profile: exit %d: %s", rc, err);
    if (!strstr(err, "profile written to")) fail_msg("stderr: %s", err);
    free(err);
    assert_clean(p.pid, &before);

    json_object *root = json_object_from_file(prof);
    if (!root) fail_msg("%s does not parse: %s", prof, json_util_get_last_err());
    json_object *evs = get(root, "traceEvents");
    size_t n = json_object_array_length(evs);
    /* process names by pid, then events per process */
    static const char *const procs[] = {"lmlaunch", "scheduler", "loader", "compute.0", "compute.1", "cache"};
    enum { NP = 6 };
    int64_t pid_of[NP] = {0};
    int events[NP] = {0}, loads = 0, load_ends = 0, tokens = 0, requests = 0;
    int layers[2] = {0}, csteps = 0, ssteps = 0, samples = 0, heads = 0;
    bool layer_seen[64] = {false};
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(evs, i);
        if (strcmp(json_object_get_string(get(e, "ph")), "M") || strcmp(json_object_get_string(get(e, "name")), "process_name"))
            continue;
        const char *pn = json_object_get_string(get(get(e, "args"), "name"));
        for (int k = 0; k < NP; k++)
            if (!strcmp(pn, procs[k])) pid_of[k] = json_object_get_int64(get(e, "pid"));
    }
    for (int k = 0; k < NP; k++)
        if (!pid_of[k]) fail_msg("no process named %s in the trace", procs[k]);
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(evs, i);
        const char *ph = json_object_get_string(get(e, "ph")), *name = json_object_get_string(get(e, "name"));
        if (!strcmp(ph, "M")) continue;
        assert_true(json_object_get_int64(get(e, "ts")) > 0);
        if (!strcmp(ph, "X")) assert_true(json_object_get_int64(get(e, "dur")) >= 0);
        int64_t pid = json_object_get_int64(get(e, "pid"));
        for (int k = 0; k < NP; k++)
            if (pid == pid_of[k]) events[k]++;
        if (pid == pid_of[2] && !strcmp(name, "load")) {
            json_object *args = get(e, "args");
            assert_true(json_object_get_int64(get(args, "bytes")) > 0);
            if (!strcmp(ph, "b")) loads++;
            if (!strcmp(ph, "e")) load_ends++;
        }
        if (pid == pid_of[0] && !strcmp(ph, "X") && strstr(name, "token")) tokens++;
        if (pid == pid_of[0] && !strcmp(name, "request")) requests++;
        /* the scheduler's and the workers' spans (docs/operations.md "Span names") */
        if (strcmp(ph, "X") != 0) continue;
        const char *cat = json_object_get_string(get(e, "cat"));
        for (int w = 0; w < 2; w++)
            if (pid == pid_of[3 + w] && !strcmp(cat, "compute")) {
                if (!strcmp(name, "layer")) {
                    layers[w]++;
                    int64_t l = json_object_get_int64(get(get(e, "args"), "layer"));
                    assert_true(l >= 0 && l < 64);
                    layer_seen[l] = true;
                    assert_true(json_object_get_int64(get(get(e, "args"), "tokens")) >= 1);
                }
                if (!strcmp(name, "step")) csteps++;
                if (!strcmp(name, "head")) {
                    assert_int_equal(w, 1); /* the last worker runs the head */
                    heads++;
                }
            }
        if (pid == pid_of[1] && !strcmp(cat, "sched") && !strcmp(name, "step")) ssteps++;
        if (pid == pid_of[1] && !strcmp(cat, "sched") && !strcmp(name, "sample")) samples++;
    }
    if (!g_stubs) {
        /* both workers ran layers (each its own range), every step shows in the scheduler */
        if (layers[0] == 0 || layers[1] == 0) fail_msg("layer spans: compute.0 %d, compute.1 %d", layers[0], layers[1]);
        if (!layer_seen[0]) fail_msg("no layer span for layer 0");
        if (ssteps < 2 || csteps < 2 * ssteps || samples != ssteps || heads != ssteps)
            fail_msg("spans: scheduler %d steps, %d samples; compute %d steps, %d heads", ssteps, samples, csteps,
                     heads);
    }
    for (int k = 0; k < NP; k++)
        if (events[k] == 0) fail_msg("no event from %s", procs[k]);
    if (loads == 0 || loads != load_ends) fail_msg("loader: %d load begins, %d ends", loads, load_ends);
    assert_int_equal(requests, 1);
    assert_true(tokens >= 1 && tokens <= 13);
    json_object_put(root);
}

/* lmlaunch profile on a group up with --trace: profile --seconds 2 while one lmclient
 * request runs -> FILE parses (json-c), has events from every service (the request's
 * spans among them), and none that ended before the profile began; then down. */
static void test_profile_up(void **state) {
    (void)state;
    if (g_stubs) skip(); /* the stand-ins neither trace nor take SIGUSR2 */
    char ep[64], prof[700];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", free_port());
    snprintf(prof, sizeof prof, "%s/profile-up.json", g_tmp);
    shm_list before;
    shm_snapshot(&before);
    const char *up[] = {"up", "--model", g_tiny, "--endpoint", ep, "--workers", "2", "--trace", NULL};
    proc u = start("lmlaunch", "up-trace", up);
    int rc = finish(&u, 50);
    char *err = slurp(u.err, NULL);
    if (rc != 0) fail_msg("up --trace: exit %d: %s", rc, err);
    free(err);

    /* a group up without --trace cannot be profiled: checked on this one's group.json below */
    const char *pa[] = {"profile", "--out", prof, "--seconds", "2", NULL};
    double t0 = now_s();
    proc p = start("lmlaunch", "profile-up", pa);
    sleep_ms(300);
    const char *c1[] = {"--endpoint", ep, "--prompt", "Once", "--max-tokens", "6", "--temperature", "0", NULL};
    proc cl = start("lmclient", "profile-client", c1);
    assert_int_equal(finish(&cl, 40), 0);
    rc = finish(&p, 30);
    err = slurp(p.err, NULL);
    if (rc != 0) fail_msg("profile: exit %d: %s", rc, err);
    if (!strstr(err, "profile written to")) fail_msg("profile stderr: %s", err);
    free(err);
    assert_true(now_s() - t0 >= 1.9); /* it recorded for the seconds asked */

    json_object *root = json_object_from_file(prof);
    if (!root) fail_msg("%s does not parse: %s", prof, json_util_get_last_err());
    json_object *evs = get(root, "traceEvents");
    size_t n = json_object_array_length(evs);
    static const char *const procs[] = {"scheduler", "loader", "compute.0", "compute.1", "cache"};
    enum { NP = 5 };
    int64_t pid_of[NP] = {0};
    int events[NP] = {0}, generates = 0, layers = 0;
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(evs, i);
        if (strcmp(json_object_get_string(get(e, "ph")), "M") || strcmp(json_object_get_string(get(e, "name")), "process_name"))
            continue;
        const char *pn = json_object_get_string(get(get(e, "args"), "name"));
        for (int k = 0; k < NP; k++)
            if (!strcmp(pn, procs[k])) pid_of[k] = json_object_get_int64(get(e, "pid"));
    }
    for (int k = 0; k < NP; k++)
        if (!pid_of[k]) fail_msg("no process named %s in the profile", procs[k]);
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(evs, i);
        const char *ph = json_object_get_string(get(e, "ph")), *name = json_object_get_string(get(e, "name"));
        if (!strcmp(ph, "M")) continue;
        int64_t pid = json_object_get_int64(get(e, "pid"));
        for (int k = 0; k < NP; k++)
            if (pid == pid_of[k]) events[k]++;
        if (pid == pid_of[0] && !strcmp(name, "recv GENERATE")) generates++;
        if ((pid == pid_of[2] || pid == pid_of[3]) && !strcmp(name, "layer")) layers++;
    }
    for (int k = 0; k < NP; k++)
        if (events[k] == 0) fail_msg("no event from %s in the profile", procs[k]);
    assert_int_equal(generates, 1);
    assert_true(layers >= 2);
    json_object_put(root);

    const char *dn[] = {"down", NULL};
    proc d = start("lmlaunch", "down-trace", dn);
    assert_int_equal(finish(&d, 40), 0);
    assert_clean(u.pid, &before);
}

/* lmlaunch profile refuses a group that does not record. */
static void test_profile_untraced(void **state) {
    (void)state;
    char ep[64], prof[700];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", free_port());
    snprintf(prof, sizeof prof, "%s/profile-none.json", g_tmp);
    const char *up[] = {"up", "--model", g_tiny, "--endpoint", ep, NULL};
    proc u = start("lmlaunch", "up-notrace", up);
    assert_int_equal(finish(&u, 50), 0);
    const char *pa[] = {"profile", "--out", prof, "--seconds", "1", NULL};
    proc p = start("lmlaunch", "profile-none", pa);
    int rc = finish(&p, 30);
    char *err = slurp(p.err, NULL);
    if (rc != 1 || !strstr(err, "up --trace")) fail_msg("profile of an untraced group: exit %d: %s", rc, err);
    free(err);
    assert_true(access(prof, F_OK) != 0);
    const char *dn[] = {"down", NULL};
    proc d = start("lmlaunch", "down-notrace", dn);
    assert_int_equal(finish(&d, 40), 0);
}

/* ---- supervise / restart (stand-ins: they take a restarted service's HELLO) ------- */

static int setup_stubs(void **state) {
    setenv("LMM_LAUNCH_TEST_STUBS", "1", 1);
    return setup(state);
}

/* After the group's tests: a group a failed test left up is taken down. */
static int teardown_down(void **state) {
    const char *dn[] = {"down", NULL};
    proc d = start("lmlaunch", "teardown-down", dn);
    finish(&d, 40);
    return teardown(state);
}

/* A process of launcher named comm other than old, waiting up to secs; 0 if none came. */
static pid_t wait_new_child(pid_t launcher, const char *comm, pid_t old, double secs) {
    for (double t0 = now_s(); now_s() - t0 < secs; sleep_ms(20)) {
        pid_t p = child_named(launcher, comm);
        if (p && p != old) return p;
    }
    return 0;
}

/* status --json [--run-dir DIR]: the service named name, polled until pred holds (up to
 * secs); returns its pid and restarts. */
typedef struct {
    pid_t pid;
    int restarts;
    bool ready;
} svc_state;

static svc_state status_of(const char *tag, const char *run_dir, const char *name) {
    const char *st[] = {"status", "--json", run_dir ? "--run-dir" : NULL, run_dir, NULL};
    proc s = start("lmlaunch", tag, st);
    int rc = finish(&s, 20);
    char *js = slurp(s.out, NULL);
    json_object *j = json_tokener_parse(js);
    if (rc != 0 || !j) fail_msg("status --json: exit %d: %s", rc, js);
    svc_state r = {0, -1, false};
    json_object *svcs = get(j, "services"), *rd = get(j, "ready");
    r.ready = json_object_get_boolean(rd);
    for (size_t i = 0; i < json_object_array_length(svcs); i++) {
        json_object *k = json_object_array_get_idx(svcs, i);
        if (strcmp(json_object_get_string(get(k, "name")), name) != 0) continue;
        r.pid = (pid_t)json_object_get_int64(get(k, "pid"));
        r.restarts = (int)json_object_get_int64(get(k, "restarts"));
        if (strcmp(json_object_get_string(get(k, "state")), "running") != 0) r.pid = 0;
    }
    json_object_put(j);
    free(js);
    return r;
}

/* Polls status until name runs as a pid other than old with `restarts` restarts and the
 * group is ready. */
static svc_state wait_restarted(const char *run_dir, const char *name, pid_t old, int restarts, double secs) {
    svc_state r = {0, -1, false};
    for (double t0 = now_s(); now_s() - t0 < secs; sleep_ms(100)) {
        r = status_of("status-wait", run_dir, name);
        if (r.pid > 1 && r.pid != old && r.restarts == restarts && r.ready) return r;
    }
    fail_msg("%s: pid %d (was %d), %d restarts (want %d), ready %d after %.0f s", name, (int)r.pid, (int)old,
             r.restarts, restarts, r.ready, secs);
    return r;
}

/* run: the loader killed mid-generation is restarted (one line on stderr, a new pid and
 * restarts 1 in status), and the run goes on to the end. */
static void test_run_restarts_service(void **state) {
    (void)state;
    shm_list before;
    shm_snapshot(&before);
    proc p = start_generation("sup-run", "100");
    char run_dir[64];
    snprintf(run_dir, sizeof run_dir, "/tmp/lmm-%d", (int)p.pid);
    pid_t victim = child_named(p.pid, "lmm-loader");
    assert_true(victim > 1);
    svc_state s0 = status_of("sup-status0", run_dir, "loader");
    assert_int_equal(s0.pid, victim);
    assert_int_equal(s0.restarts, 0);
    kill(victim, SIGKILL);
    pid_t fresh = wait_new_child(p.pid, "lmm-loader", victim, 10);
    if (!fresh) fail_msg("the loader was not restarted: %s", slurp(p.err, NULL));
    wait_restarted(run_dir, "loader", victim, 1, 10);
    int rc = finish(&p, 40);
    char *err = slurp(p.err, NULL);
    if (rc != 0) fail_msg("exit %d after the loader's restart: %s", rc, err);
    char want[160];
    snprintf(want, sizeof want, "lmlaunch: loader (pid %d) was killed by signal 9 (Killed); restarting it (restart 1)",
             (int)victim);
    if (!strstr(err, want)) fail_msg("stderr does not say '%s': %s", want, err);
    assert_clean(p.pid, &before);
    free(err);
}

/* run: compute.0 killed 6 times within 60 s -> the crash-loop limit: exit 1 with one line,
 * nothing left behind. */
static void test_run_crash_loop(void **state) {
    (void)state;
    shm_list before;
    shm_snapshot(&before);
    proc p = start_generation("sup-loop", "400");
    pid_t victim = 0;
    for (int i = 0; i < 6; i++) {
        pid_t next = wait_new_child(p.pid, "lmm-compute", victim, 10);
        if (!next) fail_msg("kill %d: compute.0 was not restarted: %s", i, slurp(p.err, NULL));
        victim = next;
        kill(victim, SIGKILL);
    }
    double t0 = now_s();
    int rc = finish(&p, 30);
    char *err = slurp(p.err, NULL);
    if (rc != 1) fail_msg("exit %d after a crash loop: %s", rc, err);
    if (now_s() - t0 > 8.0) fail_msg("took %.1f s to give up", now_s() - t0);
    if (!strstr(err, "lmlaunch: compute.0 keeps crashing (6 times in 60 s; last: killed by signal 9); stopping the group"))
        fail_msg("stderr: %s", err);
    if (!strstr(err, "restarting it (restart 5)") || strstr(err, "(restart 6)")) fail_msg("stderr: %s", err);
    assert_clean(p.pid, &before);
    free(err);
}

static int run_client(const char *tag, const char *ep) {
    const char *c[] = {"--endpoint", ep, "--prompt", "Once", "--max-tokens", "8", "--temperature", "0", NULL};
    proc cl = start("lmclient", tag, c);
    return finish(&cl, 40);
}

/* up: `lmlaunch restart SERVICE`, services and the scheduler killed, down. */
static void test_up_restart(void **state) {
    (void)state;
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", free_port());
    shm_list before;
    shm_snapshot(&before);
    const char *up[] = {"up", "--model", g_tiny, "--endpoint", ep, NULL};
    proc u = start("lmlaunch", "up-restart", up);
    int rc = finish(&u, 50);
    char *err = slurp(u.err, NULL);
    if (rc != 0) fail_msg("up: exit %d: %s", rc, err);
    free(err);
    json_object *j = status_json("restart-status0", 0);
    pid_t sup = (pid_t)json_object_get_int64(get(j, "launcher_pid"));
    json_object_put(j);

    /* restart loader: a new pid, restarts 1 */
    svc_state l0 = status_of("restart-l0", NULL, "loader");
    assert_true(l0.pid > 1);
    const char *rl[] = {"restart", "loader", NULL};
    proc r = start("lmlaunch", "restart-loader", rl);
    rc = finish(&r, 40);
    char *out = slurp(r.out, NULL);
    err = slurp(r.err, NULL);
    if (rc != 0) fail_msg("restart loader: exit %d: %s", rc, err);
    svc_state l1 = status_of("restart-l1", NULL, "loader");
    char want[160];
    snprintf(want, sizeof want, "restarted loader (pid %d -> %d)\n", (int)l0.pid, (int)l1.pid);
    if (strcmp(out, want) != 0) fail_msg("restart loader said '%s', want '%s'", out, want);
    assert_true(l1.pid != l0.pid);
    assert_int_equal(l1.restarts, 1);
    assert_true(l1.ready);
    free(out);
    free(err);

    /* restart cache: its log is appended to (the cache says where its blocks are at start) */
    const char *rc_[] = {"restart", "cache", NULL};
    r = start("lmlaunch", "restart-cache", rc_);
    assert_int_equal(finish(&r, 40), 0);
    const char *lc[] = {"logs", "cache", NULL};
    int starts = 0;
    for (double t0 = now_s(); starts < 2 && now_s() - t0 < 10; sleep_ms(50)) { /* the new one says it soon */
        r = start("lmlaunch", "restart-cache-log", lc);
        assert_int_equal(finish(&r, 20), 0);
        out = slurp(r.out, NULL);
        starts = 0;
        for (const char *p = strstr(out, " blocks of "); p; p = strstr(p + 1, " blocks of ")) starts++;
        if (starts < 2 && now_s() - t0 >= 9.9) fail_msg("the cache's log after a restart: %s", out);
        free(out);
    }

    /* an unknown service: exit 2 listing the services */
    const char *rn[] = {"restart", "compute.7", NULL};
    r = start("lmlaunch", "restart-nosuch", rn);
    assert_int_equal(finish(&r, 20), 2);
    err = slurp(r.err, NULL);
    if (!strstr(err, "unknown service 'compute.7'") || !strstr(err, "scheduler, loader, compute.0, cache"))
        fail_msg("restart compute.7: %s", err);
    free(err);

    /* compute.0 killed: restarted by the supervisor */
    svc_state c0 = status_of("restart-c0", NULL, "compute.0");
    kill(c0.pid, SIGKILL);
    wait_restarted(NULL, "compute.0", c0.pid, 1, 15);
    assert_int_equal(run_client("restart-client1", ep), 0);

    /* the scheduler killed: the whole group restarted, same endpoint */
    svc_state s0 = status_of("restart-s0", NULL, "scheduler");
    kill(s0.pid, SIGKILL);
    svc_state s1 = wait_restarted(NULL, "scheduler", s0.pid, 1, 30);
    assert_int_equal(run_client("restart-client2", ep), 0);

    /* restart scheduler: asked for, the whole group again */
    const char *rs[] = {"restart", "scheduler", NULL};
    r = start("lmlaunch", "restart-scheduler", rs);
    rc = finish(&r, 50);
    out = slurp(r.out, NULL);
    err = slurp(r.err, NULL);
    if (rc != 0) fail_msg("restart scheduler: exit %d: %s", rc, err);
    svc_state s2 = status_of("restart-s2", NULL, "scheduler");
    snprintf(want, sizeof want, "restarted scheduler (pid %d -> %d)\n", (int)s1.pid, (int)s2.pid);
    if (strcmp(out, want) != 0) fail_msg("restart scheduler said '%s', want '%s'", out, want);
    assert_int_equal(s2.restarts, 2);
    free(out);
    free(err);
    assert_int_equal(run_client("restart-client3", ep), 0);

    /* the supervisor's log tells the story */
    const char *lg[] = {"logs", "lmlaunch", NULL};
    r = start("lmlaunch", "restart-log", lg);
    assert_int_equal(finish(&r, 20), 0);
    out = slurp(r.out, NULL);
    snprintf(want, sizeof want, "compute.0 (pid %d) was killed by signal 9 (Killed); restarting it (restart 1)",
             (int)c0.pid);
    if (!strstr(out, want) || !strstr(out, "restarting the group (restart 1)") ||
        !strstr(out, "restarting the group (`lmlaunch restart scheduler`)"))
        fail_msg("lmlaunch.log: %s", out);
    free(out);

    const char *dn[] = {"down", NULL};
    proc d = start("lmlaunch", "down-restart", dn);
    rc = finish(&d, 40);
    err = slurp(d.err, NULL);
    if (rc != 0 || strstr(err, "by signal")) fail_msg("down: exit %d: %s", rc, err);
    free(err);
    assert_false(alive(sup));
    assert_clean(sup, &before);

    /* no group: exit 1, saying so */
    r = start("lmlaunch", "restart-none", rl);
    assert_int_equal(finish(&r, 20), 1);
    err = slurp(r.err, NULL);
    if (!strstr(err, "no group is up")) fail_msg("restart without a group: %s", err);
    free(err);
}

/* up: the cache killed 6 times within 60 s -> the supervisor gives up and stops the group;
 * status says why (until down), nothing is left behind. */
static void test_up_crash_loop(void **state) {
    (void)state;
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", free_port());
    shm_list before;
    shm_snapshot(&before);
    const char *up[] = {"up", "--model", g_tiny, "--endpoint", ep, NULL};
    proc u = start("lmlaunch", "up-loop", up);
    assert_int_equal(finish(&u, 50), 0);
    json_object *j = status_json("loop-status0", 0);
    pid_t sup = (pid_t)json_object_get_int64(get(j, "launcher_pid"));
    json_object_put(j);
    pid_t victim = 0;
    for (int i = 0; i < 6; i++) {
        pid_t next = wait_new_child(sup, "lmm-cache", victim, 10);
        if (!next) fail_msg("kill %d: the cache was not restarted", i);
        victim = next;
        kill(victim, SIGKILL);
    }
    for (double t0 = now_s(); alive(sup) && now_s() - t0 < 15; sleep_ms(20)) {
    }
    assert_false(alive(sup));
    assert_clean(sup, &before);
    const char *want = "its supervisor stopped it: cache keeps crashing (6 times in 60 s; last: killed by signal 9)";
    const char *st[] = {"status", NULL};
    proc s = start("lmlaunch", "loop-status1", st);
    assert_int_equal(finish(&s, 20), 1);
    char *err = slurp(s.err, NULL);
    if (!strstr(err, want)) fail_msg("status after a crash loop: %s", err);
    free(err);
    j = status_json("loop-status2", 1);
    if (!strstr(json_object_get_string(get(j, "stopped")), "cache keeps crashing")) fail_msg("status --json");
    json_object_put(j);
    /* down forgets it */
    const char *dn[] = {"down", NULL};
    proc d = start("lmlaunch", "loop-down", dn);
    assert_int_equal(finish(&d, 20), 1);
    s = start("lmlaunch", "loop-status3", st);
    assert_int_equal(finish(&s, 20), 1);
    err = slurp(s.err, NULL);
    if (strstr(err, "keeps crashing")) fail_msg("status after down: %s", err);
    free(err);
}

int main(int argc, char **argv) {
    const struct CMUnitTest run[] = {
        cmocka_unit_test(test_missing_model),
        cmocka_unit_test(test_run_synth),
        cmocka_unit_test(test_run_stories),
        cmocka_unit_test(test_run_io_stall),
    };
    const struct CMUnitTest crash[] = {
        cmocka_unit_test(test_sigint),
        cmocka_unit_test(test_kill_loader),
        cmocka_unit_test(test_kill_compute),
        cmocka_unit_test(test_kill_cache),
        cmocka_unit_test(test_kill_scheduler),
    };
    const struct CMUnitTest updown[] = {
        cmocka_unit_test(test_up_clients_down),
        cmocka_unit_test(test_up_kill),
    };
    const struct CMUnitTest config[] = {
        cmocka_unit_test(test_check_config),
        cmocka_unit_test(test_run_config),
    };
    const struct CMUnitTest status[] = {
        cmocka_unit_test(test_status_logs),
    };
    const struct CMUnitTest profile[] = {
        cmocka_unit_test(test_profile),
        cmocka_unit_test(test_profile_up),
        cmocka_unit_test(test_profile_untraced),
    };
    const struct CMUnitTest supervise[] = {
        cmocka_unit_test(test_run_restarts_service),
        cmocka_unit_test(test_run_crash_loop),
    };
    const struct CMUnitTest restart[] = {
        cmocka_unit_test(test_up_restart),
        cmocka_unit_test(test_up_crash_loop),
    };
    const char *which = argc > 1 ? argv[1] : "all";
    int rc = 0;
    if (!strcmp(which, "run") || !strcmp(which, "all")) rc |= cmocka_run_group_tests_name("launch_run", run, setup, teardown);
    if (!strcmp(which, "crash") || !strcmp(which, "all"))
        rc |= cmocka_run_group_tests_name("launch_crash", crash, setup, teardown);
    if (!strcmp(which, "updown") || !strcmp(which, "all"))
        rc |= cmocka_run_group_tests_name("launch_updown", updown, setup, teardown);
    if (!strcmp(which, "config") || !strcmp(which, "all"))
        rc |= cmocka_run_group_tests_name("launch_config", config, setup, teardown);
    if (!strcmp(which, "status") || !strcmp(which, "all"))
        rc |= cmocka_run_group_tests_name("launch_status", status, setup, teardown);
    if (!strcmp(which, "profile") || !strcmp(which, "all"))
        rc |= cmocka_run_group_tests_name("launch_profile", profile, setup, teardown);
    /* the stand-ins: they take a restarted service's HELLO whatever the real scheduler does */
    if (!strcmp(which, "supervise") || !strcmp(which, "all"))
        rc |= cmocka_run_group_tests_name("launch_supervise", supervise, setup_stubs, teardown);
    if (!strcmp(which, "restart") || !strcmp(which, "all"))
        rc |= cmocka_run_group_tests_name("launch_restart", restart, setup_stubs, teardown_down);
    return rc;
}
