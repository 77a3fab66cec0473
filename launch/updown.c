/* launch/updown.c — `lmlaunch up`, `down` and `status`: a group kept running in the
 * background for lmclient.
 *
 * up:     checks the model, forks a supervisor (new session, so the terminal's Ctrl-C and
 *         hang-up do not reach it) that starts the group with the client endpoint at
 *         --endpoint, waits until it is ready, writes RUN/group.json and the pointer file,
 *         and tells the waiting `up` through a pipe; `up` then exits 0. The supervisor
 *         stays the parent of the services and supervises them (group_check): a service
 *         that dies is restarted; when the scheduler dies the whole group is restarted;
 *         a crash loop, or SIGTERM, stops and cleans the whole group. Logs:
 *         RUN/<service>.log, RUN/lmlaunch.log.
 * down:   SIGTERM to the supervisor (pid checked against its start time), which stops
 *         the group (SHUTDOWN, signals) and cleans up; waits for it. When there is no
 *         supervisor, or it does not finish, SHUTDOWN through the client endpoint, then
 *         SIGTERM/SIGKILL to every service still alive (pids checked against their start
 *         times), then removes RUN, the segments of those pids and the pointer file.
 * restart: `lmlaunch restart SERVICE` leaves RUN/restart.SERVICE, sends SIGUSR1 to the
 *         supervisor, waits until group.json shows a new pid for SERVICE and the
 *         scheduler reports ready.
 * status: the supervisor and services (pid, state, restarts, VmRSS), and from the
 *         scheduler's STATUS_REPLY the ring occupancy and tokens/s; --json for machines. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdint.h>
#include <poll.h>
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

#define DOWN_WAIT_MS 10000

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- up: the supervisor --------------------------------------------------------- */

