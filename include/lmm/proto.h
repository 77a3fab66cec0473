/* lmm/proto.h — every message between the processes of the group, defined once.
 *
 * A message is one MessagePack map (encoded and decoded with msgpack-c). Key "t" holds
 * the message type as a string ("GENERATE"); the other keys are the fields below, by
 * short string names. HELLO and HELLO_ACK also carry "v", the protocol version. The
 * wire format, every field, its bounds and the error replies are in docs/protocol.md.
 *
 * Decoding trusts nothing: the top level must be one map and nothing may follow it;
 * every key must be a known field of that message type, present at most once; every
 * value must have the right MessagePack type and lie within the bounds below; required
 * fields must be present; cross-field rules (equal array lengths, layer ranges) hold.
 * Each failure sets lmm_error_get() to one line naming the problem
 * ("unknown field 'x' in GENERATE"). Encoding applies the same checks, so a process
 * never sends what its peer would reject.
 *
 * Ownership of a decoded message (lmm_msg filled by lmm_proto_decode):
 *   - numbers, booleans, enums and short strings (char arrays, NUL-terminated) are
 *     copied into the lmm_msg itself;
 *   - byte payloads (GENERATE.prompt, TOKEN.text, TOKEN.logits) point INTO the input
 *     buffer: valid while that buffer is, never NUL-terminated, possibly unaligned;
 *   - integer arrays (STEP.seq/tokens/pos/out/slots, LOAD's segments) point into the
 *     decoder's own storage: valid until the next lmm_proto_decode with that decoder.
 * For encoding the caller fills the same struct; pointers are only read.
 *
 * No allocation after init: a decoder allocates its storage once (create), and
 * lmm_proto_encode writes into a caller buffer (LMM_PROTO_MAX_MSG_BYTES always suffices). */
#ifndef LMM_PROTO_H
#define LMM_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lmm/sampler.h"

#define LMM_PROTO_VERSION 1u

/* ---- bounds (decoders reject, encoders refuse, anything beyond these) ---- */
#define LMM_PROTO_MAX_MSG_BYTES ((1u << 20) + 65536u) /* any valid message fits */
#define LMM_PROTO_MAX_NAME 63u              /* HELLO/STATUS_REPLY name, bytes */
#define LMM_PROTO_MAX_ERROR 511u            /* ERROR.message, HELLO_ACK.error, bytes */
#define LMM_PROTO_MAX_SHM_NAME 255u         /* RING_ATTACH.shm ("/name"), bytes */
#define LMM_PROTO_MAX_PATH 4095u            /* LOAD.file, bytes */
#define LMM_PROTO_MAX_PROMPT_BYTES (1u << 20) /* GENERATE.prompt */
#define LMM_PROTO_MAX_TEXT_BYTES 4096u      /* TOKEN.text */
#define LMM_PROTO_MAX_VOCAB (1u << 18)      /* token ids < this; TOKEN.logits count <= this */
#define LMM_PROTO_MAX_GEN_TOKENS (1u << 20) /* GENERATE.max_tokens */
#define LMM_PROTO_MAX_POS (1u << 24)        /* positions, prompt lengths */
#define LMM_PROTO_MAX_STEP_TOKENS 4096u     /* tokens in one STEP */
#define LMM_PROTO_MAX_SEQS 256u             /* sequence ids < this */
#define LMM_PROTO_MAX_LAYERS 1024u          /* layer indices <= this */
#define LMM_PROTO_MAX_SLOTS 65536u          /* ring slots; slot ids < this */
#define LMM_PROTO_MAX_RINGS 16u             /* ring ids < this */
#define LMM_PROTO_MAX_SEGMENTS 4096u        /* byte ranges in one LOAD (an embedding slot: one per token) */
#define LMM_PROTO_MAX_FILES 1024u           /* model file indices < this */
#define LMM_PROTO_MAX_BYTES (1ull << 48)    /* any byte offset/length in a file or ring */
#define LMM_PROTO_MAX_KV_BLOCKS 1024u       /* KV blocks loaded or stored by one STEP */
#define LMM_PROTO_MAX_KV_CHUNK (1u << 20)   /* bytes of a KV block in one KV_GET / KV_DATA */

