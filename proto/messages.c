/* proto/messages.c — the message tables (one row per field of every message type),
 * the names of types, roles and stop reasons, and the checks both directions share:
 * each field's own bounds, then each message's cross-field rules. */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lmm/error.h"
#include "proto_internal.h"

/* ---- names ------------------------------------------------------------------ */

static const char *const type_names[LMM_MSG_COUNT] = {
    [LMM_MSG_NONE] = NULL,
    [LMM_MSG_HELLO] = "HELLO",
    [LMM_MSG_HELLO_ACK] = "HELLO_ACK",
    [LMM_MSG_ERROR] = "ERROR",
    [LMM_MSG_SHUTDOWN] = "SHUTDOWN",
    [LMM_MSG_STATUS] = "STATUS",
    [LMM_MSG_STATUS_REPLY] = "STATUS_REPLY",
    [LMM_MSG_GENERATE] = "GENERATE",
    [LMM_MSG_TOKEN] = "TOKEN",
    [LMM_MSG_DONE] = "DONE",
    [LMM_MSG_CANCEL] = "CANCEL",
    [LMM_MSG_RING_ATTACH] = "RING_ATTACH",
    [LMM_MSG_ACK] = "ACK",
    [LMM_MSG_LOAD] = "LOAD",
    [LMM_MSG_LOADED] = "LOADED",
    [LMM_MSG_STEP] = "STEP",
    [LMM_MSG_STEP_DONE] = "STEP_DONE",
    [LMM_MSG_SLOT_FREE] = "SLOT_FREE",
    [LMM_MSG_PING] = "PING",
    [LMM_MSG_KV_GET] = "KV_GET",
    [LMM_MSG_KV_DATA] = "KV_DATA",
};

static const char *const role_names[] = {NULL, "client", "scheduler", "loader", "compute", "cache", "launch"};
_Static_assert(sizeof role_names / sizeof role_names[0] == LMM_PROTO_ROLE_COUNT, "role names");

static const char *const stop_names[] = {NULL, "length", "eos", "context", "cancelled"};
_Static_assert(sizeof stop_names / sizeof stop_names[0] == LMM_PROTO_STOP_COUNT, "stop names");

static const char *const errcode_names[] = {NULL,           "bad message", "version",    "limit", "unexpected",
                                            "busy",         "not found",   "i/o error",  "internal error"};
_Static_assert(sizeof errcode_names / sizeof errcode_names[0] == LMM_PROTO_E_COUNT, "error code names");

/* Enums are stored through int (PF_ENUM). */
_Static_assert(sizeof(lmm_proto_role) == sizeof(int) && sizeof(lmm_proto_stop) == sizeof(int) &&
                   sizeof(lmm_msg_type) == sizeof(int),
               "enums are int-sized");

const char *lmm_proto_type_name(lmm_msg_type t) {
    return (unsigned)t > LMM_MSG_NONE && (unsigned)t < LMM_MSG_COUNT ? type_names[t] : "?";
}
const char *lmm_proto_role_name(lmm_proto_role r) {
    return (unsigned)r >= 1 && (unsigned)r < LMM_PROTO_ROLE_COUNT ? role_names[r] : "?";
}
const char *lmm_proto_stop_name(lmm_proto_stop s) {
    return (unsigned)s >= 1 && (unsigned)s < LMM_PROTO_STOP_COUNT ? stop_names[s] : "?";
}
const char *lmm_proto_errcode_name(uint32_t code) {
    return code >= 1 && code < LMM_PROTO_E_COUNT ? errcode_names[code] : "?";
}

lmm_msg_type lmm_proto_type_find(const char *s, size_t len) {
    for (int t = 1; t < LMM_MSG_COUNT; t++)
        if (strlen(type_names[t]) == len && memcmp(type_names[t], s, len) == 0) return (lmm_msg_type)t;
    return LMM_MSG_NONE;
}

/* ---- the tables ----------------------------------------------------------------
 * OFF(path, n) is offsetof(lmm_msg, path), and fails to compile when the member is
 * not n bytes wide, so a row cannot describe a field with the wrong C type. */

#define REQ PROTO_REQUIRED
#define OPT PROTO_OPTIONAL
#define OPT0 PROTO_OMIT_EMPTY
#define SZ(path) sizeof(((lmm_msg *)0)->path)
#define OFF(path, n) (offsetof(lmm_msg, path) + 0 * sizeof(char[SZ(path) == (n) ? 1 : -1]))
#define NAMES(t) .names = t, .n_names = sizeof t / sizeof t[0]