static void tell(int fd, const char *fmt, const char *arg) {
    char line[LMM_ERROR_MAX + 64];
    int n = snprintf(line, sizeof line, fmt, arg);
    if (n > 0) {
        ssize_t w = write(fd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
        (void)w;
    }
}

static void log_to(const char *run_dir) {
    char path[GROUP_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/lmlaunch.log", run_dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0) {
        dup2(fd, 2);
        close(fd);
    }
}

/* The last non-empty line of RUN/<name>.log of the first service that failed, or "". */
static void failed_log_line(const group *g, char *out, size_t cap) {
    out[0] = '\0';
    for (unsigned i = 0; i < g->n_kids; i++) {
        const group_child *k = &g->kids[i];
        if (!k->reaped || (WIFEXITED(k->wstatus) && WEXITSTATUS(k->wstatus) == 0)) continue;
        char path[GROUP_PATH_MAX + 64], line[512];
        snprintf(path, sizeof path, "%s/%s.log", g->run_dir, k->name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        while (fgets(line, sizeof line, f))
            if (line[0] != '\n') snprintf(out, cap, "%s", line);
        fclose(f);
        out[strcspn(out, "\n")] = '\0';
        if (out[0]) return;
    }
}

static int supervise(const run_args *a, int report_fd) {
    group_signals_install();
    group g;
    group_opts o;
    lmlaunch_group_opts(a, &o);
    o.client_endpoint = a->endpoint;
    o.trace = a->trace;
    if (group_start(&g, &o)) {
        tell(report_fd, "ERR %s\n", lmm_error_get());
        return 1;
    }
    g.restart_all = true; /* the scheduler's death restarts the whole group */
    log_to(g.run_dir);
    if (group_wait_ready(&g, o.start_timeout_ms) || group_json_write(&g, &o) || group_pointer_write(g.run_dir)) {
        char why[LMM_ERROR_MAX + 1024], last[512];
        failed_log_line(&g, last, sizeof last);
        snprintf(why, sizeof why, "%s%s%s", lmm_error_get(), last[0] ? "; its log says: " : "", last);
        tell(report_fd, "ERR %s\n", why);
        fprintf(stderr, "lmlaunch: %s\n", why);
        group_stop(&g, 0);
        group_pointer_remove(g.run_dir);
        return 1;
    }
    tell(report_fd, "OK %s\n", g.run_dir);
    close(report_fd);
    fprintf(stderr, "lmlaunch: group ready at %s\n", g.client_ep);
    int rc = 0;
    bool failed = false; /* gave up: the pointer file keeps why (`status` says it) */
    for (;;) {
        if (lmm_service_stopping()) {
            fprintf(stderr, "lmlaunch: signal %d: stopping the group\n", group_stop_signal());
            break;
        }
        int c = group_check(&g); /* restarts dead services (docs/operations.md, "Supervision") */
        if (c == GROUP_RESTART_ALL) {
            if (group_restart_all(&g)) {
                failed = true;
                break;
            }
            fprintf(stderr, "lmlaunch: group ready again at %s (scheduler pid %d)\n", g.client_ep, (int)g.kids[0].pid);
            continue;
        }
        if (c < 0) {
            /* a crash loop, a restart that failed; or the scheduler exited 0 (SHUTDOWN from
             * another lmlaunch): the normal end */
            const group_child *s = &g.kids[0];
            failed = !(s->reaped && WIFEXITED(s->wstatus) && WEXITSTATUS(s->wstatus) == 0);
            break;
        }
        sleep_ms(group_next_due_ms(&g, 200)); /* SIGCHLD, SIGUSR1 and stop signals cut it short */
    }
    if (failed && lmm_service_stopping()) { /* e.g. `down` during a restart of the group */
        fprintf(stderr, "lmlaunch: signal %d: stopping the group\n", group_stop_signal());
        failed = false;
    }
    if (failed) {
        char why[LMM_ERROR_MAX];
        snprintf(why, sizeof why, "%s", lmm_error_get());
        fprintf(stderr, "lmlaunch: %s; stopping the group\n", why);
        group_pointer_write_failure(g.run_dir, why);
        rc = 1;
    } else {
        if (!lmm_service_stopping()) fprintf(stderr, "lmlaunch: %s; stopping the group\n", lmm_error_get());
        group_pointer_remove(g.run_dir);
    }
    group_stop(&g, 2000);
    return rc;
}

int lmlaunch_up(const run_args *a) {
    if (lmlaunch_check_model(a, NULL)) return 1;
    char cur[GROUP_PATH_MAX];
    if (group_pointer_read(cur, sizeof cur) == 0) {
        group old;
        if (group_json_read(&old, cur) == 0 && group_pid_is(old.launcher_pid, 0))
            fprintf(stderr, "lmlaunch: note: the group in %s is still up; `lmlaunch down` now stops the new one "
                            "(use --run-dir %s for the old)\n", cur, cur);
    }
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        fprintf(stderr, "lmlaunch: pipe: %s\n", strerror(errno));
        return 1;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "lmlaunch: fork: %s\n", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        close(pfd[0]);
        setsid();
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0) {
            dup2(nul, 0);
            dup2(nul, 1);
            dup2(nul, 2);
            if (nul > 2) close(nul);
        }
        _exit(supervise(a, pfd[1]));
    }
    close(pfd[1]);
    char buf[LMM_ERROR_MAX + 512];
    size_t len = 0;
    int timeout_ms = (a->start_timeout_s + 15) * 1000;
    uint64_t t0 = (uint64_t)(lmlaunch_now_s() * 1000.0);
    for (;;) {
        struct pollfd p = {pfd[0], POLLIN, 0};
        int left = timeout_ms - (int)((uint64_t)(lmlaunch_now_s() * 1000.0) - t0);
        if (left <= 0 || poll(&p, 1, left) == 0) {
            fprintf(stderr, "lmlaunch: the background launcher (pid %d) did not report within %d s; killing it\n",
                    (int)pid, timeout_ms / 1000);
            kill(pid, SIGTERM);
            close(pfd[0]);
            return 1;
        }
        ssize_t n = read(pfd[0], buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
        if (memchr(buf, '\n', len) || len == sizeof buf - 1) break;
    }
    close(pfd[0]);
    buf[len] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    if (strncmp(buf, "OK ", 3) == 0) {
        fprintf(stderr, "lmlaunch: group up at %s (supervisor pid %d, run dir %s); stop it with `lmlaunch down`\n",
                a->endpoint, (int)pid, buf + 3);
        return 0;
    }
    if (strncmp(buf, "ERR ", 4) == 0) fprintf(stderr, "lmlaunch: %s\n", buf + 4);
    else fprintf(stderr, "lmlaunch: the background launcher (pid %d) died during start-up\n", (int)pid);
    return 1;
}

/* ---- down / status --------------------------------------------------------------- */

/* The group of --run-dir or of the pointer file. forget (down): a pointer whose group
 * is gone is removed even when it says why the group stopped. */
static int find_group(const run_args *a, group *g, bool forget) {
    char dir[GROUP_PATH_MAX];
    if (a->run_dir) snprintf(dir, sizeof dir, "%s", a->run_dir);
    else if (group_pointer_read(dir, sizeof dir)) return -1;
    if (group_json_read(g, dir)) {
        char why[LMM_ERROR_MAX];
        if (!a->run_dir) group_pointer_read_failure(why, sizeof why);
        else why[0] = '\0';
        if (why[0]) { /* the supervisor gave up: said until `down` or the next `up` */
            if (forget) group_pointer_remove(dir);
            return lmm_error_set("no group is up at %s: its supervisor stopped it: %s", dir, why);
        }
        if (!a->run_dir) group_pointer_remove(dir); /* stale pointer: the group is gone */
        return lmm_error_prefix("no group is up at %s", dir);
    }
    return 0;
}

/* HELLO as launch + one request on the client endpoint; *reply gets the answer. */
static int ask(group *g, lmm_msg_type t, lmm_msg *reply, int timeout_ms) {
    if (lmm_service_dealer_connect(&g->launch, g->client_ep, NULL)) return -1;
    g->launch_open = true;
    if (lmm_service_hello(&g->launch, LMM_PROTO_ROLE_LAUNCH, "lmlaunch", timeout_ms, reply)) return -1;
    lmm_msg m;
    lmm_proto_msg_init(&m, t);
    if (lmm_service_send(&g->launch, NULL, &m)) return -1;
    for (uint64_t t0 = lmm_service_now_ms(); lmm_service_now_ms() - t0 < (uint64_t)timeout_ms;) {
        int rc = lmm_service_recv(&g->launch, NULL, reply, 100);
        if (rc < 0) return -1;
        if (rc == LMM_SERVICE_MSG && reply->type != LMM_MSG_HELLO_ACK) return 0;
    }
    return lmm_error_set("no answer to %s from %s", lmm_proto_type_name(t), g->client_ep);
}

static void close_ask(group *g) {
    if (g->launch_open) lmm_service_sock_close(&g->launch);
    g->launch_open = false;
    lmm_service_ctx_term();
}

static bool wait_gone(pid_t pid, uint64_t st, int ms) {
    for (uint64_t t0 = lmm_service_now_ms(); lmm_service_now_ms() - t0 < (uint64_t)ms; sleep_ms(20))
        if (!group_pid_is(pid, st)) return true;
    return !group_pid_is(pid, st);
}

int lmlaunch_down(const run_args *a) {
    group g;
    if (find_group(a, &g, true)) {
        fprintf(stderr, "lmlaunch: %s\n", lmm_error_get());
        return 1;
    }
    char run_dir[GROUP_PATH_MAX];
    snprintf(run_dir, sizeof run_dir, "%s", g.run_dir);
    pid_t sup = g.launcher_pid;
    uint64_t sup_st = g.launcher_start_time;
    bool sup_alive = group_pid_is(sup, sup_st);
    bool forced = false;
    /* the supervisor stops its group (SHUTDOWN, then signals) and cleans up; a SHUTDOWN
     * sent around it would look like a crash to supervise */
    if (sup_alive && kill(sup, SIGTERM) == 0 && !wait_gone(sup, sup_st, DOWN_WAIT_MS)) {
        kill(sup, SIGKILL);
        wait_gone(sup, sup_st, 2000);
        forced = true;
    }
    if (group_pid_is(g.kids[0].pid, g.kids[0].start_time)) { /* no supervisor: ask the scheduler */
        lmm_msg r;
        if (ask(&g, LMM_MSG_SHUTDOWN, &r, 3000) == 0) {
            for (unsigned i = 0; i < g.n_kids; i++) wait_gone(g.kids[i].pid, g.kids[i].start_time, 2000);
        } else {
            fprintf(stderr, "lmlaunch: warning: %s; stopping the processes by signal\n", lmm_error_get());
        }
        close_ask(&g);
    }
    for (unsigned i = 0; i < g.n_kids; i++) {
        group_child *k = &g.kids[i];
        if (group_pid_is(k->pid, k->start_time)) {
            kill(k->pid, SIGTERM);
            if (!wait_gone(k->pid, k->start_time, 2000)) kill(k->pid, SIGKILL);
            wait_gone(k->pid, k->start_time, 2000);
            forced = true;
        }
        group_unlink_segments_of(k->pid);
    }
    lmm_shm_ring_sweep_stale();
    group_remove_dir(run_dir);
    group_pointer_remove(run_dir);
    fprintf(stderr, "lmlaunch: group %s stopped%s\n", run_dir, forced ? " (by signal)" : "");
    return 0;
}

/* ---- status ----------------------------------------------------------------------- */

/* "running", "stopped" (SIGSTOP, traced) or "exited" (gone, a zombie, or its pid reused). */
static const char *proc_state(const group_child *k) {
    if (!group_pid_is(k->pid, k->start_time)) return "exited";
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)k->pid);
    FILE *f = fopen(path, "r");
    if (!f) return "exited";
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    if (!p || !p[1] || !p[2]) return "exited";
    return p[2] == 'T' || p[2] == 't' ? "stopped" : "running";
}