typedef enum {
    LMM_MSG_NONE = 0,     /* never on the wire */
    LMM_MSG_HELLO,        /* any -> any: first message on a connection */
    LMM_MSG_HELLO_ACK,    /* reply to HELLO */
    LMM_MSG_ERROR,        /* reply to a message that could not be served */
    LMM_MSG_SHUTDOWN,     /* launcher/scheduler -> service: exit cleanly */
    LMM_MSG_STATUS,       /* launcher -> service */
    LMM_MSG_STATUS_REPLY, /* service -> launcher */
    LMM_MSG_GENERATE,     /* client -> scheduler */
    LMM_MSG_TOKEN,        /* scheduler -> client, one per generated token */
    LMM_MSG_DONE,         /* scheduler -> client, after the last TOKEN */
    LMM_MSG_CANCEL,       /* client -> scheduler */
    LMM_MSG_RING_ATTACH,  /* scheduler -> loader/compute: map a shared-memory ring */
    LMM_MSG_ACK,          /* positive reply to a message that has no other reply */
    LMM_MSG_LOAD,         /* scheduler -> loader: read a byte range into a slot */
    LMM_MSG_LOADED,       /* loader -> scheduler */
    LMM_MSG_STEP,         /* scheduler -> compute: run layers over a batch */
    LMM_MSG_STEP_DONE,    /* compute -> scheduler */
    LMM_MSG_SLOT_FREE,    /* compute -> scheduler: done reading a slot */
    LMM_MSG_PING,         /* any -> any: liveness; the answer is ACK {of: PING} */
    LMM_MSG_KV_GET,       /* compute -> cache: bytes of a KV block (--kv-transport zmq) */
    LMM_MSG_KV_DATA,      /* cache -> compute (reply to KV_GET), compute -> cache (a store) */
    LMM_MSG_COUNT
} lmm_msg_type;

/* Wire names "client", "scheduler", "loader", "compute", "cache", "launch". */
typedef enum {
    LMM_PROTO_ROLE_CLIENT = 1,
    LMM_PROTO_ROLE_SCHEDULER,
    LMM_PROTO_ROLE_LOADER,
    LMM_PROTO_ROLE_COMPUTE,
    LMM_PROTO_ROLE_CACHE,
    LMM_PROTO_ROLE_LAUNCH,
    LMM_PROTO_ROLE_COUNT
} lmm_proto_role;

/* Why a generation ended. Wire names "length", "eos", "context", "cancelled". */
typedef enum {
    LMM_PROTO_STOP_LENGTH = 1, /* max_tokens reached */
    LMM_PROTO_STOP_EOS,        /* end-of-sequence token */
    LMM_PROTO_STOP_CONTEXT,    /* context window full */
    LMM_PROTO_STOP_CANCELLED,  /* CANCEL received */
    LMM_PROTO_STOP_COUNT
} lmm_proto_stop;

/* ERROR.code. */
typedef enum {
    LMM_PROTO_E_BAD_MESSAGE = 1, /* could not be decoded (type, field, bound) */
    LMM_PROTO_E_VERSION,         /* protocol version mismatch */
    LMM_PROTO_E_LIMIT,           /* a size limit exceeded (message, prompt, array) */
    LMM_PROTO_E_UNEXPECTED,      /* valid message, not expected by this peer now */
    LMM_PROTO_E_BUSY,            /* over capacity: retry later */
    LMM_PROTO_E_NOT_FOUND,       /* unknown request, slot or file */
    LMM_PROTO_E_IO,              /* I/O failed */
    LMM_PROTO_E_INTERNAL,        /* a bug or resource failure on the replying side */
    LMM_PROTO_E_COUNT
} lmm_proto_errcode;

/* Bytes inside a decoded input buffer (or, to encode, anywhere): not NUL-terminated. */
typedef struct {
    const void *ptr; /* [len]; may be NULL when len == 0 */
    size_t len;
} lmm_proto_bytes;

/* ---- one struct per message type (wire keys in quotes) ---- */

typedef struct {
    uint32_t version;            /* "v": must equal LMM_PROTO_VERSION */
    lmm_proto_role role;         /* "role" of the sender */
    uint32_t pid;                /* "pid", 1..INT32_MAX */
    char name[LMM_PROTO_MAX_NAME + 1]; /* "name", e.g. "compute-0"; may be empty */
} lmm_msg_hello;

