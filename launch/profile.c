/* launch/profile.c — `lmlaunch run --profile FILE`: one Chrome trace of the whole group.
 *
 * With --profile, group_start() sets LMM_TRACE=1 and LMM_TRACE_DIR=RUN for the services;
 * each writes RUN/trace-<name>.json as it exits (core/trace.c). Once every child has been
 * reaped, group_stop() calls lmlaunch_profile_merge(): lmlaunch's own trace (request and
 * token spans) is written beside them, and the events of every file are copied into
 * FILE, one {"traceEvents": [...]} whose pids are the processes' own (Perfetto shows one
 * process track per service; the clocks agree, CLOCK_MONOTONIC on one machine). */
#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "group.h"
#include "lmlaunch.h"
#include "lmm/error.h"
#include "lmm/trace.h"

#define MAX_TRACES (GROUP_MAX_CHILDREN + 1)

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Keep event e of a trace cut at since_us (0: all): metadata, and events that end then or later. */
static bool in_window(json_object *e, uint64_t since_us) {
    if (since_us == 0) return true;
    json_object *v;
    if (json_object_object_get_ex(e, "ph", &v) && strcmp(json_object_get_string(v), "M") == 0) return true;
    int64_t ts = json_object_object_get_ex(e, "ts", &v) ? json_object_get_int64(v) : 0;
    int64_t dur = json_object_object_get_ex(e, "dur", &v) ? json_object_get_int64(v) : 0;
    return ts + dur >= (int64_t)since_us;
}

static bool is_trace_name(const char *n) {
    size_t l = strlen(n);
    return strncmp(n, "trace-", 6) == 0 && l > 11 && strcmp(n + l - 5, ".json") == 0;
}

int lmlaunch_profile_merge(const char *run_dir, const char *out, uint64_t since_us) {
    char path[GROUP_PATH_MAX + 64];
    if (lmm_trace_on()) {
        snprintf(path, sizeof path, "%s/trace-lmlaunch.json", run_dir);
        if (lmm_trace_write(path)) fprintf(stderr, "lmlaunch: --profile: %s\n", lmm_error_get());
    }
    char *names[MAX_TRACES];
    size_t n_names = 0;
    DIR *d = opendir(run_dir);
    if (!d) {
        fprintf(stderr, "lmlaunch: --profile: %s: %s\n", run_dir, strerror(errno));
        return -1;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL && n_names < MAX_TRACES) {
        if (is_trace_name(de->d_name)) names[n_names++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, n_names, sizeof *names, by_name);

    char tmp[GROUP_PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "lmlaunch: --profile: %s: %s\n", tmp, strerror(errno));
        for (size_t i = 0; i < n_names; i++) free(names[i]);
        return -1;
    }
    int bad = fputs("{\"traceEvents\":[", f) < 0;
    bool first = true;
    uint64_t events = 0, dropped = 0;
    char who[1024] = "";
    json_object *procs = json_object_new_array();
    for (size_t i = 0; i < n_names; i++) {
        snprintf(path, sizeof path, "%s/%s", run_dir, names[i]);
        json_object *j = json_object_from_file(path), *evs, *other, *v;
        if (!j || !json_object_object_get_ex(j, "traceEvents", &evs) || !json_object_is_type(evs, json_type_array)) {
            fprintf(stderr, "lmlaunch: --profile: %s is not a trace (%s); left out\n", names[i],
                    j ? "no traceEvents" : json_util_get_last_err());
            json_object_put(j);
            continue;
        }
        size_t n = json_object_array_length(evs);
        for (size_t k = 0; k < n && !bad; k++) {
            json_object *e = json_object_array_get_idx(evs, k);
            if (!in_window(e, since_us)) continue;
            bad |= fputs(first ? "\n" : ",\n", f) < 0;
            bad |= fputs(json_object_to_json_string_ext(e, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
                         f) < 0;
            first = false;
            events++;
        }
        /* "trace-compute.0.json" -> "compute.0" */
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(strlen(names[i]) - 11), names[i] + 6);
        if (json_object_object_get_ex(j, "otherData", &other) && json_object_object_get_ex(other, "dropped", &v))
            dropped += (uint64_t)json_object_get_int64(v);
        json_object_array_add(procs, json_object_new_string(name));
        size_t wl = strlen(who);
        snprintf(who + wl, sizeof who - wl, "%s%s", wl ? ", " : "", name);
        json_object_put(j);
    }
    json_object *other = json_object_new_object();
    json_object_object_add(other, "processes", procs);
    json_object_object_add(other, "dropped", json_object_new_int64((int64_t)dropped));
    json_object_object_add(other, "clock", json_object_new_string("CLOCK_MONOTONIC, microseconds"));
    bad |= fprintf(f, "\n],\"displayTimeUnit\":\"ms\",\"otherData\":%s}\n",
                   json_object_to_json_string_ext(other, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)) < 0;
    json_object_put(other);
    bad |= fclose(f) != 0;
    for (size_t i = 0; i < n_names; i++) free(names[i]);
    if (bad || rename(tmp, out) != 0) {
        fprintf(stderr, "lmlaunch: --profile: %s: write failed: %s\n", out, strerror(errno));
        unlink(tmp);
        return -1;
    }
    fprintf(stderr, "lmlaunch: profile written to %s (%llu events from %s%s)\n", out, (unsigned long long)events,
            who[0] ? who : "no process", dropped ? "; the oldest events of some processes were dropped" : "");
    return 0;
}

