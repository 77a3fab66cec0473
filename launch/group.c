/* launch/group.c — start, watch, restart, stop and clean up the process group
 * (launch/group.h).
 *
 * Cleanup is the point of this file: whatever happens (normal end, Ctrl-C, a child
 * crashing, the scheduler hanging), group_stop() leaves no child process, no
 * /dev/shm/lmm-<child pid>-* segment and no RUN directory behind. Supervision
 * (group_check once the group is ready): a dead service is started again with the
 * command line it had, after the backoff of supervise.h; a reaped child's segments are
 * unlinked at once, so restarts leak nothing either. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "group.h"
#include "lmlaunch.h"
#include "lmm/error.h"
#include "lmm/shm_ring.h"

/* ---- signals ------------------------------------------------------------------- */

static void on_sigchld(int sig) { (void)sig; }

static volatile sig_atomic_t g_restart_signal; /* SIGUSR1: RUN/restart.<name> waits */
static void on_sigusr1(int sig) {
    (void)sig;
    g_restart_signal = 1;
}

void group_signals_install(void) {
    lmm_service_signals_install(); /* SIGINT/SIGTERM/SIGHUP -> lmm_service_stopping() */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigchld;    /* only to interrupt zmq_poll/nanosleep: EINTR */
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    sa.sa_handler = on_sigusr1;    /* `lmlaunch restart SERVICE` (group_check takes the request) */
    sa.sa_flags = 0;
    sigaction(SIGUSR1, &sa, NULL);
}

int group_stop_signal(void) { return lmm_service_stop_signal(); }

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* SIGCHLD cuts it short: fine */
}

/* ---- /proc and /dev/shm helpers ------------------------------------------------ */

uint64_t group_proc_start_time(pid_t pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
    if (!p) return 0;
    p += 2;                      /* field 3: state */
    if (*p == 'Z' || *p == 'X') return 0;
    for (int field = 3; field < 22 && p; field++) {
        p = strchr(p, ' ');
        if (p) p++;
    }
    return p ? strtoull(p, NULL, 10) : 0;
}

bool group_pid_is(pid_t pid, uint64_t start_time) {
    if (pid <= 1) return false;
    uint64_t st = group_proc_start_time(pid);
    return st != 0 && (start_time == 0 || st == start_time);
}

void group_unlink_segments_of(pid_t pid) {
    char prefix[32];
    int n = snprintf(prefix, sizeof prefix, "lmm-%d-", (int)pid);
    DIR *d = opendir("/dev/shm");
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, prefix, (size_t)n) == 0) unlinkat(dirfd(d), de->d_name, 0);
    closedir(d);
}

void group_remove_dir(const char *dir) {
    if (!dir || !*dir) return;
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
            unlinkat(dirfd(d), de->d_name, 0); /* RUN holds files and sockets only */
        }
        closedir(d);
    }
    rmdir(dir);
}

void group_describe_status(int wstatus, char *buf, size_t cap) {
    if (WIFEXITED(wstatus))
        snprintf(buf, cap, "exited with status %d", WEXITSTATUS(wstatus));
    else if (WIFSIGNALED(wstatus))
        snprintf(buf, cap, "was killed by signal %d (%s)%s", WTERMSIG(wstatus), strsignal(WTERMSIG(wstatus)),
                 WCOREDUMP(wstatus) ? ", core dumped" : "");
    else
        snprintf(buf, cap, "stopped (status 0x%x)", (unsigned)wstatus);
}

/* ---- start --------------------------------------------------------------------- */