typedef struct {
    uint32_t version;            /* "v" */
    bool ok;                     /* "ok": false = refused (error says why) */
    lmm_proto_role role;         /* "role" of the replier */
    char error[LMM_PROTO_MAX_ERROR + 1]; /* "error": empty when ok */
    /* Optional, left out when empty/0: what the scheduler tells a service it accepts
     * (docs/process-group.md). */
    char model[LMM_PROTO_MAX_PATH + 1];          /* "model": path of the model */
    char weights_shm[LMM_PROTO_MAX_SHM_NAME + 1]; /* "weights_shm": the weight ring */
    char act_shm[LMM_PROTO_MAX_SHM_NAME + 1];    /* "act_shm": the activation region */
    uint32_t layer_begin;        /* "layer_begin": a compute worker's layers [begin, end); */
    uint32_t layer_end;          /* "layer_end":   0, 0 = none; begin < end <= MAX_LAYERS */
    uint32_t max_batch;          /* "max_batch": tokens per step, <= MAX_STEP_TOKENS */
    uint64_t piece_bytes;        /* "piece_bytes": the plan's piece size, <= MAX_BYTES */
    uint64_t kv_budget;          /* "kv_budget" (to the cache): bytes its block region may use
                                  * (docs/kv-cache.md); 0 / absent: the cache's own setting */
} lmm_msg_hello_ack;

typedef struct {
    uint32_t code;               /* "code": an lmm_proto_errcode */
    uint64_t req_id;             /* "req_id": the request it ends, 0 = none */
    char message[LMM_PROTO_MAX_ERROR + 1]; /* "message" */
} lmm_msg_error;

typedef struct {
    lmm_proto_role role;         /* "role" */
    uint32_t pid;                /* "pid" */
    char name[LMM_PROTO_MAX_NAME + 1]; /* "name" */
    uint64_t uptime_ms;          /* "uptime_ms" */
    uint32_t active;             /* "active": requests / steps in progress */
    uint64_t served;             /* "served": requests / steps completed */
    uint64_t tokens;             /* "tokens": tokens generated or computed */
    uint64_t bytes_read;         /* "bytes_read": from model files */
    uint64_t rss_bytes;          /* "rss_bytes" */
    uint64_t shm_bytes;          /* "shm_bytes": shared memory mapped */
    /* optional (false / empty when absent); the scheduler's answer to lmlaunch: */
    bool ready;                  /* "ready": the group serves requests (every service said
                                  * HELLO, pinned weights loaded) */
    char waiting[LMM_PROTO_MAX_NAME + 1]; /* "waiting": while not ready, what it waits for
                                  * ("compute.1", "loader", "pinned weights"); may be empty */
    /* optional (0 when absent), the scheduler's: ring occupancy, speed, budget use */
    uint32_t ring_slots;         /* "ring_slots": weight-ring slots (pinned + streaming + 1) */
    uint32_t ring_pinned;        /* "ring_pinned": slots holding pinned pieces */
    uint32_t ring_streaming;     /* "ring_streaming": slots that stream the other pieces */
    uint32_t ring_busy;          /* "ring_busy": streaming slots loading, loaded or in use now */
    uint32_t prefetch_depth;     /* "prefetch_depth": LOADs of streamed pieces kept in flight */
    uint64_t steps;              /* "steps": forward passes run (fewer than tokens when batched) */
    double tokens_per_s;         /* "tokens_per_s": generated tokens per second of stepping */
    uint64_t budget_bytes;       /* "budget_bytes": --mem-budget (0: none) */
    uint64_t budget_used;        /* "budget_used": what the residency plan uses of it */
    uint64_t budget_min;         /* "budget_min": the smallest budget that runs this model */
    /* optional (0 when absent), KV reuse (docs/kv-cache.md) */
    uint64_t kv_hits;            /* "kv_hits": prompt blocks served from the cache */
    uint64_t kv_misses;          /* "kv_misses": prompt blocks looked up and not found */
    uint64_t kv_blocks;          /* "kv_blocks": blocks held now (RAM tier) */
    uint64_t kv_ram_bytes;       /* "kv_ram_bytes": bytes of those blocks */
    uint64_t kv_disk_bytes;      /* "kv_disk_bytes": bytes in the disk tier */
    uint64_t kv_bytes_loaded;    /* "kv_bytes_loaded": bytes copied from the cache into workers */
} lmm_msg_status_reply;

