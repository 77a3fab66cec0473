/* tests/test_util.h — helpers shared by the CMocka tests. */
#ifndef LMM_TEST_UTIL_H
#define LMM_TEST_UTIL_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* Path of ../shared (override: LMM_SHARED_DIR). Writes into buf; returns buf. */
static inline const char *test_shared_dir(char *buf, size_t cap) {
    const char *env = getenv("LMM_SHARED_DIR");
    int n;
    if (env && *env) {
        n = snprintf(buf, cap, "%s", env);
    } else {
        const char *src = getenv("LMM_SOURCE_DIR");
        n = snprintf(buf, cap, "%s/../shared", src && *src ? src : ".");
    }
    if (n < 0 || (size_t)n >= cap) buf[0] = '\0';
    return buf;
}

/* Path of a file under ../shared, or NULL (with a message on stderr) when absent;
 * callers then skip(). */
static inline const char *test_shared_file(char *buf, size_t cap, const char *rel) {
    char dir[1024];
    int n = snprintf(buf, cap, "%s/%s", test_shared_dir(dir, sizeof dir), rel);
    if (n < 0 || (size_t)n >= cap) {
        fprintf(stderr, "SKIP: path of %s too long\n", rel);
        return NULL;
    }
    FILE *f = fopen(buf, "rb");
    if (!f) {
        fprintf(stderr, "SKIP: %s not found (set LMM_SHARED_DIR)\n", buf);
        return NULL;
    }
    fclose(f);
    return buf;
}

/* Path of a built tool (ctest sets LMM_BIN_DIR). */
static inline const char *test_bin(char *buf, size_t cap, const char *tool) {
    const char *dir = getenv("LMM_BIN_DIR");
    int n = snprintf(buf, cap, "%s/%s", dir && *dir ? dir : "build/bin", tool);
    if (n < 0 || (size_t)n >= cap) buf[0] = '\0';
    return buf;
}

/* A fresh temporary directory (mkdtemp under $TMPDIR or /tmp). */
static inline const char *test_tmpdir(char *buf, size_t cap) {
    const char *t = getenv("TMPDIR");
    int n = snprintf(buf, cap, "%s/lmmtest.XXXXXX", t && *t ? t : "/tmp");
    if (n < 0 || (size_t)n >= cap) return NULL;
    return mkdtemp(buf);
}

/* Runs the built lmsynth with args (NULL-terminated), its stdout to /dev/null: 0 when it
 * succeeded, -1 when the tool is not built (the caller skips), -2 when it failed. */
static inline int test_run_lmsynth(const char *const *args) {
    char bin[1024];
    test_bin(bin, sizeof bin, "lmsynth");
    if (access(bin, X_OK) != 0) {
        fprintf(stderr, "SKIP: %s not built\n", bin);
        return -1;
    }
    char *argv[40];
    int n = 0;
    argv[n++] = bin;
    for (; args[n - 1] && n < 39; n++) argv[n] = (char *)args[n - 1];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0) return -2;
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) dup2(devnull, 1);
        execv(bin, argv);
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) return -2;
    return 0;
}

#endif
