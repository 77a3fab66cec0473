/* proto/decode.c — bytes -> lmm_msg, trusting nothing.
 *
 * Order of checks: size limit; the structural pass (proto/scan.c) that bounds what
 * msgpack-c will allocate; msgpack-c unpacks into the decoder's one zone chunk (strings
 * and binary payloads stay pointers into the input); every key is a string; "t" names a
 * known type; for HELLO/HELLO_ACK the version "v" is checked before anything else (a
 * peer of another version gets the version error, not a complaint about a field it
 * added); then every entry: a known field of that type, not seen before, of the right
 * MessagePack type and within its bounds; required fields present; finally the bounds
 * and cross-field rules the encoder also applies (lmm_proto_msg_check). */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "lmm/error.h"
#include "proto_internal.h"

struct lmm_proto_decoder {
    msgpack_zone zone;    /* one chunk of PROTO_MAX_VALUES objects, cleared per message */
    uint32_t scratch[PROTO_N_SCRATCH][PROTO_SCRATCH_CAP];     /* PF_U32S elements of the last message */
    uint64_t scratch64[PROTO_N_SCRATCH64][PROTO_SCRATCH_CAP]; /* PF_U64S elements */
    uint32_t err_code;    /* lmm_proto_errcode of the last failure */
    uint64_t err_req_id;  /* its "req_id" when readable, else 0 */
    char err_msg[LMM_PROTO_MAX_ERROR + 1];
};

#define ZONE_BYTES ((size_t)PROTO_MAX_VALUES * sizeof(msgpack_object) + 256)

int lmm_proto_decoder_create(lmm_proto_decoder **out) {
    *out = NULL;
    lmm_proto_decoder *d = calloc(1, sizeof *d);
    if (!d) return lmm_error_set("proto decoder: out of memory");
    if (!msgpack_zone_init(&d->zone, ZONE_BYTES)) {
        free(d);
        return lmm_error_set("proto decoder: out of memory (%zu bytes of msgpack zone)", ZONE_BYTES);
    }
    *out = d;
    return 0;
}

void lmm_proto_decoder_free(lmm_proto_decoder *d) {
    if (!d) return;
    msgpack_zone_destroy(&d->zone);
    free(d);
}

void lmm_proto_decoder_error_reply(const lmm_proto_decoder *d, lmm_msg *reply) {
    lmm_proto_error_init(reply, d->err_code ? (lmm_proto_errcode)d->err_code : LMM_PROTO_E_BAD_MESSAGE,
                         d->err_req_id, d->err_msg);
}

/* ---- helpers ----------------------------------------------------------------------- */

typedef struct {
    lmm_proto_decoder *d;
    const char *buf; /* [len]: the input */
    size_t len;
    lmm_msg *out;
    const char *tn;  /* type name, for messages */
    uint32_t *code;
} ctx;

static const char *obj_kind(const msgpack_object *o) {
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return "nil";
    case MSGPACK_OBJECT_BOOLEAN: return "a boolean";
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return "an unsigned integer";
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "a negative integer";
    case MSGPACK_OBJECT_FLOAT32: return "a float32";
    case MSGPACK_OBJECT_FLOAT64: return "a float64";
    case MSGPACK_OBJECT_STR: return "a string";
    case MSGPACK_OBJECT_ARRAY: return "an array";
    case MSGPACK_OBJECT_MAP: return "a map";
    case MSGPACK_OBJECT_BIN: return "binary data";
    case MSGPACK_OBJECT_EXT: return "an extension";
    }
    return "an unknown MessagePack type";
}

static bool key_is(const msgpack_object *k, const char *s) {
    size_t n = strlen(s);
    return k->via.str.size == n && memcmp(k->via.str.ptr, s, n) == 0;
}

static void *at(lmm_msg *m, size_t off) { return (char *)m + off; }

