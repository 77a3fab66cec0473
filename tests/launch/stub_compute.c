/* tests/launch/stub_compute.c — a stand-in lmm-compute for the lmlaunch tests: the
 * command line and life of a compute worker (HELLO as compute.N, STATUS, PING, exit on
 * SHUTDOWN, signals or loss of the scheduler), no computing (stub_scheduler.c computes). */
#include <stdio.h>
#include <string.h>

#include "lmm/error.h"
#include "lmm/service.h"

int main(int argc, char **argv) {
    const char *services = NULL, *index = "0", *v;
    for (int i = 1; i < argc; i++) {
        if (lmm_service_flag(argc, argv, &i, "--services", &services) > 0 ||
            lmm_service_flag(argc, argv, &i, "--index", &index) > 0)
            continue;
        if (strncmp(argv[i], "--", 2) == 0 && !strchr(argv[i], '=') && lmm_service_flag(argc, argv, &i, argv[i], &v) < 0)
            return 2;
    }
    if (!services) return 2;
    char name[32];
    snprintf(name, sizeof name, "compute.%s", index);
    uint64_t start = lmm_service_now_ms();
    lmm_service_signals_install();
    lmm_service_die_with_parent();
    lmm_service_sock s;
    lmm_msg m, r;
    int rc = 1;
    if (lmm_service_dealer_connect(&s, services, name)) goto out;
    if (lmm_service_hello(&s, LMM_PROTO_ROLE_COMPUTE, name, 30000, &m)) {
        rc = lmm_service_stopping() ? 0 : 1;
        goto out;
    }
    while (!lmm_service_stopping() && !s.peer_lost) {
        int n = lmm_service_recv(&s, NULL, &m, 1000);
        if (n < 0) goto out;
        if (n != LMM_SERVICE_MSG) continue;
        if (m.type == LMM_MSG_SHUTDOWN) break;
        if (m.type == LMM_MSG_STATUS) {
            lmm_service_status_fill(&r, LMM_PROTO_ROLE_COMPUTE, name, start);
            lmm_service_send(&s, NULL, &r);
        } else if (m.type == LMM_MSG_PING) {
            lmm_proto_msg_init(&r, LMM_MSG_ACK);
            r.ack.of = LMM_MSG_PING;
            lmm_service_send(&s, NULL, &r);
        }
    }
    rc = 0;
out:
    if (rc) fprintf(stderr, "lmm-compute (stub) %s: %s\n", name, lmm_error_get());
    lmm_service_sock_close(&s);
    lmm_service_ctx_term();
    return rc;
}
