/* core/error.c — per-thread "last error" message (see lmm/error.h). */
#include "lmm/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char error_buf[LMM_ERROR_MAX];

int lmm_error_set(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_buf, sizeof error_buf, fmt, ap);
    va_end(ap);
    return -1;
}

int lmm_error_prefix(const char *fmt, ...) {
    char prefix[LMM_ERROR_MAX];
    char old[LMM_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, error_buf, sizeof old);
    size_t n = strnlen(prefix, sizeof prefix - 3);
    memcpy(error_buf, prefix, n);
    memcpy(error_buf + n, ": ", 2);
    size_t room = sizeof error_buf - n - 3;
    size_t m = strnlen(old, room);
    memcpy(error_buf + n + 2, old, m);
    error_buf[n + 2 + m] = '\0';
    return -1;
}

const char *lmm_error_get(void) { return error_buf[0] ? error_buf : "unknown error"; }

void lmm_error_clear(void) { error_buf[0] = '\0'; }
