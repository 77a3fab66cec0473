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
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "group.h"
#include "lmlaunch.h"
#include "lmm/error.h"
#include "lmm/trace.h"

#define MAX_TRACES (GROUP_MAX_CHILDREN + 1)

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int lmlaunch_profile_merge(const char *run_dir, const char *out) {
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
        size_t l = strlen(de->d_name);
        if (strncmp(de->d_name, "trace-", 6) == 0 && l > 11 && strcmp(de->d_name + l - 5, ".json") == 0)
            names[n_names++] = strdup(de->d_name);
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
            bad |= fputs(first ? "\n" : ",\n", f) < 0;
            bad |= fputs(json_object_to_json_string_ext(json_object_array_get_idx(evs, k),
                                                        JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
                         f) < 0;
            first = false;
        }
        events += n;
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
