/* launch/lmlaunch.c — the command users run: command line and dispatch.
 *
 *   run       the process group for one generation (run_group.c), or with --in-process
 *             the engine in this process (inproc.c)
 *   up/down   a group kept running in the background for lmclient (updown.c)
 *   status    its services, pids, states, memory, ring and speed (updown.c)
 *   restart   one service of a group started by `up` (updown.c; the supervisor restarts it)
 *   logs      a service's log (logs.c)
 *   check     a configuration file (config_cmd.c; --config FILE for run/up)
 * The group itself (start, watch, stop, clean up): group.c, group_json.c; profiles
 * (run --profile): profile.c.
 *
 * Exit status: 0 done; 1 the model, tokenizer, run or a service failed (one line naming
 * the cause); 2 bad command line; 130 interrupted (SIGINT/SIGTERM). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "group.h"
#include "lmlaunch.h"
#include "lmm/config.h"
#include "lmm/error.h"
#include "lmm/hal.h"
#include "lmm/service.h"

#define MAX_TOKENS_LIMIT (1u << 24)

static const char *usage_text =
    "usage: lmlaunch run --model PATH [options]      generate once, then stop the group\n"
    "       lmlaunch up --model PATH --endpoint tcp://127.0.0.1:PORT [--mem-budget SIZE] [--workers N]\n"
    "       lmlaunch down [--run-dir DIR]            stop the group started by `up`\n"
    "       lmlaunch status [--run-dir DIR] [--json] its services, pids, memory, ring, speed\n"
    "       lmlaunch restart SERVICE [--run-dir DIR] restart scheduler, loader, compute.N or cache of an `up` group\n"
    "       lmlaunch logs SERVICE [--run-dir DIR]    print RUN/SERVICE.log (scheduler, loader, compute.0, ...)\n"
    "       lmlaunch check CONFIG                    check a configuration file: OK, or one line per problem\n"
    "       lmlaunch profile --out FILE [--seconds N] [--run-dir DIR]  trace a group up with --trace for N s\n"
    "       lmlaunch --help\n"
    "\n"
    "`run` starts the process group (scheduler, loader, compute workers, cache) as separate\n"
    "processes, waits until it is ready, prints the generated text (not the prompt) as it\n"
    "comes, until EOS or --max-tokens, and stops the group. `run --in-process` runs the same\n"
    "engine in this one process. Clients attach to a group started by `up` with lmclient.\n"
    "\n"
    "  --model PATH           GGUF file, Hugging Face directory, or llama2.c .bin\n"
    "  --tokenizer PATH       tokenizer file (default: the one the model carries or sits beside)\n"
    "  --prompt TEXT          prompt (default: empty, i.e. just BOS)\n"
    "  --max-tokens N         tokens to generate (default: 256, or fewer when the context ends\n"
    "                         first; an N that does not fit the context is refused)\n"
    "  --context-shift        run: when the context is full, go on from its first token and last\n"
    "                         half (CHANGES the output; docs/kv-cache.md)\n"
    "  --temperature T        0 = greedy (default 0.8)\n"
    "  --top-k K              0 = off (default 40)\n"
    "  --top-p P              in (0, 1]; 1 = off (default 0.95)\n"
    "  --repeat-penalty R     > 0; 1 = off (default 1.0), over the last 64 tokens\n"
    "  --seed S               random seed (default: from the clock; printed with --json)\n"
    "  --threads N            compute threads (default: online CPUs)\n"
    "  --ctx N                context positions (default: prompt + max-tokens, at most the model's)\n"
    "  --isa NAME             scalar, avx2 or avx512 (default: the best this CPU has)\n"
    "  --dump-logits FILE     write the float32 logits of every sampling step, raw little-endian\n"
    "  --json                 end with one JSON line of results and speeds\n"
    "  --verbose, -v          run: one line per token on stderr (total, compute, I/O wait, transfer, bytes read)\n"
    "  --mem-budget SIZE      memory for the whole group, e.g. 512M, 4G (K/M/G/T; default: no limit)\n"
    "  --workers N            compute worker processes (default 1)\n"
    "  --start-timeout S      seconds the group may take to become ready (default 60)\n"
    "  --in-process           run: no process group, the engine in this process\n"
    "  --endpoint ENDPOINT    up: where clients connect (tcp://127.0.0.1:PORT)\n"
    "  --run-dir DIR          down/status/logs/restart: the group's directory (default: the last `up`)\n"
    "  --config FILE          run/up: settings from an INI file (docs/operations.md); flags override it\n"
    "  --live-kv SIZE         live KV of the sequences being decoded: sets how many decode at once;\n"
    "                         with --kv-disk DIR, the compute workers hold at most SIZE of it in RAM\n"
    "                         and spill the rest to DIR (long contexts, same output)\n"
    "  --profile FILE         run: write a Chrome trace (Perfetto) of every process of the group\n"
    "  --trace                up: the services record trace events, for `lmlaunch profile`\n"
    "  --out FILE, --seconds N  profile: where the merged trace goes; how long to record (default 5)\n"
    "  --kv-budget SIZE       run/up: RAM for KV blocks kept for reuse across requests (default 64M;\n"
    "                         --kv-cache is the same flag)\n"
    "  --no-prefix-cache      run/up: no KV reuse across requests (same output; docs/kv-cache.md)\n"
    "  --kv-disk DIR          run/up: keep reusable KV blocks on disk too (survive a restart)\n"
    "  --kv-transport shm|zmq run/up: compute workers move reusable KV blocks through the cache's\n"
    "                         shared memory (default) or as ZeroMQ messages (workers elsewhere)\n"
    "  --kv-disk-budget SIZE  run/up: most bytes of blocks in --kv-disk DIR, least recently used\n"
    "                         evicted first (default: its file system's free space at start\n"
    "                         minus 10% of the file system)\n"
    "\n"
    "Exit status: 0 ok, 1 model/tokenizer/config/run error or a service failed (one line naming it),\n"
    "2 bad command line, 130 interrupted.\n";

/* ---- command line ------------------------------------------------------------ */


