/* tests/launch/proc_util.h — the project's tools as processes, from a test: start one
 * with its stdout and stderr in files, wait for it with a deadline, read what it wrote.
 * Shared by test_launch.c, test_launch_kv.c and test_live_kv_spill.c. */
#ifndef LMM_TESTS_PROC_UTIL_H
#define LMM_TESTS_PROC_UTIL_H

#include <stddef.h>
#include <sys/types.h>

typedef struct {
    pid_t pid;
    char out[700], err[700]; /* DIR/<tag>.out, DIR/<tag>.err */
} proc;

/* Where start() puts the .out/.err files (the test's temporary directory). */
void proc_dir_set(const char *dir);

double now_s(void);
void sleep_ms(int ms);
/* Starts tool (a binary in LMM_BIN_DIR) with args (NULL-terminated) in its own process
 * group (a test never signals ctest); stdout and stderr to DIR/<tag>.out and .err. */
proc start(const char *tool, const char *tag, const char *const *args);
/* Waits up to secs; the exit code (128 + signal if killed), or -1 on timeout (then the
 * process is SIGKILLed and reaped). */
int finish(const proc *p, double secs);
/* The whole file, NUL-terminated ("" when it cannot be read); *len its size (optional). */
char *slurp(const char *path, size_t *len);
size_t file_size(const char *path);
/* Fails unless both files exist, are not empty and hold the same bytes. */
void assert_files_equal(const char *a, const char *b);

#endif
