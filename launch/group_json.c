/* launch/group_json.c — RUN/group.json (what `lmlaunch down` and `status` need to find and
 * stop a group started by `up`) and the "current group" pointer file (launch/group.h).
 *
 * group.json: {"launcher_pid": 123, "launcher_start_time": 456, "run_dir": "/tmp/lmm-123",
 *   "mode": "up", "client_endpoint": "tcp://127.0.0.1:5555", "services_endpoint": "ipc://...",
 *   "model": "...", "workers": 1, "mem_budget": 0,
 *   "children": [{"name": "scheduler", "pid": 124, "start_time": 789, "restarts": 0}, ...]}
 * Start times (/proc/<pid>/stat field 22) let `down` tell a reused pid from ours. The
 * supervisor rewrites it whenever a service is restarted (new pid, restarts + 1); mode
 * "up" (restarts the whole group when the scheduler dies) or "run". */
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "group.h"
#include "lmm/error.h"

/* Writes path atomically (temp file + rename). */
static int write_file(const char *path, const char *text) {
    char tmp[GROUP_PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return lmm_error_set("%s: %s", tmp, strerror(errno));
    int bad = fputs(text, f) < 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        unlink(tmp);
        return lmm_error_set("%s: write failed: %s", path, strerror(errno));
    }
    return 0;
}

