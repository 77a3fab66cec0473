/* core/config.c — the group's configuration file: INI read with libinih (Debian
 * libinih-dev), checked field by field, every problem kept with its line (lmm/config.h).
 *
 * libinih calls a handler per "key = value" but not per section header, and reports only
 * the first line it could not parse; a light first pass over the lines (same rules as
 * libinih: ';'/'#' comments, "[section]", "key = value" or "key: value") records the
 * section headers and every malformed line, so that `lmlaunch check` names them all.
 * The line of each key comes from counting lines in the reader libinih calls. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lmm/config.h"
#include "lmm/error.h"
#include "lmm/service.h"

static const char *const k_sections[] = {"model", "budget", "services", "endpoints", "hosts", "cache"};
static const char *const k_keys_model[] = {"path", "tokenizer", NULL};
static const char *const k_keys_budget[] = {"mem", "live_kv", "ctx", "kv_cache", NULL};
static const char *const k_keys_services[] = {"compute", "loader", "cache", "threads", NULL};
static const char *const k_keys_endpoints[] = {"client", "services", NULL};
static const char *const k_keys_cache[] = {"disk", "disk_budget", "prefix_cache", NULL};

/* ---- problems -------------------------------------------------------------------- */

void lmm_config_add_problem(lmm_config *c, int line, const char *section, const char *key, const char *fmt, ...) {
    if (c->n_problems == LMM_CONFIG_MAX_PROBLEMS) {
        c->n_dropped++;
        return;
    }
    char what[LMM_CONFIG_PROBLEM_MAX], where[64] = "", field[160] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (line > 0) snprintf(where, sizeof where, ":%d", line);
    if (section && key) snprintf(field, sizeof field, " [%.40s] %.100s:", section, key);
    else if (section) snprintf(field, sizeof field, " [%.100s]:", section);
    else if (key) snprintf(field, sizeof field, " %.100s:", key);
    /* sorted by line (stable: equal lines keep their order); line 0 first */
    unsigned at = c->n_problems;
    while (at > 0 && c->problems[at - 1].line > line) at--;
    memmove(&c->problems[at + 1], &c->problems[at], (c->n_problems - at) * sizeof *c->problems);
    c->n_problems++;
    lmm_config_problem *p = &c->problems[at];
    p->line = line;
    char full[LMM_CONFIG_PATH_MAX + 2 * LMM_CONFIG_PROBLEM_MAX];
    snprintf(full, sizeof full, "%s%s:%s %s", c->file, where, field, what);
    size_t n = strnlen(full, sizeof p->text - 1);
    memcpy(p->text, full, n);
    p->text[n] = '\0';
}

/* ---- small checks ---------------------------------------------------------------- */

static bool is_hostname(const char *h) {
    size_t n = strlen(h);
    if (n == 0 || n > 253) return false;
    size_t label = 0;
    for (size_t i = 0; i <= n; i++) {
        char ch = h[i];
        if (ch == '.' || ch == '\0') {
            if (label == 0 || label > 63 || h[i - 1] == '-') return false;
            label = 0;
            continue;
        }
        if (!(isalnum((unsigned char)ch) || ch == '-' || ch == '_')) return false;
        if (label == 0 && ch == '-') return false;
        label++;
    }
    return true;
}

static int parse_port(const char *s, uint16_t *port, char *err, size_t cap) {
    uint64_t v;
    if (!*s || lmm_service_parse_u64(s, 1, 65535, &v)) {
        snprintf(err, cap, "port '%s' is not a number in [1, 65535]", s);
        return -1;
    }
    *port = (uint16_t)v;
    return 0;
}