typedef struct {
    uint64_t req_id;             /* "req_id": chosen by the client, echoed back */
    lmm_proto_bytes prompt;      /* "prompt": raw bytes (str or bin), <= MAX_PROMPT_BYTES, may be empty */
    uint32_t max_tokens;         /* "max_tokens", 0..MAX_GEN_TOKENS */
    /* optional, lmm_sampler_opts_default() when absent: "temperature" (>= 0),
     * "top_k", "top_p" (0 < p <= 1), "repeat_penalty" (> 0), "repeat_last_n", "seed" */
    lmm_sampler_opts sampling;
    bool dump_logits;            /* "dump_logits" (optional, false): TOKENs carry logits */
    bool context_shift;          /* "context_shift" (optional, false): when the context is
                                  * full, keep its last half and go on (CHANGES the output;
                                  * docs/kv-cache.md "Context shift") instead of stopping */
    bool no_prefix_cache;        /* "no_prefix_cache" (optional, false): this request neither
                                  * reuses nor publishes KV blocks (same output) */
    bool stats;                  /* "stats" (optional, false): TOKENs carry the step's figures
                                  * (step_usec, compute_usec, io_wait_usec, bytes_read) */
    bool max_tokens_default;     /* "max_tokens_default" (optional, false): max_tokens is the
                                  * client's default, not the user's: when the prompt plus
                                  * max_tokens exceeds the context, generate up to the end of
                                  * the context (stop "context") instead of refusing */
} lmm_msg_generate;

typedef struct {
    uint64_t req_id;             /* "req_id" */
    uint32_t id;                 /* "id": token id < MAX_VOCAB */
    lmm_proto_bytes text;        /* "text": the token's bytes (bin; may be partial UTF-8) */
    const void *logits;          /* "logits" (optional bin): [n_logits] float32 little-endian,
                                  * possibly unaligned: read with memcpy */
    uint32_t n_logits;           /* 0 = absent; <= MAX_VOCAB */
    /* optional, only when the GENERATE asked for "stats" (left out when 0): the step that
     * produced this token (shared by every request of a batched step) */
    uint64_t step_usec;          /* "step_usec": STEP to the first worker -> last STEP_DONE */
    uint64_t compute_usec;       /* "compute_usec": the workers' compute (STEP_DONE usec) */
    uint64_t io_wait_usec;       /* "io_wait_usec": waits for streamed weights (wait_usec) */
    uint64_t bytes_read;         /* "bytes_read": bytes the loader read during the step */
} lmm_msg_token;

typedef struct {
    uint64_t req_id;             /* "req_id" */
    uint32_t n_prompt;           /* "n_prompt": prompt tokens, <= MAX_POS */
    uint32_t n_generated;        /* "n_generated": <= MAX_GEN_TOKENS */
    lmm_proto_stop stop;         /* "stop" */
    double tokens_per_s;         /* "tokens_per_s": finite, >= 0 */
    double io_stall_s;           /* "io_stall_s" (optional, left out when 0): seconds the
                                  * compute workers waited for streamed weight slots in
                                  * the steps that ran this request; finite, >= 0 */
} lmm_msg_done;

typedef struct {
    uint64_t req_id;             /* "req_id" */
} lmm_msg_cancel;

typedef struct {
    uint32_t ring;               /* "ring": < MAX_RINGS (0: weights, 1: activations) */
    char shm[LMM_PROTO_MAX_SHM_NAME + 1]; /* "shm": POSIX shm name, "/" + 1..254 chars without '/' */
    uint64_t slot_size;          /* "slot_size": bytes, 1..MAX_BYTES */
    uint32_t n_slots;            /* "n_slots": 1..MAX_SLOTS; n_slots * slot_size <= MAX_BYTES */
} lmm_msg_ring_attach;

typedef struct {
    lmm_msg_type of;             /* "of": the type name of the message acknowledged */
} lmm_msg_ack;

/* Read n_segments byte ranges of model files into one ring-0 slot (one piece of the
 * plan, docs/process-group.md). Segment i: bytes [offset[i], offset[i] + length[i]) of
 * model file file[i] (the index in lmm_model_desc's file list), widened to 4 KiB for
 * O_DIRECT and placed at slot byte slot_offset[i]; file byte offset[i] is then slot byte
 * slot_offset[i] + offset[i] % 4096. One range read from the slot's start = 1 segment. */
