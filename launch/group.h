/* launch/group.h — the process group lmlaunch supervises (docs/process-group.md).
 *
 * group.c starts the services (scheduler, loader, compute.0..N-1, cache) as children,
 * watches them (SIGCHLD, waitpid), waits until the scheduler reports READY, restarts a
 * service that dies once the group is ready (supervise.h: backoff, crash-loop limit; the
 * same command line), stops them (SHUTDOWN, then SIGTERM, then SIGKILL), and cleans up:
 * every child reaped, every /dev/shm/lmm-<child pid>-* segment unlinked, stale segments
 * swept, RUN removed. group_json.c writes and reads RUN/group.json and the "current
 * group" pointer file. */
#ifndef LMM_LAUNCH_GROUP_H
#define LMM_LAUNCH_GROUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lmm/service.h"
#include "supervise.h"

#define GROUP_MAX_WORKERS 64
#define GROUP_MAX_CHILDREN (GROUP_MAX_WORKERS + 3)
#define GROUP_PATH_MAX 1024

typedef struct {
    char name[32];          /* "scheduler", "loader", "compute.0", "cache" */
    pid_t pid;              /* 0 before start */
    uint64_t start_time;    /* /proc/<pid>/stat field 22 (tells pid reuse apart) */
    bool reaped;
    int wstatus;            /* waitpid status once reaped */
    bool expected_exit;     /* reaped after we asked the group to stop */
    int log_fd;             /* run: RUN/<name>.log opened for reading (relayed to stderr); -1 */
    /* supervision (group_check) */
    char **argv;            /* the command line it was started with (one malloc), for restarts;
                             * NULL when read from group.json */
    supervise_history hist; /* crashes and restarts; hist.restarts is group.json's "restarts" */
    uint64_t respawn_at_ms; /* reaped and due to start again at this lmm_service_now_ms(); 0: not */
    bool restart_asked;     /* `lmlaunch restart`: SIGTERM sent, its exit is no crash */
    uint64_t asked_ms;      /* when (SIGKILL after GROUP_RESTART_KILL_MS) */
} group_child;

/* What `run` and `up` start. */
typedef struct {
    const char *model, *tokenizer, *isa;
    uint64_t mem_budget;    /* 0: none */
    bool no_prefix_cache;   /* lmm-scheduler --no-prefix-cache (docs/kv-cache.md) */
    uint64_t kv_cache;      /* lmm-scheduler --kv-cache bytes (the cache's region); 0: default */
    const char *kv_disk;    /* lmm-cache --kv-disk DIR; NULL: none */
    uint64_t kv_disk_budget; /* lmm-cache --kv-disk-budget bytes (bound of the disk tier); 0: its default */
    const char *kv_transport; /* lmm-compute --kv-transport shm|zmq; NULL: shm */
    unsigned workers;       /* compute workers, >= 1 */
    int threads;            /* 0: default */
    uint32_t ctx;           /* 0: default */
    const char *client_endpoint; /* NULL: ipc://RUN/client.ipc */
    const char *services_endpoint; /* NULL: ipc://RUN/services.ipc */
    uint32_t max_seqs;      /* scheduler --max-seqs (from the KV budget); 0: its default */
    uint64_t kv_ram;        /* live KV held in RAM by all workers, the rest spilled to kv_disk
                             * (scheduler and lmm-compute --kv-ram, --kv-spill-dir); 0: all in RAM */
    /* Children's stdout/stderr always go to RUN/<name>.log (`lmlaunch logs`); with
     * relay_logs (run) lmlaunch copies what they write to its own stderr as it comes. */
    bool relay_logs;
    const char *profile;    /* run --profile FILE: services trace (LMM_TRACE=1, LMM_TRACE_DIR=RUN);
                             * group_stop merges RUN/trace-*.json into FILE */
    bool trace;             /* up --trace: services record (LMM_TRACE=1, LMM_TRACE_DIR=RUN) for
                             * `lmlaunch profile`; nothing is merged at stop */
    int start_timeout_ms;
} group_opts;

typedef struct {
    char run_dir[256];      /* /tmp/lmm-<pid> */
    char client_ep[GROUP_PATH_MAX];
    char services_ep[GROUP_PATH_MAX];
    char bin_dir[GROUP_PATH_MAX];
    group_child kids[GROUP_MAX_CHILDREN];
    unsigned n_kids;
    bool stopping;          /* we asked the group to stop: exits are expected */
    lmm_service_sock launch; /* DEALER to the client endpoint, identity "launch" */
    bool launch_open;
    pid_t launcher_pid;
    bool relay_logs;        /* copy the children's logs to stderr (group_opts.relay_logs) */
    char profile[GROUP_PATH_MAX]; /* "" or where group_stop writes the merged trace */
    bool trace;             /* the services record a trace (run --profile, up --trace) */
    /* supervision */
    const group_opts *opts; /* what group_start was given (kept by the caller while the group lives) */
    bool ready;             /* READY seen (group_wait_ready): from then on dead services are restarted */
    bool restart_all;       /* up: the scheduler's death restarts the whole group (run: it is fatal) */
    bool restart_all_asked; /* `lmlaunch restart scheduler` */
    bool gave_up;           /* group_check's -1 was a crash loop */
    char last_death[192];   /* "loader (pid 12) was killed by signal 9 (Killed)": the last unexpected death */
    uint64_t last_death_ms; /* when it was seen; 0: none */
    uint64_t launcher_start_time; /* group_json_read: the supervisor's start time (0: unknown) */
    char mode[8];           /* group_json_read: "up" or "run" */
} group;