int lmm_config_parse_host(const char *s, char *host, size_t host_cap, uint16_t *port, char *err, size_t cap) {
    *port = 0;
    char buf[300];
    if (strlen(s) >= sizeof buf) {
        snprintf(err, cap, "'%.40s...' is too long", s);
        return -1;
    }
    const char *ps = NULL;
    if (s[0] == '[') { /* [IPv6] or [IPv6]:PORT */
        const char *close = strchr(s, ']');
        if (!close) {
            snprintf(err, cap, "'%s': '[' without ']'", s);
            return -1;
        }
        size_t n = (size_t)(close - s - 1);
        memcpy(buf, s + 1, n);
        buf[n] = '\0';
        struct in6_addr a6;
        if (inet_pton(AF_INET6, buf, &a6) != 1) {
            snprintf(err, cap, "'%s' is not an IPv6 address", buf);
            return -1;
        }
        if (close[1] == ':') ps = close + 2;
        else if (close[1]) {
            snprintf(err, cap, "'%s': unexpected '%s' after ']'", s, close + 1);
            return -1;
        }
    } else {
        const char *colon = strchr(s, ':');
        if (colon && strchr(colon + 1, ':')) {
            snprintf(err, cap, "'%s': write an IPv6 address in brackets, e.g. [%s]:PORT", s, s);
            return -1;
        }
        size_t n = colon ? (size_t)(colon - s) : strlen(s);
        memcpy(buf, s, n);
        buf[n] = '\0';
        if (colon) ps = colon + 1;
        struct in_addr a4;
        bool numeric = buf[0] && strspn(buf, "0123456789.") == strlen(buf);
        if (numeric ? inet_pton(AF_INET, buf, &a4) != 1 : !is_hostname(buf)) {
            snprintf(err, cap, "'%s' is not a host name or address", buf);
            return -1;
        }
    }
    if (ps && parse_port(ps, port, err, cap)) return -1;
    if (strlen(buf) >= host_cap) {
        snprintf(err, cap, "'%.40s...' is too long", buf);
        return -1;
    }
    strcpy(host, buf);
    return 0;
}

int lmm_config_check_endpoint(const char *ep, char *err, size_t cap) {
    if (strncmp(ep, "ipc://", 6) == 0) {
        const char *p = ep + 6;
        if (p[0] != '/') {
            snprintf(err, cap, "'%s': ipc:// needs an absolute path (ipc:///dir/name.ipc)", ep);
            return -1;
        }
        if (strlen(p) >= 108) {
            snprintf(err, cap, "'%.60s...': the socket path is longer than 107 bytes", ep);
            return -1;
        }
        return 0;
    }
    if (strncmp(ep, "tcp://", 6) == 0) {
        const char *hp = ep + 6;
        const char *colon = strrchr(hp, ':');
        if (!colon || (hp[0] == '[' && colon < strchr(hp, ']'))) {
            snprintf(err, cap, "'%s': tcp:// needs HOST:PORT (e.g. tcp://127.0.0.1:5555)", ep);
            return -1;
        }
        if (colon == hp + 1 && hp[0] == '*') {
            uint16_t port;
            return parse_port(colon + 1, &port, err, cap);
        }
        char host[256];
        uint16_t port;
        char why[200];
        if (lmm_config_parse_host(hp, host, sizeof host, &port, why, sizeof why)) {
            snprintf(err, cap, "'%s': %s", ep, why);
            return -1;
        }
        return 0;
    }
    snprintf(err, cap, "'%s' is not an endpoint (expected tcp://HOST:PORT or ipc:///PATH)", ep);
    return -1;
}

/* ---- first pass: section headers and malformed lines --------------------------- */

typedef struct {
    lmm_config *c;
    FILE *f;
    int line;                   /* line being parsed by libinih (reader count) */
    bool at_bol;
    int long_lines[16];         /* lines over LMM_CONFIG_MAX_LINE: reported once, values ignored */
    unsigned n_long;
    /* the line of each key seen so far, to report a key given twice */
    struct {
        char section[64], key[64];
        int line;
    } seen[256];
    unsigned n_seen;
} parse_state;