/* A string or bin value as a pointer into the input, checked to lie inside it. */
static int raw_bytes(const ctx *c, const proto_field *f, const msgpack_object *v, const char **p, uint32_t *n) {
    if (v->type == MSGPACK_OBJECT_STR) {
        *p = v->via.str.ptr, *n = v->via.str.size;
    } else if (v->type == MSGPACK_OBJECT_BIN) {
        *p = v->via.bin.ptr, *n = v->via.bin.size;
    } else {
        return lmm_error_set("field '%s' in %s: expected a string or binary data, got %s", f->key, c->tn, obj_kind(v));
    }
    if (*n > 0 && (*p < c->buf || *p > c->buf + c->len || *n > (size_t)(c->buf + c->len - *p)))
        return lmm_error_set("field '%s' in %s: payload outside the message", f->key, c->tn);
    return 0;
}

static int too_long(const ctx *c, const proto_field *f, uint64_t n, const char *unit) {
    *c->code = LMM_PROTO_E_LIMIT;
    return lmm_error_set("field '%s' in %s: %" PRIu64 " %s, more than the limit of %" PRIu32, f->key, c->tn, n, unit,
                         f->max_len);
}

/* An unsigned integer in [min, max]; elem: its index in an array, or -1. */
static int get_uint(const ctx *c, const proto_field *f, const msgpack_object *v, int64_t elem, uint64_t *out) {
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 >= f->min && v->via.u64 <= f->max) {
        *out = v->via.u64;
        return 0;
    }
    char what[32] = "";
    if (elem >= 0) snprintf(what, sizeof what, "element %" PRId64 ": ", elem);
    if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return lmm_error_set("field '%s' in %s: %s%" PRId64 " is negative", f->key, c->tn, what, v->via.i64);
    if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return lmm_error_set("field '%s' in %s: %sexpected an unsigned integer, got %s", f->key, c->tn, what,
                             obj_kind(v));
    return lmm_error_set("field '%s' in %s: %s%" PRIu64 " is out of range [%" PRIu64 ", %" PRIu64 "]", f->key, c->tn,
                         what, v->via.u64, f->min, f->max);
}

static int get_number(const ctx *c, const proto_field *f, const msgpack_object *v, double *out) {
    switch (v->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER: *out = (double)v->via.u64; break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: *out = (double)v->via.i64; break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: *out = v->via.f64; break;
    default: return lmm_error_set("field '%s' in %s: expected a number, got %s", f->key, c->tn, obj_kind(v));
    }
    if (!isfinite(*out)) return lmm_error_set("field '%s' in %s: %g is not a finite number", f->key, c->tn, *out);
    if (f->kind == PF_F32 && fabs(*out) > FLT_MAX)
        return lmm_error_set("field '%s' in %s: %g is out of range for a float32", f->key, c->tn, *out);
    return 0;
}

static int get_enum(const ctx *c, const proto_field *f, const msgpack_object *v, int *out) {
    if (v->type != MSGPACK_OBJECT_STR)
        return lmm_error_set("field '%s' in %s: expected a string, got %s", f->key, c->tn, obj_kind(v));
    for (uint32_t i = 1; i < f->n_names; i++)
        if (key_is(v, f->names[i])) {
            *out = (int)i;
            return 0;
        }
    char q[192], list[256];
    size_t o = 0;
    list[0] = '\0';
    for (uint32_t i = 1; i < f->n_names && o < sizeof list; i++)
        o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i > 1 ? ", " : "", f->names[i]);
    return lmm_error_set("field '%s' in %s: '%s' is not one of %s", f->key, c->tn,
                         lmm_proto_quote(q, sizeof q, v->via.str.ptr, v->via.str.size), list);
}

/* Index of an array field of d that shares f's count and was decoded already, or -1. */
static int count_owner(const proto_desc *d, const proto_field *f, uint64_t seen) {
    for (uint32_t j = 0; j < d->n_fields; j++) {
        const proto_field *g = &d->fields[j];
        if ((seen >> j & 1) && g != f && (g->kind == PF_U32S || g->kind == PF_U64S) && g->len_off == f->len_off)
            return (int)j;
    }
    return -1;
}