static int find_bin_dir(group *g) {
    const char *env = getenv("LMM_SERVICE_BIN_DIR");
    if (env && *env) {
        if (strlen(env) >= sizeof g->bin_dir) return lmm_error_set("LMM_SERVICE_BIN_DIR is too long");
        strcpy(g->bin_dir, env);
        return 0;
    }
    char exe[GROUP_PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return lmm_error_set("/proc/self/exe: %s", strerror(errno));
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0';
    snprintf(g->bin_dir, sizeof g->bin_dir, "%s", exe);
    return 0;
}

static int bin_path(const group *g, const char *svc, char *buf, size_t cap) {
    int n = snprintf(buf, cap, "%s/lmm-%s", g->bin_dir, svc);
    if (n < 0 || (size_t)n >= cap) return lmm_error_set("path of lmm-%s too long", svc);
    if (access(buf, X_OK) != 0)
        return lmm_error_set("%s: %s (build the service, e.g. `make lmm-%s`, or use `lmlaunch run --in-process`)",
                             buf, strerror(errno), svc);
    return 0;
}

/* A copy of the NULL-terminated argv in one allocation: the pointers, then the strings. */
static char **argv_copy(char *const *argv) {
    size_t n = 0, bytes = 0;
    for (; argv[n]; n++) bytes += strlen(argv[n]) + 1;
    char **out = malloc((n + 1) * sizeof *out + bytes);
    if (!out) return NULL;
    char *p = (char *)(out + n + 1);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(argv[i]) + 1;
        memcpy(p, argv[i], len);
        out[i] = p;
        p += len;
    }
    out[n] = NULL;
    return out;
}

/* Forks and execs child k with its k->argv; stdout and stderr go to RUN/<name>.log,
 * truncated at the first start, appended to by a restart. */
static int start_child(group *g, group_child *k, bool first) {
    char log[GROUP_PATH_MAX + 64];
    snprintf(log, sizeof log, "%s/%s.log", g->run_dir, k->name);
    int logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | (first ? O_TRUNC : 0) | O_CLOEXEC, 0600);
    if (logfd < 0) return lmm_error_set("%s: %s", log, strerror(errno));
    int readfd = -1; /* the relay keeps reading the same file across restarts */
    if (g->relay_logs && k->log_fd < 0 && (readfd = open(log, O_RDONLY | O_CLOEXEC)) < 0) {
        int e = errno;
        close(logfd);
        return lmm_error_set("%s: %s", log, strerror(e));
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(logfd);
        if (readfd >= 0) close(readfd);
        return lmm_error_set("fork: %s", strerror(e));
    }
    if (pid == 0) {
        /* child: default signal dispositions, nothing blocked, stdin from /dev/null */
        signal(SIGPIPE, SIG_DFL);
        signal(SIGCHLD, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) dup2(nul, 0);
        dup2(logfd, 1);
        dup2(logfd, 2);
        execv(k->argv[0], k->argv);
        fprintf(stderr, "lmlaunch: %s: exec: %s\n", k->argv[0], strerror(errno));
        _exit(127);
    }
    close(logfd);
    if (readfd >= 0) k->log_fd = readfd;
    k->pid = pid;
    k->start_time = group_proc_start_time(pid);
    k->reaped = false;
    k->wstatus = 0;
    k->expected_exit = false;
    k->respawn_at_ms = 0;
    k->restart_asked = false;
    k->asked_ms = 0;
    return 0;
}

/* Forks and execs one service. argv[0] is set here; the command line is kept for restarts. */
static int spawn(group *g, const group_opts *o, const char *name, const char *svc, char **argv) {
    (void)o;
    if (g->n_kids >= GROUP_MAX_CHILDREN) return lmm_error_set("too many services");
    char path[GROUP_PATH_MAX];
    if (bin_path(g, svc, path, sizeof path)) return -1;
    argv[0] = path;
    group_child *k = &g->kids[g->n_kids];
    memset(k, 0, sizeof *k);
    snprintf(k->name, sizeof k->name, "%s", name);
    k->log_fd = -1;
    if (!(k->argv = argv_copy(argv))) return lmm_error_set("out of memory");
    if (start_child(g, k, true)) {
        free(k->argv);
        k->argv = NULL;
        return -1;
    }
    g->n_kids++;
    return 0;
}

