/* proto/proto_internal.h — the message tables shared by the encoder, the decoder and
 * the checker: one row per field, so a message is described once (proto/messages.c). */
#ifndef LMM_PROTO_INTERNAL_H
#define LMM_PROTO_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "lmm/proto.h"

typedef enum {
    PF_U32,     /* uint32_t; integer in [min, max] */
    PF_U64,     /* uint64_t; integer in [min, max] */
    PF_F32,     /* float; any MessagePack number, finite */
    PF_F64,     /* double; any MessagePack number, finite */
    PF_BOOL,    /* bool */
    PF_ENUM,    /* enum stored as int; a string among names[1..n_names-1] */
    PF_STR,     /* char[max_len + 1], NUL-terminated, no NUL inside; str or bin */
    PF_BYTES,   /* lmm_proto_bytes, <= max_len bytes; str or bin (encoded as bin) */
    PF_F32BLOB, /* const void * + uint32_t count at len_off; bin of 4*count bytes */
    PF_U32S,    /* const uint32_t * + uint32_t count at len_off; array of integers in [min, max] */
    PF_U64S     /* const uint64_t * + uint32_t count at len_off; array of integers in [min, max] */
} proto_kind;

/* proto_field.optional */
enum {
    PROTO_REQUIRED = 0,
    PROTO_OPTIONAL,   /* may be absent (then lmm_proto_msg_init's default); always encoded */
    PROTO_OMIT_EMPTY  /* may be absent (then 0 / empty); encoded only when not 0 / empty */
};

typedef struct {
    const char *key;
    proto_kind kind;
    uint8_t optional;   /* PROTO_REQUIRED, _OPTIONAL, _OMIT_EMPTY */
    uint8_t scratch;    /* PF_U32S/PF_U64S: which decoder array holds the decoded elements */
    size_t off;         /* offsetof(lmm_msg, <value>) */
    size_t len_off;     /* PF_F32BLOB, PF_U32S, PF_U64S: offsetof(lmm_msg, <uint32_t count>) */
    uint64_t min, max;  /* integer range (PF_U32S/PF_U64S: of each element) */
    uint32_t max_len;   /* PF_STR/PF_BYTES: bytes; PF_F32BLOB: floats; PF_U32S/PF_U64S: elements */
    const char *const *names; /* PF_ENUM: names[value], names[0] unused */
    uint32_t n_names;
} proto_field;

/* One message type; its wire name ("t") is lmm_proto_type_name(). */
typedef struct {
    const proto_field *fields;
    uint32_t n_fields;
    int has_version;             /* "v" is checked before anything else */
    int (*rules)(const lmm_msg *m); /* cross-field rules, after every field's own bounds; may be NULL */
} proto_desc;

/* Decoder arrays (scratch indices of PF_U32S and PF_U64S rows) and their capacity in elements. */
#define PROTO_N_SCRATCH 7
#define PROTO_N_SCRATCH64 3
#define PROTO_SCRATCH_CAP LMM_PROTO_MAX_STEP_TOKENS

/* Most entries a message map may have (more are rejected before msgpack-c runs). */
#define PROTO_MAX_FIELDS 32u
/* Most MessagePack values in one message: a STEP at its limits, with room for keys. */
#define PROTO_MAX_VALUES \
    (4u * LMM_PROTO_MAX_STEP_TOKENS + LMM_PROTO_MAX_LAYERS + 6u * LMM_PROTO_MAX_KV_BLOCKS + 2u * PROTO_MAX_FIELDS + 1u)

/* Index LMM_MSG_NONE is unused (name NULL). */
extern const proto_desc lmm_proto_descs[LMM_MSG_COUNT];

/* The type whose wire name is s[len], or LMM_MSG_NONE. */
lmm_msg_type lmm_proto_type_find(const char *s, size_t len);

/* Checks one field of *m against its own bounds (not the cross-field rules). */
int lmm_proto_field_check(const proto_field *f, const lmm_msg *m);
/* True when f is PROTO_OMIT_EMPTY and its value in *m is 0 / empty: left out on the wire. */
bool lmm_proto_field_omitted(const proto_field *f, const lmm_msg *m);
/* Checks a POSIX shared-memory name ("/" then 1..254 characters without '/'). */
int lmm_proto_shm_name_check(const char *name, const char *field, const char *type);

/* Writes s[len] quoted for an error message into dst[cap]: printable ASCII kept,
 * other bytes as \xNN, cut with "..." past 40 bytes. Returns dst. */
const char *lmm_proto_quote(char *dst, size_t cap, const void *s, size_t len);

/* Structural pre-check of raw bytes before msgpack-c sees them (proto/scan.c): one map
 * at the top, at most PROTO_MAX_FIELDS entries, nesting at most 2 deep, every length
 * inside the buffer, at most PROTO_MAX_VALUES values, nothing after the map.
 * 0 with the number of values, or -1 with the error and *code (an lmm_proto_errcode). */
int lmm_proto_scan(const void *buf, size_t len, size_t *n_values, uint32_t *code);

#endif