#define U32(o, k, path, lo, hi) {.key = k, .kind = PF_U32, .optional = o, .off = OFF(path, 4), .min = lo, .max = hi}
#define U64(o, k, path, lo, hi) {.key = k, .kind = PF_U64, .optional = o, .off = OFF(path, 8), .min = lo, .max = hi}
#define F32(o, k, path) {.key = k, .kind = PF_F32, .optional = o, .off = OFF(path, sizeof(float))}
#define F64(o, k, path) {.key = k, .kind = PF_F64, .optional = o, .off = OFF(path, sizeof(double))}
#define BOOL(o, k, path) {.key = k, .kind = PF_BOOL, .optional = o, .off = OFF(path, sizeof(bool))}
#define ENUM(o, k, path, t) {.key = k, .kind = PF_ENUM, .optional = o, .off = OFF(path, sizeof(int)), NAMES(t)}
#define STR(o, k, path) {.key = k, .kind = PF_STR, .optional = o, .off = offsetof(lmm_msg, path), .max_len = SZ(path) - 1}
#define BYTES(o, k, path, n) \
    {.key = k, .kind = PF_BYTES, .optional = o, .off = OFF(path, sizeof(lmm_proto_bytes)), .max_len = n}
#define F32BLOB(o, k, path, lpath, n) \
    {.key = k, .kind = PF_F32BLOB, .optional = o, .off = OFF(path, sizeof(void *)), .len_off = OFF(lpath, 4), .max_len = n}
#define U32S(o, k, path, lpath, sc, lo, hi, n)                                                                  \
    {.key = k, .kind = PF_U32S, .optional = o, .scratch = sc, .off = OFF(path, sizeof(void *)),              \
     .len_off = OFF(lpath, 4), .min = lo, .max = hi, .max_len = n}
#define U64S(o, k, path, lpath, sc, lo, hi, n)                                                                  \
    {.key = k, .kind = PF_U64S, .optional = o, .scratch = sc, .off = OFF(path, sizeof(void *)),              \
     .len_off = OFF(lpath, 4), .min = lo, .max = hi, .max_len = n}