int group_start(group *g, const group_opts *o) {
    memset(g, 0, sizeof *g);
    g->launcher_pid = getpid();
    g->opts = o;
    if (find_bin_dir(g)) return -1;
    /* every binary present before anything starts: fail fast, nothing to clean */
    char path[GROUP_PATH_MAX];
    static const char *const svcs[] = {"scheduler", "loader", "compute", "cache"};
    for (size_t i = 0; i < 4; i++)
        if (bin_path(g, svcs[i], path, sizeof path)) return -1;
    lmm_shm_ring_sweep_stale();

    snprintf(g->run_dir, sizeof g->run_dir, "/tmp/lmm-%d", (int)g->launcher_pid);
    group_remove_dir(g->run_dir); /* a leftover of an earlier process with our pid */
    if (mkdir(g->run_dir, 0700) != 0) return lmm_error_set("%s: %s", g->run_dir, strerror(errno));
    g->relay_logs = o->relay_logs;
    if (o->profile) snprintf(g->profile, sizeof g->profile, "%s", o->profile);
    if (o->services_endpoint) snprintf(g->services_ep, sizeof g->services_ep, "%s", o->services_endpoint);
    else snprintf(g->services_ep, sizeof g->services_ep, "ipc://%s/services.ipc", g->run_dir);
    if (o->client_endpoint) snprintf(g->client_ep, sizeof g->client_ep, "%s", o->client_endpoint);
    else snprintf(g->client_ep, sizeof g->client_ep, "ipc://%s/client.ipc", g->run_dir);

    char pidbuf[32];
    snprintf(pidbuf, sizeof pidbuf, "%d", (int)g->launcher_pid);
    setenv("LMM_LAUNCHER_PID", pidbuf, 1);
    g->trace = o->profile || o->trace;
    if (g->trace) { /* read by services/common (lmm_service_die_with_parent) */
        setenv("LMM_TRACE", "1", 1);
        setenv("LMM_TRACE_DIR", g->run_dir, 1);
    }

    char workers[16], budget[32], threads[16], ctx[16], idx[16], seqs[16];
    snprintf(seqs, sizeof seqs, "%u", o->max_seqs);
    snprintf(workers, sizeof workers, "%u", o->workers);
    snprintf(budget, sizeof budget, "%llu", (unsigned long long)o->mem_budget);
    snprintf(threads, sizeof threads, "%d", o->threads);
    snprintf(ctx, sizeof ctx, "%u", o->ctx);

    /* the scheduler first: it binds the endpoints the others connect to */
    char *argv[32];
    int n = 1;
    argv[n++] = "--run-dir", argv[n++] = g->run_dir;
    argv[n++] = "--model", argv[n++] = (char *)o->model;
    if (o->tokenizer) argv[n++] = "--tokenizer", argv[n++] = (char *)o->tokenizer;
    argv[n++] = "--client", argv[n++] = g->client_ep;
    argv[n++] = "--services", argv[n++] = g->services_ep;
    argv[n++] = "--workers", argv[n++] = workers;
    if (o->mem_budget) argv[n++] = "--mem-budget", argv[n++] = budget;
    if (o->threads > 0) argv[n++] = "--threads", argv[n++] = threads;
    if (o->ctx) argv[n++] = "--ctx", argv[n++] = ctx;
    if (o->isa) argv[n++] = "--isa", argv[n++] = (char *)o->isa;
    if (o->max_seqs) argv[n++] = "--max-seqs", argv[n++] = seqs;
    if (o->no_prefix_cache) argv[n++] = "--no-prefix-cache";
    char kvc[32];
    snprintf(kvc, sizeof kvc, "%llu", (unsigned long long)o->kv_cache);
    if (o->kv_cache) argv[n++] = "--kv-cache", argv[n++] = kvc;
    char kvram[32];
    snprintf(kvram, sizeof kvram, "%llu", (unsigned long long)o->kv_ram);
    if (o->kv_ram && o->kv_disk) argv[n++] = "--kv-ram", argv[n++] = kvram;
    argv[n] = NULL;
    if (spawn(g, o, "scheduler", "scheduler", argv)) goto fail;

    n = 1;
    argv[n++] = "--run-dir", argv[n++] = g->run_dir;
    argv[n++] = "--services", argv[n++] = g->services_ep;
    argv[n] = NULL;
    if (spawn(g, o, "loader", "loader", argv)) goto fail;
    for (unsigned w = 0; w < o->workers; w++) {
        char name[32];
        snprintf(name, sizeof name, "compute.%u", w);
        snprintf(idx, sizeof idx, "%u", w);
        n = 1;
        argv[n++] = "--run-dir", argv[n++] = g->run_dir;
        argv[n++] = "--services", argv[n++] = g->services_ep;
        argv[n++] = "--index", argv[n++] = idx;
        if (o->threads > 0) argv[n++] = "--threads", argv[n++] = threads;
        if (o->isa) argv[n++] = "--isa", argv[n++] = (char *)o->isa;
        if (o->kv_ram && o->kv_disk) /* the live KV spill (docs/kv-cache.md "Long contexts") */
            argv[n++] = "--kv-ram", argv[n++] = kvram, argv[n++] = "--kv-spill-dir", argv[n++] = (char *)o->kv_disk;
        if (o->kv_transport) argv[n++] = "--kv-transport", argv[n++] = (char *)o->kv_transport;
        argv[n] = NULL;
        if (spawn(g, o, name, "compute", argv)) goto fail;
    }
    n = 1;
    argv[n++] = "--run-dir", argv[n++] = g->run_dir;
    argv[n++] = "--services", argv[n++] = g->services_ep;
    if (o->kv_disk) argv[n++] = "--kv-disk", argv[n++] = (char *)o->kv_disk;
    char kvdb[32];
    snprintf(kvdb, sizeof kvdb, "%llu", (unsigned long long)o->kv_disk_budget);
    if (o->kv_disk && o->kv_disk_budget) argv[n++] = "--kv-disk-budget", argv[n++] = kvdb;
    argv[n] = NULL;
    if (spawn(g, o, "cache", "cache", argv)) goto fail;
    return 0;

fail: {
    char keep[LMM_ERROR_MAX];
    snprintf(keep, sizeof keep, "%s", lmm_error_get());
    group_stop(g, 0);
    return lmm_error_set("%s", keep);
}
}