static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("lmlaunch: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (see lmlaunch --help)\n", stderr);
    va_end(ap);
    return -1;
}

static int parse_u64(const char *flag, const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
    char *end;
    errno = 0;
    if (!*s || *s == '-' || *s == '+' || *s == ' ')
        return usage_error("%s: '%s' is not a whole number in [%" PRIu64 ", %" PRIu64 "]", flag, s, lo, hi);
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return usage_error("%s: '%s' is not a whole number in [%" PRIu64 ", %" PRIu64 "]", flag, s, lo, hi);
    *out = v;
    return 0;
}

static int parse_float(const char *flag, const char *s, float *out) {
    char *end;
    errno = 0;
    if (!*s) return usage_error("%s: empty value", flag);
    float v = strtof(s, &end);
    if (errno || *end || !isfinite(v)) return usage_error("%s: '%s' is not a finite number", flag, s);
    *out = v;
    return 0;
}

/* 0: run; 1: --help was asked for; -1: bad command line (message printed). */
static int parse_run_args(int argc, char **argv, run_args *a, const char *cmd) {
    memset(a, 0, sizeof *a);
    a->prompt = "";
    a->max_tokens = 256;
    a->workers = 1;
    a->start_timeout_s = 60;
    lmm_sampler_opts_default(&a->sampling);
    bool takes_positional = strcmp(cmd, "check") == 0 || strcmp(cmd, "logs") == 0 || strcmp(cmd, "restart") == 0;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0) return 1;
        if (strncmp(arg, "--", 2) != 0) {
            if (takes_positional && !a->positional) {
                a->positional = arg;
                continue;
            }
            return usage_error("%s: unexpected argument '%s'", cmd, arg);
        }
        /* --flag=value or --flag value */
        char flag[64];
        const char *val = NULL;
        const char *eq = strchr(arg, '=');
        size_t flen = eq ? (size_t)(eq - arg) : strlen(arg);
        if (flen >= sizeof flag) return usage_error("run: unknown option '%s'", arg);
        memcpy(flag, arg, flen);
        flag[flen] = '\0';
        if (eq) val = eq + 1;

        if (strcmp(flag, "--help") == 0 || strcmp(flag, "-h") == 0) return 1;
        if (strcmp(flag, "--no-prefix-cache") == 0) { /* KV reuse off (docs/kv-cache.md) */
            if (val) return usage_error("%s takes no value", flag);
            a->no_prefix_cache = true;
            continue;
        }
        if (strcmp(flag, "--context-shift") == 0) { /* opt-in, changes the output (docs/kv-cache.md) */
            if (val) return usage_error("%s takes no value", flag);
            a->context_shift = true;
            continue;
        }
        if (strcmp(flag, "--trace") == 0) {
            if (val) return usage_error("%s takes no value", flag);
            a->trace = true;
            continue;
        }
        if (strcmp(flag, "--verbose") == 0 || strcmp(flag, "-v") == 0) {
            if (val) return usage_error("%s takes no value", flag);
            a->verbose = true;
            continue;
        }
        if (strcmp(flag, "--json") == 0 || strcmp(flag, "--in-process") == 0) {
            if (val) return usage_error("%s takes no value", flag);
            if (flag[2] == 'j') a->json = true;
            else a->in_process = true;
            continue;
        }
        static const char *const with_value[] = {"--model", "--tokenizer", "--prompt", "--max-tokens",
                                                 "--temperature", "--top-k", "--top-p", "--repeat-penalty",
                                                 "--seed", "--threads", "--ctx", "--isa", "--dump-logits",
                                                 "--mem-budget", "--workers", "--start-timeout", "--endpoint",
                                                 "--run-dir", "--config", "--live-kv", "--kv-budget", "--profile",
                                                 "--kv-cache", "--kv-disk", "--out", "--seconds",
                                                 "--kv-disk-budget", "--kv-transport"};
        bool known = false;
        for (size_t k = 0; k < sizeof with_value / sizeof *with_value; k++) known |= strcmp(flag, with_value[k]) == 0;
        if (!known) return usage_error("%s: unknown option '%s'", cmd, flag);
        if (!val) {
            if (i + 1 >= argc) return usage_error("%s needs a value", flag);
            val = argv[++i];
        }
        uint64_t u;
        if (strcmp(flag, "--model") == 0) {
            if (!*val) return usage_error("--model: empty path");
            a->model = val;
            a->given.model = true;
        } else if (strcmp(flag, "--tokenizer") == 0) {
            if (!*val) return usage_error("--tokenizer: empty path");
            a->tokenizer = val;
            a->given.tokenizer = true;
        } else if (strcmp(flag, "--config") == 0) {
            if (!*val) return usage_error("--config: empty path");
            a->config = val;
        } else if (strcmp(flag, "--profile") == 0) {
            if (!*val) return usage_error("--profile: empty path");
            a->profile = val;
        } else if (strcmp(flag, "--out") == 0) {
            if (!*val) return usage_error("--out: empty path");
            a->out = val;
        } else if (strcmp(flag, "--seconds") == 0) {
            if (parse_u64(flag, val, 1, 3600, &u)) return -1;
            a->seconds = (uint32_t)u;
        } else if (strcmp(flag, "--kv-disk") == 0) {
            if (!*val) return usage_error("--kv-disk: empty path");
            a->kv_disk = val;
            a->given.kv_disk = true;
        } else if (strcmp(flag, "--kv-transport") == 0) {
            if (strcmp(val, "shm") != 0 && strcmp(val, "zmq") != 0)
                return usage_error("--kv-transport: '%s' is not shm or zmq", val);
            a->kv_transport = val;
        } else if (strcmp(flag, "--kv-disk-budget") == 0) {
            if (lmm_service_parse_size(val, &a->kv_disk_budget) || a->kv_disk_budget == 0)
                return usage_error("%s: '%s' is not a size like 512M or 4G", flag, val);
            a->given.kv_disk_budget = true;
        } else if (strcmp(flag, "--kv-cache") == 0 || strcmp(flag, "--kv-budget") == 0) {
            if (lmm_service_parse_size(val, &a->kv_cache) || a->kv_cache == 0)
                return usage_error("%s: '%s' is not a size like 64M or 1G", flag, val);
            a->given.kv_cache = true;
        } else if (strcmp(flag, "--live-kv") == 0) {
            if (lmm_service_parse_size(val, &a->kv_budget) || a->kv_budget == 0)
                return usage_error("--live-kv: '%s' is not a size like 512M or 4G", val);
            a->given.kv = true;
        } else if (strcmp(flag, "--prompt") == 0) {
            a->prompt = val;
        } else if (strcmp(flag, "--dump-logits") == 0) {
            if (!*val) return usage_error("--dump-logits: empty path");
            a->dump_logits = val;
        } else if (strcmp(flag, "--endpoint") == 0) {
            char why[400];
            if (lmm_config_check_endpoint(val, why, sizeof why)) return usage_error("--endpoint: %s", why);
            a->endpoint = val;
            a->given.endpoint = true;
        } else if (strcmp(flag, "--run-dir") == 0) {
            if (!*val) return usage_error("--run-dir: empty path");
            a->run_dir = val;
        } else if (strcmp(flag, "--mem-budget") == 0) {
            if (lmm_service_parse_size(val, &a->mem_budget) || a->mem_budget == 0)
                return usage_error("--mem-budget: '%s' is not a size like 512M or 4G", val);
            a->given.mem = true;
        } else if (strcmp(flag, "--workers") == 0) {
            if (parse_u64(flag, val, 1, GROUP_MAX_WORKERS, &u)) return -1;
            a->workers = (unsigned)u;
            a->given.workers = true;
        } else if (strcmp(flag, "--start-timeout") == 0) {
            if (parse_u64(flag, val, 1, 86400, &u)) return -1;
            a->start_timeout_s = (int)u;
        } else if (strcmp(flag, "--isa") == 0) {
            a->isa = val;
        } else if (strcmp(flag, "--max-tokens") == 0) {
            if (parse_u64(flag, val, 0, MAX_TOKENS_LIMIT, &u)) return -1;
            a->max_tokens = (uint32_t)u;
            a->max_tokens_given = true;
        } else if (strcmp(flag, "--top-k") == 0) {
            if (parse_u64(flag, val, 0, UINT32_MAX, &u)) return -1;
            a->sampling.top_k = (uint32_t)u;
        } else if (strcmp(flag, "--seed") == 0) {
            if (parse_u64(flag, val, 0, UINT64_MAX, &u)) return -1;
            a->sampling.seed = u;
            a->seed_given = true;
        } else if (strcmp(flag, "--threads") == 0) {
            if (parse_u64(flag, val, 1, 1024, &u)) return -1;
            a->threads = (int)u;
            a->given.threads = true;
        } else if (strcmp(flag, "--ctx") == 0) {
            if (parse_u64(flag, val, 1, 1u << 24, &u)) return -1;
            a->ctx = (uint32_t)u;
            a->given.ctx = true;
        } else if (strcmp(flag, "--temperature") == 0) {
            if (parse_float(flag, val, &a->sampling.temperature)) return -1;
            if (a->sampling.temperature < 0.0f) return usage_error("--temperature: '%s' must be >= 0", val);
        } else if (strcmp(flag, "--top-p") == 0) {
            if (parse_float(flag, val, &a->sampling.top_p)) return -1;
            if (!(a->sampling.top_p > 0.0f && a->sampling.top_p <= 1.0f))
                return usage_error("--top-p: '%s' must be in (0, 1]", val);
        } else if (strcmp(flag, "--repeat-penalty") == 0) {
            if (parse_float(flag, val, &a->sampling.repeat_penalty)) return -1;
            if (!(a->sampling.repeat_penalty > 0.0f)) return usage_error("--repeat-penalty: '%s' must be > 0", val);
        }
    }
    bool group_cmd = strcmp(cmd, "run") == 0 || strcmp(cmd, "up") == 0;
    if (a->config && !group_cmd) return usage_error("%s: --config is for run and up (check takes CONFIG)", cmd);
    if (a->profile && strcmp(cmd, "run") != 0) return usage_error("%s: --profile is for run", cmd);
    if (a->trace && strcmp(cmd, "up") != 0) return usage_error("%s: --trace is for up", cmd);
    if (a->verbose && strcmp(cmd, "run") != 0) return usage_error("%s: --verbose is for run", cmd);
    if (a->context_shift && strcmp(cmd, "run") != 0)
        return usage_error("%s: --context-shift is for run (lmclient has it per request)", cmd);
    if ((a->out || a->seconds) && strcmp(cmd, "profile") != 0)
        return usage_error("%s: --out and --seconds are for profile", cmd);
    if (strcmp(cmd, "profile") == 0 && !a->out) return usage_error("profile: --out FILE is required");
    if (a->verbose && a->in_process) return usage_error("run: --verbose shows the process group's figures, not --in-process");
    if (a->profile && a->in_process) return usage_error("run: --profile traces the process group, not --in-process");
    if (takes_positional && !a->positional)
        return usage_error("%s: %s is required", cmd, cmd[0] == 'c' ? "CONFIG" : "SERVICE");
    return 0;
}

