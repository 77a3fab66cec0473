/* tests/services/test_group.c — the scheduler and compute workers from the outside.
 *
 * The test starts the group itself (lmm-scheduler, lmm-loader, lmm-compute.N, lmm-cache
 * from LMM_BIN_DIR, on private ipc endpoints in a temporary directory), talks to it as a
 * client, and compares with the in-process engine run here (lmm_transformer +
 * lmm_sampler, exactly the steps of `lmlaunch run`). argv[1] picks a group, one ctest
 * entry each:
 *   exact    : --dump-logits bytes (every TOKEN's logits) and tokens equal the in-process
 *              run for every budget from all-resident down to the minimum (lmsynth tiny,
 *              16 KiB pieces: 37 pieces), 1 worker;
 *   exact_workers: the same at all-resident / half / minimum with 2 workers; F16 weights
 *              with 3 workers;
 *   exact_stories: stories260K (skipped without ../shared) at all-resident / half /
 *              minimum x 1 / 2 workers, two prompts each.
 *   batch    : two clients at once (and three with two sequences: one waits) each get
 *              exactly what they get alone; CANCEL ends a request with stop "cancelled".
 *   memory   : PSS of every process of the group (smaps_rollup; shared memory is mapped
 *              by the scheduler, so its pages are in the sum) <= --mem-budget + the
 *              documented fixed overhead per process, at half and minimum budgets with
 *              2 workers, after a generation; no /dev/shm segment left after a stop;
 *   memory_big: the same on a stories15M-shaped model (58 MiB of weights), where the
 *              budget, not the overhead, dominates.
 *   faults   : garbage bytes, an unknown field, a wrong protocol version, a prompt over
 *              1 MiB, a prompt longer than the context, an out-of-range sampling value,
 *              a duplicate req_id, SHUTDOWN from a client -> an ERROR reply each, and the
 *              next request is still served exactly; a budget below the minimum -> the
 *              scheduler exits 1 saying what the minimum is.
 *   recover  : kill -9 of the loader, each worker and the cache (and a SIGSTOPped worker,
 *              killed by the scheduler's watchdog) mid-generation, each replaced with the
 *              same command line as lmlaunch does: the request ends with the in-process
 *              run's tokens and logits, and so does the next; with the cache killed and
 *              not replaced the group serves on exactly; on a stories15M-shaped model
 *              with everything streamed the kills land inside steps. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
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

#include "lmm/client.h"
#include "lmm/error.h"
#include "lmm/model.h"
#include "lmm/proto.h"
#include "lmm/sampler.h"
#include "lmm/service.h"
#include "lmm/shm_ring.h"
#include "lmm/tokenizer.h"
#include "lmm/transformer.h"
#include "test_util.h"

/* Fixed overhead per process outside --mem-budget (docs/process-group.md, "Scheduler",
 * "Memory"): code and libraries (libc, libzmq, libstdc++, msgpack, json-c, liburing),
 * ZeroMQ's threads and buffers, the decoder zone, the model description, the tokenizer. */
#define OVERHEAD_PER_PROCESS (6ull << 20)

static char g_tmp[512];
static char g_tiny[1024], g_tiny16[1024];
static char g_stories[2048], g_stories_tok[2048];
static int g_have_stories;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- the in-process reference (the steps of lmlaunch run) ---------------------------- */

typedef struct {
    uint32_t ids[512];     /* TOKEN ids in order (the EOS token too, when dumped) */
    uint32_t n_ids;
    float *logits;         /* [n_rows][n_vocab] */
    uint32_t n_rows, cap_rows, n_vocab;
    char text[8192];
    size_t text_len;
    lmm_proto_stop stop;
    uint32_t n_generated, n_prompt;
} run_result;

static void result_free(run_result *r) {
    free(r->logits);
    memset(r, 0, sizeof *r);
}

static void result_add(run_result *r, uint32_t id, const void *logits, uint32_t n_logits, const void *text,
                       size_t text_len) {
    assert_true(r->n_ids < sizeof r->ids / sizeof *r->ids);
    r->ids[r->n_ids++] = id;
    if (n_logits) {
        if (r->n_vocab == 0) r->n_vocab = n_logits;
        assert_int_equal(n_logits, r->n_vocab);
        if (r->n_rows == r->cap_rows) {
            r->cap_rows = r->cap_rows ? r->cap_rows * 2 : 64;
            r->logits = realloc(r->logits, (size_t)r->cap_rows * r->n_vocab * sizeof(float));
            assert_non_null(r->logits);
        }
        memcpy(r->logits + (size_t)r->n_rows * r->n_vocab, logits, (size_t)n_logits * sizeof(float));
        r->n_rows++;
    }
    if (text_len) {
        assert_true(r->text_len + text_len < sizeof r->text);
        memcpy(r->text + r->text_len, text, text_len);
        r->text_len += text_len;
    }
}

typedef struct {
    const char *prompt;
    uint32_t max_tokens;
    lmm_sampler_opts sampling;
    bool context_shift;
    bool no_prefix_cache;
    bool max_tokens_default; /* GENERATE.max_tokens_default: end at the context, not refused */
} gen_req;

static gen_req req_make(const char *prompt, uint32_t max_tokens, float temperature, uint64_t seed) {
    gen_req g;
    memset(&g, 0, sizeof g);
    g.prompt = prompt;
    g.max_tokens = max_tokens;
    lmm_sampler_opts_default(&g.sampling);
    g.sampling.temperature = temperature;
    g.sampling.seed = seed;
    return g;
}

static void reference_run(const char *model, const char *tokenizer, const gen_req *g, run_result *out) {
    memset(out, 0, sizeof *out);
    lmm_model_desc d;
    assert_int_equal(lmm_model_desc_open(&d, model), 0);
    lmm_tokenizer *tok;
    assert_int_equal(lmm_tokenizer_load_for_model(&tok, &d, tokenizer), 0);
    uint32_t ids[1024];
    size_t n = 0;
    assert_int_equal(lmm_tokenizer_encode(tok, g->prompt, strlen(g->prompt), LMM_TOK_ADD_SPECIAL, ids, 512, &n), 0);
    assert_true(n <= 512);
    if (n == 0) {
        uint32_t bos = lmm_tokenizer_bos(tok);
        ids[n++] = bos == UINT32_MAX ? d.bos_id : bos;
    }
    out->n_prompt = (uint32_t)n;
    lmm_weights w;
    assert_int_equal(lmm_weights_load(&w, &d), 0);
    uint32_t n_ctx = d.hp.max_seq_len;
    lmm_transformer_opts to = {n_ctx, 0, 1};
    lmm_transformer *t;
    assert_int_equal(lmm_transformer_init(&t, &w, &to), 0);
    lmm_sampler *s;
    assert_int_equal(lmm_sampler_init(&s, d.hp.n_vocab, &g->sampling), 0);
    float *logits = malloc((size_t)d.hp.n_vocab * sizeof *logits), *work = malloc((size_t)d.hp.n_vocab * sizeof *work);
    assert_non_null(logits);
    assert_non_null(work);
    uint32_t eos = lmm_tokenizer_eos(tok);
    if (eos == UINT32_MAX) eos = d.eos_id;
    uint32_t bos_stop = d.format == LMM_FORMAT_LLAMA2C ? lmm_tokenizer_bos(tok) : UINT32_MAX;
    for (size_t i = 0; i < n; i++) lmm_sampler_accept(s, ids[i]);
    assert_int_equal(lmm_transformer_forward(t, ids, (uint32_t)n, 0, logits, 0), 0);
    uint32_t pos = (uint32_t)n;
    out->stop = LMM_PROTO_STOP_LENGTH;
    char piece[1024];
    for (uint32_t step = 0; step < g->max_tokens; step++) {
        memcpy(work, logits, (size_t)d.hp.n_vocab * sizeof *work);
        uint32_t next = lmm_sampler_sample(s, work);
        if (next == eos || next == bos_stop) {
            result_add(out, next, logits, d.hp.n_vocab, NULL, 0);
            out->stop = LMM_PROTO_STOP_EOS;
            break;
        }
        size_t plen = 0;
        assert_int_equal(lmm_tokenizer_decode_token(tok, ids[pos - 1], next, piece, sizeof piece, &plen), 0);
        result_add(out, next, logits, d.hp.n_vocab, piece, plen);
        lmm_sampler_accept(s, next);
        ids[pos] = next;
        out->n_generated++;
        if (step + 1 == g->max_tokens) break;
        if (pos + 1 >= n_ctx) {
            out->stop = LMM_PROTO_STOP_CONTEXT;
            break;
        }
        assert_int_equal(lmm_transformer_forward(t, &ids[pos], 1, pos, logits, 0), 0);
        pos++;
    }
    free(logits);
    free(work);
    lmm_sampler_free(s);
    lmm_transformer_free(t);
    lmm_weights_free(&w);
    lmm_tokenizer_free(tok);
    lmm_model_desc_free(&d);
}

static void assert_same(const run_result *a, const run_result *b, const char *what) {
    if (a->n_ids != b->n_ids || memcmp(a->ids, b->ids, a->n_ids * sizeof *a->ids) != 0 || a->n_rows != b->n_rows ||
        a->n_vocab != b->n_vocab ||
        (a->n_rows && memcmp(a->logits, b->logits, (size_t)a->n_rows * a->n_vocab * sizeof(float)) != 0) ||
        a->stop != b->stop || a->n_generated != b->n_generated) {
        fprintf(stderr, "%s: differs: %u vs %u tokens, %u vs %u logit rows, stop %d vs %d\n", what, a->n_ids, b->n_ids,
                a->n_rows, b->n_rows, (int)a->stop, (int)b->stop);
        fail();
    }
}

