/* bench/prefix.c — time to first token with and without cross-request KV reuse
 * (docs/kv-cache.md), side by side in one run.
 *
 *   bench_prefix BIN_DIR MODEL [--questions N] [--prefix-words N] [--workers N]
 *
 * Starts two process groups on the same model (lmm-scheduler, -loader, -compute, -cache
 * from BIN_DIR, private ipc endpoints under /tmp): one with --no-prefix-cache, one with
 * reuse on. To each it sends the same requests one after another: a shared prefix of
 * about --prefix-words words (~1,000 tokens) plus a short question, max_tokens 1, greedy.
 * The first request of the reuse group fills the cache (it is reported, not counted);
 * the others are compared: time to first token (GENERATE sent -> first TOKEN), median of
 * each group, and their ratio (ratio_ttft = no reuse / reuse). The first tokens must be
 * the same in both groups (checked). Then the reuse group's STATUS: hits, misses, bytes
 * loaded from the cache. Table, then one JSON line. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lmm/error.h"
#include "lmm/proto.h"
#include "lmm/service.h"

#define MAX_Q 64

typedef struct {
    char dir[256], cep[300], sep[300];
    pid_t pid[8];
    int n;
    lmm_service_sock sock;
} group;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const char *g_bin;

static void spawn(group *g, const char *name, const char *tool, char **args) {
    char bin[1024], log[512];
    snprintf(bin, sizeof bin, "%s/%s", g_bin, tool);
    snprintf(log, sizeof log, "%s/%s.log", g->dir, name);
    char *argv[40];
    int n = 0;
    argv[n++] = bin;
    for (int i = 0; args[i] && n < 39; i++) argv[n++] = args[i];
    argv[n] = NULL;
    char me[32];
    snprintf(me, sizeof me, "%d", (int)getpid());
    pid_t pid = fork();
    if (pid == 0) {
        setenv("LMM_LAUNCHER_PID", me, 1);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600), nul = open("/dev/null", O_RDWR);
        if (fd >= 0) dup2(fd, 2);
        if (nul >= 0) dup2(nul, 0), dup2(nul, 1);
        execv(bin, argv);
        _exit(127);
    }
    g->pid[g->n++] = pid;
}

static int status(group *g, lmm_msg_status_reply *out) {
    lmm_msg m;
    lmm_proto_msg_init(&m, LMM_MSG_STATUS);
    if (lmm_service_send(&g->sock, NULL, &m)) return -1;
    double t_end = now_s() + 5;
    while (now_s() < t_end) {
        int rc = lmm_service_recv(&g->sock, NULL, &m, 100);
        if (rc < 0) return -1;
        if (rc == LMM_SERVICE_MSG && m.type == LMM_MSG_STATUS_REPLY) {
            *out = m.status_reply;
            return 0;
        }
    }
    return lmm_error_set("no STATUS_REPLY");
}

static void group_stop(group *g) {
    lmm_msg m;
    lmm_proto_msg_init(&m, LMM_MSG_SHUTDOWN);
    lmm_service_send(&g->sock, NULL, &m);
    double t_end = now_s() + 10;
    for (int i = 0; i < g->n; i++) {
        int st;
        while (waitpid(g->pid[i], &st, WNOHANG) == 0) {
            if (now_s() > t_end) {
                kill(g->pid[i], SIGKILL);
                waitpid(g->pid[i], &st, 0);
                break;
            }
            usleep(10000);
        }
    }
    lmm_service_sock_close(&g->sock);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g->dir);
    if (system(cmd)) {}
}

static int group_start(group *g, const char *model, const char *workers, int reuse) {
    memset(g, 0, sizeof *g);
    snprintf(g->dir, sizeof g->dir, "/tmp/lmm-bench-prefix.XXXXXX");
    if (!mkdtemp(g->dir)) return lmm_error_set("mkdtemp: %s", strerror(errno));
    snprintf(g->cep, sizeof g->cep, "ipc://%s/client.ipc", g->dir);
    snprintf(g->sep, sizeof g->sep, "ipc://%s/services.ipc", g->dir);
    char *sa[] = {"--run-dir", g->dir,  "--model",   (char *)model, "--client",        g->cep, "--services",
                  g->sep,      "--workers", (char *)workers, "--max-batch", "128", reuse ? NULL : "--no-prefix-cache",
                  NULL};
    spawn(g, "scheduler", "lmm-scheduler", sa);
    char *la[] = {"--run-dir", g->dir, "--services", g->sep, NULL};
    spawn(g, "loader", "lmm-loader", la);
    int nw = atoi(workers);
    for (int w = 0; w < nw; w++) {
        char idx[16], name[32];
        snprintf(idx, sizeof idx, "%d", w);
        snprintf(name, sizeof name, "compute.%d", w);
        char *ca[] = {"--run-dir", g->dir, "--services", g->sep, "--index", idx, NULL};
        spawn(g, name, "lmm-compute", ca);
    }
    spawn(g, "cache", "lmm-cache", la);
    if (lmm_service_dealer_connect(&g->sock, g->cep, "launch")) return -1;
    lmm_msg ack;
    if (lmm_service_hello(&g->sock, LMM_PROTO_ROLE_LAUNCH, "bench", 20000, &ack)) return -1;
    double t_end = now_s() + 60;
    for (;;) {
        lmm_msg_status_reply st;
        if (status(g, &st) == 0 && st.ready) return 0;
        if (now_s() > t_end) return lmm_error_set("the group did not become ready (logs in %s)", g->dir);
        usleep(20000);
    }
}

/* One request; *ttft = seconds to the first TOKEN, *tok its id, *n_prompt from DONE. */
static int ask(group *g, const char *prompt, double *ttft, uint32_t *tok, uint32_t *n_prompt) {
    lmm_service_sock c;
    if (lmm_service_dealer_connect(&c, g->cep, NULL)) return -1;
    lmm_msg m;
    if (lmm_service_hello(&c, LMM_PROTO_ROLE_CLIENT, "bench", 10000, &m)) goto fail;
    lmm_proto_msg_init(&m, LMM_MSG_GENERATE);
    m.generate.req_id = 1;
    m.generate.prompt = (lmm_proto_bytes){prompt, strlen(prompt)};
    m.generate.max_tokens = 1;
    m.generate.sampling.temperature = 0.0f;
    double t0 = now_s();
    *ttft = -1;
    if (lmm_service_send(&c, NULL, &m)) goto fail;
    for (;;) {
        int rc = lmm_service_recv(&c, NULL, &m, 120000);
        if (rc < 0) goto fail;
        if (rc == LMM_SERVICE_TIMEOUT) {
            lmm_error_set("no answer within 120 s");
            goto fail;
        }
        if (rc != LMM_SERVICE_MSG) continue;
        if (m.type == LMM_MSG_TOKEN && *ttft < 0) {
            *ttft = now_s() - t0;
            *tok = m.token.id;
        } else if (m.type == LMM_MSG_DONE) {
            *n_prompt = m.done.n_prompt;
            break;
        } else if (m.type == LMM_MSG_ERROR) {
            lmm_error_set("ERROR: %s", m.error.message);
            goto fail;
        }
    }
    lmm_service_sock_close(&c);
    return 0;
fail:
    lmm_service_sock_close(&c);
    return -1;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_prefix BIN_DIR MODEL [--questions N] [--prefix-words N] [--workers N]\n");
        return 2;
    }
    g_bin = argv[1];
    const char *model = argv[2], *workers = "1";
    int nq = 8, words = 480;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--questions") == 0) nq = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--prefix-words") == 0) words = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--workers") == 0) workers = argv[i + 1];
    }
    if (nq < 2) nq = 2;
    if (nq > MAX_Q) nq = MAX_Q;
    signal(SIGPIPE, SIG_IGN);
    static const char *const vocab[] = {"the", "cat", "sat", "on", "a", "warm", "mat", "while", "rain", "fell",
                                        "over", "quiet", "town", "and", "children", "played", "near", "river"};
    size_t cap = (size_t)words * 12 + 256;
    char *prefix = malloc(cap), *prompt = malloc(cap + 128);
    size_t len = 0;
    for (int i = 0; i < words; i++)
        len += (size_t)snprintf(prefix + len, cap - len, "%s ", vocab[(i * 7 + i / 5) % 18]);
    double t_off[MAX_Q], t_on[MAX_Q], t_first = 0;
    uint32_t tok_off[MAX_Q], tok_on[MAX_Q], n_prompt = 0;
    lmm_msg_status_reply st;
    memset(&st, 0, sizeof st);
    int rc = 1;
    for (int reuse = 0; reuse <= 1; reuse++) {
        group g;
        if (group_start(&g, model, workers, reuse)) {
            fprintf(stderr, "bench_prefix: %s\n", lmm_error_get());
            group_stop(&g);
            goto out;
        }
        /* the reuse group's first request fills the cache: one extra, not counted */
        for (int q = reuse ? -1 : 0; q < nq; q++) {
            snprintf(prompt, cap + 128, "%sQuestion %d: where did the %s go?", prefix, q + 1, vocab[(q + 3) % 18]);
            double t;
            uint32_t tok = 0, np = 0;
            if (ask(&g, prompt, &t, &tok, &np)) {
                fprintf(stderr, "bench_prefix: %s\n", lmm_error_get());
                group_stop(&g);
                goto out;
            }
            n_prompt = np;
            if (q < 0) t_first = t;
            else if (reuse) t_on[q] = t, tok_on[q] = tok;
            else t_off[q] = t, tok_off[q] = tok;
        }
        if (reuse && status(&g, &st)) fprintf(stderr, "bench_prefix: %s\n", lmm_error_get());
        group_stop(&g);
    }
    int same = 1;
    for (int q = 0; q < nq; q++) same &= tok_on[q] == tok_off[q];
    double a[MAX_Q], b[MAX_Q];
    memcpy(a, t_off, sizeof(double) * (size_t)nq);
    memcpy(b, t_on, sizeof(double) * (size_t)nq);
    qsort(a, (size_t)nq, sizeof *a, cmp_d);
    qsort(b, (size_t)nq, sizeof *b, cmp_d);
    double m_off = a[nq / 2], m_on = b[nq / 2];
    double hit_rate = st.kv_hits + st.kv_misses ? (double)st.kv_hits / (double)(st.kv_hits + st.kv_misses) : 0;
    printf("prefix reuse: %s, %u-token prompts (shared prefix of %d words + a question), %d questions, %s worker(s)\n",
           model, n_prompt, words, nq, workers);
    printf("  %-34s %10s\n", "", "TTFT (ms)");
    printf("  %-34s %10.1f\n", "no reuse (--no-prefix-cache), median", m_off * 1e3);
    printf("  %-34s %10.1f\n", "reuse, median", m_on * 1e3);
    printf("  %-34s %10.1f\n", "reuse, first request (fills cache)", t_first * 1e3);
    printf("  ratio_ttft (no reuse / reuse)      %10.2f\n", m_on > 0 ? m_off / m_on : 0);
    printf("  hit rate %.3f (%llu hits, %llu misses), %llu bytes loaded from the cache, %llu blocks held (%llu bytes)\n",
           hit_rate, (unsigned long long)st.kv_hits, (unsigned long long)st.kv_misses,
           (unsigned long long)st.kv_bytes_loaded, (unsigned long long)st.kv_blocks,
           (unsigned long long)st.kv_ram_bytes);
    printf("  first tokens equal with and without reuse: %s\n", same ? "yes" : "NO");
    printf("{\"bench\":\"prefix\",\"n_prompt\":%u,\"questions\":%d,\"ttft_ms_no_reuse\":%.3f,\"ttft_ms_reuse\":%.3f,"
           "\"ttft_ms_first\":%.3f,\"ratio_ttft\":%.3f,\"hit_rate\":%.4f,\"kv_hits\":%llu,\"kv_misses\":%llu,"
           "\"kv_bytes_loaded\":%llu,\"kv_ram_bytes\":%llu,\"same_tokens\":%s}\n",
           n_prompt, nq, m_off * 1e3, m_on * 1e3, t_first * 1e3, m_on > 0 ? m_off / m_on : 0, hit_rate,
           (unsigned long long)st.kv_hits, (unsigned long long)st.kv_misses, (unsigned long long)st.kv_bytes_loaded,
           (unsigned long long)st.kv_ram_bytes, same ? "true" : "false");
    rc = same ? 0 : 1;
out:
    free(prefix);
    free(prompt);
    lmm_service_ctx_term();
    return rc;
}
