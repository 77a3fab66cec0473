/* tests/test_util.h — helpers shared by the CMocka tests. */
#ifndef LMM_TEST_UTIL_H
#define LMM_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

#endif