/* ---- the group ---------------------------------------------------------------------- */

typedef struct {
    const char *model, *tokenizer;
    uint64_t budget;
    unsigned workers;
    uint64_t piece_bytes;
    unsigned max_seqs;
    unsigned max_queue;
    unsigned max_batch;      /* 0: the scheduler's default */
    const char *kv_budget;   /* lmm-cache --kv-budget, or NULL */
    const char *kv_block;    /* lmm-cache --kv-block, or NULL */
    const char *kv_disk;     /* lmm-cache --kv-disk, or NULL */
    bool no_prefix_cache;    /* lmm-scheduler --no-prefix-cache */
    unsigned ctx;            /* lmm-scheduler --ctx, 0: the model's */
    const char *step_timeout_ms; /* lmm-scheduler --step-timeout-ms, or NULL */
} group_cfg;

typedef struct {
    char dir[600], cep[700], sep[700];
    pid_t pid[16];
    char name[16][32];
    char tool[16][32];
    char *args[16][40];      /* copies, for respawn() */
    int n;
    lmm_service_sock sock; /* DEALER, role launch */
    bool open;
} group;

/* Forks and execs child i (g->tool[i], g->args[i]) with stderr to DIR/<name>.log,
 * truncated (start) or appended to (a restart, as lmlaunch's supervisor does). */
static pid_t start_child(group *g, int i, bool append) {
    char bin[1024], log[800];
    test_bin(bin, sizeof bin, g->tool[i]);
    snprintf(log, sizeof log, "%s/%s.log", g->dir, g->name[i]);
    char *argv[41];
    int n = 0;
    argv[n++] = bin;
    for (int j = 0; j < 40 && g->args[i][j]; j++) argv[n++] = g->args[i][j];
    argv[n] = NULL;
    char me[32];
    snprintf(me, sizeof me, "%d", (int)getpid());
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("LMM_LAUNCHER_PID", me, 1);
        int fd = open(log, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0600);
        int nul = open("/dev/null", O_RDWR);
        if (fd >= 0) dup2(fd, 2);
        if (nul >= 0) {
            dup2(nul, 0);
            dup2(nul, 1);
        }
        execv(bin, argv);
        _exit(127);
    }
    g->pid[i] = pid;
    return pid;
}

static pid_t spawn(group *g, const char *name, const char *tool, char **args) {
    int i = g->n++;
    snprintf(g->name[i], sizeof g->name[i], "%s", name);
    snprintf(g->tool[i], sizeof g->tool[i], "%s", tool);
    int n = 0;
    for (; n < 39 && args[n]; n++) g->args[i][n] = strdup(args[n]);
    g->args[i][n] = NULL;
    return start_child(g, i, false);
}

/* Starts child i again with the same arguments (what lmlaunch's supervisor does after
 * a crash). */
static pid_t respawn(group *g, int i) { return start_child(g, i, true); }

/* Unlinks /dev/shm/lmm-<pid>-* (what lmlaunch does for every child it reaps). */
static void shm_unlink_of(pid_t pid) {
    char prefix[64];
    snprintf(prefix, sizeof prefix, "lmm-%d-", (int)pid);
    DIR *d = opendir("/dev/shm");
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
            char p[600];
            snprintf(p, sizeof p, "/dev/shm/%s", e->d_name);
            unlink(p);
        }
    if (d) closedir(d);
}

static void group_free_args(group *g) {
    for (int i = 0; i < g->n; i++)
        for (int j = 0; j < 40 && g->args[i][j]; j++) {
            free(g->args[i][j]);
            g->args[i][j] = NULL;
        }
}

static void print_logs(const group *g) {
    for (int i = 0; i < g->n; i++) {
        char path[800], line[1024];
        snprintf(path, sizeof path, "%s/%s.log", g->dir, g->name[i]);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        while (fgets(line, sizeof line, f)) fprintf(stderr, "  [%s] %s", g->name[i], line);
        fclose(f);
    }
}

/* A child that exited: its name, else NULL. */
static const char *group_dead(group *g) {
    for (int i = 0; i < g->n; i++) {
        if (g->pid[i] <= 0) continue;
        int st;
        if (waitpid(g->pid[i], &st, WNOHANG) == g->pid[i]) {
            g->pid[i] = -g->pid[i];
            return g->name[i];
        }
    }
    return NULL;
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
    return -1;
}

static void group_start(group *g, const group_cfg *c) {
    memset(g, 0, sizeof *g);
    snprintf(g->dir, sizeof g->dir, "%s/group.XXXXXX", g_tmp);
    assert_non_null(mkdtemp(g->dir));
    snprintf(g->cep, sizeof g->cep, "ipc://%s/client.ipc", g->dir);
    snprintf(g->sep, sizeof g->sep, "ipc://%s/services.ipc", g->dir);
    char workers[16], budget[32], piece[32], seqs[16], queue[16], batch[16];
    snprintf(batch, sizeof batch, "%u", c->max_batch);
    snprintf(workers, sizeof workers, "%u", c->workers);
    snprintf(budget, sizeof budget, "%llu", (unsigned long long)c->budget);
    snprintf(piece, sizeof piece, "%llu", (unsigned long long)c->piece_bytes);
    snprintf(seqs, sizeof seqs, "%u", c->max_seqs ? c->max_seqs : 4);
    snprintf(queue, sizeof queue, "%u", c->max_queue ? c->max_queue : 16);
    char *sa[40];
    int n = 0;
    sa[n++] = "--run-dir", sa[n++] = g->dir, sa[n++] = "--model", sa[n++] = (char *)c->model;
    if (c->tokenizer) sa[n++] = "--tokenizer", sa[n++] = (char *)c->tokenizer;
    sa[n++] = "--client", sa[n++] = g->cep, sa[n++] = "--services", sa[n++] = g->sep;
    sa[n++] = "--workers", sa[n++] = workers, sa[n++] = "--threads", sa[n++] = "1";
    sa[n++] = "--max-seqs", sa[n++] = seqs, sa[n++] = "--max-queue", sa[n++] = queue;
    if (c->budget) sa[n++] = "--mem-budget", sa[n++] = budget;
    if (c->piece_bytes) sa[n++] = "--piece-bytes", sa[n++] = piece;
    if (c->max_batch) sa[n++] = "--max-batch", sa[n++] = batch;
    if (c->no_prefix_cache) sa[n++] = "--no-prefix-cache";
    char ctxs[16];
    snprintf(ctxs, sizeof ctxs, "%u", c->ctx);
    if (c->ctx) sa[n++] = "--ctx", sa[n++] = ctxs;
    if (c->step_timeout_ms) sa[n++] = "--step-timeout-ms", sa[n++] = (char *)c->step_timeout_ms;
    sa[n] = NULL;
    spawn(g, "scheduler", "lmm-scheduler", sa);
    char *la[] = {"--run-dir", g->dir, "--services", g->sep, NULL};
    spawn(g, "loader", "lmm-loader", la);
    for (unsigned w = 0; w < c->workers; w++) {
        char idx[16], name[32];
        snprintf(idx, sizeof idx, "%u", w);
        snprintf(name, sizeof name, "compute.%u", w);
        char *ca[] = {"--run-dir", g->dir, "--services", g->sep, "--index", idx, "--threads", "1", NULL};
        spawn(g, name, "lmm-compute", ca);
    }
    char *ka[12];
    int nk = 0;
    ka[nk++] = "--run-dir", ka[nk++] = g->dir, ka[nk++] = "--services", ka[nk++] = g->sep;
    if (c->kv_budget) ka[nk++] = "--kv-budget", ka[nk++] = (char *)c->kv_budget;
    if (c->kv_block) ka[nk++] = "--kv-block", ka[nk++] = (char *)c->kv_block;
    if (c->kv_disk) ka[nk++] = "--kv-disk", ka[nk++] = (char *)c->kv_disk;
    ka[nk] = NULL;
    spawn(g, "cache", "lmm-cache", ka);

    assert_int_equal(lmm_service_dealer_connect(&g->sock, g->cep, "launch"), 0);
    g->open = true;
    lmm_msg ack;
    if (lmm_service_hello(&g->sock, LMM_PROTO_ROLE_LAUNCH, "test", 10000, &ack)) {
        fprintf(stderr, "HELLO: %s\n", lmm_error_get());
        print_logs(g);
        fail();
    }
    double t_end = now_s() + 30;
    for (;;) {
        lmm_msg_status_reply st;
        const char *dead = group_dead(g);
        if (dead) {
            fprintf(stderr, "%s exited during start-up\n", dead);
            print_logs(g);
            fail();
        }
        if (status(g, &st) == 0 && st.ready) break;
        if (now_s() > t_end) {
            fprintf(stderr, "the group did not become ready (waiting for %s)\n", st.waiting);
            print_logs(g);
            fail();
        }
        sleep_ms(20);
    }
}

/* pids still running */
static int group_pids(const group *g, pid_t *out) {
    int n = 0;
    for (int i = 0; i < g->n; i++)
        if (g->pid[i] > 0) out[n++] = g->pid[i];
    return n;
}

static void rm_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[1200];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    closedir(d);
    rmdir(dir);
}

/* Counts /dev/shm/lmm-<pid>-* of the given pids. */
static int shm_segments_of(const pid_t *pids, int n) {
    DIR *d = opendir("/dev/shm");
    if (!d) return 0;
    struct dirent *e;
    int count = 0;
    while ((e = readdir(d))) {
        int pid;
        if (sscanf(e->d_name, "lmm-%d-", &pid) != 1) continue;
        for (int i = 0; i < n; i++) count += pid == pids[i];
    }
    closedir(d);
    return count;
}

