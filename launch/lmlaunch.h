/* launch/lmlaunch.h — what the files of lmlaunch share: the parsed command line and
 * the subcommands (lmlaunch.c parses and dispatches). */
#ifndef LMM_LAUNCH_LMLAUNCH_H
#define LMM_LAUNCH_LMLAUNCH_H

#include <stdbool.h>
#include <stdint.h>

#include "group.h"
#include "lmm/sampler.h"

#define EXIT_USAGE 2

typedef struct {
    const char *model, *tokenizer, *prompt, *dump_logits, *isa;
    uint32_t max_tokens;
    lmm_sampler_opts sampling;
    bool seed_given;
    int threads;
    uint32_t ctx;
    bool json;
    bool verbose;            /* run: --verbose, one line of figures per token on stderr */
    bool trace;              /* up: --trace, the services record for `lmlaunch profile` */
    const char *out;         /* profile: --out FILE */
    uint32_t seconds;        /* profile: --seconds N (default 5) */
    /* process group */
    bool in_process;         /* run: the engine in this process (no services) */
    uint64_t mem_budget;     /* --mem-budget, bytes; 0: none */
    unsigned workers;        /* --workers N compute processes (default 1) */
    int start_timeout_s;     /* --start-timeout S (default 60) */
    const char *endpoint;    /* up: --endpoint tcp://127.0.0.1:PORT */
    const char *run_dir;     /* down/status/logs: --run-dir DIR (default: the current group) */
    /* operations (docs/operations.md) */
    const char *config;      /* --config FILE (INI, lmm/config.h); flags override it */
    const char *profile;     /* run: --profile FILE, Chrome trace JSON of the whole group */
    const char *services_ep; /* [endpoints] services (default ipc://RUN/services.ipc) */
    uint64_t kv_budget;      /* --kv-budget / [budget] kv, bytes; 0: none */
    uint32_t max_seqs;       /* sequences decoded at once, from kv_budget; 0: the scheduler's default */
    uint64_t kv_spill_ram;   /* --live-kv with --kv-disk: the workers' live KV RAM, the rest spilled */
    bool no_prefix_cache;    /* --no-prefix-cache: no KV reuse across requests (docs/kv-cache.md) */
    uint64_t kv_cache;       /* --kv-cache SIZE: lmm-cache's block budget; 0: its default */
    const char *kv_disk;     /* --kv-disk DIR: lmm-cache's disk tier; NULL: none */
    uint64_t kv_disk_budget; /* --kv-disk-budget SIZE: bound of the disk tier; 0: the cache's default */
    bool max_tokens_given;   /* run: --max-tokens given: one beyond the context is refused */
    bool context_shift;      /* run: --context-shift, slide past the context (changes the output) */
    const char *kv_transport; /* --kv-transport shm|zmq: how compute workers move KV blocks; NULL: shm */
    const char *positional;  /* check CONFIG, logs SERVICE, restart SERVICE */
    struct {                 /* flags given on the command line (they win over --config) */
        bool model, tokenizer, mem, kv, workers, threads, ctx, endpoint;
        bool kv_cache, kv_disk, kv_disk_budget; /* the cache's settings, [budget] kv_cache and [cache] */
    } given;
} run_args;

double lmlaunch_now_s(void);
uint64_t lmlaunch_clock_seed(void);
uint64_t lmlaunch_peak_rss_bytes(void);

int lmlaunch_run_inprocess(run_args a);      /* inproc.c */
int lmlaunch_run_group(const run_args *a);   /* run_group.c */
/* The group options run and up share, from the arguments (run_group.c). */
void lmlaunch_group_opts(const run_args *a, group_opts *o);
int lmlaunch_up(const run_args *a);          /* updown.c */
int lmlaunch_down(const run_args *a);
int lmlaunch_status(const run_args *a);
int lmlaunch_restart(const run_args *a);     /* `restart SERVICE` of an `up` group */
int lmlaunch_logs(const run_args *a);        /* logs.c */

/* config_cmd.c: `check CONFIG` (0 OK, 1 problems printed); --config applied to a (flags
 * win; -1 after printing the file's problems); --kv-budget -> a->max_seqs (-1 after
 * printing why not even one sequence fits). */
int lmlaunch_check_config(const char *path);
int lmlaunch_apply_config(run_args *a);
int lmlaunch_size_kv(run_args *a);

/* profile.c: merges RUN/trace-*.json into out (one Chrome trace, a pid per process).
 * Prints one line saying what it wrote, or why not. */
int lmlaunch_profile_merge(const char *run_dir, const char *out, uint64_t since_us);
/* `lmlaunch profile --out FILE --seconds N [--run-dir DIR]` on a group up with --trace. */
int lmlaunch_profile(const run_args *a);

/* The model (and tokenizer) exist, are readable, and the model's description opens:
 * 0, or 1 after printing one line naming the file. *max_seq_len: the model's context. */
int lmlaunch_check_model(const run_args *a, uint32_t *max_seq_len);

#endif