/* VmRSS of /proc/PID/status in bytes; 0 when gone. */
static uint64_t proc_rss(const group_child *k) {
    if (!group_pid_is(k->pid, k->start_time)) return 0;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)k->pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    uint64_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtoull(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb * 1024u;
}

static json_object *u64(uint64_t v) { return json_object_new_int64(v > INT64_MAX ? INT64_MAX : (int64_t)v); }

static void fmt_mib(uint64_t b, char *buf, size_t cap) { snprintf(buf, cap, "%.1f MiB", (double)b / 1048576.0); }

int lmlaunch_status(const run_args *a) {
    group g;
    if (find_group(a, &g, false)) {
        char why[LMM_ERROR_MAX] = "";
        if (!a->run_dir) group_pointer_read_failure(why, sizeof why);
        if (a->json && why[0]) { /* the supervisor gave up: why */
            json_object *j = json_object_new_object();
            json_object_object_add(j, "up", json_object_new_boolean(0));
            json_object_object_add(j, "services", json_object_new_array());
            json_object_object_add(j, "stopped", json_object_new_string(why));
            puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
            json_object_put(j);
        } else if (a->json) {
            puts("{\"up\":false,\"services\":[]}");
        }
        fprintf(stderr, "lmlaunch: %s\n", lmm_error_get());
        return 1;
    }
    bool sup_alive = group_pid_is(g.launcher_pid, g.launcher_start_time);
    lmm_msg r;
    bool have = sup_alive && ask(&g, LMM_MSG_STATUS, &r, 2000) == 0 && r.type == LMM_MSG_STATUS_REPLY;
    close_ask(&g);
    const lmm_msg_status_reply *st = have ? &r.status_reply : NULL;
    const char *states[GROUP_MAX_CHILDREN];
    uint64_t rss[GROUP_MAX_CHILDREN];
    for (unsigned i = 0; i < g.n_kids; i++) {
        states[i] = proc_state(&g.kids[i]);
        rss[i] = proc_rss(&g.kids[i]);
    }
    if (a->json) {
        json_object *j = json_object_new_object();
        json_object *svcs = json_object_new_array();
        for (unsigned i = 0; i < g.n_kids; i++) {
            json_object *k = json_object_new_object();
            json_object_object_add(k, "name", json_object_new_string(g.kids[i].name));
            json_object_object_add(k, "pid", json_object_new_int64(g.kids[i].pid));
            json_object_object_add(k, "state", json_object_new_string(states[i]));
            json_object_object_add(k, "restarts", json_object_new_int64(g.kids[i].hist.restarts));
            json_object_object_add(k, "rss_bytes", u64(rss[i]));
            json_object_array_add(svcs, k);
        }
        json_object_object_add(j, "services", svcs);
        json_object *ring = NULL;
        if (st) {
            ring = json_object_new_object();
            json_object_object_add(ring, "slots", u64(st->ring_slots));
            json_object_object_add(ring, "pinned", u64(st->ring_pinned));
            json_object_object_add(ring, "streaming", u64(st->ring_streaming));
            json_object_object_add(ring, "busy", u64(st->ring_busy));
            json_object_object_add(ring, "prefetch_depth", u64(st->prefetch_depth));
        }
        json_object_object_add(j, "ring", ring);
        json_object_object_add(j, "tokens_per_s", st ? json_object_new_double(st->tokens_per_s) : NULL);
        json_object_object_add(j, "up", json_object_new_boolean(sup_alive));
        json_object_object_add(j, "ready", st ? json_object_new_boolean(st->ready) : NULL);
        json_object_object_add(j, "run_dir", json_object_new_string(g.run_dir));
        json_object_object_add(j, "endpoint", json_object_new_string(g.client_ep));
        json_object_object_add(j, "launcher_pid", json_object_new_int64(g.launcher_pid));
        if (st) {
            json_object_object_add(j, "active", u64(st->active));
            json_object_object_add(j, "served", u64(st->served));
            json_object_object_add(j, "tokens", u64(st->tokens));
            json_object_object_add(j, "steps", u64(st->steps));
            json_object_object_add(j, "bytes_read", u64(st->bytes_read));
            json_object *b = json_object_new_object();
            json_object_object_add(b, "bytes", u64(st->budget_bytes));
            json_object_object_add(b, "used", u64(st->budget_used));
            json_object_object_add(b, "min", u64(st->budget_min));
            json_object_object_add(b, "shm_bytes", u64(st->shm_bytes));
            json_object_object_add(j, "budget", b);
            json_object *kv = json_object_new_object(); /* KV reuse (docs/kv-cache.md) */
            json_object_object_add(kv, "hits", u64(st->kv_hits));
            json_object_object_add(kv, "misses", u64(st->kv_misses));
            json_object_object_add(kv, "blocks", u64(st->kv_blocks));
            json_object_object_add(kv, "ram_bytes", u64(st->kv_ram_bytes));
            json_object_object_add(kv, "disk_bytes", u64(st->kv_disk_bytes));
            json_object_object_add(kv, "bytes_loaded", u64(st->kv_bytes_loaded));
            json_object_object_add(j, "kv_cache", kv);
        }
        puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(j);
    } else {
        printf("group %s at %s: %s\n", g.run_dir, g.client_ep,
               !sup_alive ? "supervisor gone" : !st ? "not answering" : st->ready ? "ready" : "starting");
        printf("  %-12s %8s %-8s %8s %12s\n", "NAME", "PID", "STATE", "RESTARTS", "RSS");
        printf("  %-12s %8d %-8s %8s %12s\n", "lmlaunch", (int)g.launcher_pid, sup_alive ? "running" : "exited", "-",
               "-");
        for (unsigned i = 0; i < g.n_kids; i++) {
            char m[32];
            fmt_mib(rss[i], m, sizeof m);
            printf("  %-12s %8d %-8s %8u %12s\n", g.kids[i].name, (int)g.kids[i].pid, states[i], g.kids[i].hist.restarts,
                   m);
        }
        if (st) {
            printf("  ring: %u slots (%u pinned, %u streaming, %u busy), prefetch depth %u\n", st->ring_slots,
                   st->ring_pinned, st->ring_streaming, st->ring_busy, st->prefetch_depth);
            printf("  requests: %u active, %llu served; %llu tokens, %.1f tokens/s\n", st->active,
                   (unsigned long long)st->served, (unsigned long long)st->tokens, st->tokens_per_s);
            printf("  kv cache: %llu hits, %llu misses; %llu blocks, %llu bytes in RAM, %llu on disk; %llu bytes loaded\n",
                   (unsigned long long)st->kv_hits, (unsigned long long)st->kv_misses,
                   (unsigned long long)st->kv_blocks, (unsigned long long)st->kv_ram_bytes,
                   (unsigned long long)st->kv_disk_bytes, (unsigned long long)st->kv_bytes_loaded);
        }
    }
    return sup_alive ? 0 : 1;
}

