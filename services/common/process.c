/* services/common/process.c — process life of a service: stop signals, dying with the
 * launcher (and starting the trace when LMM_TRACE=1), STATUS_REPLY basics, and the small
 * command-line parsers every main uses (lmm/service.h). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "lmm/error.h"
#include "lmm/service.h"
#include "lmm/trace.h"

/* ---- signals ------------------------------------------------------------------- */

static volatile sig_atomic_t g_stop_signal;
static volatile sig_atomic_t g_stop;

static volatile sig_atomic_t g_trace_dump;

static void on_stop_signal(int sig) {
    g_stop_signal = sig;
    g_stop = 1;
}

static void on_trace_signal(int sig) {
    (void)sig;
    g_trace_dump = 1;
}

void lmm_service_trace_dump_pending(void) {
    if (!g_trace_dump) return;
    g_trace_dump = 0;
    if (!lmm_trace_on()) return; /* not started with LMM_TRACE=1: nothing to write */
    if (lmm_trace_write_to_dir()) fprintf(stderr, "%s: trace: %s\n", program_invocation_short_name, lmm_error_get());
}

int lmm_service_signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: zmq_poll and friends return EINTR */
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
        if (sigaction(sigs[i], &sa, NULL) != 0) return lmm_error_set("sigaction: %s", strerror(errno));
    sa.sa_handler = on_trace_signal; /* `lmlaunch profile`: write the trace at the next poll */
    sa.sa_flags = SA_RESTART;        /* other blocking calls go on; poll still wakes (EINTR) */
    if (sigaction(SIGUSR2, &sa, NULL) != 0) return lmm_error_set("sigaction: %s", strerror(errno));
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

bool lmm_service_stopping(void) { return g_stop != 0; }
int lmm_service_stop_signal(void) { return (int)g_stop_signal; }
void lmm_service_request_stop(void) { g_stop = 1; }

void lmm_service_die_with_parent(void) {
    /* every service calls this at start: the place to start tracing for `run --profile`
     * (LMM_TRACE=1; the trace is written at exit to $LMM_TRACE_DIR/trace-<name>.json, the
     * name being "scheduler", "loader", ... and the HELLO name once said) */
    const char *prog = program_invocation_short_name;
    if (strncmp(prog, "lmm-", 4) == 0) prog += 4;
    if (lmm_trace_start_from_env(prog) < 0) fprintf(stderr, "%s: %s\n", program_invocation_short_name, lmm_error_get());
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    /* The parent may have died before the prctl: then we were re-parented. lmlaunch
     * sets LMM_LAUNCHER_PID so this is exact; without it, pid 1 is the best guess. */
    const char *want = getenv("LMM_LAUNCHER_PID");
    pid_t pp = getppid();
    if ((want && *want && atol(want) != (long)pp) || pp == 1) g_stop = 1;
}

/* ---- STATUS -------------------------------------------------------------------- */

uint64_t lmm_service_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void lmm_service_status_fill(lmm_msg *m, lmm_proto_role role, const char *name, uint64_t start_ms) {
    lmm_proto_msg_init(m, LMM_MSG_STATUS_REPLY);
    lmm_msg_status_reply *r = &m->status_reply;
    r->role = role;
    r->pid = (uint32_t)getpid();
    snprintf(r->name, sizeof r->name, "%s", name ? name : "");
    uint64_t now = lmm_service_now_ms();
    r->uptime_ms = now > start_ms ? now - start_ms : 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        unsigned long long size, resident;
        if (fscanf(f, "%llu %llu", &size, &resident) == 2)
            r->rss_bytes = (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
        fclose(f);
    }
}

/* ---- command-line helpers ------------------------------------------------------ */

int lmm_service_flag(int argc, char **argv, int *i, const char *name, const char **val) {
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return 0;
    if (a[n] == '=') {
        *val = a + n + 1;
        return 1;
    }
    if (a[n] != '\0') return 0;
    if (*i + 1 >= argc) return lmm_error_set("%s needs a value", name);
    *val = argv[++*i];
    return 1;
}

int lmm_service_parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
    char *end;
    if (!s || !isdigit((unsigned char)*s)) return lmm_error_set("'%s' is not a whole number", s ? s : "");
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return lmm_error_set("'%s' is not a whole number in [%llu, %llu]", s, (unsigned long long)lo,
                             (unsigned long long)hi);
    *out = v;
    return 0;
}

int lmm_service_parse_size(const char *s, uint64_t *out) {
    if (!s || !isdigit((unsigned char)*s)) return lmm_error_set("'%s' is not a size (e.g. 512M, 4G)", s ? s : "");
    char *end;
    errno = 0;
    unsigned long long whole = strtoull(s, &end, 10);
    if (errno) return lmm_error_set("size '%s' is too large", s);
    double frac = 0.0;
    const char *p = end;
    if (*p == '.') {
        char *fend;
        frac = strtod(p, &fend); /* ".5" */
        if (fend == p + 1) return lmm_error_set("'%s' is not a size (e.g. 512M, 4G)", s);
        p = fend;
    }
    unsigned shift = 0;
    switch (toupper((unsigned char)*p)) {
    case 'K': shift = 10; p++; break;
    case 'M': shift = 20; p++; break;
    case 'G': shift = 30; p++; break;
    case 'T': shift = 40; p++; break;
    default: break;
    }
    if (shift && (p[0] == 'i' || p[0] == 'I') && toupper((unsigned char)p[1]) == 'B') p += 2;
    else if (toupper((unsigned char)*p) == 'B') p++;
    if (*p) return lmm_error_set("'%s' is not a size (e.g. 512M, 4G)", s);
    if (whole > (UINT64_MAX >> shift)) return lmm_error_set("size '%s' is too large", s);
    uint64_t v = (uint64_t)whole << shift;
    if (frac > 0.0) {
        double add = floor(frac * (double)(1ull << shift));
        if (add >= 18446744073709551616.0 - (double)v) return lmm_error_set("size '%s' is too large", s);
        v += (uint64_t)add;
    }
    *out = v;
    return 0;
}