typedef struct {
    uint64_t req_id;             /* "req_id" */
    uint32_t slot;               /* "slot" < MAX_SLOTS */
    uint64_t tag;                /* "tag": stored in the slot (the piece id) */
    uint32_t n_segments;         /* length of the four arrays: 1..MAX_SEGMENTS */
    const uint32_t *file;        /* "file": [n_segments] file indices < MAX_FILES */
    const uint64_t *offset;      /* "offset": [n_segments] file offsets */
    const uint64_t *length;      /* "length": [n_segments] 1..MAX_BYTES; offset + length <= MAX_BYTES */
    const uint64_t *slot_offset; /* "slot_offset": [n_segments] multiples of 4096 */
} lmm_msg_load;

typedef struct {
    uint64_t req_id;             /* "req_id" of the LOAD */
    uint32_t slot;               /* "slot" */
    uint64_t tag;                /* "tag" */
    uint64_t generation;         /* "generation" of the slot after this load */
    uint32_t status;             /* "status": 0 ok, else an errno value */
    uint64_t bytes;              /* "bytes" of the requested ranges read (<= MAX_BYTES) */
    uint64_t usec;               /* "usec": time the reads took */
    char error[LMM_PROTO_MAX_ERROR + 1]; /* "error" (optional, left out when empty): what failed */
} lmm_msg_loaded;

typedef struct {
    uint64_t step_id;            /* "step_id" */
    uint32_t n_tokens;           /* length of "seq", "tokens" and "pos": 1..MAX_STEP_TOKENS */
    const uint32_t *seq;         /* "seq": [n_tokens] sequence id of each token, < MAX_SEQS */
    const uint32_t *tokens;      /* "tokens": [n_tokens] token ids, < MAX_VOCAB */
    const uint32_t *pos;         /* "pos": [n_tokens] positions, < MAX_POS */
    uint32_t n_out;              /* length of "out": 0..n_tokens */
    const uint32_t *out;         /* "out": [n_out] batch rows whose output is wanted,
                                  * strictly increasing, < n_tokens */
    uint32_t layer_begin;        /* "layer_begin": first layer to run */
    uint32_t layer_end;          /* "layer_end": one past the last; begin < end <= MAX_LAYERS */
    uint32_t n_slots;            /* length of "slots": 0 or layer_end - layer_begin */
    const uint32_t *slots;       /* "slots" (optional, left out when empty): [n_slots] ring-0
                                  * slot holding each layer, < MAX_SLOTS; without it a worker
                                  * finds its pieces by the slots' tags */
    uint64_t act_offset;         /* "act_offset": activations in ring 1, < MAX_BYTES */
    /* Optional (left out when empty), KV reuse (docs/kv-cache.md): the cache's block
     * region, its block size in tokens, and triples (seq, block, slot): before the step
     * load block `block` (positions [block*B, (block+1)*B)) of `seq` from region slot
     * `slot` (kv_load), after the step store it there (kv_store). */
    char kv_shm[LMM_PROTO_MAX_SHM_NAME + 1]; /* "kv_shm": the region; needed with kv_load/kv_store */
    uint32_t kv_block_tokens;    /* "kv_block_tokens": B, 1..MAX_STEP_TOKENS */
    uint32_t n_kv_load;          /* length of "kv_load": a multiple of 3, <= 3*MAX_KV_BLOCKS */
    const uint32_t *kv_load;     /* "kv_load": [n_kv_load] (seq, block, slot) triples */
    uint32_t n_kv_store;         /* length of "kv_store" */
    const uint32_t *kv_store;    /* "kv_store": [n_kv_store] (seq, block, slot) triples */
} lmm_msg_step;

typedef struct {
    uint64_t step_id;            /* "step_id" */
    uint32_t status;             /* "status": 0 ok, else an errno value */
    uint64_t out_offset;         /* "out_offset": results in ring 1 */
    uint64_t out_bytes;          /* "out_bytes"; out_offset + out_bytes <= MAX_BYTES */
    uint64_t usec;               /* "usec": compute time */
    uint64_t wait_usec;          /* "wait_usec" (optional, left out when 0): time waited for
                                  * streamed weight slots (I/O stall; not in usec) */
} lmm_msg_step_done;