static bool known_section(const char *s) {
    for (size_t i = 0; i < sizeof k_sections / sizeof *k_sections; i++)
        if (strcmp(s, k_sections[i]) == 0) return true;
    return false;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
    return s;
}

/* The same rules libinih applies (defaults of this build: ';' and '#' start a comment
 * line, ';' after whitespace an inline comment, BOM allowed, no multi-line values). */
static void first_pass(parse_state *ps) {
    lmm_config *c = ps->c;
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    int line = 0;
    while ((n = getline(&buf, &cap, ps->f)) >= 0) {
        line++;
        if ((size_t)n > LMM_CONFIG_MAX_LINE) {
            lmm_config_add_problem(c, line, NULL, NULL, "line longer than %u characters", LMM_CONFIG_MAX_LINE);
            if (ps->n_long < sizeof ps->long_lines / sizeof *ps->long_lines) ps->long_lines[ps->n_long++] = line;
            continue;
        }
        char *s = buf;
        if (line == 1 && (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB && (unsigned char)s[2] == 0xBF)
            s += 3;
        s = trim(s);
        if (!*s || *s == ';' || *s == '#') continue;
        if (*s == '[') {
            char *close = strchr(s, ']');
            if (!close) {
                lmm_config_add_problem(c, line, NULL, NULL, "'%.80s': a section header needs a closing ']'", s);
                continue;
            }
            *close = '\0';
            char *name = s + 1; /* not trimmed: libinih takes "[ model ]" as " model " */
            if (!known_section(name))
                lmm_config_add_problem(c, line, name, NULL,
                                   "unknown section (expected [model], [budget], [services], [endpoints], [cache] "
                                   "or [hosts])");
            if (strcmp(name, "model") == 0 && !c->line.model_section) c->line.model_section = line;
            continue;
        }
        if (!strpbrk(s, "=:"))
            lmm_config_add_problem(c, line, NULL, NULL, "'%.80s' is not 'key = value' or a [section]", s);
    }
    free(buf);
}

/* ---- second pass: libinih, one handler call per key ------------------------------ */

static char *counting_reader(char *str, int num, void *stream) {
    parse_state *ps = stream;
    char *r = fgets(str, num, ps->f);
    if (!r) return NULL;
    if (ps->at_bol) ps->line++;
    size_t n = strlen(r);
    ps->at_bol = n > 0 && r[n - 1] == '\n';
    return r;
}

static bool key_known(const char *const *keys, const char *key) {
    for (; *keys; keys++)
        if (strcmp(*keys, key) == 0) return true;
    return false;
}

static void list_keys(const char *const *keys, char *buf, size_t cap) {
    buf[0] = '\0';
    for (size_t i = 0; keys[i]; i++) {
        size_t n = strlen(buf);
        snprintf(buf + n, cap - n, "%s%s", i == 0 ? "" : keys[i + 1] ? ", " : " or ", keys[i]);
    }
}

/* Relative paths are taken from the config file's folder. */
static void resolve_path(const lmm_config *c, const char *v, char *out, size_t cap) {
    if (v[0] == '/') {
        snprintf(out, cap, "%s", v);
        return;
    }
    const char *slash = strrchr(c->file, '/');
    if (!slash) {
        snprintf(out, cap, "%s", v);
        return;
    }
    int dlen = (int)(slash - c->file);
    snprintf(out, cap, "%.*s/%s", dlen, c->file, v);
}

static int whole(lmm_config *c, int line, const char *sec, const char *key, const char *v, uint64_t lo, uint64_t hi,
                 uint64_t *out) {
    char *end;
    if (!isdigit((unsigned char)v[0])) {
        lmm_config_add_problem(c, line, sec, key, "'%s' is not a whole number", v);
        return -1;
    }
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || *end) {
        lmm_config_add_problem(c, line, sec, key, "'%s' is not a whole number", v);
        return -1;
    }
    if (x < lo || x > hi) {
        lmm_config_add_problem(c, line, sec, key, "%llu is out of range [%llu, %llu]", x, (unsigned long long)lo,
                           (unsigned long long)hi);
        return -1;
    }
    *out = x;
    return 0;
}