static void group_stop(group *g) {
    pid_t pids[16];
    int np = 0;
    for (int i = 0; i < g->n; i++) pids[np++] = g->pid[i] > 0 ? g->pid[i] : -g->pid[i];
    if (g->open) {
        lmm_msg m;
        lmm_proto_msg_init(&m, LMM_MSG_SHUTDOWN);
        lmm_service_send(&g->sock, NULL, &m);
    }
    double t_end = now_s() + 10;
    bool clean = true;
    for (int i = 0; i < g->n; i++) {
        if (g->pid[i] <= 0) continue;
        for (;;) {
            int st;
            pid_t r = waitpid(g->pid[i], &st, WNOHANG);
            if (r == g->pid[i]) {
                if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                    fprintf(stderr, "%s ended with status %#x\n", g->name[i], st);
                    clean = false;
                }
                break;
            }
            if (now_s() > t_end) {
                fprintf(stderr, "%s did not stop; killing\n", g->name[i]);
                if (getenv("LMM_TEST_GDB")) {
                    char cmd[200];
                    snprintf(cmd, sizeof cmd, "gdb -batch -p %d -ex 'thread apply all bt' 2>&1 | grep -E '^#|^Thread' >&2", (int)g->pid[i]);
                    if (system(cmd)) {}
                }
                kill(g->pid[i], SIGKILL);
                waitpid(g->pid[i], &st, 0);
                clean = false;
                break;
            }
            sleep_ms(10);
        }
        g->pid[i] = -g->pid[i];
    }
    if (g->open) lmm_service_sock_close(&g->sock);
    g->open = false;
    if (!clean) print_logs(g);
    group_free_args(g);
    assert_true(clean);
    assert_int_equal(shm_segments_of(pids, np), 0);
    rm_dir(g->dir);
}

/* ---- a client ------------------------------------------------------------------------- */

static void gen_msg(lmm_msg *m, uint64_t req_id, const gen_req *g) {
    lmm_proto_msg_init(m, LMM_MSG_GENERATE);
    m->generate.req_id = req_id;
    m->generate.prompt = (lmm_proto_bytes){g->prompt, strlen(g->prompt)};
    m->generate.max_tokens = g->max_tokens;
    m->generate.sampling = g->sampling;
    m->generate.dump_logits = true;
    m->generate.context_shift = g->context_shift;
    m->generate.no_prefix_cache = g->no_prefix_cache;
    m->generate.max_tokens_default = g->max_tokens_default;
}

/* One message from the scheduler for req_id into *r; 1 when DONE came, -1 on ERROR. */
static int client_take(const lmm_msg *m, uint64_t req_id, run_result *r) {
    switch (m->type) {
    case LMM_MSG_TOKEN:
        assert_int_equal(m->token.req_id, req_id);
        result_add(r, m->token.id, m->token.logits, m->token.n_logits, m->token.text.ptr, m->token.text.len);
        return 0;
    case LMM_MSG_DONE:
        assert_int_equal(m->done.req_id, req_id);
        r->stop = m->done.stop;
        r->n_generated = m->done.n_generated;
        r->n_prompt = m->done.n_prompt;
        return 1;
    case LMM_MSG_ERROR:
        fprintf(stderr, "ERROR for request %llu: %s\n", (unsigned long long)m->error.req_id, m->error.message);
        return -1;
    default:
        return 0;
    }
}

static void client_open(lmm_service_sock *s, const group *g) {
    assert_int_equal(lmm_service_dealer_connect(s, g->cep, NULL), 0);
    lmm_msg ack;
    assert_int_equal(lmm_service_hello(s, LMM_PROTO_ROLE_CLIENT, "test-client", 10000, &ack), 0);
    assert_true(ack.hello_ack.ok);
}

/* Runs the requests on n separate client sockets at once; results in out[i]. */
static void generate_many(group *g, const gen_req *reqs, run_result *out, int n) {
    lmm_service_sock socks[8];
    bool done[8] = {0};
    assert_true(n <= 8);
    for (int i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof out[i]);
        client_open(&socks[i], g);
    }
    for (int i = 0; i < n; i++) {
        lmm_msg m;
        gen_msg(&m, 100 + (uint64_t)i, &reqs[i]);
        assert_int_equal(lmm_service_send(&socks[i], NULL, &m), 0);
    }
    int left = n;
    double t_end = now_s() + 40;
    while (left > 0) {
        if (now_s() > t_end || group_dead(g)) {
            print_logs(g);
            fail_msg("requests did not finish");
        }
        lmm_service_pollitem it[8];
        for (int i = 0; i < n; i++) it[i] = (lmm_service_pollitem){.sock = &socks[i], .events = ZMQ_POLLIN};
        assert_true(lmm_service_poll(it, (unsigned)n, 200) >= 0);
        for (int i = 0; i < n; i++) {
            if (done[i] || !(it[i].revents & ZMQ_POLLIN)) continue;
            for (;;) {
                lmm_msg m;
                int rc = lmm_service_recv(&socks[i], NULL, &m, 0);
                assert_true(rc >= 0);
                if (rc != LMM_SERVICE_MSG) break;
                int t = client_take(&m, 100 + (uint64_t)i, &out[i]);
                if (t < 0) {
                    print_logs(g);
                    fail();
                }
                if (t == 1) {
                    done[i] = true;
                    left--;
                    break;
                }
            }
        }
    }
    for (int i = 0; i < n; i++) lmm_service_sock_close(&socks[i]);
}

static void generate_one(group *g, const gen_req *req, run_result *out) { generate_many(g, req, out, 1); }

/* ---- fixtures ----------------------------------------------------------------------- */