/* ---- watching ------------------------------------------------------------------ */

static void reaped(group *g, group_child *k, int st) {
    k->reaped = true;
    k->wstatus = st;
    k->expected_exit = g->stopping;
    group_unlink_segments_of(k->pid);
}

void group_relay_logs(group *g) {
    if (!g->relay_logs) return;
    char buf[4096];
    for (unsigned i = 0; i < g->n_kids; i++) {
        group_child *k = &g->kids[i];
        if (k->log_fd < 0) continue;
        for (;;) { /* the child appends; we read from where we stopped until the end */
            ssize_t n = read(k->log_fd, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            for (ssize_t off = 0; off < n;) {
                ssize_t w = write(STDERR_FILENO, buf + off, (size_t)(n - off));
                if (w < 0 && errno == EINTR) continue;
                if (w <= 0) break;
                off += w;
            }
        }
    }
}

/* Reaps k if it has exited; true when it did just now. */
static bool reap_one(group *g, group_child *k) {
    if (k->reaped || k->pid <= 0) return false;
    int st;
    if (waitpid(k->pid, &st, WNOHANG) != k->pid) return false;
    reaped(g, k, st);
    return true;
}

static void note_death(group *g, const group_child *k) {
    char how[128];
    group_describe_status(k->wstatus, how, sizeof how);
    snprintf(g->last_death, sizeof g->last_death, "%s (pid %d) %s", k->name, (int)k->pid, how);
    g->last_death_ms = lmm_service_now_ms();
}

static int fail_death(const group_child *k) {
    char how[128];
    group_describe_status(k->wstatus, how, sizeof how);
    lmm_shm_ring_sweep_stale();
    return lmm_error_set("%s (pid %d) %s", k->name, (int)k->pid, how);
}

/* "killed by signal 9" or "exited with status 1": the end of "keeps crashing (...; last: ...)". */
static void describe_short(int wstatus, char *buf, size_t cap) {
    if (WIFSIGNALED(wstatus)) snprintf(buf, cap, "killed by signal %d", WTERMSIG(wstatus));
    else if (WIFEXITED(wstatus)) snprintf(buf, cap, "exited with status %d", WEXITSTATUS(wstatus));
    else snprintf(buf, cap, "status 0x%x", (unsigned)wstatus);
}

static int fail_crash_loop(group *g, const group_child *k, unsigned in_window) {
    char last[64];
    describe_short(k->wstatus, last, sizeof last);
    g->gave_up = true;
    lmm_shm_ring_sweep_stale();
    return lmm_error_set("%s keeps crashing (%u times in %u s; last: %s)", k->name, in_window,
                         SUPERVISE_WINDOW_MS / 1000, last);
}

static group_child *child_named(group *g, const char *name) {
    for (unsigned i = 0; i < g->n_kids; i++)
        if (strcmp(g->kids[i].name, name) == 0) return &g->kids[i];
    return NULL;
}

/* `lmlaunch restart NAME` leaves RUN/restart.NAME, then sends SIGUSR1. */
static void take_requests(group *g) {
    DIR *d = opendir(g->run_dir);
    if (!d) return;
    uint64_t now = lmm_service_now_ms();
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "restart.", 8) != 0) continue;
        char name[64];
        snprintf(name, sizeof name, "%s", de->d_name + 8);
        unlinkat(dirfd(d), de->d_name, 0);
        group_child *k = child_named(g, name);
        if (!k) {
            fprintf(stderr, "lmlaunch: a restart of '%s' was asked for: no such service\n", name);
        } else if (k == &g->kids[0]) {
            if (!g->restart_all) {
                fprintf(stderr, "lmlaunch: the scheduler of `lmlaunch run` is not restarted (asked for)\n");
                continue;
            }
            fprintf(stderr, "lmlaunch: restarting the group (`lmlaunch restart scheduler`)\n");
            g->restart_all_asked = true;
        } else if (k->reaped) {
            if (k->respawn_at_ms) k->respawn_at_ms = now; /* waiting for its backoff: now */
        } else if (!k->restart_asked) {
            fprintf(stderr, "lmlaunch: stopping %s (pid %d) for `lmlaunch restart`\n", k->name, (int)k->pid);
            k->restart_asked = true;
            k->asked_ms = now;
            kill(k->pid, SIGTERM);
        }
    }
    closedir(d);
}