static int size_value(lmm_config *c, int line, const char *sec, const char *key, const char *v, uint64_t *out) {
    if (lmm_service_parse_size(v, out) || *out == 0) {
        lmm_config_add_problem(c, line, sec, key, "'%s' is not a size like 512M or 4G (K, M, G, T; > 0)", v);
        return -1;
    }
    return 0;
}

static void on_model(lmm_config *c, int line, const char *key, const char *v) {
    bool path = strcmp(key, "path") == 0;
    if (path) c->line.model = line; /* given, even when wrong: not also "missing" */
    else c->line.tokenizer = line;
    if (!*v) {
        lmm_config_add_problem(c, line, "model", key, "empty path");
        return;
    }
    if (strlen(v) >= LMM_CONFIG_PATH_MAX - 1024) {
        lmm_config_add_problem(c, line, "model", key, "path too long");
        return;
    }
    resolve_path(c, v, path ? c->model : c->tokenizer, LMM_CONFIG_PATH_MAX);
}

static void on_budget(lmm_config *c, int line, const char *key, const char *v) {
    uint64_t u;
    if (strcmp(key, "mem") == 0) {
        if (size_value(c, line, "budget", key, v, &c->mem_budget) == 0) c->line.mem = line;
    } else if (strcmp(key, "live_kv") == 0) {
        if (size_value(c, line, "budget", key, v, &c->kv_budget) == 0) c->line.kv = line;
    } else if (strcmp(key, "kv_cache") == 0) {
        if (size_value(c, line, "budget", key, v, &c->kv_cache) == 0) c->line.kv_cache = line;
    } else if (whole(c, line, "budget", key, v, 1, 1u << 24, &u) == 0) {
        c->ctx = (uint32_t)u;
        c->line.ctx = line;
    }
}

static void on_services(lmm_config *c, int line, const char *key, const char *v) {
    uint64_t u;
    if (strcmp(key, "compute") == 0) {
        if (whole(c, line, "services", key, v, 0, LMM_CONFIG_MAX_WORKERS, &u)) return;
        if (u < 1) {
            lmm_config_add_problem(c, line, "services", key, "0: the group needs at least 1 compute worker");
            return;
        }
        c->compute = (unsigned)u;
        c->line.compute = line;
    } else if (strcmp(key, "loader") == 0 || strcmp(key, "cache") == 0) {
        if (whole(c, line, "services", key, v, 0, 1u << 16, &u)) return;
        if (u != 1) {
            lmm_config_add_problem(c, line, "services", key, "%llu: exactly 1 %s is supported", (unsigned long long)u, key);
            return;
        }
        if (key[0] == 'l') c->loader = 1, c->line.loader = line;
        else c->cache = 1, c->line.cache = line;
    } else if (whole(c, line, "services", key, v, 1, 1024, &u) == 0) {
        c->threads = (int)u;
        c->line.threads = line;
    }
}

static void on_endpoint(lmm_config *c, int line, const char *key, const char *v) {
    char why[400];
    if (lmm_config_check_endpoint(v, why, sizeof why)) {
        lmm_config_add_problem(c, line, "endpoints", key, "%s", why);
        return;
    }
    bool client = strcmp(key, "client") == 0;
    snprintf(client ? c->client_ep : c->services_ep, LMM_CONFIG_ENDPOINT_MAX, "%s", v);
    if (client) c->line.client = line;
    else c->line.services = line;
}

