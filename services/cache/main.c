/* services/cache/main.c — lmm-cache, the KV cache service (placeholder until issue 5).
 *
 * Connects to the scheduler (DEALER, identity "cache"), says HELLO, then answers STATUS
 * with a STATUS_REPLY, SHUTDOWN by exiting, and every other request with a miss
 * (ERROR code "not found"): KV reuse across requests arrives with issue 5. Exits when
 * the scheduler goes away, on SHUTDOWN, SIGINT or SIGTERM. Traced (LMM_TRACE=1): its
 * messages and waits (services/common) and an instant "miss" per lookup.
 *
 * Command line (docs/process-group.md, "Command lines"):
 *   lmm-cache --run-dir DIR --services ENDPOINT [--name NAME]
 * Exit status: 0 stopped cleanly (SHUTDOWN, signal, scheduler gone); 1 error; 2 usage. */
#include <stdio.h>
#include <string.h>

#include "lmm/error.h"
#include "lmm/service.h"
#include "lmm/trace.h"

#define HELLO_TIMEOUT_MS 30000

static const char *g_name = "cache";

static void log_line(const char *what) { fprintf(stderr, "lmm-cache: %s\n", what); }

static int usage(const char *why) {
    fprintf(stderr, "lmm-cache: %s\nusage: lmm-cache --run-dir DIR --services ENDPOINT [--name NAME]\n", why);
    return 2;
}

int main(int argc, char **argv) {
    const char *run_dir = NULL, *services = NULL;
    for (int i = 1; i < argc; i++) {
        int r;
        if ((r = lmm_service_flag(argc, argv, &i, "--run-dir", &run_dir)) ||
            (r = lmm_service_flag(argc, argv, &i, "--services", &services)) ||
            (r = lmm_service_flag(argc, argv, &i, "--name", &g_name))) {
            if (r < 0) return usage(lmm_error_get());
            continue;
        }
        if (strcmp(argv[i], "--help") == 0) { usage("the KV cache service (started by lmlaunch)"); return 0; }
        char msg[256];
        snprintf(msg, sizeof msg, "unknown argument '%s'", argv[i]);
        return usage(msg);
    }
    if (!services) return usage("--services ENDPOINT is required");
    (void)run_dir; /* the disk tier (issue 5) will live under it */

    uint64_t start_ms = lmm_service_now_ms();
    lmm_service_signals_install();
    lmm_service_die_with_parent();
    lmm_service_sock s;
    lmm_msg m, reply;
    uint64_t served = 0;
    int rc = 1;
    if (lmm_service_dealer_connect(&s, services, g_name)) {
        log_line(lmm_error_get());
        lmm_service_ctx_term();
        return 1;
    }
    if (lmm_service_hello(&s, LMM_PROTO_ROLE_CACHE, g_name, HELLO_TIMEOUT_MS, &m)) {
        rc = lmm_service_stopping() ? 0 : 1;
        if (rc) log_line(lmm_error_get());
        goto out;
    }
    for (;;) {
        if (lmm_service_stopping() || s.peer_lost) {
            rc = 0;
            break;
        }
        int r = lmm_service_recv(&s, NULL, &m, 1000);
        if (r < 0) {
            log_line(lmm_error_get());
            break;
        }
        if (r != LMM_SERVICE_MSG) continue;
        switch (m.type) {
        case LMM_MSG_SHUTDOWN:
            rc = 0;
            goto out;
        case LMM_MSG_STATUS:
            lmm_service_status_fill(&reply, LMM_PROTO_ROLE_CACHE, g_name, start_ms);
            reply.status_reply.served = served;
            if (lmm_service_send(&s, NULL, &reply)) log_line(lmm_error_get());
            break;
        case LMM_MSG_PING:
            lmm_proto_msg_init(&reply, LMM_MSG_ACK);
            reply.ack.of = LMM_MSG_PING;
            if (lmm_service_send(&s, NULL, &reply)) log_line(lmm_error_get());
            break;
        case LMM_MSG_HELLO:
            lmm_service_hello_reply(&m, LMM_PROTO_ROLE_CACHE, &reply);
            if (lmm_service_send(&s, NULL, &reply)) log_line(lmm_error_get());
            break;
        case LMM_MSG_HELLO_ACK:
        case LMM_MSG_ACK:
        case LMM_MSG_ERROR:
            break; /* answers need no answer */
        default:
            served++;
            lmm_trace_instant("cache", "miss", "type", m.type, NULL, 0);
            if (lmm_service_send_error(&s, NULL, LMM_PROTO_E_NOT_FOUND, 0,
                                       "cache miss: KV reuse is not implemented yet (issue 5)"))
                log_line(lmm_error_get());
            break;
        }
    }
out:
    lmm_service_sock_close(&s);
    lmm_service_ctx_term();
    return rc;
}
