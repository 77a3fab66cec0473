/* lmm/config.h — the group's configuration file (INI, read with libinih; docs/operations.md).
 *
 *     [model]
 *     path = models/llama-2-7b.gguf      ; relative paths: from the config file's folder
 *     tokenizer = models/tokenizer.model ; optional
 *     [budget]
 *     mem = 4G                           ; --mem-budget (K/M/G/T)
 *     kv = 512M                          ; KV cache: sets how many sequences decode at once
 *     kv_cache = 256M                    ; --kv-budget: RAM for KV blocks reused across requests
 *     ctx = 2048                         ; context positions per sequence
 *     [services]
 *     compute = 2                        ; compute workers (>= 1)
 *     loader = 1                         ; exactly 1 for now
 *     cache = 1                          ; exactly 1 for now
 *     threads = 4                        ; compute threads per worker
 *     [endpoints]
 *     client = tcp://127.0.0.1:5555      ; `up`: where clients connect
 *     services = ipc:///run/lmm/services.ipc
 *     [cache]                            ; KV reuse across requests (docs/kv-cache.md)
 *     disk = /var/cache/lmm              ; --kv-disk: the disk tier's directory
 *     disk_budget = 20G                  ; --kv-disk-budget: most bytes in it (LRU)
 *     prefix_cache = on                  ; off: --no-prefix-cache
 *     [hosts]                            ; parsed and checked; used by the LAN issue
 *     node1 = 192.168.1.10
 *     node2 = gpu-box.lan:5600
 *
 * lmm_config_load() parses and checks everything that can be checked without the model
 * (syntax, unknown sections and keys, keys given twice, sizes, counts, endpoint and host
 * syntax, the model and tokenizer files exist). Every problem is kept as one line
 * "FILE:LINE: [section] key: problem" (sorted by line) so that `lmlaunch check` can print
 * them all; callers add their own (e.g. "the model does not open") with
 * lmm_config_add_problem(). */
#ifndef LMM_CONFIG_H
#define LMM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LMM_CONFIG_PATH_MAX 4096u
#define LMM_CONFIG_ENDPOINT_MAX 256u
#define LMM_CONFIG_MAX_HOSTS 64u
#define LMM_CONFIG_MAX_PROBLEMS 64u
#define LMM_CONFIG_PROBLEM_MAX 1024u
#define LMM_CONFIG_MAX_WORKERS 64u
#define LMM_CONFIG_MAX_LINE 8192u   /* longer lines are a problem */

/* One [hosts] entry: name = HOST or HOST:PORT (HOST: a DNS name, IPv4, or [IPv6]). */
typedef struct {
    char name[64];
    char host[256];            /* without brackets for IPv6 */
    uint16_t port;             /* 0: not given */
    int line;
} lmm_config_host;

typedef struct {
    int line;                  /* for sorting; 0: no line (whole file, missing key) */
    char text[LMM_CONFIG_PROBLEM_MAX]; /* "FILE:LINE: [section] key: problem" */
} lmm_config_problem;

/* Where each value came from (0: not in the file). */
typedef struct {
    int model, tokenizer, mem, kv, ctx, compute, loader, cache, threads, client, services;
    int model_section;         /* the [model] header, for "path: missing" */
    int kv_cache, kv_disk, kv_disk_budget, prefix_cache; /* [budget] kv_cache, [cache] */
} lmm_config_lines;

typedef struct {
    char file[LMM_CONFIG_PATH_MAX];      /* the config file as given */
    /* [model] — resolved against the config file's folder; "" when absent */
    char model[LMM_CONFIG_PATH_MAX];
    char tokenizer[LMM_CONFIG_PATH_MAX];
    /* [budget] — 0 when absent */
    uint64_t mem_budget, kv_budget;
    uint32_t ctx;
    /* [services] — defaults 1, 1, 1; threads 0: the service's default */
    unsigned compute, loader, cache;
    int threads;
    /* [endpoints] — "" when absent */
    char client_ep[LMM_CONFIG_ENDPOINT_MAX];
    char services_ep[LMM_CONFIG_ENDPOINT_MAX];
    /* [budget] kv_cache, [cache] disk, disk_budget, prefix_cache (docs/kv-cache.md);
     * 0 / "" when absent; prefix_cache: true unless "off" */
    uint64_t kv_cache, kv_disk_budget;
    char kv_disk[LMM_CONFIG_PATH_MAX];
    bool prefix_cache;
    /* [hosts] */
    lmm_config_host hosts[LMM_CONFIG_MAX_HOSTS];
    unsigned n_hosts;
    lmm_config_lines line;
    /* problems, sorted by line after load */
    lmm_config_problem problems[LMM_CONFIG_MAX_PROBLEMS];
    unsigned n_problems;
    unsigned n_dropped;                  /* problems beyond LMM_CONFIG_MAX_PROBLEMS */
} lmm_config;

/* Options of lmm_config_load. */
typedef struct {
    bool require_model;        /* "[model] path: missing" when absent */
    bool check_model;          /* the model file (or folder) must exist and be readable */
    bool check_tokenizer;      /* the same for the tokenizer, when given */
} lmm_config_opts;

/* Defaults: no model, no budgets, compute = loader = cache = 1. */
void lmm_config_init(lmm_config *c);
/* Reads and checks path into c (lmm_config_init first is not needed). Returns 0 when
 * there is no problem; -1 when there are (c->problems, n_problems; lmm_error_get()
 * is the first one). A file that cannot be read is one problem "FILE: ...". */
int lmm_config_load(lmm_config *c, const char *path, const lmm_config_opts *o);
/* Adds a problem "FILE:LINE: [section] key: <fmt>" (line 0: "FILE: ..."; key NULL:
 * "[section]: ..."; section NULL: no bracket part). Keeps the list sorted by line. */
void lmm_config_add_problem(lmm_config *c, int line, const char *section, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* A ZeroMQ endpoint lmlaunch accepts: tcp://HOST:PORT (HOST a name, IPv4, [IPv6] or *;
 * PORT 1..65535) or ipc://PATH (absolute, shorter than a socket path's 108 bytes).
 * 0, or -1 with why (one phrase) in err. */
int lmm_config_check_endpoint(const char *ep, char *err, size_t cap);
/* HOST or HOST:PORT of a [hosts] entry -> host (brackets removed), *port (0: none).
 * 0, or -1 with why in err. */
int lmm_config_parse_host(const char *s, char *host, size_t host_cap, uint16_t *port, char *err, size_t cap);

#endif