typedef struct {
    uint32_t slot;               /* "slot" < MAX_SLOTS */
} lmm_msg_slot_free;

/* KV blocks over ZeroMQ (docs/kv-cache.md, "Transport"): a part of the block in region
 * slot `slot`, bytes [offset, offset + length) of it. */
typedef struct {
    uint32_t slot;               /* "slot" < MAX_SLOTS */
    uint64_t offset;             /* "offset"; offset + length <= MAX_BYTES */
    uint32_t length;             /* "length" 1..MAX_KV_CHUNK */
} lmm_msg_kv_get;

typedef struct {
    uint32_t slot;               /* "slot" < MAX_SLOTS */
    uint64_t offset;             /* "offset"; offset + data.len <= MAX_BYTES */
    lmm_proto_bytes data;        /* "data": 1..MAX_KV_CHUNK bytes (bin) */
    uint64_t checksum;           /* "checksum": of data (kv_checksum); a mismatch is never used */
} lmm_msg_kv_data;

/* SHUTDOWN, STATUS and PING have no fields. */
typedef struct {
    lmm_msg_type type;
    union {
        lmm_msg_hello hello;
        lmm_msg_hello_ack hello_ack;
        lmm_msg_error error;
        lmm_msg_status_reply status_reply;
        lmm_msg_generate generate;
        lmm_msg_token token;
        lmm_msg_done done;
        lmm_msg_cancel cancel;
        lmm_msg_ring_attach ring_attach;
        lmm_msg_ack ack;
        lmm_msg_load load;
        lmm_msg_loaded loaded;
        lmm_msg_step step;
        lmm_msg_step_done step_done;
        lmm_msg_slot_free slot_free;
        lmm_msg_kv_get kv_get;
        lmm_msg_kv_data kv_data;
    };
} lmm_msg;

/* ---- names ---- */

/* "GENERATE", ...; "?" for values out of range. */
const char *lmm_proto_type_name(lmm_msg_type t);
const char *lmm_proto_role_name(lmm_proto_role r);
const char *lmm_proto_stop_name(lmm_proto_stop s);
const char *lmm_proto_errcode_name(uint32_t code); /* "bad message", ... */

/* ---- building and checking messages ---- */

/* Zeroes *m, sets its type and the defaults of optional fields (GENERATE: sampler
 * defaults; HELLO/HELLO_ACK: version = LMM_PROTO_VERSION). */
void lmm_proto_msg_init(lmm_msg *m, lmm_msg_type t);
/* Fills *m with an ERROR: code, req_id, message (truncated to MAX_ERROR bytes). */
void lmm_proto_error_init(lmm_msg *m, lmm_proto_errcode code, uint64_t req_id, const char *message);
/* 0 when *m satisfies every bound and rule the decoder enforces; -1 and the error. */
int lmm_proto_msg_check(const lmm_msg *m);
/* 0, or -1 with "protocol version 7 not supported (this build speaks 1)". */
int lmm_proto_version_check(uint64_t version);
/* Same type and same field values (payloads compared by content, floats by bits). */
bool lmm_proto_msg_equal(const lmm_msg *a, const lmm_msg *b);

/* ---- encoding ---- */

/* Encodes *m (checked first) into buf[cap]; *len = bytes written. buf == NULL: only
 * computes *len. -1 with the error when *m is invalid or cap is too small; nothing is
 * allocated. */
int lmm_proto_encode(const lmm_msg *m, void *buf, size_t cap, size_t *len);

/* ---- decoding ---- */

typedef struct lmm_proto_decoder lmm_proto_decoder;

/* Allocates everything a decode will ever need (~0.5 MiB). */
int lmm_proto_decoder_create(lmm_proto_decoder **out);
void lmm_proto_decoder_free(lmm_proto_decoder *d);
/* Decodes one message buf[len] into *out (ownership: see the top of this file).
 * -1 with the error on any violation; *out is then unspecified. No allocation. */
int lmm_proto_decode(lmm_proto_decoder *d, const void *buf, size_t len, lmm_msg *out);
/* After a failed lmm_proto_decode: the ERROR reply to send back — code (BAD_MESSAGE,
 * VERSION or LIMIT), the req_id when the message had a readable one, and the error
 * line. A service answers garbage with it and keeps serving. */
void lmm_proto_decoder_error_reply(const lmm_proto_decoder *d, lmm_msg *reply);

#endif