static int decode_field(const ctx *c, const proto_desc *d, const proto_field *f, const msgpack_object *v,
                        uint64_t seen) {
    lmm_msg *m = c->out;
    switch (f->kind) {
    case PF_U32:
    case PF_U64: {
        uint64_t x = 0;
        if (get_uint(c, f, v, -1, &x) != 0) return -1;
        if (f->kind == PF_U32) {
            uint32_t y = (uint32_t)x; /* max <= UINT32_MAX in every PF_U32 row */
            memcpy(at(m, f->off), &y, sizeof y);
        } else {
            memcpy(at(m, f->off), &x, sizeof x);
        }
        return 0;
    }
    case PF_F32:
    case PF_F64: {
        double x = 0;
        if (get_number(c, f, v, &x) != 0) return -1;
        if (f->kind == PF_F32) {
            float y = (float)x;
            memcpy(at(m, f->off), &y, sizeof y);
        } else {
            memcpy(at(m, f->off), &x, sizeof x);
        }
        return 0;
    }
    case PF_BOOL:
        if (v->type != MSGPACK_OBJECT_BOOLEAN)
            return lmm_error_set("field '%s' in %s: expected a boolean, got %s", f->key, c->tn, obj_kind(v));
        *(bool *)at(m, f->off) = v->via.boolean;
        return 0;
    case PF_ENUM: {
        int x = 0;
        if (get_enum(c, f, v, &x) != 0) return -1;
        memcpy(at(m, f->off), &x, sizeof x);
        return 0;
    }
    case PF_STR: {
        const char *p;
        uint32_t n;
        if (raw_bytes(c, f, v, &p, &n) != 0) return -1;
        if (n > f->max_len) return too_long(c, f, n, "bytes");
        if (n && memchr(p, '\0', n)) return lmm_error_set("field '%s' in %s: contains a NUL byte", f->key, c->tn);
        char *s = at(m, f->off);
        if (n) memcpy(s, p, n);
        s[n] = '\0';
        return 0;
    }
    case PF_BYTES: {
        const char *p;
        uint32_t n;
        if (raw_bytes(c, f, v, &p, &n) != 0) return -1;
        if (n > f->max_len) return too_long(c, f, n, "bytes");
        lmm_proto_bytes *b = at(m, f->off);
        b->ptr = p;
        b->len = n;
        return 0;
    }
    case PF_F32BLOB: {
        if (v->type != MSGPACK_OBJECT_BIN)
            return lmm_error_set("field '%s' in %s: expected binary data, got %s", f->key, c->tn, obj_kind(v));
        const char *p;
        uint32_t n;
        if (raw_bytes(c, f, v, &p, &n) != 0) return -1;
        if (n % 4)
            return lmm_error_set("field '%s' in %s: %" PRIu32 " bytes is not a whole number of float32", f->key, c->tn,
                                 n);
        if (n / 4 > f->max_len) return too_long(c, f, n / 4, "floats");
        *(const void **)at(m, f->off) = p;
        uint32_t count = n / 4;
        memcpy(at(m, f->len_off), &count, sizeof count);
        return 0;
    }
    case PF_U32S:
    case PF_U64S: {
        if (v->type != MSGPACK_OBJECT_ARRAY)
            return lmm_error_set("field '%s' in %s: expected an array, got %s", f->key, c->tn, obj_kind(v));
        uint32_t n = v->via.array.size;
        if (n > f->max_len || n > PROTO_SCRATCH_CAP) return too_long(c, f, n, "elements");
        int owner = count_owner(d, f, seen);
        uint32_t count;
        memcpy(&count, at(m, f->len_off), sizeof count);
        if (owner >= 0 && count != n)
            return lmm_error_set("field '%s' in %s: %" PRIu32 " elements, but '%s' has %" PRIu32, f->key, c->tn, n,
                                 d->fields[owner].key, count);
        bool wide = f->kind == PF_U64S;
        uint32_t *dst = wide ? NULL : c->d->scratch[f->scratch];
        uint64_t *dst64 = wide ? c->d->scratch64[f->scratch] : NULL;
        for (uint32_t i = 0; i < n; i++) {
            uint64_t x = 0;
            if (get_uint(c, f, &v->via.array.ptr[i], i, &x) != 0) return -1;
            if (wide)
                dst64[i] = x;
            else
                dst[i] = (uint32_t)x; /* max <= UINT32_MAX in every PF_U32S row */
        }
        if (wide)
            *(const uint64_t **)at(m, f->off) = dst64;
        else
            *(const uint32_t **)at(m, f->off) = dst;
        memcpy(at(m, f->len_off), &n, sizeof n);
        return 0;
    }
    }
    return lmm_error_set("field '%s' in %s: unknown kind", f->key, c->tn);
}