/* Once ready: what the deaths just seen (died[i]) mean, the restarts that are due, the
 * requests of `lmlaunch restart`. */
static int supervise_children(group *g, bool *died) {
    uint64_t now = lmm_service_now_ms();
    group_child *s = &g->kids[0]; /* the scheduler: started first */
    bool any = false;
    for (unsigned i = 1; i < g->n_kids; i++) any |= died[i];
    /* a service that lost the scheduler exits 0 by itself: look at the scheduler again */
    if (any && reap_one(g, s)) {
        died[0] = true;
        note_death(g, s);
    }
    if (died[0]) {
        if (!g->restart_all) { /* run: the scheduler is the group; name a killed service first */
            group_child *c = s;
            for (unsigned i = 1; i < g->n_kids; i++)
                if (died[i] && WIFSIGNALED(g->kids[i].wstatus) && !WIFSIGNALED(c->wstatus)) c = &g->kids[i];
            return fail_death(c);
        }
        if (g->restart_all_asked) return GROUP_RESTART_ALL;
        /* exit 0: SHUTDOWN from an lmlaunch peer or SIGTERM: the group was shut down */
        if (WIFEXITED(s->wstatus) && WEXITSTATUS(s->wstatus) == 0) return fail_death(s);
        supervise_verdict v = supervise_history_add_crash(&s->hist, now);
        if (v.give_up) return fail_crash_loop(g, s, v.in_window);
        s->respawn_at_ms = now + v.delay_ms;
        char how[128];
        group_describe_status(s->wstatus, how, sizeof how);
        fprintf(stderr, "lmlaunch: scheduler (pid %d) %s; restarting the group (restart %u)\n", (int)s->pid, how,
                s->hist.restarts + 1);
    }
    if (s->reaped) { /* the whole group restarts (up): the others are not restarted one by one */
        if (!s->respawn_at_ms) return fail_death(s);
        return now >= s->respawn_at_ms ? GROUP_RESTART_ALL : 0;
    }
    for (unsigned i = 1; i < g->n_kids; i++) {
        group_child *k = &g->kids[i];
        if (!died[i]) continue;
        char how[128];
        group_describe_status(k->wstatus, how, sizeof how);
        if (k->restart_asked) {
            k->respawn_at_ms = now;
            fprintf(stderr, "lmlaunch: %s (pid %d) %s; restarting it as asked (restart %u)\n", k->name, (int)k->pid,
                    how, k->hist.restarts + 1);
            continue;
        }
        supervise_verdict v = supervise_history_add_crash(&k->hist, now);
        if (v.give_up) return fail_crash_loop(g, k, v.in_window);
        k->respawn_at_ms = now + v.delay_ms;
        fprintf(stderr, "lmlaunch: %s (pid %d) %s; restarting it (restart %u)\n", k->name, (int)k->pid, how,
                k->hist.restarts + 1);
    }
    bool changed = false;
    for (unsigned i = 1; i < g->n_kids; i++) {
        group_child *k = &g->kids[i];
        if (k->reaped && k->respawn_at_ms && now >= k->respawn_at_ms) {
            if (start_child(g, k, false)) return lmm_error_prefix("cannot restart %s", k->name);
            supervise_history_add_restart(&k->hist);
            changed = true;
        } else if (!k->reaped && k->restart_asked && now - k->asked_ms >= GROUP_RESTART_KILL_MS) {
            kill(k->pid, SIGKILL); /* asked to restart and still there */
        }
    }
    if (g_restart_signal) {
        g_restart_signal = 0;
        take_requests(g);
    }
    if (changed && g->opts && group_json_write(g, g->opts))
        fprintf(stderr, "lmlaunch: warning: %s\n", lmm_error_get());
    return g->restart_all_asked ? GROUP_RESTART_ALL : 0;
}