/* ---- lmlaunch profile: a group up with --trace ---------------------------------- */

static unsigned count_traces(const char *run_dir) {
    unsigned n = 0;
    DIR *d = opendir(run_dir);
    if (!d) return 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) n += is_trace_name(de->d_name);
    closedir(d);
    return n;
}

static void remove_traces(const char *run_dir) {
    DIR *d = opendir(run_dir);
    if (!d) return;
    struct dirent *de;
    char path[GROUP_PATH_MAX + 300];
    while ((de = readdir(d)) != NULL)
        if (is_trace_name(de->d_name)) {
            snprintf(path, sizeof path, "%s/%s", run_dir, de->d_name);
            unlink(path);
        }
    closedir(d);
}

static void nap_ms(unsigned ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int lmlaunch_profile(const run_args *a) {
    char dir[GROUP_PATH_MAX];
    if (a->run_dir) snprintf(dir, sizeof dir, "%s", a->run_dir);
    else if (group_pointer_read(dir, sizeof dir)) {
        fprintf(stderr, "lmlaunch: profile: %s\n", lmm_error_get());
        return 1;
    }
    group g;
    if (group_json_read(&g, dir)) {
        fprintf(stderr, "lmlaunch: profile: no group is up at %s: %s\n", dir, lmm_error_get());
        return 1;
    }
    if (!g.trace) {
        fprintf(stderr, "lmlaunch: profile: the group at %s does not record traces (start it with `lmlaunch up "
                        "--trace`)\n", g.run_dir);
        return 1;
    }
    unsigned seconds = a->seconds ? a->seconds : 5;
    /* the services record all the time (a ring of the newest events); the profile is
     * what they hold once the N seconds are over, cut at their start */
    uint64_t since = lmm_trace_now_us();
    fprintf(stderr, "lmlaunch: recording %u s...\n", seconds);
    nap_ms(seconds * 1000u);
    remove_traces(g.run_dir); /* an earlier profile's */
    unsigned asked = 0;
    for (unsigned i = 0; i < g.n_kids; i++)
        if (group_pid_is(g.kids[i].pid, g.kids[i].start_time) && kill(g.kids[i].pid, SIGUSR2) == 0) asked++;
    if (asked == 0) {
        fprintf(stderr, "lmlaunch: profile: no service of the group at %s is running\n", g.run_dir);
        return 1;
    }
    /* each writes RUN/trace-<name>.json at its next poll (at most ~1 s away) */
    for (int waited = 0; count_traces(g.run_dir) < asked && waited < 10000; waited += 20) nap_ms(20);
    unsigned got = count_traces(g.run_dir);
    if (got < asked)
        fprintf(stderr, "lmlaunch: profile: warning: %u of %u services wrote their trace within 10 s\n", got, asked);
    int rc = lmlaunch_profile_merge(g.run_dir, a->out, since) ? 1 : 0;
    remove_traces(g.run_dir);
    return rc;
}