static const proto_field f_hello[] = {
    U32(REQ, "v", hello.version, 0, UINT32_MAX),
    ENUM(REQ, "role", hello.role, role_names),
    U32(REQ, "pid", hello.pid, 1, INT32_MAX),
    STR(REQ, "name", hello.name),
};
static const proto_field f_hello_ack[] = {
    U32(REQ, "v", hello_ack.version, 0, UINT32_MAX),
    BOOL(REQ, "ok", hello_ack.ok),
    ENUM(REQ, "role", hello_ack.role, role_names),
    STR(REQ, "error", hello_ack.error),
    STR(OPT0, "model", hello_ack.model),
    STR(OPT0, "weights_shm", hello_ack.weights_shm),
    STR(OPT0, "act_shm", hello_ack.act_shm),
    U32(OPT0, "layer_begin", hello_ack.layer_begin, 0, LMM_PROTO_MAX_LAYERS - 1),
    U32(OPT0, "layer_end", hello_ack.layer_end, 0, LMM_PROTO_MAX_LAYERS),
    U32(OPT0, "max_batch", hello_ack.max_batch, 0, LMM_PROTO_MAX_STEP_TOKENS),
    U64(OPT0, "piece_bytes", hello_ack.piece_bytes, 0, LMM_PROTO_MAX_BYTES),
    U64(OPT0, "kv_budget", hello_ack.kv_budget, 0, LMM_PROTO_MAX_BYTES),
};
static const proto_field f_error[] = {
    U32(REQ, "code", error.code, 1, LMM_PROTO_E_COUNT - 1),
    U64(REQ, "req_id", error.req_id, 0, UINT64_MAX),
    STR(REQ, "message", error.message),
};
static const proto_field f_status_reply[] = {
    ENUM(REQ, "role", status_reply.role, role_names),
    U32(REQ, "pid", status_reply.pid, 1, INT32_MAX),
    STR(REQ, "name", status_reply.name),
    U64(REQ, "uptime_ms", status_reply.uptime_ms, 0, UINT64_MAX),
    U32(REQ, "active", status_reply.active, 0, UINT32_MAX),
    U64(REQ, "served", status_reply.served, 0, UINT64_MAX),
    U64(REQ, "tokens", status_reply.tokens, 0, UINT64_MAX),
    U64(REQ, "bytes_read", status_reply.bytes_read, 0, UINT64_MAX),
    U64(REQ, "rss_bytes", status_reply.rss_bytes, 0, UINT64_MAX),
    U64(REQ, "shm_bytes", status_reply.shm_bytes, 0, UINT64_MAX),
    BOOL(OPT, "ready", status_reply.ready),
    STR(OPT, "waiting", status_reply.waiting),
    U32(OPT0, "ring_slots", status_reply.ring_slots, 0, LMM_PROTO_MAX_SLOTS),
    U32(OPT0, "ring_pinned", status_reply.ring_pinned, 0, LMM_PROTO_MAX_SLOTS),
    U32(OPT0, "ring_streaming", status_reply.ring_streaming, 0, LMM_PROTO_MAX_SLOTS),
    U32(OPT0, "ring_busy", status_reply.ring_busy, 0, LMM_PROTO_MAX_SLOTS),
    U32(OPT0, "prefetch_depth", status_reply.prefetch_depth, 0, LMM_PROTO_MAX_SLOTS),
    U64(OPT0, "steps", status_reply.steps, 0, UINT64_MAX),
    F64(OPT0, "tokens_per_s", status_reply.tokens_per_s),
    U64(OPT0, "budget_bytes", status_reply.budget_bytes, 0, UINT64_MAX),
    U64(OPT0, "budget_used", status_reply.budget_used, 0, UINT64_MAX),
    U64(OPT0, "budget_min", status_reply.budget_min, 0, UINT64_MAX),
    U64(OPT0, "kv_hits", status_reply.kv_hits, 0, UINT64_MAX),
    U64(OPT0, "kv_misses", status_reply.kv_misses, 0, UINT64_MAX),
    U64(OPT0, "kv_blocks", status_reply.kv_blocks, 0, UINT64_MAX),
    U64(OPT0, "kv_ram_bytes", status_reply.kv_ram_bytes, 0, UINT64_MAX),
    U64(OPT0, "kv_disk_bytes", status_reply.kv_disk_bytes, 0, UINT64_MAX),
    U64(OPT0, "kv_bytes_loaded", status_reply.kv_bytes_loaded, 0, UINT64_MAX),
};
static const proto_field f_generate[] = {
    U64(REQ, "req_id", generate.req_id, 0, UINT64_MAX),
    BYTES(REQ, "prompt", generate.prompt, LMM_PROTO_MAX_PROMPT_BYTES),
    U32(REQ, "max_tokens", generate.max_tokens, 0, LMM_PROTO_MAX_GEN_TOKENS),
    F32(OPT, "temperature", generate.sampling.temperature),
    U32(OPT, "top_k", generate.sampling.top_k, 0, UINT32_MAX),
    F32(OPT, "top_p", generate.sampling.top_p),
    F32(OPT, "repeat_penalty", generate.sampling.repeat_penalty),
    U32(OPT, "repeat_last_n", generate.sampling.repeat_last_n, 0, UINT32_MAX),
    U64(OPT, "seed", generate.sampling.seed, 0, UINT64_MAX),
    BOOL(OPT, "dump_logits", generate.dump_logits),
    BOOL(OPT, "context_shift", generate.context_shift),
    BOOL(OPT, "no_prefix_cache", generate.no_prefix_cache),
    BOOL(OPT0, "stats", generate.stats),
    BOOL(OPT0, "max_tokens_default", generate.max_tokens_default),
};
static const proto_field f_token[] = {
    U64(REQ, "req_id", token.req_id, 0, UINT64_MAX),
    U32(REQ, "id", token.id, 0, LMM_PROTO_MAX_VOCAB - 1),
    BYTES(REQ, "text", token.text, LMM_PROTO_MAX_TEXT_BYTES),
    F32BLOB(OPT0, "logits", token.logits, token.n_logits, LMM_PROTO_MAX_VOCAB),
    U64(OPT0, "step_usec", token.step_usec, 0, UINT64_MAX),
    U64(OPT0, "compute_usec", token.compute_usec, 0, UINT64_MAX),
    U64(OPT0, "io_wait_usec", token.io_wait_usec, 0, UINT64_MAX),
    U64(OPT0, "bytes_read", token.bytes_read, 0, UINT64_MAX),
};
static const proto_field f_done[] = {
    U64(REQ, "req_id", done.req_id, 0, UINT64_MAX),
    U32(REQ, "n_prompt", done.n_prompt, 0, LMM_PROTO_MAX_POS),
    U32(REQ, "n_generated", done.n_generated, 0, LMM_PROTO_MAX_GEN_TOKENS),
    ENUM(REQ, "stop", done.stop, stop_names),
    F64(REQ, "tokens_per_s", done.tokens_per_s),
    F64(OPT0, "io_stall_s", done.io_stall_s),
};
static const proto_field f_cancel[] = {
    U64(REQ, "req_id", cancel.req_id, 0, UINT64_MAX),
};
static const proto_field f_ring_attach[] = {
    U32(REQ, "ring", ring_attach.ring, 0, LMM_PROTO_MAX_RINGS - 1),
    STR(REQ, "shm", ring_attach.shm),
    U64(REQ, "slot_size", ring_attach.slot_size, 1, LMM_PROTO_MAX_BYTES),
    U32(REQ, "n_slots", ring_attach.n_slots, 1, LMM_PROTO_MAX_SLOTS),
};
static const proto_field f_ack[] = {
    ENUM(REQ, "of", ack.of, type_names),
};
static const proto_field f_load[] = {
    U64(REQ, "req_id", load.req_id, 0, UINT64_MAX),
    U32(REQ, "slot", load.slot, 0, LMM_PROTO_MAX_SLOTS - 1),
    U64(REQ, "tag", load.tag, 0, UINT64_MAX),
    U32S(REQ, "file", load.file, load.n_segments, 0, 0, LMM_PROTO_MAX_FILES - 1, LMM_PROTO_MAX_SEGMENTS),
    U64S(REQ, "offset", load.offset, load.n_segments, 0, 0, LMM_PROTO_MAX_BYTES, LMM_PROTO_MAX_SEGMENTS),
    U64S(REQ, "length", load.length, load.n_segments, 1, 1, LMM_PROTO_MAX_BYTES, LMM_PROTO_MAX_SEGMENTS),
    U64S(REQ, "slot_offset", load.slot_offset, load.n_segments, 2, 0, LMM_PROTO_MAX_BYTES, LMM_PROTO_MAX_SEGMENTS),
};
static const proto_field f_loaded[] = {
    U64(REQ, "req_id", loaded.req_id, 0, UINT64_MAX),
    U32(REQ, "slot", loaded.slot, 0, LMM_PROTO_MAX_SLOTS - 1),
    U64(REQ, "tag", loaded.tag, 0, UINT64_MAX),
    U64(REQ, "generation", loaded.generation, 0, UINT64_MAX),
    U32(REQ, "status", loaded.status, 0, UINT32_MAX),
    U64(REQ, "bytes", loaded.bytes, 0, LMM_PROTO_MAX_BYTES),
    U64(REQ, "usec", loaded.usec, 0, UINT64_MAX),
    STR(OPT0, "error", loaded.error),
};
static const proto_field f_step[] = {
    U64(REQ, "step_id", step.step_id, 0, UINT64_MAX),
    U32S(REQ, "seq", step.seq, step.n_tokens, 0, 0, LMM_PROTO_MAX_SEQS - 1, LMM_PROTO_MAX_STEP_TOKENS),
    U32S(REQ, "tokens", step.tokens, step.n_tokens, 1, 0, LMM_PROTO_MAX_VOCAB - 1, LMM_PROTO_MAX_STEP_TOKENS),
    U32S(REQ, "pos", step.pos, step.n_tokens, 2, 0, LMM_PROTO_MAX_POS - 1, LMM_PROTO_MAX_STEP_TOKENS),
    U32S(REQ, "out", step.out, step.n_out, 3, 0, LMM_PROTO_MAX_STEP_TOKENS - 1, LMM_PROTO_MAX_STEP_TOKENS),
    U32(REQ, "layer_begin", step.layer_begin, 0, LMM_PROTO_MAX_LAYERS - 1),
    U32(REQ, "layer_end", step.layer_end, 1, LMM_PROTO_MAX_LAYERS),
    U32S(OPT0, "slots", step.slots, step.n_slots, 4, 0, LMM_PROTO_MAX_SLOTS - 1, LMM_PROTO_MAX_LAYERS),
    U64(REQ, "act_offset", step.act_offset, 0, LMM_PROTO_MAX_BYTES - 1),
    STR(OPT0, "kv_shm", step.kv_shm),
    U32(OPT0, "kv_block_tokens", step.kv_block_tokens, 0, LMM_PROTO_MAX_STEP_TOKENS),
    U32S(OPT0, "kv_load", step.kv_load, step.n_kv_load, 5, 0, LMM_PROTO_MAX_SLOTS - 1, 3u * LMM_PROTO_MAX_KV_BLOCKS),
    U32S(OPT0, "kv_store", step.kv_store, step.n_kv_store, 6, 0, LMM_PROTO_MAX_SLOTS - 1,
         3u * LMM_PROTO_MAX_KV_BLOCKS),
};
static const proto_field f_step_done[] = {
    U64(REQ, "step_id", step_done.step_id, 0, UINT64_MAX),
    U32(REQ, "status", step_done.status, 0, UINT32_MAX),
    U64(REQ, "out_offset", step_done.out_offset, 0, LMM_PROTO_MAX_BYTES),
    U64(REQ, "out_bytes", step_done.out_bytes, 0, LMM_PROTO_MAX_BYTES),
    U64(REQ, "usec", step_done.usec, 0, UINT64_MAX),
    U64(OPT0, "wait_usec", step_done.wait_usec, 0, UINT64_MAX),
};
static const proto_field f_slot_free[] = {
    U32(REQ, "slot", slot_free.slot, 0, LMM_PROTO_MAX_SLOTS - 1),
};
static const proto_field f_kv_get[] = {
    U32(REQ, "slot", kv_get.slot, 0, LMM_PROTO_MAX_SLOTS - 1),
    U64(REQ, "offset", kv_get.offset, 0, LMM_PROTO_MAX_BYTES),
    U32(REQ, "length", kv_get.length, 1, LMM_PROTO_MAX_KV_CHUNK),
};
static const proto_field f_kv_data[] = {
    U32(REQ, "slot", kv_data.slot, 0, LMM_PROTO_MAX_SLOTS - 1),
    U64(REQ, "offset", kv_data.offset, 0, LMM_PROTO_MAX_BYTES),
    BYTES(REQ, "data", kv_data.data, LMM_PROTO_MAX_KV_CHUNK),
    U64(REQ, "checksum", kv_data.checksum, 0, UINT64_MAX),
};
_Static_assert(LMM_PROTO_MAX_LAYERS <= PROTO_SCRATCH_CAP && LMM_PROTO_MAX_SEGMENTS <= PROTO_SCRATCH_CAP,
               "arrays fit the decoder's");