/* Reaps what has exited. Before READY and while stopping: -1 naming the service when one
 * ended without being asked to. When several ended at once, a service killed by a signal
 * is named before one that exited with an error: the others usually exit only because it
 * vanished (the scheduler reports "the peer is gone" after the loader was killed). Once
 * ready: supervise_children. */
int group_check(group *g) {
    group_relay_logs(g);
    group_child *culprit = NULL;
    bool died[GROUP_MAX_CHILDREN] = {false};
    for (unsigned i = 0; i < g->n_kids; i++) {
        group_child *k = &g->kids[i];
        if (!reap_one(g, k) || k->expected_exit) continue;
        died[i] = true;
        if (!k->restart_asked) note_death(g, k);
        if (!culprit || (WIFSIGNALED(k->wstatus) && !WIFSIGNALED(culprit->wstatus))) culprit = k;
    }
    if (!g->ready || g->stopping || g->n_kids == 0) return culprit ? fail_death(culprit) : 0;
    return supervise_children(g, died);
}

int group_next_due_ms(const group *g, int cap) {
    uint64_t now = lmm_service_now_ms();
    int best = cap;
    for (unsigned i = 0; i < g->n_kids; i++) {
        const group_child *k = &g->kids[i];
        if (!k->reaped || !k->respawn_at_ms) continue;
        uint64_t left = k->respawn_at_ms > now ? k->respawn_at_ms - now : 0;
        if (left < (uint64_t)best) best = (int)left;
    }
    return best;
}

