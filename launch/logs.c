/* launch/logs.c — `lmlaunch logs SERVICE [--run-dir DIR]`: prints RUN/SERVICE.log.
 *
 * Every service of `up` and `run` writes its stdout and stderr to RUN/<name>.log
 * (group.c); `run` also copies them to its own stderr as they come. RUN is the group of
 * the last `up` unless --run-dir names another (a `run` lives in /tmp/lmm-<its pid> while
 * it runs). SERVICE: scheduler, loader, compute.N, cache, or lmlaunch (the supervisor of
 * `up`). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "group.h"
#include "lmlaunch.h"
#include "lmm/error.h"

/* "scheduler, loader, compute.0, cache": the RUN/<name>.log files there are */
static void list_logs(const char *dir, char *buf, size_t cap) {
    buf[0] = '\0';
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l <= 4 || strcmp(de->d_name + l - 4, ".log") != 0) continue;
        size_t n = strlen(buf);
        snprintf(buf + n, cap - n, "%s%.*s", n ? ", " : "", (int)(l - 4), de->d_name);
    }
    closedir(d);
}

int lmlaunch_logs(const run_args *a) {
    const char *svc = a->positional;
    if (!*svc || strchr(svc, '/') || svc[0] == '.' || strlen(svc) > 60) {
        fprintf(stderr, "lmlaunch: logs: '%s' is not a service name (scheduler, loader, compute.N, cache)\n", svc);
        return EXIT_USAGE;
    }
    char dir[GROUP_PATH_MAX];
    if (a->run_dir) snprintf(dir, sizeof dir, "%s", a->run_dir);
    else if (group_pointer_read(dir, sizeof dir)) {
        fprintf(stderr, "lmlaunch: logs: %s (a `run` group: --run-dir /tmp/lmm-<pid>)\n", lmm_error_get());
        return 1;
    }
    char path[GROUP_PATH_MAX + 80];
    snprintf(path, sizeof path, "%s/%s.log", dir, svc);
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        char have[1024];
        list_logs(dir, have, sizeof have);
        if (have[0]) fprintf(stderr, "lmlaunch: logs: no log for '%s' in %s (there are: %s)\n", svc, dir, have);
        else fprintf(stderr, "lmlaunch: logs: %s: %s (is the group still up?)\n", path, strerror(e));
        return 1;
    }
    char buf[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        if (fwrite(buf, 1, n, stdout) != n) {
            rc = 1;
            break;
        }
    if (ferror(f)) {
        fprintf(stderr, "lmlaunch: logs: %s: read error\n", path);
        rc = 1;
    }
    fclose(f);
    if (fflush(stdout) != 0) rc = 1;
    return rc;
}