_Static_assert(4u * LMM_PROTO_MAX_SEGMENTS + 2u * PROTO_MAX_FIELDS + 1u <= PROTO_MAX_VALUES,
               "a LOAD at its limits passes the structural pass");

/* ---- cross-field rules ------------------------------------------------------------ */

static int rules_hello(const lmm_msg *m) { return lmm_proto_version_check(m->hello.version); }

static int rules_hello_ack(const lmm_msg *m) {
    const lmm_msg_hello_ack *a = &m->hello_ack;
    if (lmm_proto_version_check(a->version) != 0) return -1;
    if (a->ok && a->error[0]) return lmm_error_set("field 'error' in HELLO_ACK: must be empty when ok is true");
    if (!a->ok && !a->error[0]) return lmm_error_set("field 'error' in HELLO_ACK: must say why when ok is false");
    if (a->weights_shm[0] && lmm_proto_shm_name_check(a->weights_shm, "weights_shm", "HELLO_ACK") != 0) return -1;
    if (a->act_shm[0] && lmm_proto_shm_name_check(a->act_shm, "act_shm", "HELLO_ACK") != 0) return -1;
    if ((a->layer_begin || a->layer_end) && a->layer_begin >= a->layer_end)
        return lmm_error_set("HELLO_ACK: empty layer range [%" PRIu32 ", %" PRIu32 ")", a->layer_begin, a->layer_end);
    return 0;
}