/* ---- the message ----------------------------------------------------------------------- */

static int decode(lmm_proto_decoder *d, const void *buf, size_t len, lmm_msg *out, uint32_t *code) {
    *code = LMM_PROTO_E_BAD_MESSAGE;
    if (len > LMM_PROTO_MAX_MSG_BYTES) {
        *code = LMM_PROTO_E_LIMIT;
        return lmm_error_set("message of %zu bytes exceeds the limit of %u", len, LMM_PROTO_MAX_MSG_BYTES);
    }
    size_t n_values;
    if (lmm_proto_scan(buf, len, &n_values, code) != 0) return -1;

    msgpack_zone_clear(&d->zone);
    msgpack_object root;
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack(buf, len, &off, &d->zone, &root);
    if (r != MSGPACK_UNPACK_SUCCESS || root.type != MSGPACK_OBJECT_MAP)
        return lmm_error_set("msgpack-c could not unpack the message (status %d)", (int)r);
    const msgpack_object_kv *kv = root.via.map.ptr;
    uint32_t n = root.via.map.size;
    char q[192];

    const msgpack_object *tval = NULL, *vval = NULL;
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *k = &kv[i].key;
        if (k->type != MSGPACK_OBJECT_STR)
            return lmm_error_set("key of entry %" PRIu32 " is %s, not a string", i, obj_kind(k));
        if (key_is(k, "t")) {
            if (tval) return lmm_error_set("duplicate field 't' (message type)");
            tval = &kv[i].val;
        }
        if (key_is(k, "v") && !vval) vval = &kv[i].val;
        if (key_is(k, "req_id") && !d->err_req_id && kv[i].val.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            d->err_req_id = kv[i].val.via.u64;
    }
    if (!tval) return lmm_error_set("message has no type field 't'");
    if (tval->type != MSGPACK_OBJECT_STR)
        return lmm_error_set("field 't' (message type): expected a string, got %s", obj_kind(tval));
    lmm_msg_type type = lmm_proto_type_find(tval->via.str.ptr, tval->via.str.size);
    if (type == LMM_MSG_NONE)
        return lmm_error_set("unknown message type '%s'", lmm_proto_quote(q, sizeof q, tval->via.str.ptr,
                                                                           tval->via.str.size));
    const proto_desc *desc = &lmm_proto_descs[type];
    ctx c = {d, buf, len, out, lmm_proto_type_name(type), code};
    lmm_proto_msg_init(out, type);

    if (desc->has_version && vval && vval->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
        lmm_proto_version_check(vval->via.u64) != 0) {
        *code = LMM_PROTO_E_VERSION;
        return -1;
    }

    uint64_t seen = 0;
    _Static_assert(PROTO_MAX_FIELDS <= 64, "seen is a 64-bit mask");
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *k = &kv[i].key;
        if (key_is(k, "t")) continue;
        uint32_t j = 0;
        while (j < desc->n_fields && !key_is(k, desc->fields[j].key)) j++;
        if (j == desc->n_fields)
            return lmm_error_set("unknown field '%s' in %s", lmm_proto_quote(q, sizeof q, k->via.str.ptr, k->via.str.size),
                                 c.tn);
        if (seen >> j & 1) return lmm_error_set("duplicate field '%s' in %s", desc->fields[j].key, c.tn);
        if (decode_field(&c, desc, &desc->fields[j], &kv[i].val, seen) != 0) return -1;
        seen |= 1ull << j;
    }
    for (uint32_t j = 0; j < desc->n_fields; j++)
        if (!desc->fields[j].optional && !(seen >> j & 1))
            return lmm_error_set("missing field '%s' in %s", desc->fields[j].key, c.tn);
    return lmm_proto_msg_check(out);
}

int lmm_proto_decode(lmm_proto_decoder *d, const void *buf, size_t len, lmm_msg *out) {
    uint32_t code = LMM_PROTO_E_BAD_MESSAGE;
    d->err_code = 0;
    d->err_req_id = 0;
    d->err_msg[0] = '\0';
    if (decode(d, buf, len, out, &code) == 0) return 0;
    d->err_code = code;
    snprintf(d->err_msg, sizeof d->err_msg, "%s", lmm_error_get());
    return -1;
}