static int run_tool(const char *tool, char **args) {
    char bin[1024];
    test_bin(bin, sizeof bin, tool);
    char *argv[32];
    int n = 0;
    argv[n++] = bin;
    while (args[n - 1] && n < 31) {
        argv[n] = args[n - 1];
        n++;
    }
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0) dup2(nul, 1);
        execv(bin, argv);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int setup(void **state) {
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    assert_non_null(test_tmpdir(g_tmp, sizeof g_tmp));
    snprintf(g_tiny, sizeof g_tiny, "%s/tiny.gguf", g_tmp);
    snprintf(g_tiny16, sizeof g_tiny16, "%s/tiny16.gguf", g_tmp);
    char *a1[] = {"--shape", "tiny", "--seed", "7", "--out", g_tiny, NULL};
    char *a2[] = {"--shape", "tiny", "--dtype", "f16", "--layers", "3", "--seed", "11", "--out", g_tiny16, NULL};
    if (run_tool("lmsynth", a1) != 0 || run_tool("lmsynth", a2) != 0) {
        fprintf(stderr, "lmsynth failed\n");
        return -1;
    }
    char buf[2048];
    g_have_stories = test_shared_file(buf, sizeof buf, "models/stories260K/stories260K.bin") != NULL;
    if (g_have_stories) {
        snprintf(g_stories, sizeof g_stories, "%s", buf);
        g_have_stories = test_shared_file(g_stories_tok, sizeof g_stories_tok, "models/stories260K/tok512.bin") != NULL;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    char p[1200];
    snprintf(p, sizeof p, "%s/tiny.gguf", g_tmp);
    unlink(p);
    snprintf(p, sizeof p, "%s/tiny16.gguf", g_tmp);
    unlink(p);
    rm_dir(g_tmp);
    return 0;
}

/* ---- exact ---------------------------------------------------------------------------- */

/* Budget limits of a configuration, from the STATUS of a group started without one. */
static void budget_limits(const group_cfg *c, uint64_t *min, uint64_t *full, uint32_t *n_pieces) {
    group g;
    group_cfg c0 = *c;
    c0.budget = 0;
    group_start(&g, &c0);
    lmm_msg_status_reply st;
    assert_int_equal(status(&g, &st), 0);
    *min = st.budget_min;
    *full = st.budget_used; /* everything pinned */
    *n_pieces = st.ring_pinned;
    assert_int_equal(st.ring_streaming, 0);
    assert_int_equal(st.ring_slots, st.ring_pinned + 1);
    group_stop(&g);
}

static void check_budget(const group_cfg *c, uint64_t budget, const gen_req *req, const run_result *ref,
                         const char *what) {
    group g;
    group_cfg cb = *c;
    cb.budget = budget;
    group_start(&g, &cb);
    lmm_msg_status_reply st;
    assert_int_equal(status(&g, &st), 0);
    if (budget) {
        assert_true(st.budget_used <= budget);
        assert_int_equal(st.budget_bytes, budget);
    }
    if (st.ring_streaming) {
        assert_true(st.prefetch_depth >= 1 && st.prefetch_depth <= st.ring_streaming);
        assert_int_equal(st.ring_slots, st.ring_pinned + st.ring_streaming + 1);
    }
    run_result r;
    generate_one(&g, req, &r);
    char line[256];
    snprintf(line, sizeof line, "%s: budget %llu (%u pinned, %u streaming), %u workers", what,
             (unsigned long long)budget, st.ring_pinned, st.ring_streaming, c->workers);
    assert_same(&r, ref, line);
    fprintf(stderr, "  ok  %s\n", line);
    result_free(&r);
    group_stop(&g);
}

static void test_exact_tiny(void **state) {
    (void)state;
    gen_req req = req_make("Once upon a time", 24, 0.8f, 1234);
    run_result ref;
    reference_run(g_tiny, NULL, &req, &ref);
    assert_true(ref.n_rows >= 2);
    group_cfg c = {.model = g_tiny, .workers = 1, .piece_bytes = 16 << 10};
    uint64_t min, full;
    uint32_t n;
    budget_limits(&c, &min, &full, &n);
    uint64_t slot = (full - min) / (n - 2); /* one more pinned piece per slot */
    fprintf(stderr, "tiny: %u pieces, minimum %llu, all resident %llu\n", n, (unsigned long long)min,
            (unsigned long long)full);
    /* every budget from all resident down to the minimum, 1 worker */
    check_budget(&c, 0, &req, &ref, "tiny");
    for (uint64_t b = full; b >= min && b <= full; b -= (b - min >= 4 * slot ? 4 * slot : slot)) {
        check_budget(&c, b, &req, &ref, "tiny");
        if (b == min) break;
    }
    result_free(&ref);
}

/* 2 workers: all resident, half, minimum */
static void test_exact_tiny_workers(void **state) {
    (void)state;
    gen_req req = req_make("Once upon a time", 24, 0.8f, 1234);
    run_result ref;
    reference_run(g_tiny, NULL, &req, &ref);
    group_cfg c = {.model = g_tiny, .workers = 2, .piece_bytes = 16 << 10};
    uint64_t min, full;
    uint32_t n;
    budget_limits(&c, &min, &full, &n);
    check_budget(&c, 0, &req, &ref, "tiny");
    check_budget(&c, min + (full - min) / 2, &req, &ref, "tiny");
    check_budget(&c, min, &req, &ref, "tiny");
    result_free(&ref);
}

static void test_exact_f16(void **state) {
    (void)state;
    gen_req req = req_make("The quick brown fox", 20, 0.0f, 0);
    run_result ref;
    reference_run(g_tiny16, NULL, &req, &ref);
    group_cfg c = {.model = g_tiny16, .workers = 3, .piece_bytes = 24 << 10};
    uint64_t min, full;
    uint32_t n;
    budget_limits(&c, &min, &full, &n);
    check_budget(&c, min, &req, &ref, "tiny f16");
    check_budget(&c, min + (full - min) / 3, &req, &ref, "tiny f16");
    result_free(&ref);
}

static void test_exact_stories(void **state) {
    (void)state;
    if (!g_have_stories) skip();
    gen_req reqs[2] = {req_make("", 60, 0.0f, 0), req_make("Once upon a time, a cat", 40, 1.0f, 42)};
    run_result ref[2];
    for (int i = 0; i < 2; i++) reference_run(g_stories, g_stories_tok, &reqs[i], &ref[i]);
    /* greedy from BOS: the story llama2.c's run.c writes */
    assert_non_null(strstr(ref[0].text, "Once upon a time, there was a little girl named Lily."));
    for (unsigned w = 1; w <= 2; w++) {
        group_cfg c = {.model = g_stories, .tokenizer = g_stories_tok, .workers = w, .piece_bytes = 32 << 10};
        uint64_t min, full;
        uint32_t n;
        budget_limits(&c, &min, &full, &n);
        const uint64_t budgets[3] = {0, min + (full - min) / 2, min};
        for (int k = 0; k < 3; k++) {
            group g;
            group_cfg cb = c;
            cb.budget = budgets[k];
            group_start(&g, &cb);
            for (int i = 0; i < 2; i++) {
                run_result r;
                generate_one(&g, &reqs[i], &r);
                char line[160];
                snprintf(line, sizeof line, "stories260K request %d: budget %llu, %u workers", i,
                         (unsigned long long)budgets[k], w);
                assert_same(&r, &ref[i], line);
                fprintf(stderr, "  ok  %s\n", line);
                result_free(&r);
            }
            group_stop(&g);
        }
    }
    for (int i = 0; i < 2; i++) result_free(&ref[i]);
}

/* ---- batching ------------------------------------------------------------------------- */

static void test_batch(void **state) {
    (void)state;
    const char *model = g_have_stories ? g_stories : g_tiny;
    const char *tok = g_have_stories ? g_stories_tok : NULL;
    gen_req reqs[3] = {req_make("Once upon a time", 40, 0.9f, 5), req_make("The dog", 25, 0.0f, 0),
                       req_make("Lily and Tom went to the park", 33, 1.1f, 99)};
    run_result ref[3], got[3];
    for (int i = 0; i < 3; i++) reference_run(model, tok, &reqs[i], &ref[i]);
    group g;
    group_cfg c = {.model = model, .tokenizer = tok, .workers = 2, .piece_bytes = 32 << 10};
    uint64_t min, full;
    uint32_t n;
    budget_limits(&c, &min, &full, &n);
    c.budget = min + (full - min) / 2;
    group_start(&g, &c);
    /* two clients at once, then the three at once */
    generate_many(&g, reqs, got, 2);
    for (int i = 0; i < 2; i++) {
        assert_same(&got[i], &ref[i], "two concurrent clients");
        result_free(&got[i]);
    }
    lmm_msg_status_reply st0, st;
    assert_int_equal(status(&g, &st0), 0);
    generate_many(&g, reqs, got, 3);
    uint32_t n_tokens = 0;
    for (int i = 0; i < 3; i++) {
        assert_same(&got[i], &ref[i], "three concurrent clients");
        n_tokens += got[i].n_generated;
        result_free(&got[i]);
    }
    assert_int_equal(status(&g, &st), 0);
    assert_int_equal(st.served, 5);
    assert_true(st.tokens_per_s > 0.0);
    /* batched: one pass over the weights served several sequences (alone, each token
     * after the first of a request needs its own step) */
    fprintf(stderr, "  three clients: %u tokens in %llu steps\n", n_tokens, (unsigned long long)(st.steps - st0.steps));
    assert_true(st.steps - st0.steps < n_tokens);
    group_stop(&g);

    /* two sequences for three requests: the third waits for a free one */
    c.max_seqs = 2;
    group_start(&g, &c);
    generate_many(&g, reqs, got, 3);
    for (int i = 0; i < 3; i++) {
        assert_same(&got[i], &ref[i], "three clients, two sequences");
        result_free(&got[i]);
    }
    /* CANCEL: the request ends with stop "cancelled" */
    lmm_service_sock s;
    client_open(&s, &g);
    lmm_msg m;
    gen_req long_req = req_make("Once", 200, 0.8f, 3);
    gen_msg(&m, 7, &long_req);
    assert_int_equal(lmm_service_send(&s, NULL, &m), 0);
    run_result r;
    memset(&r, 0, sizeof r);
    int t = 0, tokens = 0;
    while (t == 0) {
        int rc = lmm_service_recv(&s, NULL, &m, 5000);
        assert_int_equal(rc, LMM_SERVICE_MSG);
        t = client_take(&m, 7, &r);
        if (m.type == LMM_MSG_TOKEN && ++tokens == 3) {
            lmm_msg c2;
            lmm_proto_msg_init(&c2, LMM_MSG_CANCEL);
            c2.cancel.req_id = 7;
            assert_int_equal(lmm_service_send(&s, NULL, &c2), 0);
        }
    }
    assert_int_equal(t, 1);
    assert_int_equal(r.stop, LMM_PROTO_STOP_CANCELLED);
    assert_true(r.n_generated < 200);
    result_free(&r);
    lmm_service_sock_close(&s);
    group_stop(&g);
    for (int i = 0; i < 3; i++) result_free(&ref[i]);
}

/* ---- memory --------------------------------------------------------------------------- */

static uint64_t pss_bytes(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    uint64_t kb = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long long v;
        if (sscanf(line, "Pss: %llu kB", &v) == 1) kb = v;
    }
    fclose(f);
    return kb * 1024u;
}

/* True when one of pids maps /dev/shm/<name> (then its pages are in that PSS already). */
static bool shm_mapped_by(const char *name, const pid_t *pids, int n) {
    char want[300], line[1024];
    snprintf(want, sizeof want, "/dev/shm/%s", name);
    for (int i = 0; i < n; i++) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/maps", (int)pids[i]);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        bool hit = false;
        while (!hit && fgets(line, sizeof line, f)) {
            char *p = strstr(line, want);
            hit = p && (p[strlen(want)] == '\n' || p[strlen(want)] == '\0');
        }
        fclose(f);
        if (hit) return true;
    }
    return false;
}

/* /dev/shm segments of the group that are named and mapped by none of its processes
 * (a mapped one is in the PSS: counted once there): their sizes. */
static uint64_t shm_named_bytes(const pid_t *pids, int n) {
    DIR *d = opendir("/dev/shm");
    if (!d) return 0;
    struct dirent *e;
    uint64_t total = 0;
    while ((e = readdir(d))) {
        int pid;
        if (sscanf(e->d_name, "lmm-%d-", &pid) != 1) continue;
        for (int i = 0; i < n; i++)
            if (pid == pids[i] && !shm_mapped_by(e->d_name, pids, n)) {
                char p[600];
                struct stat st;
                snprintf(p, sizeof p, "/dev/shm/%s", e->d_name);
                if (stat(p, &st) == 0) total += (uint64_t)st.st_size;
            }
    }
    closedir(d);
    return total;
}

static void check_memory(const char *model, const char *tok, unsigned workers, int which, uint64_t piece_bytes,
                         uint32_t max_tokens) {
    group_cfg c = {.model = model, .tokenizer = tok, .workers = workers, .piece_bytes = piece_bytes};
    uint64_t min, full;
    uint32_t n;
    budget_limits(&c, &min, &full, &n);
    c.budget = which == 0 ? min : min + (full - min) / 2;
    group g;
    group_start(&g, &c);
    gen_req reqs[2] = {req_make("Once upon a time", max_tokens, 0.8f, 1), req_make("A dog", max_tokens, 0.8f, 2)};
    run_result r[2];
    generate_many(&g, reqs, r, 2);
    for (int i = 0; i < 2; i++) result_free(&r[i]);
    pid_t pids[16];
    int np = group_pids(&g, pids);
    uint64_t total = shm_named_bytes(pids, np);
    for (int i = 0; i < np; i++) {
        uint64_t p = pss_bytes(pids[i]);
        fprintf(stderr, "  %-10s pss %8.1f KiB\n", g.name[i], (double)p / 1024.0);
        total += p;
    }
    uint64_t limit = c.budget + (uint64_t)np * OVERHEAD_PER_PROCESS;
    fprintf(stderr, "  %s, %u workers: PSS + shm %.1f MiB, budget %.1f MiB, limit %.1f MiB (%d processes)\n",
            which == 0 ? "minimum" : "half", workers, (double)total / 1048576.0, (double)c.budget / 1048576.0,
            (double)limit / 1048576.0, np);
    assert_true(total <= limit);
    group_stop(&g);
}

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