/* [cache]: the KV cache service's settings (docs/kv-cache.md). */
static void on_cache(lmm_config *c, int line, const char *key, const char *v) {
    if (strcmp(key, "disk") == 0) {
        if (!*v) {
            lmm_config_add_problem(c, line, "cache", key, "empty path (leave the key out for no disk tier)");
            return;
        }
        if (strlen(v) >= LMM_CONFIG_PATH_MAX - 1024) {
            lmm_config_add_problem(c, line, "cache", key, "path too long");
            return;
        }
        char path[LMM_CONFIG_PATH_MAX];
        resolve_path(c, v, path, sizeof path);
        struct stat st;
        if (stat(path, &st) != 0) {
            lmm_config_add_problem(c, line, "cache", key, "%s: %s", path, strerror(errno));
            return;
        }
        if (!S_ISDIR(st.st_mode)) {
            lmm_config_add_problem(c, line, "cache", key, "%s: not a directory", path);
            return;
        }
        if (access(path, W_OK | X_OK) != 0) {
            lmm_config_add_problem(c, line, "cache", key, "%s: %s", path, strerror(errno));
            return;
        }
        snprintf(c->kv_disk, sizeof c->kv_disk, "%s", path);
        c->line.kv_disk = line;
    } else if (strcmp(key, "disk_budget") == 0) {
        if (size_value(c, line, "cache", key, v, &c->kv_disk_budget) == 0) c->line.kv_disk_budget = line;
    } else { /* prefix_cache */
        if (strcmp(v, "on") == 0 || strcmp(v, "off") == 0) {
            c->prefix_cache = v[1] == 'n';
            c->line.prefix_cache = line;
        } else {
            lmm_config_add_problem(c, line, "cache", key, "'%s' is not on or off", v);
        }
    }
}

