/* tests/launch/proc_util.c — see proc_util.h. */
#include "proc_util.h"

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_util.h"

static char g_dir[600] = "/tmp";

void proc_dir_set(const char *dir) { snprintf(g_dir, sizeof g_dir, "%s", dir); }

double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

proc start(const char *tool, const char *tag, const char *const *args) {
    proc p;
    char bin[1024];
    test_bin(bin, sizeof bin, tool);
    snprintf(p.out, sizeof p.out, "%.600s/%.60s.out", g_dir, tag);
    snprintf(p.err, sizeof p.err, "%.600s/%.60s.err", g_dir, tag);
    char *argv[64];
    int n = 0;
    argv[n++] = bin;
    for (; args[n - 1] && n < 63; n++) argv[n] = (char *)args[n - 1];
    argv[n] = NULL;
    p.pid = fork();
    assert_true(p.pid >= 0);
    if (p.pid == 0) {
        int o = open(p.out, O_WRONLY | O_CREAT | O_TRUNC, 0644), e = open(p.err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0) _exit(126);
        dup2(o, 1);
        dup2(e, 2);
        setpgid(0, 0);
        execv(bin, argv);
        _exit(127);
    }
    return p;
}

int finish(const proc *p, double secs) {
    double t0 = now_s();
    for (;;) {
        int st;
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (now_s() - t0 > secs) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &st, 0);
            return -1;
        }
        sleep_ms(10);
    }
}

char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (len) *len = 0;
    if (!f) return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)(n > 0 ? n : 0) + 1);
    assert_non_null(s);
    size_t got = n > 0 ? fread(s, 1, (size_t)n, f) : 0;
    s[got] = '\0';
    fclose(f);
    if (len) *len = got;
    return s;
}

size_t file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (size_t)st.st_size : 0;
}

void assert_files_equal(const char *a, const char *b) {
    size_t la, lb;
    char *x = slurp(a, &la), *y = slurp(b, &lb);
    if (la != lb || la == 0 || memcmp(x, y, la) != 0) fail_msg("%s (%zu bytes) and %s (%zu bytes) differ", a, la, b, lb);
    free(x);
    free(y);
}