static void test_memory(void **state) {
    (void)state;
#ifdef UNDER_ASAN
    fprintf(stderr, "SKIP: AddressSanitizer's shadow memory is not the group's\n");
    skip();
#endif
    const char *model = g_have_stories ? g_stories : g_tiny;
    const char *tok = g_have_stories ? g_stories_tok : NULL;
    check_memory(model, tok, 2, 0, 32 << 10, 40);
    check_memory(model, tok, 2, 1, 32 << 10, 40);
}

static void test_memory_big(void **state) {
    (void)state;
#ifdef UNDER_ASAN
    fprintf(stderr, "SKIP: AddressSanitizer's shadow memory is not the group's\n");
    skip();
#endif
    /* A model whose weights dominate the budget (stories15M shape: 32000-token vocabulary,
     * 58 MiB of F32 weights, 2 MiB pieces), so that the budget's own accounting is what
     * is checked, not the slack of the per-process overhead. */
    char big[1100];
    snprintf(big, sizeof big, "%s/s15m.gguf", g_tmp);
    char *a[] = {"--shape", "stories15M", "--seed", "3", "--out", big, NULL};
    assert_int_equal(run_tool("lmsynth", a), 0);
    check_memory(big, NULL, 1, 0, 2 << 20, 6);
    check_memory(big, NULL, 2, 1, 2 << 20, 6);
    unlink(big);
}

/* ---- faults --------------------------------------------------------------------------- */

/* A minimal MessagePack writer for messages the encoder would refuse. */
typedef struct {
    uint8_t *b;
    size_t n, cap;
} mp;

static void mp_put(mp *m, const void *p, size_t n) {
    if (m->n + n > m->cap) {
        m->cap = (m->n + n) * 2;
        m->b = realloc(m->b, m->cap);
        assert_non_null(m->b);
    }
    memcpy(m->b + m->n, p, n);
    m->n += n;
}
static void mp_byte(mp *m, uint8_t v) { mp_put(m, &v, 1); }
static void mp_be(mp *m, uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; i--) mp_byte(m, (uint8_t)(v >> (8 * i)));
}
static void mp_map(mp *m, unsigned n) { mp_byte(m, (uint8_t)(0x80 | n)); }
static void mp_str(mp *m, const char *s) {
    size_t n = strlen(s);
    if (n < 32) {
        mp_byte(m, (uint8_t)(0xa0 | n));
    } else {
        mp_byte(m, 0xda);
        mp_be(m, n, 2);
    }
    mp_put(m, s, n);
}
static void mp_uint(mp *m, uint64_t v) {
    if (v < 128) {
        mp_byte(m, (uint8_t)v);
    } else {
        mp_byte(m, 0xcf);
        mp_be(m, v, 8);
    }
}
static void mp_bin(mp *m, const void *p, size_t n) {
    mp_byte(m, 0xc6);
    mp_be(m, n, 4);
    mp_put(m, p, n);
}

/* Sends raw bytes on s and returns the ERROR that answers them. */
static lmm_msg_error raw_error(lmm_service_sock *s, const void *bytes, size_t n) {
    assert_int_equal(zmq_send(s->zsock, bytes, n, 0), (int)n);
    lmm_msg m;
    double t_end = now_s() + 5;
    while (now_s() < t_end) {
        int rc = lmm_service_recv(s, NULL, &m, 200);
        assert_true(rc >= 0);
        if (rc == LMM_SERVICE_MSG && m.type == LMM_MSG_ERROR) {
            fprintf(stderr, "  ERROR %s: %s\n", lmm_proto_errcode_name(m.error.code), m.error.message);
            return m.error;
        }
    }
    fail_msg("no ERROR reply");
    return m.error;
}

static lmm_msg_error msg_error(lmm_service_sock *s, const lmm_msg *out) {
    assert_int_equal(lmm_service_send(s, NULL, out), 0);
    lmm_msg m;
    double t_end = now_s() + 5;
    while (now_s() < t_end) {
        int rc = lmm_service_recv(s, NULL, &m, 200);
        assert_true(rc >= 0);
        if (rc == LMM_SERVICE_MSG && m.type == LMM_MSG_ERROR) {
            fprintf(stderr, "  ERROR %s: %s\n", lmm_proto_errcode_name(m.error.code), m.error.message);
            return m.error;
        }
    }
    fail_msg("no ERROR reply");
    return m.error;
}