static void on_host(lmm_config *c, int line, const char *key, const char *v) {
    size_t kl = strlen(key);
    if (kl == 0 || kl > 63 || !isalnum((unsigned char)key[0]) || strspn(key, "abcdefghijklmnopqrstuvwxyz"
                                                                        "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != kl) {
        lmm_config_add_problem(c, line, "hosts", key, "a host's name is 1-63 letters, digits, '.', '_' or '-'");
        return;
    }
    if (c->n_hosts == LMM_CONFIG_MAX_HOSTS) {
        lmm_config_add_problem(c, line, "hosts", key, "more than %u hosts", LMM_CONFIG_MAX_HOSTS);
        return;
    }
    lmm_config_host *h = &c->hosts[c->n_hosts];
    char why[400];
    if (!*v) {
        lmm_config_add_problem(c, line, "hosts", key, "empty (expected HOST or HOST:PORT)");
        return;
    }
    if (lmm_config_parse_host(v, h->host, sizeof h->host, &h->port, why, sizeof why)) {
        lmm_config_add_problem(c, line, "hosts", key, "%s", why);
        return;
    }
    snprintf(h->name, sizeof h->name, "%s", key);
    h->line = line;
    c->n_hosts++;
}

static int on_key(void *user, const char *section, const char *key, const char *value) {
    parse_state *ps = user;
    lmm_config *c = ps->c;
    int line = ps->line;
    for (unsigned i = 0; i < ps->n_long; i++)
        if (ps->long_lines[i] == line) return 1; /* the value is cut: reported as too long */
    if (!section[0]) {
        lmm_config_add_problem(c, line, NULL, key, "outside any section (put it under [model], [budget], ...)");
        return 1;
    }
    if (!known_section(section)) return 1; /* reported once, at its header */
    for (unsigned i = 0; i < ps->n_seen; i++)
        if (strcmp(ps->seen[i].section, section) == 0 && strcmp(ps->seen[i].key, key) == 0) {
            lmm_config_add_problem(c, line, section, key, "given twice (first on line %d)", ps->seen[i].line);
            return 1;
        }
    if (ps->n_seen < sizeof ps->seen / sizeof *ps->seen) {
        snprintf(ps->seen[ps->n_seen].section, sizeof ps->seen[0].section, "%s", section);
        snprintf(ps->seen[ps->n_seen].key, sizeof ps->seen[0].key, "%s", key);
        ps->seen[ps->n_seen++].line = line;
    }
    const char *const *keys = strcmp(section, "model") == 0      ? k_keys_model
                              : strcmp(section, "budget") == 0   ? k_keys_budget
                              : strcmp(section, "services") == 0 ? k_keys_services
                              : strcmp(section, "endpoints") == 0 ? k_keys_endpoints
                              : strcmp(section, "cache") == 0     ? k_keys_cache
                                                                  : NULL;
    if (keys && !key_known(keys, key)) {
        char list[200];
        list_keys(keys, list, sizeof list);
        lmm_config_add_problem(c, line, section, key, "unknown key (expected %s)", list);
        return 1;
    }
    switch (section[0]) {
    case 'm': on_model(c, line, key, value); break;
    case 'b': on_budget(c, line, key, value); break;
    case 's': on_services(c, line, key, value); break;
    case 'e': on_endpoint(c, line, key, value); break;
    case 'c': on_cache(c, line, key, value); break;
    default: on_host(c, line, key, value); break;
    }
    return 1;
}

/* ---- after parsing ----------------------------------------------------------------- */

static void check_file(lmm_config *c, const char *path, int line, const char *key) {
    struct stat st;
    if (stat(path, &st) != 0) {
        lmm_config_add_problem(c, line, "model", key, "%s: %s", path, strerror(errno));
        return;
    }
    int mode = S_ISDIR(st.st_mode) ? R_OK | X_OK : R_OK;
    if (access(path, mode) != 0) lmm_config_add_problem(c, line, "model", key, "%s: %s", path, strerror(errno));
}

void lmm_config_init(lmm_config *c) {
    memset(c, 0, sizeof *c);
    c->compute = c->loader = c->cache = 1;
    c->prefix_cache = true;
}

int lmm_config_load(lmm_config *c, const char *path, const lmm_config_opts *o) {
    lmm_config_init(c);
    snprintf(c->file, sizeof c->file, "%s", path);
    static parse_state ps; /* large (the seen-keys table); lmlaunch loads one config at a time */
    memset(&ps, 0, sizeof ps);
    ps.c = c;
    struct stat st;
    ps.f = fopen(path, "r");
    if (!ps.f || fstat(fileno(ps.f), &st) != 0 || S_ISDIR(st.st_mode)) {
        lmm_config_add_problem(c, 0, NULL, NULL, "cannot read it (%s)", ps.f ? "a directory" : strerror(errno));
        if (ps.f) fclose(ps.f);
        return lmm_error_set("%s", c->problems[0].text);
    }
    first_pass(&ps);
    rewind(ps.f);
    ps.at_bol = true;
    /* this Debian build reads these at run time: no multi-line values (an indented line
     * would silently continue the previous key), lines of any length up to ours */
    ini_allow_multiline = false;
    ini_use_stack = false;
    ini_allow_realloc = true;
    ini_max_line = (int)LMM_CONFIG_MAX_LINE + 3;
    int rc = ini_parse_stream(counting_reader, &ps, on_key, &ps);
    bool read_error = ferror(ps.f) != 0;
    fclose(ps.f);
    if (rc == -2) lmm_config_add_problem(c, 0, NULL, NULL, "out of memory while parsing");
    if (read_error) lmm_config_add_problem(c, 0, NULL, NULL, "read error");
    bool want_model = o && o->require_model;
    if (want_model && !c->model[0] && !c->line.model)
        lmm_config_add_problem(c, c->line.model_section, "model", "path", "missing (the model to run)");
    if (o && o->check_model && c->model[0]) check_file(c, c->model, c->line.model, "path");
    if (o && o->check_tokenizer && c->tokenizer[0]) check_file(c, c->tokenizer, c->line.tokenizer, "tokenizer");
    if (c->n_problems) return lmm_error_set("%s", c->problems[0].text);
    return 0;
}