int group_settle(group *g, int wait_ms) {
    uint64_t t0 = lmm_service_now_ms();
    for (int waited = 0;; waited += 20) {
        if (group_check(g) < 0) return -1;
        /* a service that died lately (and was restarted) is the likely cause too */
        if (g->last_death_ms && g->last_death_ms + 5000 >= t0) return lmm_error_set("%s", g->last_death);
        if (waited >= wait_ms) return 0;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

bool group_all_exited(const group *g) {
    for (unsigned i = 0; i < g->n_kids; i++)
        if (!g->kids[i].reaped && g->kids[i].pid > 0) return false;
    return true;
}

int group_wait_ready(group *g, int timeout_ms) {
    if (!g->launch_open) {
        if (lmm_service_dealer_connect(&g->launch, g->client_ep, NULL)) return -1;
        g->launch_open = true;
    }
    lmm_msg m;
    lmm_proto_msg_init(&m, LMM_MSG_HELLO);
    m.hello.role = LMM_PROTO_ROLE_LAUNCH;
    m.hello.pid = (uint32_t)getpid();
    snprintf(m.hello.name, sizeof m.hello.name, "lmlaunch");
    if (lmm_service_send(&g->launch, NULL, &m)) return -1;
    bool acked = false;
    char waiting[LMM_PROTO_MAX_NAME + 1] = "";
    uint64_t t0 = lmm_service_now_ms(), last_status = 0;
    for (;;) {
        if (lmm_service_stopping()) return lmm_error_set("interrupted (signal %d) during start-up", group_stop_signal());
        if (group_check(g)) return lmm_error_prefix("during start-up");
        uint64_t now = lmm_service_now_ms();
        if (now - t0 >= (uint64_t)timeout_ms) {
            if (!acked)
                return lmm_error_set("the group did not become ready within %d s (the scheduler did not answer at %s)",
                                     timeout_ms / 1000, g->client_ep);
            return lmm_error_set("the group did not become ready within %d s (waiting for %s)", timeout_ms / 1000,
                                 waiting[0] ? waiting : "the scheduler");
        }
        if (acked && now - last_status >= 100) {
            lmm_msg st;
            lmm_proto_msg_init(&st, LMM_MSG_STATUS);
            if (lmm_service_send(&g->launch, NULL, &st)) return -1;
            last_status = now;
        }
        int rc = lmm_service_recv(&g->launch, NULL, &m, 50);
        if (rc < 0) return -1;
        if (rc != LMM_SERVICE_MSG) continue;
        if (m.type == LMM_MSG_HELLO_ACK) {
            if (!m.hello_ack.ok) return lmm_error_set("the scheduler refused lmlaunch: %s", m.hello_ack.error);
            acked = true;
        } else if (m.type == LMM_MSG_STATUS_REPLY) {
            if (m.status_reply.ready) {
                g->ready = true; /* supervision starts (group_check) */
                return 0;
            }
            snprintf(waiting, sizeof waiting, "%s", m.status_reply.waiting);
        } else if (m.type == LMM_MSG_ERROR) {
            return lmm_error_set("the scheduler: %s", m.error.message);
        }
    }
}

/* ---- stopping ------------------------------------------------------------------ */

static void wait_children(group *g, int ms) {
    uint64_t t0 = lmm_service_now_ms();
    for (;;) {
        g->stopping = true;
        group_check(g);
        if (group_all_exited(g)) return;
        if (lmm_service_now_ms() - t0 >= (uint64_t)ms) return;
        sleep_ms(10);
    }
}

static void signal_children(group *g, int sig) {
    for (unsigned i = 0; i < g->n_kids; i++)
        if (!g->kids[i].reaped && g->kids[i].pid > 0) kill(g->kids[i].pid, sig);
}

/* SHUTDOWN (grace_ms > 0 and connected), SIGTERM, SIGKILL; every child reaped and its
 * segments unlinked, stale ones swept. */
static void stop_children(group *g, int grace_ms) {
    g->stopping = true;
    group_check(g);
    if (grace_ms > 0 && g->launch_open && !group_all_exited(g)) {
        lmm_msg m;
        lmm_proto_msg_init(&m, LMM_MSG_SHUTDOWN);
        if (lmm_service_send(&g->launch, NULL, &m) == 0) wait_children(g, grace_ms);
    }
    if (!group_all_exited(g)) {
        signal_children(g, SIGTERM);
        wait_children(g, 2000);
    }
    if (!group_all_exited(g)) {
        signal_children(g, SIGKILL);
        for (unsigned i = 0; i < g->n_kids; i++) {
            group_child *k = &g->kids[i];
            if (k->reaped || k->pid <= 0) continue;
            int st;
            while (waitpid(k->pid, &st, 0) < 0 && errno == EINTR) {
            }
            reaped(g, k, st);
        }
    }
    for (unsigned i = 0; i < g->n_kids; i++)
        if (g->kids[i].pid > 0) group_unlink_segments_of(g->kids[i].pid);
    lmm_shm_ring_sweep_stale();
}

int group_restart_all(group *g) {
    bool asked = g->restart_all_asked;
    g->restart_all_asked = false;
    g->ready = false;
    /* requests made until now are served by this restart: every service gets a new pid */
    g_restart_signal = 0;
    DIR *d = opendir(g->run_dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL)
            if (strncmp(de->d_name, "restart.", 8) == 0) unlinkat(dirfd(d), de->d_name, 0);
        closedir(d);
    }
    stop_children(g, asked ? 2000 : 0); /* asked: the scheduler still runs and takes SHUTDOWN */
    if (g->launch_open) { /* the new scheduler gets a new HELLO on a new connection */
        lmm_service_sock_close(&g->launch);
        g->launch_open = false;
    }
    g->stopping = false;
    for (unsigned i = 0; i < g->n_kids; i++)
        if (start_child(g, &g->kids[i], false)) return lmm_error_prefix("restarting the group: %s", g->kids[i].name);
    supervise_history_add_restart(&g->kids[0].hist);
    int timeout_ms = g->opts && g->opts->start_timeout_ms > 0 ? g->opts->start_timeout_ms : 60000;
    if (group_wait_ready(g, timeout_ms)) return lmm_error_prefix("restarting the group");
    if (g->opts && group_json_write(g, g->opts)) fprintf(stderr, "lmlaunch: warning: %s\n", lmm_error_get());
    return 0;
}

void group_stop(group *g, int grace_ms) {
    stop_children(g, grace_ms);
    if (g->launch_open) {
        lmm_service_sock_close(&g->launch);
        g->launch_open = false;
    }
    lmm_service_ctx_term();
    group_relay_logs(g);
    for (unsigned i = 0; i < g->n_kids; i++) {
        if (g->kids[i].log_fd >= 0) {
            close(g->kids[i].log_fd);
            g->kids[i].log_fd = -1;
        }
        free(g->kids[i].argv);
        g->kids[i].argv = NULL;
    }
    if (g->profile[0]) {
        lmlaunch_profile_merge(g->run_dir, g->profile, 0);
        g->profile[0] = '\0';
    }
    group_remove_dir(g->run_dir);
}