int group_json_write(const group *g, const group_opts *o) {
    json_object *j = json_object_new_object();
    json_object_object_add(j, "launcher_pid", json_object_new_int64(g->launcher_pid));
    json_object_object_add(j, "launcher_start_time",
                           json_object_new_int64((int64_t)group_proc_start_time(g->launcher_pid)));
    json_object_object_add(j, "run_dir", json_object_new_string(g->run_dir));
    json_object_object_add(j, "mode", json_object_new_string(g->restart_all ? "up" : "run"));
    json_object_object_add(j, "client_endpoint", json_object_new_string(g->client_ep));
    json_object_object_add(j, "services_endpoint", json_object_new_string(g->services_ep));
    if (o) {
        json_object_object_add(j, "model", json_object_new_string(o->model));
        json_object_object_add(j, "workers", json_object_new_int64(o->workers));
        json_object_object_add(j, "mem_budget", json_object_new_int64((int64_t)o->mem_budget));
    }
    json_object_object_add(j, "trace", json_object_new_boolean(g->trace));
    json_object *kids = json_object_new_array();
    for (unsigned i = 0; i < g->n_kids; i++) {
        json_object *k = json_object_new_object();
        json_object_object_add(k, "name", json_object_new_string(g->kids[i].name));
        json_object_object_add(k, "pid", json_object_new_int64(g->kids[i].pid));
        json_object_object_add(k, "start_time", json_object_new_int64((int64_t)g->kids[i].start_time));
        json_object_object_add(k, "restarts", json_object_new_int64(g->kids[i].hist.restarts));
        json_object_array_add(kids, k);
    }
    json_object_object_add(j, "children", kids);
    char path[GROUP_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/group.json", g->run_dir);
    int rc = write_file(path, json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(j);
    return rc;
}

static const char *jstr(json_object *j, const char *key) {
    json_object *v;
    return json_object_object_get_ex(j, key, &v) && json_object_is_type(v, json_type_string) ? json_object_get_string(v)
                                                                                              : NULL;
}

static int64_t jint(json_object *j, const char *key) {
    json_object *v;
    return json_object_object_get_ex(j, key, &v) && json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : -1;
}

int group_json_read(group *g, const char *run_dir) {
    memset(g, 0, sizeof *g);
    char path[GROUP_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/group.json", run_dir);
    json_object *j = json_object_from_file(path);
    if (!j) {
        char why[256];
        const char *e = json_util_get_last_err();
        snprintf(why, sizeof why, "%s", e ? e : "not JSON");
        why[strcspn(why, "\n")] = '\0';
        return lmm_error_set("%s: cannot read it (%s)", path, why);
    }
    const char *rd = jstr(j, "run_dir"), *cep = jstr(j, "client_endpoint"), *sep = jstr(j, "services_endpoint");
    int64_t lp = jint(j, "launcher_pid");
    json_object *kids;
    if (!rd || !cep || !sep || lp <= 1 || lp > INT_MAX || !json_object_object_get_ex(j, "children", &kids) ||
        !json_object_is_type(kids, json_type_array)) {
        json_object_put(j);
        return lmm_error_set("%s: not a group.json written by lmlaunch up", path);
    }
    snprintf(g->run_dir, sizeof g->run_dir, "%s", rd);
    snprintf(g->client_ep, sizeof g->client_ep, "%s", cep);
    snprintf(g->services_ep, sizeof g->services_ep, "%s", sep);
    g->launcher_pid = (pid_t)lp;
    int64_t lst = jint(j, "launcher_start_time");
    g->launcher_start_time = lst > 0 ? (uint64_t)lst : 0;
    const char *mode = jstr(j, "mode");
    snprintf(g->mode, sizeof g->mode, "%s", mode ? mode : "");
    g->restart_all = mode && strcmp(mode, "up") == 0;
    json_object *tr;
    g->trace = json_object_object_get_ex(j, "trace", &tr) && json_object_get_boolean(tr);
    size_t n = json_object_array_length(kids);
    for (size_t i = 0; i < n && g->n_kids < GROUP_MAX_CHILDREN; i++) {
        json_object *k = json_object_array_get_idx(kids, i);
        const char *name = jstr(k, "name");
        int64_t pid = jint(k, "pid"), st = jint(k, "start_time"), rs = jint(k, "restarts");
        if (!name || pid <= 1 || pid > INT_MAX) continue;
        group_child *c = &g->kids[g->n_kids++];
        snprintf(c->name, sizeof c->name, "%s", name);
        c->pid = (pid_t)pid;
        c->log_fd = -1;
        c->start_time = st > 0 ? (uint64_t)st : 0;
        c->hist.restarts = rs > 0 && rs < INT_MAX ? (unsigned)rs : 0;
    }
    json_object_put(j);
    return 0;
}

/* ---- the pointer file ---------------------------------------------------------- */

void group_pointer_path(char *buf, size_t cap) {
    const char *env = getenv("LMM_CURRENT_FILE"); /* tests and several users of one HOME */
    if (env && *env) {
        snprintf(buf, cap, "%s", env);
        return;
    }
    const char *home = getenv("HOME");
    if (home && *home) {
        char dir[GROUP_PATH_MAX];
        snprintf(dir, sizeof dir, "%s/.cache", home);
        mkdir(dir, 0755);
        snprintf(dir, sizeof dir, "%s/.cache/lowmemoryllm", home);
        mkdir(dir, 0755);
        if (access(dir, W_OK) == 0) {
            snprintf(buf, cap, "%s/current", dir);
            return;
        }
    }
    snprintf(buf, cap, "/tmp/lmm-current-%u", (unsigned)getuid());
}

int group_pointer_write(const char *run_dir) {
    char path[GROUP_PATH_MAX], text[GROUP_PATH_MAX + 2];
    group_pointer_path(path, sizeof path);
    snprintf(text, sizeof text, "%s\n", run_dir);
    return write_file(path, text);
}

int group_pointer_read(char *run_dir, size_t cap) {
    char path[GROUP_PATH_MAX];
    group_pointer_path(path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f) return lmm_error_set("no group is up (%s: %s)", path, strerror(errno));
    char *ok = fgets(run_dir, (int)cap, f);
    fclose(f);
    if (!ok) return lmm_error_set("%s: empty", path);
    run_dir[strcspn(run_dir, "\n")] = '\0';
    if (!*run_dir) return lmm_error_set("%s: empty", path);
    return 0;
}

void group_pointer_write_failure(const char *run_dir, const char *why) {
    char cur[GROUP_PATH_MAX], path[GROUP_PATH_MAX], text[GROUP_PATH_MAX + LMM_ERROR_MAX + 16];
    if (group_pointer_read(cur, sizeof cur) != 0 || strcmp(cur, run_dir) != 0) return;
    group_pointer_path(path, sizeof path);
    int n = snprintf(text, sizeof text, "%s\nstopped: ", run_dir);
    for (const char *c = why; *c && n >= 0 && (size_t)n + 2 < sizeof text; c++) text[n++] = *c == '\n' ? ' ' : *c;
    if (n < 0) return;
    text[n++] = '\n';
    text[n] = '\0';
    write_file(path, text);
}

void group_pointer_read_failure(char *why, size_t cap) {
    char path[GROUP_PATH_MAX], line[GROUP_PATH_MAX + LMM_ERROR_MAX + 16];
    why[0] = '\0';
    group_pointer_path(path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f) return;
    if (fgets(line, sizeof line, f) && fgets(line, sizeof line, f) && strncmp(line, "stopped: ", 9) == 0) {
        line[strcspn(line, "\n")] = '\0';
        snprintf(why, cap, "%s", line + 9);
    }
    fclose(f);
}

void group_pointer_remove(const char *run_dir) {
    char cur[GROUP_PATH_MAX], path[GROUP_PATH_MAX];
    if (group_pointer_read(cur, sizeof cur) == 0 && strcmp(cur, run_dir) == 0) {
        group_pointer_path(path, sizeof path);
        unlink(path);
    }
}