static int rules_generate(const lmm_msg *m) {
    const lmm_sampler_opts *s = &m->generate.sampling;
    /* The same rules as lmm_sampler_init, so a decoded request always makes a sampler. */
    if (!(s->temperature >= 0.0f))
        return lmm_error_set("field 'temperature' in GENERATE: %g is negative", (double)s->temperature);
    if (!(s->top_p > 0.0f && s->top_p <= 1.0f))
        return lmm_error_set("field 'top_p' in GENERATE: %g is not in (0, 1]", (double)s->top_p);
    if (!(s->repeat_penalty > 0.0f))
        return lmm_error_set("field 'repeat_penalty' in GENERATE: %g is not positive", (double)s->repeat_penalty);
    return 0;
}

static int rules_done(const lmm_msg *m) {
    if (!(m->done.tokens_per_s >= 0.0))
        return lmm_error_set("field 'tokens_per_s' in DONE: %g is negative", m->done.tokens_per_s);
    if (!(m->done.io_stall_s >= 0.0))
        return lmm_error_set("field 'io_stall_s' in DONE: %g is negative", m->done.io_stall_s);
    return 0;
}

int lmm_proto_shm_name_check(const char *name, const char *field, const char *type) {
    size_t n = strlen(name);
    /* shm_open(3): "/name", one slash only. */
    if (n < 2 || name[0] != '/' || memchr(name + 1, '/', n - 1) != NULL) {
        char q[192];
        return lmm_error_set("field '%s' in %s: '%s' is not a shared-memory name ('/' then 1 to %u characters "
                             "without '/')",
                             field, type, lmm_proto_quote(q, sizeof q, name, n), LMM_PROTO_MAX_SHM_NAME - 1);
    }
    return 0;
}

static int rules_ring_attach(const lmm_msg *m) {
    const lmm_msg_ring_attach *r = &m->ring_attach;
    if (lmm_proto_shm_name_check(r->shm, "shm", "RING_ATTACH") != 0) return -1;
    if (r->slot_size > LMM_PROTO_MAX_BYTES / r->n_slots)
        return lmm_error_set("RING_ATTACH: %" PRIu32 " slots of %" PRIu64 " bytes exceed %llu bytes", r->n_slots,
                             r->slot_size, (unsigned long long)LMM_PROTO_MAX_BYTES);
    return 0;
}

static int rules_load(const lmm_msg *m) {
    const lmm_msg_load *l = &m->load;
    if (l->n_segments == 0) return lmm_error_set("LOAD: no segments ('file', 'offset', 'length' and 'slot_offset' are empty)");
    for (uint32_t i = 0; i < l->n_segments; i++) {
        if (l->length[i] > LMM_PROTO_MAX_BYTES - l->offset[i])
            return lmm_error_set("LOAD: segment %" PRIu32 ": range [%" PRIu64 ", +%" PRIu64 ") ends beyond %llu bytes", i,
                                 l->offset[i], l->length[i], (unsigned long long)LMM_PROTO_MAX_BYTES);
        if (l->slot_offset[i] % 4096)
            return lmm_error_set("field 'slot_offset' in LOAD: element %" PRIu32 ": %" PRIu64 " is not a multiple of 4096",
                                 i, l->slot_offset[i]);
    }
    return 0;
}