static void test_faults(void **state) {
    (void)state;
    gen_req req = req_make("Once upon a time", 16, 0.7f, 77);
    run_result ref, r;
    reference_run(g_tiny, NULL, &req, &ref);
    group g;
    group_cfg c = {.model = g_tiny, .workers = 2, .piece_bytes = 16 << 10, .max_queue = 4};
    uint64_t min, full;
    uint32_t n;
    budget_limits(&c, &min, &full, &n);
    c.budget = min;
    group_start(&g, &c);
    lmm_service_sock s;
    client_open(&s, &g);

    /* garbage */
    const uint8_t junk[] = {0xc1, 0xff, 0x00, 0x42, 0x13};
    lmm_msg_error e = raw_error(&s, junk, sizeof junk);
    assert_int_equal(e.code, LMM_PROTO_E_BAD_MESSAGE);
    const char text[] = "GET / HTTP/1.1\r\n\r\n";
    e = raw_error(&s, text, sizeof text - 1);
    assert_int_equal(e.code, LMM_PROTO_E_BAD_MESSAGE);
    generate_one(&g, &req, &r);
    assert_same(&r, &ref, "after garbage");
    result_free(&r);

    /* unknown field, with the req_id echoed */
    mp m = {0};
    mp_map(&m, 5);
    mp_str(&m, "t"), mp_str(&m, "GENERATE");
    mp_str(&m, "req_id"), mp_uint(&m, 55);
    mp_str(&m, "prompt"), mp_str(&m, "hi");
    mp_str(&m, "max_tokens"), mp_uint(&m, 3);
    mp_str(&m, "colour"), mp_str(&m, "blue");
    e = raw_error(&s, m.b, m.n);
    assert_int_equal(e.code, LMM_PROTO_E_BAD_MESSAGE);
    assert_int_equal(e.req_id, 55);
    assert_non_null(strstr(e.message, "colour"));

    /* wrong protocol version */
    m.n = 0;
    mp_map(&m, 5);
    mp_str(&m, "t"), mp_str(&m, "HELLO");
    mp_str(&m, "v"), mp_uint(&m, 7);
    mp_str(&m, "role"), mp_str(&m, "client");
    mp_str(&m, "pid"), mp_uint(&m, 1);
    mp_str(&m, "name"), mp_str(&m, "old");
    e = raw_error(&s, m.b, m.n);
    assert_int_equal(e.code, LMM_PROTO_E_VERSION);
    assert_non_null(strstr(e.message, "version 7"));

    /* a prompt over 1 MiB */
    size_t big = LMM_PROTO_MAX_PROMPT_BYTES + 1;
    char *prompt = malloc(big);
    assert_non_null(prompt);
    memset(prompt, 'a', big);
    m.n = 0;
    mp_map(&m, 4);
    mp_str(&m, "t"), mp_str(&m, "GENERATE");
    mp_str(&m, "req_id"), mp_uint(&m, 56);
    mp_str(&m, "prompt"), mp_bin(&m, prompt, big);
    mp_str(&m, "max_tokens"), mp_uint(&m, 3);
    e = raw_error(&s, m.b, m.n);
    assert_int_equal(e.code, LMM_PROTO_E_LIMIT);
    assert_int_equal(e.req_id, 56);
    free(m.b);

    /* a prompt longer than the context (tiny: 256 positions) */
    for (size_t i = 0; i < 4000; i++) prompt[i] = i % 2 ? ' ' : (char)('a' + i % 23);
    prompt[4000] = 0;
    gen_req long_req = req_make(prompt, 4, 0.0f, 0);
    lmm_msg out;
    gen_msg(&out, 57, &long_req);
    e = msg_error(&s, &out);
    assert_int_equal(e.code, LMM_PROTO_E_LIMIT);
    assert_int_equal(e.req_id, 57);
    assert_non_null(strstr(e.message, "context"));
    free(prompt);

    /* an out-of-range sampling value (the decoder's rule, sent raw) */
    m = (mp){0};
    mp_map(&m, 5);
    mp_str(&m, "t"), mp_str(&m, "GENERATE");
    mp_str(&m, "req_id"), mp_uint(&m, 58);
    mp_str(&m, "prompt"), mp_str(&m, "hi");
    mp_str(&m, "max_tokens"), mp_uint(&m, 3);
    mp_str(&m, "top_k"), mp_str(&m, "many");
    e = raw_error(&s, m.b, m.n);
    assert_int_equal(e.code, LMM_PROTO_E_BAD_MESSAGE);
    free(m.b);

    /* invalid UTF-8 in the prompt */
    const char bad_utf8[] = {'h', 'i', (char)0xff, (char)0xfe, 0};
    gen_req bad = req_make(bad_utf8, 4, 0.0f, 0);
    gen_msg(&out, 59, &bad);
    e = msg_error(&s, &out);
    assert_int_equal(e.code, LMM_PROTO_E_BAD_MESSAGE);
    assert_int_equal(e.req_id, 59);

    /* SHUTDOWN from a client, CANCEL of nothing, a type the scheduler does not take */
    lmm_proto_msg_init(&out, LMM_MSG_SHUTDOWN);
    e = msg_error(&s, &out);
    assert_int_equal(e.code, LMM_PROTO_E_UNEXPECTED);
    lmm_proto_msg_init(&out, LMM_MSG_CANCEL);
    out.cancel.req_id = 999;
    e = msg_error(&s, &out);
    assert_int_equal(e.code, LMM_PROTO_E_NOT_FOUND);
    lmm_proto_msg_init(&out, LMM_MSG_SLOT_FREE);
    out.slot_free.slot = 0;
    e = msg_error(&s, &out);
    assert_int_equal(e.code, LMM_PROTO_E_UNEXPECTED);

    /* a duplicate req_id while the first runs */
    gen_req slow = req_make("Once", 100, 0.8f, 1);
    gen_msg(&out, 60, &slow);
    assert_int_equal(lmm_service_send(&s, NULL, &out), 0);
    e = msg_error(&s, &out);
    assert_int_equal(e.code, LMM_PROTO_E_UNEXPECTED);
    assert_int_equal(e.req_id, 60);
    for (;;) { /* let request 60 finish */
        lmm_msg in;
        assert_int_equal(lmm_service_recv(&s, NULL, &in, 10000), LMM_SERVICE_MSG);
        if (in.type == LMM_MSG_DONE) break;
        assert_int_equal(in.type, LMM_MSG_TOKEN);
    }
    lmm_service_sock_close(&s);

    /* the group still serves, exactly */
    generate_one(&g, &req, &r);
    assert_same(&r, &ref, "after the faults");
    result_free(&r);
    assert_null(group_dead(&g));
    group_stop(&g);

    /* a budget below the minimum: the scheduler alone, which says what the minimum is */
    memset(&g, 0, sizeof g);
    snprintf(g.dir, sizeof g.dir, "%s/small.XXXXXX", g_tmp);
    assert_non_null(mkdtemp(g.dir));
    snprintf(g.cep, sizeof g.cep, "ipc://%s/client.ipc", g.dir);
    snprintf(g.sep, sizeof g.sep, "ipc://%s/services.ipc", g.dir);
    char budget[32];
    snprintf(budget, sizeof budget, "%llu", (unsigned long long)(min - 1));
    char *sa[] = {"--run-dir", g.dir,   "--model",      g_tiny, "--client",      g.cep,      "--services",
                  g.sep,       "--workers", "2",         "--mem-budget", budget, "--piece-bytes", "16384", NULL};
    pid_t pid = spawn(&g, "scheduler", "lmm-scheduler", sa);
    group_free_args(&g);
    int st;
    double t_end = now_s() + 20;
    while (waitpid(pid, &st, WNOHANG) != pid) {
        assert_true(now_s() < t_end);
        sleep_ms(20);
    }
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    char path[800], line[2048] = "";
    snprintf(path, sizeof path, "%s/scheduler.log", g.dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t len = fread(line, 1, sizeof line - 1, f);
    line[len] = 0;
    fclose(f);
    fprintf(stderr, "  %s", line);
    assert_non_null(strstr(line, "too small"));
    assert_non_null(strstr(line, "at least"));
    rm_dir(g.dir);
    result_free(&ref);
}

/* ---- KV reuse (docs/kv-cache.md) ------------------------------------------------------ */

/* Prompts sharing prefixes of many lengths (in tokens: on and off block boundaries). */
#define N_PREFIX 9
static const char *const g_prefix_base =
    "Once upon a time there was a little dog who lived in a small house by the sea. Every morning the dog ran "
    "down to the beach and barked at the waves, and the waves";
static void prefix_prompts(char prompts[N_PREFIX][400]) {
    static const size_t cut[N_PREFIX] = {150, 150, 7, 23, 40, 41, 77, 120, 151};
    static const char *const tail[N_PREFIX] = {"", " came back", " a cat", " and a bird", " ran", " sat",
                                                " jumped high", " slept", " laughed"};
    size_t L = strlen(g_prefix_base);
    for (int i = 0; i < N_PREFIX; i++) {
        size_t c = cut[i] < L ? cut[i] : L;
        snprintf(prompts[i], 400, "%.*s%s", (int)c, g_prefix_base, tail[i]);
    }
}

/* Requests one after another, then three at once, through a group with reuse on; each
 * equals the in-process run (which never reuses anything) byte for byte. */
static void prefix_check(const group_cfg *c, const char *what, bool expect_hits) {
    char prompts[N_PREFIX][400];
    prefix_prompts(prompts);
    gen_req reqs[N_PREFIX];
    run_result ref[N_PREFIX];
    for (int i = 0; i < N_PREFIX; i++) {
        reqs[i] = req_make(prompts[i], 6, i % 3 == 2 ? 0.9f : 0.0f, 77 + (uint64_t)i);
        reference_run(c->model, c->tokenizer, &reqs[i], &ref[i]);
    }
    group g;
    group_start(&g, c);
    for (int i = 0; i < N_PREFIX; i++) {
        run_result r;
        generate_one(&g, &reqs[i], &r);
        char line[200];
        snprintf(line, sizeof line, "%s: prompt %d (%u tokens)", what, i, ref[i].n_prompt);
        assert_same(&r, &ref[i], line);
        result_free(&r);
    }
    if (expect_hits) {
        /* flip one byte of every block in the region: each fails its checksum and is
         * dropped, never served; the output stays exact */
        char path[800], name[80] = "";
        snprintf(path, sizeof path, "%s/kvcache", g.dir);
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        assert_int_equal(fscanf(f, "%79s", name), 1);
        fclose(f);
        lmm_shm_ring kv;
        memset(&kv, 0, sizeof kv);
        assert_int_equal(lmm_shm_ring_attach(&kv, name), 0);
        for (uint32_t i = 0; i < kv.n_slots; i++) lmm_shm_ring_slot_data(&kv, i)[100] ^= 0x40;
        lmm_msg_status_reply st0;
        assert_int_equal(status(&g, &st0), 0);
        run_result r;
        generate_one(&g, &reqs[1], &r);
        assert_same(&r, &ref[1], "after corrupting every cached block");
        result_free(&r);
        lmm_msg_status_reply st1;
        assert_int_equal(status(&g, &st1), 0);
        assert_int_equal(st1.kv_hits, st0.kv_hits); /* nothing served from the corrupt blocks */
        lmm_shm_ring_detach(&kv);
        /* one request with no_prefix_cache: no lookup, no store, same output */
        gen_req np = reqs[1];
        np.no_prefix_cache = true;
        generate_one(&g, &np, &r);
        assert_same(&r, &ref[1], "a request with no_prefix_cache");
        result_free(&r);
        lmm_msg_status_reply st2;
        assert_int_equal(status(&g, &st2), 0);
        assert_int_equal(st2.kv_hits, st1.kv_hits);
        assert_int_equal(st2.kv_misses, st1.kv_misses);
    }
    /* concurrent: three requests sharing prefixes, all in flight together */
    gen_req many[3] = {reqs[4], reqs[7], reqs[1]};
    run_result out[3];
    generate_many(&g, many, out, 3);
    assert_same(&out[0], &ref[4], "concurrent 0");
    assert_same(&out[1], &ref[7], "concurrent 1");
    assert_same(&out[2], &ref[1], "concurrent 2");
    for (int i = 0; i < 3; i++) result_free(&out[i]);
    lmm_msg_status_reply st;
    assert_int_equal(status(&g, &st), 0);
    fprintf(stderr, "  ok  %s: kv_hits %llu, kv_misses %llu, kv_blocks %llu (%llu bytes), loaded %llu bytes\n", what,
            (unsigned long long)st.kv_hits, (unsigned long long)st.kv_misses, (unsigned long long)st.kv_blocks,
            (unsigned long long)st.kv_ram_bytes, (unsigned long long)st.kv_bytes_loaded);
    if (expect_hits) {
        assert_true(st.kv_hits > 0);
        assert_true(st.kv_blocks > 0);
    } else {
        assert_int_equal(st.kv_hits, 0);
        assert_int_equal(st.kv_blocks, 0);
    }
    group_stop(&g);
    for (int i = 0; i < N_PREFIX; i++) result_free(&ref[i]);
}

static void test_prefix(void **state) {
    (void)state;
    /* blocks of 4 tokens, 2 workers (each stores its layers' part), prefill chunks of 5
     * (not aligned with the blocks) */
    group_cfg c = {.model = g_tiny, .workers = 2, .max_batch = 5, .kv_block = "4", .kv_budget = "1M"};
    prefix_check(&c, "tiny, B=4, 2 workers, chunks of 5", true);
    /* a budget of 6 blocks: LRU eviction all the time, still exact */
    group_cfg e = {.model = g_tiny, .workers = 1, .kv_block = "4", .kv_budget = "24K"};
    prefix_check(&e, "tiny, B=4, 6 blocks (evicting)", true);
    /* --no-prefix-cache: nothing reused, same output */
    group_cfg o = {.model = g_tiny, .workers = 1, .kv_block = "4", .no_prefix_cache = true};
    prefix_check(&o, "tiny, --no-prefix-cache", false);
    if (g_have_stories) {
        group_cfg st = {.model = g_stories, .tokenizer = g_stories_tok, .workers = 2, .kv_block = "16"};
        prefix_check(&st, "stories260K, B=16, 2 workers", true);
    }
}

/* Block files (*.kvb) in dir. */
static int kvb_files(const char *dir, char first[256]) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l > 4 && strcmp(e->d_name + l - 4, ".kvb") == 0) {
            if (n++ == 0 && first) snprintf(first, 256, "%s", e->d_name);
        }
    }
    closedir(d);
    return n;
}

