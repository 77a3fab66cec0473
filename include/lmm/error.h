/* lmm/error.h — error reporting.
 *
 * Library functions return 0 on success and -1 on failure; on failure they
 * have called lmm_error_set() with one line naming the cause, e.g.
 *   "model.gguf: tensor 'blk.0.attn_q.weight': data [1024, 5120) is beyond the end of the file (4096 bytes)"
 * Tools print lmm_error_get() and exit non-zero. The message is per thread. */
#ifndef LMM_ERROR_H
#define LMM_ERROR_H

#include <stddef.h>

#define LMM_ERROR_MAX 1024

/* Sets the calling thread's error message (printf-style). Always returns -1,
 * so that `return lmm_error_set(...)` reads naturally. */
int lmm_error_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prefixes the current message with "prefix: " (adds context on the way up). */
int lmm_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *lmm_error_get(void);
void lmm_error_clear(void);

#endif