/* After --config: what run and up cannot do without. */
static int check_required(const run_args *a, const char *cmd) {
    bool group_cmd = strcmp(cmd, "run") == 0 || strcmp(cmd, "up") == 0;
    if (group_cmd && !a->model) return usage_error("%s: --model PATH (or [model] path in --config) is required", cmd);
    if (strcmp(cmd, "up") == 0 && !a->endpoint)
        return usage_error("up: --endpoint ENDPOINT (or [endpoints] client in --config) is required "
                           "(e.g. tcp://127.0.0.1:5555)");
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (cmd[0] == '-') {
        fprintf(stderr, "lmlaunch: unknown option '%s' (see lmlaunch --help)\n", cmd);
        return EXIT_USAGE;
    }
    static const char *const cmds[] = {"run", "up", "down", "status", "logs", "check", "profile", "restart"};
    bool known = false;
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) known |= strcmp(cmd, cmds[i]) == 0;
    if (!known) {
        fprintf(stderr, "lmlaunch: unknown command '%s' (see lmlaunch --help)\n", cmd);
        return EXIT_USAGE;
    }
    run_args a;
    int prc = parse_run_args(argc - 2, argv + 2, &a, cmd);
    if (prc == 1) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (prc) return EXIT_USAGE;
    if (strcmp(cmd, "check") == 0) return lmlaunch_check_config(a.positional);
    if (strcmp(cmd, "logs") == 0) return lmlaunch_logs(&a);
    if (strcmp(cmd, "restart") == 0) return lmlaunch_restart(&a);
    if (strcmp(cmd, "profile") == 0) return lmlaunch_profile(&a);
    if (lmlaunch_apply_config(&a)) return 1;
    if (check_required(&a, cmd)) return EXIT_USAGE;
    if (a.isa) {
        lmm_isa isa;
        if (lmm_hal_isa_parse(a.isa, &isa)) {
            fprintf(stderr, "lmlaunch: --isa: '%s' is not scalar, avx2 or avx512\n", a.isa);
            return EXIT_USAGE;
        }
        if (lmm_hal_isa_set(isa)) {
            fprintf(stderr, "lmlaunch: --isa %s: %s\n", a.isa, lmm_error_get());
            return EXIT_USAGE;
        }
    }
    if (!a.seed_given) a.sampling.seed = lmlaunch_clock_seed();
    if (a.kv_budget && !a.in_process && (strcmp(cmd, "run") == 0 || strcmp(cmd, "up") == 0)) {
        if (lmlaunch_check_model(&a, NULL)) return 1;
        if (lmlaunch_size_kv(&a)) return 1;
    }
    if (strcmp(cmd, "run") == 0) return a.in_process ? lmlaunch_run_inprocess(a) : lmlaunch_run_group(&a);
    if (strcmp(cmd, "up") == 0) return lmlaunch_up(&a);
    if (strcmp(cmd, "down") == 0) return lmlaunch_down(&a);
    return lmlaunch_status(&a);
}