/* ---- restart ---------------------------------------------------------------------- */

/* Polls STATUS on the client endpoint until the scheduler reports ready; -1 after
 * timeout_ms or when the supervisor goes away. */
static int wait_group_ready(group *g, pid_t sup, uint64_t sup_st, uint64_t deadline_ms) {
    lmm_msg r;
    int rc = -1;
    if (lmm_service_dealer_connect(&g->launch, g->client_ep, NULL)) return -1;
    g->launch_open = true;
    int left = (int)(deadline_ms > lmm_service_now_ms() ? deadline_ms - lmm_service_now_ms() : 1);
    if (lmm_service_hello(&g->launch, LMM_PROTO_ROLE_LAUNCH, "lmlaunch", left, &r)) goto out;
    for (;;) {
        if (lmm_service_now_ms() >= deadline_ms) {
            lmm_error_set("the group did not report ready in time (waiting for %s)",
                          r.type == LMM_MSG_STATUS_REPLY && r.status_reply.waiting[0] ? r.status_reply.waiting
                                                                                      : "the scheduler");
            goto out;
        }
        if (!group_pid_is(sup, sup_st)) {
            lmm_error_set("the supervisor (pid %d) stopped the group", (int)sup);
            goto out;
        }
        lmm_msg m;
        lmm_proto_msg_init(&m, LMM_MSG_STATUS);
        if (lmm_service_send(&g->launch, NULL, &m)) goto out;
        for (uint64_t t0 = lmm_service_now_ms(); lmm_service_now_ms() - t0 < 100;) {
            int got = lmm_service_recv(&g->launch, NULL, &r, 100);
            if (got < 0) goto out;
            if (got == LMM_SERVICE_MSG && r.type == LMM_MSG_STATUS_REPLY) break;
        }
        if (r.type == LMM_MSG_STATUS_REPLY && r.status_reply.ready) {
            rc = 0;
            goto out;
        }
        sleep_ms(100);
    }
out:
    close_ask(g);
    return rc;
}