/* A service asked to restart (`lmlaunch restart`) that has not exited this long after
 * SIGTERM gets SIGKILL. */
#define GROUP_RESTART_KILL_MS 5000
/* group_check: the whole group is due for a restart (up: the scheduler died, or
 * `lmlaunch restart scheduler`); the caller runs group_restart_all. */
#define GROUP_RESTART_ALL 1

/* ---- signals (SIGINT/SIGTERM/SIGHUP ask to stop; SIGCHLD wakes; SIGUSR1: `lmlaunch
 * restart` left a request in RUN) ---- */
void group_signals_install(void);
int group_stop_signal(void);      /* the signal that asked to stop, 0 if none */

/* ---- life ---- */

/* Creates RUN (/tmp/lmm-<pid>, 0700), finds the service binaries beside lmlaunch (or in
 * $LMM_SERVICE_BIN_DIR), sweeps stale segments, starts every service. On failure
 * everything started is stopped and cleaned; -1 with the error. */
int group_start(group *g, const group_opts *o);
/* Connects to the client endpoint, says HELLO (role launch) and polls STATUS until the
 * scheduler reports ready; fails naming what did not come up, a child that died, or a
 * stop signal. */
int group_wait_ready(group *g, int timeout_ms);
/* Reaps exited children without blocking; relays logs. Before READY (and while
 * stopping) a child that exits unexpectedly is fatal: -1 with one line ("loader (pid 12)
 * was killed by signal 9 (Killed)"). Once ready it supervises (docs/operations.md,
 * "Supervision"): a dead loader, compute.N or cache is started again with the same
 * command line after the backoff (one line on stderr per restart), requests of
 * `lmlaunch restart` (RUN/restart.<name>, SIGUSR1) are carried out, and group.json is
 * rewritten when a pid changes. -1 (g->gave_up set) when a service keeps crashing; -1
 * when the scheduler died (run, or up after it exited 0: someone shut the group down);
 * GROUP_RESTART_ALL when the whole group is due for a restart (up); else 0. */
int group_check(group *g);
/* Milliseconds until group_check has a restart to do (at most cap). */
int group_next_due_ms(const group *g, int cap);
/* The whole group again (up): stops what is left (keeping RUN and the logs, which are
 * appended to), starts every service with its command line, waits until READY, rewrites
 * group.json; counts a restart of the scheduler. -1 with the error when it does not come up. */
int group_restart_all(group *g);
/* True once every child has been reaped. */
bool group_all_exited(const group *g);
/* After a failure reported by the scheduler: waits up to wait_ms for a service to be seen
 * dead; -1 naming it (the likely cause) as group_check does, or naming a service that died
 * (and was restarted) in the last seconds; 0 when all still run. */
int group_settle(group *g, int wait_ms);
/* Stops the group: SHUTDOWN to the scheduler (if connected), waits up to grace_ms for
 * the children, then SIGTERM, 2 s, SIGKILL; reaps all; unlinks their segments; sweeps
 * stale ones; relays the rest of the logs (relay_logs); merges the traces (profile);
 * removes RUN. Always completes. */
void group_stop(group *g, int grace_ms);
/* Copies what the children wrote to their logs since the last call to stderr (relay_logs). */
void group_relay_logs(group *g);
/* Describes a child's wait status: "exited with status 1", "was killed by signal 9 (Killed)". */
void group_describe_status(int wstatus, char *buf, size_t cap);

/* ---- helpers shared with down/status ---- */
uint64_t group_proc_start_time(pid_t pid);      /* 0 if no such process */
bool group_pid_is(pid_t pid, uint64_t start_time); /* alive, not a zombie, same start time */
void group_unlink_segments_of(pid_t pid);       /* /dev/shm/lmm-<pid>-* */
void group_remove_dir(const char *dir);         /* RUN: its files, then itself */

/* ---- group.json and the pointer file (group_json.c) ---- */
int group_json_write(const group *g, const group_opts *o);
/* Reads RUN/group.json into g (run_dir, endpoints, launcher pid and start time, mode,
 * children with their restarts). */
int group_json_read(group *g, const char *run_dir);
/* ~/.cache/lowmemoryllm/current (HOME set and writable) else /tmp/lmm-current-<uid>. */
void group_pointer_path(char *buf, size_t cap);
int group_pointer_write(const char *run_dir);
int group_pointer_read(char *run_dir, size_t cap);
/* Removes the pointer if it names run_dir. */
void group_pointer_remove(const char *run_dir);
/* When the pointer names run_dir: adds a second line "stopped: WHY" (the supervisor gave
 * up: `status`, `restart` and `down` then say why the group is gone). */
void group_pointer_write_failure(const char *run_dir, const char *why);
/* WHY of that line, or "". */
void group_pointer_read_failure(char *why, size_t cap);

#endif