static int rules_step(const lmm_msg *m) {
    const lmm_msg_step *s = &m->step;
    if (s->n_tokens == 0) return lmm_error_set("STEP: no tokens ('seq', 'tokens' and 'pos' are empty)");
    if (s->n_out > s->n_tokens)
        return lmm_error_set("field 'out' in STEP: %" PRIu32 " rows for a batch of %" PRIu32, s->n_out, s->n_tokens);
    for (uint32_t i = 0; i < s->n_out; i++) {
        if (s->out[i] >= s->n_tokens)
            return lmm_error_set("field 'out' in STEP: element %" PRIu32 ": row %" PRIu32 " is beyond the batch of %" PRIu32,
                                 i, s->out[i], s->n_tokens);
        if (i > 0 && s->out[i] <= s->out[i - 1])
            return lmm_error_set("field 'out' in STEP: element %" PRIu32 ": rows are not strictly increasing", i);
    }
    if (s->layer_begin >= s->layer_end)
        return lmm_error_set("STEP: empty layer range [%" PRIu32 ", %" PRIu32 ")", s->layer_begin, s->layer_end);
    if (s->n_slots != 0 && s->n_slots != s->layer_end - s->layer_begin)
        return lmm_error_set("field 'slots' in STEP: %" PRIu32 " slots for %" PRIu32 " layers [%" PRIu32 ", %" PRIu32 ")",
                             s->n_slots, s->layer_end - s->layer_begin, s->layer_begin, s->layer_end);
    if (s->n_kv_load % 3 || s->n_kv_store % 3)
        return lmm_error_set("STEP: 'kv_load' and 'kv_store' hold (seq, block, slot) triples (lengths %" PRIu32
                             ", %" PRIu32 ")",
                             s->n_kv_load, s->n_kv_store);
    if ((s->n_kv_load || s->n_kv_store) && (!s->kv_shm[0] || s->kv_block_tokens == 0))
        return lmm_error_set("STEP: 'kv_load'/'kv_store' need 'kv_shm' and 'kv_block_tokens'");
    if (s->kv_shm[0] && lmm_proto_shm_name_check(s->kv_shm, "kv_shm", "STEP") != 0) return -1;
    return 0;
}

static int rules_kv_get(const lmm_msg *m) {
    const lmm_msg_kv_get *g = &m->kv_get;
    if (g->length > LMM_PROTO_MAX_BYTES - g->offset)
        return lmm_error_set("KV_GET: offset %" PRIu64 " + length %" PRIu32 " exceed %llu", g->offset, g->length,
                             (unsigned long long)LMM_PROTO_MAX_BYTES);
    return 0;
}

static int rules_kv_data(const lmm_msg *m) {
    const lmm_msg_kv_data *d = &m->kv_data;
    if (d->data.len == 0) return lmm_error_set("field 'data' in KV_DATA: empty");
    if (d->data.len > LMM_PROTO_MAX_BYTES - d->offset)
        return lmm_error_set("KV_DATA: offset %" PRIu64 " + %zu bytes exceed %llu", d->offset, d->data.len,
                             (unsigned long long)LMM_PROTO_MAX_BYTES);
    return 0;
}

static int rules_step_done(const lmm_msg *m) {
    const lmm_msg_step_done *s = &m->step_done;
    if (s->out_bytes > LMM_PROTO_MAX_BYTES - s->out_offset)
        return lmm_error_set("STEP_DONE: out_offset %" PRIu64 " + out_bytes %" PRIu64 " exceed %llu", s->out_offset,
                             s->out_bytes, (unsigned long long)LMM_PROTO_MAX_BYTES);
    return 0;
}

/* A message has at most PROTO_MAX_FIELDS - 1 fields (with "t", its map passes the structural
 * pass) and at most 64 (the decoder's mask of fields seen): checked at compile time. */
#define N_FIELDS(f) \
    (sizeof f / sizeof f[0] + 0 * sizeof(char[sizeof f / sizeof f[0] + 1 <= PROTO_MAX_FIELDS ? 1 : -1]))
#define DESC(f, v, r) {f, N_FIELDS(f), v, r}
const proto_desc lmm_proto_descs[LMM_MSG_COUNT] = {
    [LMM_MSG_HELLO] = DESC(f_hello, 1, rules_hello),
    [LMM_MSG_HELLO_ACK] = DESC(f_hello_ack, 1, rules_hello_ack),
    [LMM_MSG_ERROR] = DESC(f_error, 0, NULL),
    [LMM_MSG_SHUTDOWN] = {NULL, 0, 0, NULL}, /* no fields */
    [LMM_MSG_STATUS] = {NULL, 0, 0, NULL},   /* no fields */
    [LMM_MSG_STATUS_REPLY] = DESC(f_status_reply, 0, NULL),
    [LMM_MSG_GENERATE] = DESC(f_generate, 0, rules_generate),
    [LMM_MSG_TOKEN] = DESC(f_token, 0, NULL),
    [LMM_MSG_DONE] = DESC(f_done, 0, rules_done),
    [LMM_MSG_CANCEL] = DESC(f_cancel, 0, NULL),
    [LMM_MSG_RING_ATTACH] = DESC(f_ring_attach, 0, rules_ring_attach),
    [LMM_MSG_ACK] = DESC(f_ack, 0, NULL),
    [LMM_MSG_LOAD] = DESC(f_load, 0, rules_load),
    [LMM_MSG_LOADED] = DESC(f_loaded, 0, NULL),
    [LMM_MSG_STEP] = DESC(f_step, 0, rules_step),
    [LMM_MSG_STEP_DONE] = DESC(f_step_done, 0, rules_step_done),
    [LMM_MSG_SLOT_FREE] = DESC(f_slot_free, 0, NULL),
    [LMM_MSG_PING] = {NULL, 0, 0, NULL},     /* no fields */
    [LMM_MSG_KV_GET] = DESC(f_kv_get, 0, rules_kv_get),
    [LMM_MSG_KV_DATA] = DESC(f_kv_data, 0, rules_kv_data),
};