/* Appends s to the string in buf[cap], cutting it short when full. */
static void append(char *buf, size_t cap, const char *s) {
    size_t n = strlen(buf);
    while (*s && n + 1 < cap) buf[n++] = *s++;
    buf[n] = '\0';
}

int lmlaunch_restart(const run_args *a) {
    const char *name = a->positional;
    group g;
    if (find_group(a, &g, false)) {
        fprintf(stderr, "lmlaunch: restart: %s\n", lmm_error_get());
        return 1;
    }
    const group_child *k = NULL;
    char names[GROUP_MAX_CHILDREN * 16] = "";
    for (unsigned i = 0; i < g.n_kids; i++) {
        if (strcmp(g.kids[i].name, name) == 0) k = &g.kids[i];
        if (i) append(names, sizeof names, ", ");
        append(names, sizeof names, g.kids[i].name);
    }
    if (!k) {
        fprintf(stderr, "lmlaunch: restart: unknown service '%s' (this group has: %s)\n", name, names);
        return EXIT_USAGE;
    }
    pid_t sup = g.launcher_pid;
    uint64_t sup_st = g.launcher_start_time;
    if (!group_pid_is(sup, sup_st)) {
        fprintf(stderr, "lmlaunch: restart: the group's supervisor (pid %d) is gone; `lmlaunch down` cleans up\n",
                (int)sup);
        return 1;
    }
    if (k == &g.kids[0] && strcmp(g.mode, "up") != 0) {
        fprintf(stderr, "lmlaunch: restart: the scheduler is restarted only in a group of `lmlaunch up` "
                        "(this one is a `run`)\n");
        return 1;
    }
    pid_t old = k->pid;
    uint64_t old_st = k->start_time;
    char path[GROUP_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/restart.%s", g.run_dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "lmlaunch: restart: %s: %s\n", path, strerror(errno));
        return 1;
    }
    close(fd);
    if (kill(sup, SIGUSR1) != 0) {
        fprintf(stderr, "lmlaunch: restart: signalling the supervisor (pid %d): %s\n", (int)sup, strerror(errno));
        unlink(path);
        return 1;
    }
    /* the new pid in group.json (rewritten by the supervisor), then READY */
    uint64_t deadline = lmm_service_now_ms() + (uint64_t)(a->start_timeout_s + 15) * 1000u;
    pid_t now_pid = 0;
    while (!now_pid) {
        if (!group_pid_is(sup, sup_st)) {
            fprintf(stderr, "lmlaunch: restart: the supervisor (pid %d) stopped the group while restarting %s\n",
                    (int)sup, name);
            return 1;
        }
        if (lmm_service_now_ms() >= deadline) {
            fprintf(stderr, "lmlaunch: restart: %s was not restarted within %d s (see `lmlaunch logs lmlaunch`)\n",
                    name, a->start_timeout_s + 15);
            return 1;
        }
        group h;
        if (group_json_read(&h, g.run_dir) == 0)
            for (unsigned i = 0; i < h.n_kids; i++)
                if (strcmp(h.kids[i].name, name) == 0 && (h.kids[i].pid != old || h.kids[i].start_time != old_st) &&
                    group_pid_is(h.kids[i].pid, h.kids[i].start_time))
                    now_pid = h.kids[i].pid;
        if (!now_pid) sleep_ms(50);
    }
    if (wait_group_ready(&g, sup, sup_st, deadline)) {
        fprintf(stderr, "lmlaunch: restart: %s (pid %d) started, but %s\n", name, (int)now_pid, lmm_error_get());
        return 1;
    }
    printf("restarted %s (pid %d -> %d)\n", name, (int)old, (int)now_pid);
    return 0;
}