static bool log_has(const group *g, const char *name, const char *what) {
    char path[800], line[1024];
    snprintf(path, sizeof path, "%s/%s.log", g->dir, name);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) found = strstr(line, what) != NULL;
    fclose(f);
    return found;
}

/* The disk tier: blocks written behind survive a restart of the group (a new, empty RAM
 * tier) and are served exactly; a corrupted file is dropped, never served; an unwritable
 * directory degrades to RAM only with a warning. */
static void test_prefix_disk(void **state) {
    (void)state;
    char dir[700];
    snprintf(dir, sizeof dir, "%s/kvdisk", g_tmp);
    assert_int_equal(mkdir(dir, 0700), 0);
    char prompts[N_PREFIX][400];
    prefix_prompts(prompts);
    gen_req a = req_make(prompts[0], 5, 0.0f, 0), b = req_make(prompts[6], 5, 0.0f, 0);
    run_result ra, rb;
    reference_run(g_tiny, NULL, &a, &ra);
    reference_run(g_tiny, NULL, &b, &rb);
    group_cfg c = {.model = g_tiny, .workers = 2, .kv_block = "4", .kv_budget = "1M", .kv_disk = dir};
    group g;
    group_start(&g, &c);
    run_result r;
    generate_one(&g, &a, &r);
    assert_same(&r, &ra, "disk tier: first run");
    result_free(&r);
    lmm_msg_status_reply st;
    assert_int_equal(status(&g, &st), 0);
    double t_end = now_s() + 10;
    while (kvb_files(dir, NULL) < (int)st.kv_blocks && now_s() < t_end) sleep_ms(20);
    int n_files = kvb_files(dir, NULL);
    assert_true(n_files >= (int)st.kv_blocks && n_files > 2);
    group_stop(&g);

    /* corrupt one file's data: dropped at reload */
    char first[256], path[1000];
    assert_true(kvb_files(dir, first) > 0);
    snprintf(path, sizeof path, "%s/%s", dir, first);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, 4096 + 10, SEEK_SET), 0);
    int ch = fgetc(f);
    assert_int_equal(fseek(f, 4096 + 10, SEEK_SET), 0);
    fputc(ch ^ 0x10, f);
    fclose(f);

    group_start(&g, &c);
    assert_true(log_has(&g, "cache", "dropped"));
    assert_int_equal(kvb_files(dir, NULL), n_files - 1);
    generate_one(&g, &b, &r); /* shares a prefix with a: served from the reloaded blocks */
    assert_same(&r, &rb, "disk tier: after a restart");
    result_free(&r);
    generate_one(&g, &a, &r);
    assert_same(&r, &ra, "disk tier: the prompt itself after a restart");
    result_free(&r);
    assert_int_equal(status(&g, &st), 0);
    fprintf(stderr, "  ok  disk tier: %d files, after restart kv_hits %llu, disk %llu bytes\n", n_files,
            (unsigned long long)st.kv_hits, (unsigned long long)st.kv_disk_bytes);
    assert_true(st.kv_hits > 0);
    assert_true(st.kv_disk_bytes > 0);
    group_stop(&g);

    /* RAM for 4 blocks: a's blocks are evicted by b's and come back from disk */
    char dir2[720];
    snprintf(dir2, sizeof dir2, "%s/kvdisk2", g_tmp);
    assert_int_equal(mkdir(dir2, 0700), 0);
    group_cfg small = {.model = g_tiny, .workers = 1, .max_batch = 5, .kv_block = "4", .kv_budget = "16K",
                       .kv_disk = dir2};
    gen_req other = req_make(prompts[3], 5, 0.0f, 0);
    run_result ro;
    reference_run(g_tiny, NULL, &other, &ro);
    group_start(&g, &small);
    generate_one(&g, &a, &r);
    assert_same(&r, &ra, "disk tier, 4 blocks of RAM: first run");
    result_free(&r);
    int nf = -1;
    for (int quiet = 0; quiet < 5; nf = kvb_files(dir2, NULL)) { /* until no new file for 5 looks */
        sleep_ms(100);
        quiet = kvb_files(dir2, NULL) == nf ? quiet + 1 : 0;
    }
    generate_one(&g, &other, &r);
    assert_same(&r, &ro, "disk tier, 4 blocks of RAM: another prompt");
    result_free(&r);
    lmm_msg_status_reply s0, s1;
    assert_int_equal(status(&g, &s0), 0);
    generate_one(&g, &a, &r);
    assert_same(&r, &ra, "disk tier, 4 blocks of RAM: the first prompt again, from disk");
    result_free(&r);
    assert_int_equal(status(&g, &s1), 0);
    fprintf(stderr, "  ok  disk tier as capacity: %d files, %llu hits on the repeat (RAM holds 4 blocks)\n", nf,
            (unsigned long long)(s1.kv_hits - s0.kv_hits));
    assert_true(nf > 4);
    /* the prefix is pinned in RAM until loaded: at most the 4 slots' worth comes back */
    assert_true(s1.kv_hits - s0.kv_hits >= 4);
    group_stop(&g);
    rm_dir(dir2);
    result_free(&ro);

    /* an unwritable directory: RAM only, with a warning; same output */
    group_cfg u = c;
    u.kv_disk = "/proc/lmm-no-such-dir";
    group_start(&g, &u);
    assert_true(log_has(&g, "cache", "RAM tier only"));
    generate_one(&g, &a, &r);
    assert_same(&r, &ra, "disk tier: unwritable directory");
    result_free(&r);
    group_stop(&g);

    rm_dir(dir);
    result_free(&ra);
    result_free(&rb);
}

/* The context shift as docs/kv-cache.md defines it, in process: greedy, a context of
 * n_ctx; when full, the window [first token, last n_ctx/2 - 1 tokens] is run as a new
 * prompt and sampling goes on from its last logits. Returns the generated ids. */
static uint32_t reference_shift(const char *model, const char *prompt, uint32_t n_ctx, const gen_req *g,
                                uint32_t *out) {
    uint32_t max_tokens = g->max_tokens;
    lmm_model_desc d;
    assert_int_equal(lmm_model_desc_open(&d, model), 0);
    lmm_tokenizer *tok;
    assert_int_equal(lmm_tokenizer_load_for_model(&tok, &d, NULL), 0);
    uint32_t ids[512];
    size_t n = 0;
    assert_int_equal(lmm_tokenizer_encode(tok, prompt, strlen(prompt), LMM_TOK_ADD_SPECIAL, ids, 512, &n), 0);
    lmm_weights w;
    assert_int_equal(lmm_weights_load(&w, &d), 0);
    lmm_transformer_opts to = {n_ctx, 0, 1};
    lmm_transformer *t;
    assert_int_equal(lmm_transformer_init(&t, &w, &to), 0);
    float *logits = malloc((size_t)d.hp.n_vocab * sizeof *logits), *work = malloc((size_t)d.hp.n_vocab * sizeof *work);
    assert_non_null(logits);
    assert_non_null(work);
    lmm_sampler *smp;
    assert_int_equal(lmm_sampler_init(&smp, d.hp.n_vocab, &g->sampling), 0);
    for (size_t i = 0; i < n; i++) lmm_sampler_accept(smp, ids[i]);
    uint32_t n_cur = (uint32_t)n, n_out = 0, pos_run = 0;
    assert_int_equal(lmm_transformer_forward(t, ids, n_cur, 0, logits, 0), 0);
    pos_run = n_cur;
    while (n_out < max_tokens) {
        memcpy(work, logits, (size_t)d.hp.n_vocab * sizeof *work);
        uint32_t best = lmm_sampler_sample(smp, work);
        lmm_sampler_accept(smp, best);
        out[n_out++] = best;
        ids[n_cur++] = best;
        if (n_out == max_tokens) break;
        if (n_cur >= n_ctx) {
            uint32_t keep = n_ctx / 2;
            memmove(ids + 1, ids + n_cur - (keep - 1), (size_t)(keep - 1) * sizeof *ids);
            n_cur = keep;
            assert_int_equal(lmm_transformer_forward(t, ids, n_cur, 0, logits, 0), 0);
            pos_run = n_cur;
            continue;
        }
        assert_int_equal(lmm_transformer_forward(t, &ids[n_cur - 1], 1, pos_run, logits, 0), 0);
        pos_run++;
    }
    free(logits);
    free(work);
    lmm_sampler_free(smp);
    lmm_transformer_free(t);
    lmm_weights_free(&w);
    lmm_tokenizer_free(tok);
    lmm_model_desc_free(&d);
    return n_out;
}

/* Generation past the context: stops with "context" by default; with context_shift
 * (opt-in) it goes on, exactly as the documented shift defines (reference above), and
 * the group with KV reuse gives the same ids. */
