/* tests/launch/test_live_kv_spill.c — the live KV spill of a process group, from the
 * outside (docs/kv-cache.md "Long contexts: live KV spill").
 *
 * One sequence of a 4-layer lmsynth model at a context of 2048 positions has 8 MiB of
 * live KV. `lmlaunch run --live-kv 1M --kv-disk DIR` (the workers hold 1 MiB of it in
 * RAM, the rest spills to DIR) over a prompt + 600 generated tokens (2.5 MiB of KV, more
 * than the RAM part) gives --dump-logits byte-identical to `lmlaunch run --in-process`
 * and to the group with the whole KV in RAM (`--live-kv 8M`). The live KV is private
 * anonymous memory of the compute worker: its Pss_Anon (/proc/PID/smaps_rollup, the
 * peak of samples every few ms while it runs) is then at most
 *     Pss_Anon(all in RAM) - 8 MiB + 1 MiB + margin,
 * margin 1.5 MiB: the attention scores scratch of the paged path (16 rows x 4 heads x
 * 2048 positions x 4 bytes = 512 KiB) plus 1 MiB of allocator and sampling slack.
 * (Whole Pss is printed too; its shared-memory part varies with the other processes
 * mapping the same segments, so it is not what the bound is checked on.) No spill file
 * is left in DIR. */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "proc_util.h"
#include "test_util.h"

#define KV_FULL (8ull << 20)   /* 2 (K, V) x 4 layers x 2048 positions x 128 floats x 4 bytes */
#define KV_RAM (1ull << 20)
#define MARGIN (3ull << 19) /* 1.5 MiB */

static char g_tmp[512];
static char g_model[1024];

/* The pid of the child of `parent` named lmm-compute, or 0. */
static pid_t find_compute(pid_t parent) {
    DIR *d = opendir("/proc");
    if (!d) return 0;
    struct dirent *e;
    pid_t found = 0;
    while (!found && (e = readdir(d))) {
        char path[300], buf[512];
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        /* pid (comm) state ppid ... */
        char *rp = strrchr(buf, ')');
        if (!rp || !strstr(buf, "(lmm-compute)")) continue;
        int ppid = 0;
        char st;
        if (sscanf(rp + 1, " %c %d", &st, &ppid) == 2 && ppid == parent) found = (pid_t)atoi(e->d_name);
    }
    closedir(d);
    return found;
}

/* Pss of the process in bytes (smaps_rollup), 0 when gone. */
static uint64_t pss_of(pid_t pid, const char *field) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    uint64_t kb = 0;
    size_t fl = strlen(field);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
            kb = strtoull(line + fl + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kb * 1024u;
}

/* Runs lmlaunch to the end; the peak Pss / Pss_Anon of its compute worker (0 without one). */
static int run_lmlaunch(const char *tag, const char *const *args, uint64_t *pss, uint64_t *anon) {
    pid_t p = start("lmlaunch", tag, args).pid;
    pid_t c = 0;
    *pss = *anon = 0;
    for (int waited = 0;; waited += 2) {
        int st;
        pid_t r = waitpid(p, &st, WNOHANG);
        if (r == p) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (waited > 120000) {
            kill(p, SIGTERM);
            waitpid(p, &st, 0);
            return -1;
        }
        if (!c) c = find_compute(p);
        if (c) {
            uint64_t a = pss_of(c, "Pss"), b = pss_of(c, "Pss_Anon");
            if (a > *pss) *pss = a;
            if (b > *anon) *anon = b;
        }
        sleep_ms(2);
    }
}

static char *slurp_tag(const char *tag, const char *ext) {
    char path[700];
    snprintf(path, sizeof path, "%s/%s.%s", g_tmp, tag, ext);
    return slurp(path, NULL);
}

static int setup(void **state) {
    (void)state;
    if (!test_tmpdir(g_tmp, sizeof g_tmp)) return -1;
    proc_dir_set(g_tmp);
    char cur[700];
    snprintf(cur, sizeof cur, "%s/current", g_tmp);
    setenv("LMM_CURRENT_FILE", cur, 1);
    unsetenv("LMM_SERVICE_BIN_DIR");
    snprintf(g_model, sizeof g_model, "%s/m.gguf", g_tmp);
    const char *a[] = {"--shape", "tiny", "--dim", "256", "--hidden", "320", "--layers", "4", "--heads", "4",
                       "--kv-heads", "2", "--seq", "2048", "--seed", "3", "--out", g_model, NULL};
    pid_t p = start("lmsynth", "lmsynth", a).pid;
    int st;
    return waitpid(p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_group_spill(void **state) {
    (void)state;
    char lg[3][700], dir[700];
    snprintf(dir, sizeof dir, "%s/kv", g_tmp);
    assert_int_equal(mkdir(dir, 0700), 0);
    static const char *const tags[3] = {"inproc", "ram", "spill"};
    uint64_t pss[3] = {0}, anon[3] = {0};
    for (int k = 0; k < 3; k++) {
        snprintf(lg[k], sizeof lg[k], "%s/%s.logits", g_tmp, tags[k]);
        const char *a[40] = {"run", "--model", g_model, "--ctx", "2048", "--prompt",
                             "Once upon a time there was a little girl", "--max-tokens", "600", "--temperature",
                             "1.0", "--seed", "3", "--threads", "2", "--dump-logits", lg[k]};
        int n = 17;
        if (k == 0) a[n++] = "--in-process";
        if (k == 1) a[n++] = "--live-kv", a[n++] = "8M";
        if (k == 2) a[n++] = "--live-kv", a[n++] = "1M", a[n++] = "--kv-disk", a[n++] = dir;
        a[n] = NULL;
        int rc = run_lmlaunch(tags[k], a, &pss[k], &anon[k]);
        char *err = slurp_tag(tags[k], "err");
        if (rc != 0) fail_msg("run (%s): exit %d: %s", tags[k], rc, err);
        if (k == 2 && !strstr(err, "live KV paged")) fail_msg("run (spill): the worker did not page: %s", err);
        free(err);
    }
    assert_files_equal(lg[0], lg[1]);
    assert_files_equal(lg[0], lg[2]);
    fprintf(stderr,
            "compute worker peak: all in RAM Pss %.2f MiB (anon %.2f); spill with 1 MiB of KV RAM Pss %.2f MiB "
            "(anon %.2f); KV %.0f MiB\n",
            (double)pss[1] / 1048576.0, (double)anon[1] / 1048576.0, (double)pss[2] / 1048576.0,
            (double)anon[2] / 1048576.0, (double)KV_FULL / 1048576.0);
    if (anon[1] == 0 || anon[2] == 0) skip(); /* the worker was too quick to be sampled */
    assert_true(anon[1] > KV_FULL);
    if (anon[2] > anon[1] - KV_FULL + KV_RAM + MARGIN)
        fail_msg("the spilling worker's Pss_Anon %llu exceeds the all-in-RAM one %llu - KV %llu + budget %llu + "
                 "margin %llu",
                 (unsigned long long)anon[2], (unsigned long long)anon[1], (unsigned long long)KV_FULL,
                 (unsigned long long)KV_RAM, (unsigned long long)MARGIN);
    /* the spill file is unlinked while open: nothing left behind */
    char cmd[800];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -q '^live-'", dir);
    assert_int_not_equal(system(cmd), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_group_spill, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