/* ---- building ---------------------------------------------------------------------- */

void lmm_proto_msg_init(lmm_msg *m, lmm_msg_type t) {
    memset(m, 0, sizeof *m);
    m->type = t;
    if (t == LMM_MSG_GENERATE) lmm_sampler_opts_default(&m->generate.sampling);
    if (t == LMM_MSG_HELLO) m->hello.version = LMM_PROTO_VERSION;
    if (t == LMM_MSG_HELLO_ACK) m->hello_ack.version = LMM_PROTO_VERSION;
}

void lmm_proto_error_init(lmm_msg *m, lmm_proto_errcode code, uint64_t req_id, const char *message) {
    lmm_proto_msg_init(m, LMM_MSG_ERROR);
    m->error.code = (uint32_t)code;
    m->error.req_id = req_id;
    snprintf(m->error.message, sizeof m->error.message, "%s", message ? message : "");
}

int lmm_proto_version_check(uint64_t version) {
    if (version != LMM_PROTO_VERSION)
        return lmm_error_set("protocol version %" PRIu64 " not supported (this build speaks %u)", version,
                             LMM_PROTO_VERSION);
    return 0;
}

/* ---- checking ------------------------------------------------------------------------- */

static const void *at(const lmm_msg *m, size_t off) { return (const char *)m + off; }

static uint32_t u32_at(const lmm_msg *m, size_t off) {
    uint32_t v;
    memcpy(&v, at(m, off), sizeof v);
    return v;
}

int lmm_proto_field_check(const proto_field *f, const lmm_msg *m) {
    const char *tn = lmm_proto_type_name(m->type);
    switch (f->kind) {
    case PF_U32:
    case PF_U64: {
        uint64_t v = f->kind == PF_U32 ? u32_at(m, f->off) : *(const uint64_t *)at(m, f->off);
        if (v < f->min || v > f->max)
            return lmm_error_set("field '%s' in %s: %" PRIu64 " is out of range [%" PRIu64 ", %" PRIu64 "]", f->key, tn,
                                 v, f->min, f->max);
        return 0;
    }
    case PF_F32: {
        float v = *(const float *)at(m, f->off);
        if (!isfinite(v)) return lmm_error_set("field '%s' in %s: %g is not a finite number", f->key, tn, (double)v);
        return 0;
    }
    case PF_F64: {
        double v = *(const double *)at(m, f->off);
        if (!isfinite(v)) return lmm_error_set("field '%s' in %s: %g is not a finite number", f->key, tn, v);
        return 0;
    }
    case PF_BOOL:
        return 0;
    case PF_ENUM: {
        int v;
        memcpy(&v, at(m, f->off), sizeof v);
        if (v < 1 || (uint32_t)v >= f->n_names)
            return lmm_error_set("field '%s' in %s: %d is not a valid value", f->key, tn, v);
        return 0;
    }
    case PF_STR: {
        const char *s = at(m, f->off);
        if (strnlen(s, (size_t)f->max_len + 1) > f->max_len)
            return lmm_error_set("field '%s' in %s: not NUL-terminated within %" PRIu32 " bytes", f->key, tn, f->max_len);
        return 0;
    }
    case PF_BYTES: {
        const lmm_proto_bytes *b = at(m, f->off);
        if (b->len > f->max_len)
            return lmm_error_set("field '%s' in %s: %zu bytes, more than the limit of %" PRIu32, f->key, tn, b->len,
                                 f->max_len);
        if (b->len > 0 && !b->ptr) return lmm_error_set("field '%s' in %s: NULL with %zu bytes", f->key, tn, b->len);
        return 0;
    }
    case PF_F32BLOB: {
        const void *p = *(const void *const *)at(m, f->off);
        uint32_t n = u32_at(m, f->len_off);
        if (n > f->max_len)
            return lmm_error_set("field '%s' in %s: %" PRIu32 " floats, more than the limit of %" PRIu32, f->key, tn, n,
                                 f->max_len);
        if (n > 0 && !p) return lmm_error_set("field '%s' in %s: NULL with %" PRIu32 " floats", f->key, tn, n);
        return 0;
    }
    case PF_U32S:
    case PF_U64S: {
        const void *p = *(const void *const *)at(m, f->off);
        uint32_t n = u32_at(m, f->len_off);
        if (n > f->max_len)
            return lmm_error_set("field '%s' in %s: %" PRIu32 " elements, more than the limit of %" PRIu32, f->key, tn,
                                 n, f->max_len);
        if (n > 0 && !p) return lmm_error_set("field '%s' in %s: NULL with %" PRIu32 " elements", f->key, tn, n);
        for (uint32_t i = 0; i < n; i++) {
            uint64_t v = f->kind == PF_U32S ? ((const uint32_t *)p)[i] : ((const uint64_t *)p)[i];
            if (v < f->min || v > f->max)
                return lmm_error_set("field '%s' in %s: element %" PRIu32 ": %" PRIu64 " is out of range [%" PRIu64
                                     ", %" PRIu64 "]",
                                     f->key, tn, i, v, f->min, f->max);
        }
        return 0;
    }
    }
    return lmm_error_set("field '%s' in %s: unknown kind", f->key, tn);
}