static void test_context_shift(void **state) {
    (void)state;
    const uint32_t n_ctx = 32, max_tokens = 90;
    const char *prompt = "Once upon a time";
    uint32_t want[128];
    gen_req off = req_make(prompt, max_tokens, 1.0f, 5); /* sampled: every token depends on the window */
    off.max_tokens_default = true; /* a client's default: ends at the context (an explicit one is refused) */
    uint32_t nw = reference_shift(g_tiny, prompt, n_ctx, &off, want);
    assert_int_equal(nw, max_tokens);
    group_cfg c = {.model = g_tiny, .workers = 2, .ctx = n_ctx, .kv_block = "4", .kv_budget = "1M"};
    group g;
    group_start(&g, &c);
    run_result r;
    generate_one(&g, &off, &r);
    assert_int_equal(r.stop, LMM_PROTO_STOP_CONTEXT);
    assert_true(r.n_generated < n_ctx);
    for (uint32_t i = 0; i < r.n_generated; i++) assert_int_equal(r.ids[i], want[i]);
    result_free(&r);
    gen_req on = off;
    on.max_tokens_default = false;
    on.context_shift = true;
    for (int k = 0; k < 2; k++) { /* twice: the second time the windows are cached */
        generate_one(&g, &on, &r);
        assert_int_equal(r.stop, LMM_PROTO_STOP_LENGTH);
        assert_int_equal(r.n_generated, max_tokens);
        for (uint32_t i = 0; i < max_tokens; i++)
            if (r.ids[i] != want[i]) fail_msg("context shift: token %u is %u, want %u", i, r.ids[i], want[i]);
        result_free(&r);
    }
    fprintf(stderr, "  ok  context shift: %u tokens through a context of %u\n", max_tokens, n_ctx);
    group_stop(&g);
}

/* ---- recovery (services/scheduler/recover.c) -------------------------------------------- */

static int child_index(const group *g, const char *name) {
    for (int i = 0; i < g->n; i++)
        if (strcmp(g->name[i], name) == 0) return i;
    return -1;
}

/* kill -9 of `victim` after the first `after` tokens of a request, then a replacement
 * with the same command line (what lmlaunch does); the request must end with exactly the
 * tokens and logits of the in-process run. Returns the tokens that came after the kill. */
static uint32_t generate_killing(group *g, const gen_req *req, run_result *out, const char *victim, uint32_t after) {
    memset(out, 0, sizeof *out);
    bool hang = strncmp(victim, "hang:", 5) == 0;
    if (hang) victim += 5;
    lmm_service_sock sock;
    client_open(&sock, g);
    lmm_msg m;
    gen_msg(&m, 7, req);
    assert_int_equal(lmm_service_send(&sock, NULL, &m), 0);
    bool killed = false;
    uint32_t at_kill = 0;
    double t_end = now_s() + 50;
    for (;;) {
        if (now_s() > t_end) {
            print_logs(g);
            fail_msg("the request did not finish after kill -9 of %s", victim);
        }
        if (!killed && out->n_ids >= after) {
            int i = child_index(g, victim);
            assert_true(i >= 0 && g->pid[i] > 0);
            pid_t old = g->pid[i];
            /* "hang:NAME": SIGSTOP; the scheduler's watchdog must kill it */
            kill(old, hang ? SIGSTOP : SIGKILL);
            int st;
            assert_int_equal(waitpid(old, &st, 0), old);
            assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
            shm_unlink_of(old);
            sleep_ms(100);
            respawn(g, i);
            killed = true;
            at_kill = out->n_ids;
        }
        const char *dead = group_dead(g);
        if (dead) {
            print_logs(g);
            fail_msg("%s exited after kill -9 of %s", dead, victim);
        }
        int rc = lmm_service_recv(&sock, NULL, &m, 20);
        assert_true(rc >= 0);
        if (rc != LMM_SERVICE_MSG) continue;
        int t = client_take(&m, 7, out);
        if (t < 0) {
            print_logs(g);
            fail_msg("ERROR after kill -9 of %s", victim);
        }
        if (t == 1) break;
    }
    lmm_service_sock_close(&sock);
    return killed ? out->n_ids - at_kill : 0;
}

/* kill -9 of the loader, each worker and the cache in turn, mid-generation, at a budget
 * that streams, with KV reuse on: every request completes with the same tokens and
 * logits; the next request too; nothing is left behind. */
static void test_recover(void **state) {
    (void)state;
    group_cfg c = {.model = g_tiny, .workers = 2, .piece_bytes = 16384, .kv_block = "4", .kv_budget = "1M",
                   .step_timeout_ms = "3000"};
    uint64_t min, full;
    uint32_t np;
    budget_limits(&c, &min, &full, &np);
    c.budget = min + (full - min) / 2;
    gen_req req = req_make("Once upon a time, in a land far away, there lived", 48, 0.8f, 5);
    run_result ref;
    reference_run(g_tiny, NULL, &req, &ref);
    group g;
    group_start(&g, &c);
    const char *victims[] = {"loader", "compute.0", "compute.1", "cache", "compute.1", "loader", "hang:compute.1"};
    for (size_t v = 0; v < sizeof victims / sizeof victims[0]; v++) {
        run_result r;
        uint32_t after = generate_killing(&g, &req, &r, victims[v], 2 + (uint32_t)v * 3);
        char what[96];
        snprintf(what, sizeof what, "kill -9 of %s mid-generation", victims[v]);
        assert_same(&r, &ref, what);
        assert_true(after > 0);
        /* the scheduler saw it and repaired the group (recover.c's lines) */
        char seen[64];
        if (strcmp(victims[v], "loader") == 0) snprintf(seen, sizeof seen, "the loader is back");
        else if (strcmp(victims[v], "cache") == 0) snprintf(seen, sizeof seen, "the cache is gone");
        else if (strncmp(victims[v], "hang:", 5) == 0) snprintf(seen, sizeof seen, "gave no sign of life");
        else snprintf(seen, sizeof seen, "%s is gone", victims[v]);
        if (!log_has(&g, "scheduler", seen)) {
            print_logs(&g);
            fail_msg("the scheduler's log does not say '%s'", seen);
        }
        fprintf(stderr, "  ok  %s: same %u tokens (%u after the kill)\n", what, r.n_ids, after);
        result_free(&r);
        generate_one(&g, &req, &r); /* the group has recovered */
        assert_same(&r, &ref, "the next request");
        result_free(&r);
    }
    /* The cache killed and not restarted: the group serves on, without reuse, exactly. */
    int ci = child_index(&g, "cache");
    pid_t cpid = g.pid[ci];
    kill(cpid, SIGKILL);
    int cst;
    assert_int_equal(waitpid(cpid, &cst, 0), cpid);
    g.pid[ci] = -cpid;
    shm_unlink_of(cpid);
    sleep_ms(300);
    run_result r;
    generate_one(&g, &req, &r);
    assert_same(&r, &ref, "with the cache down");
    result_free(&r);
    lmm_msg_status_reply st;
    assert_int_equal(status(&g, &st), 0);
    assert_true(st.ready);
    fprintf(stderr, "  ok  with the cache down: same tokens, still ready\n");
    result_free(&ref);
    group_stop(&g);

    /* A model whose steps take long enough (stories15M shape, everything streamed in
     * 2 MiB pieces) that a kill lands inside a step: the step is abandoned, the
     * streaming slots are reset, and the output is still exact. */
    char big[1100];
    snprintf(big, sizeof big, "%s/s15m-recover.gguf", g_tmp);
    char *a[] = {"--shape", "stories15M", "--layers", "2", "--seed", "3", "--out", big, NULL};
    assert_int_equal(run_tool("lmsynth", a), 0);
    group_cfg cb = {.model = big, .workers = 2, .piece_bytes = 2u << 20};
    budget_limits(&cb, &min, &full, &np);
    cb.budget = min;
    gen_req rb = req_make("The little dog", 10, 0.8f, 9);
    reference_run(big, NULL, &rb, &ref);
    group_start(&g, &cb);
    const char *big_victims[] = {"compute.1", "compute.0", "loader"};
    for (size_t v = 0; v < 3; v++) {
        run_result r;
        uint32_t after = generate_killing(&g, &rb, &r, big_victims[v], 3);
        char what[96];
        snprintf(what, sizeof what, "stories15M shape, all streamed: kill -9 of %s", big_victims[v]);
        assert_same(&r, &ref, what);
        fprintf(stderr, "  ok  %s: same %u tokens (%u after the kill)\n", what, r.n_ids, after);
        result_free(&r);
    }
    fprintf(stderr, "  (steps abandoned mid-way: %s)\n", log_has(&g, "scheduler", "abandoned") ? "yes" : "none");
    result_free(&ref);
    group_stop(&g);
    unlink(big);
}

int main(int argc, char **argv) {
    const char *only = argc > 1 ? argv[1] : NULL;
    struct CMUnitTest all[] = {
        cmocka_unit_test(test_exact_tiny), cmocka_unit_test(test_exact_tiny_workers),
        cmocka_unit_test(test_exact_f16),  cmocka_unit_test(test_exact_stories),
        cmocka_unit_test(test_batch),      cmocka_unit_test(test_memory),
        cmocka_unit_test(test_memory_big), cmocka_unit_test(test_faults),
        cmocka_unit_test(test_prefix),     cmocka_unit_test(test_prefix_disk),
        cmocka_unit_test(test_context_shift), cmocka_unit_test(test_recover),
    };
    const char *groups[] = {"exact",  "exact_workers", "exact_workers", "exact_stories",
                            "batch", "memory",        "memory_big",    "faults", "prefix", "prefix_disk", "context_shift", "recover"};
    enum { N_TESTS = sizeof all / sizeof all[0] };
    struct CMUnitTest pick[N_TESTS];
    size_t n = 0;
    for (size_t i = 0; i < N_TESTS; i++)
        if (!only || strcmp(only, groups[i]) == 0) pick[n++] = all[i];
    if (n == 0) {
        fprintf(stderr, "unknown group '%s'\n", only);
        return 2;
    }
    return _cmocka_run_group_tests(only ? only : "services", pick, n, setup, teardown);
}