int lmm_proto_msg_check(const lmm_msg *m) {
    if ((unsigned)m->type <= LMM_MSG_NONE || (unsigned)m->type >= LMM_MSG_COUNT)
        return lmm_error_set("message type %d is not valid", (int)m->type);
    const proto_desc *d = &lmm_proto_descs[m->type];
    for (uint32_t i = 0; i < d->n_fields; i++)
        if (lmm_proto_field_check(&d->fields[i], m) != 0) return -1;
    return d->rules ? d->rules(m) : 0;
}

/* ---- comparing ------------------------------------------------------------------------ */

static bool field_equal(const proto_field *f, const lmm_msg *a, const lmm_msg *b) {
    switch (f->kind) {
    case PF_U32:
    case PF_ENUM:
    case PF_F32:
        return memcmp(at(a, f->off), at(b, f->off), 4) == 0;
    case PF_U64:
    case PF_F64:
        return memcmp(at(a, f->off), at(b, f->off), 8) == 0;
    case PF_BOOL:
        return *(const bool *)at(a, f->off) == *(const bool *)at(b, f->off);
    case PF_STR:
        return strcmp(at(a, f->off), at(b, f->off)) == 0;
    case PF_BYTES: {
        const lmm_proto_bytes *x = at(a, f->off), *y = at(b, f->off);
        return x->len == y->len && (x->len == 0 || memcmp(x->ptr, y->ptr, x->len) == 0);
    }
    case PF_F32BLOB:
    case PF_U32S:
    case PF_U64S: {
        uint32_t n = u32_at(a, f->len_off);
        if (n != u32_at(b, f->len_off)) return false;
        const void *x = *(const void *const *)at(a, f->off), *y = *(const void *const *)at(b, f->off);
        return n == 0 || memcmp(x, y, (size_t)n * (f->kind == PF_U64S ? 8 : 4)) == 0;
    }
    }
    return false;
}

bool lmm_proto_field_omitted(const proto_field *f, const lmm_msg *m) {
    if (f->optional != PROTO_OMIT_EMPTY) return false;
    switch (f->kind) {
    case PF_U32: return u32_at(m, f->off) == 0;
    case PF_U64: return *(const uint64_t *)at(m, f->off) == 0;
    case PF_BOOL: return !*(const bool *)at(m, f->off);
    case PF_STR: return *(const char *)at(m, f->off) == '\0';
    case PF_BYTES: return ((const lmm_proto_bytes *)at(m, f->off))->len == 0;
    case PF_F32BLOB:
    case PF_U32S:
    case PF_U64S: return u32_at(m, f->len_off) == 0;
    case PF_F32: { /* +0.0 only: -0.0 keeps its sign on the wire */
        static const float zero = 0.0f;
        return memcmp(at(m, f->off), &zero, sizeof zero) == 0;
    }
    case PF_F64: {
        static const double zero = 0.0;
        return memcmp(at(m, f->off), &zero, sizeof zero) == 0;
    }
    default: return false; /* enums (0 is never valid) are never left out */
    }
}

bool lmm_proto_msg_equal(const lmm_msg *a, const lmm_msg *b) {
    if (a->type != b->type) return false;
    if ((unsigned)a->type <= LMM_MSG_NONE || (unsigned)a->type >= LMM_MSG_COUNT) return false;
    const proto_desc *d = &lmm_proto_descs[a->type];
    for (uint32_t i = 0; i < d->n_fields; i++)
        if (!field_equal(&d->fields[i], a, b)) return false;
    return true;
}

/* ---- quoting untrusted bytes for error messages --------------------------------------- */

const char *lmm_proto_quote(char *dst, size_t cap, const void *s, size_t len) {
    const unsigned char *p = s;
    size_t o = 0, shown = len > 40 ? 40 : len;
    for (size_t i = 0; i < shown && o + 8 < cap; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\' && p[i] != '\'')
            dst[o++] = (char)p[i];
        else
            o += (size_t)snprintf(dst + o, cap - o, "\\x%02x", p[i]);
    }
    if (shown < len && o + 4 <= cap) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    if (cap) dst[o < cap ? o : cap - 1] = '\0';
    return dst;
}
