/* proto/encode.c — lmm_msg -> one MessagePack map, through msgpack-c's packer, into a
 * caller buffer (no allocation). The message is checked first with the decoder's own
 * rules, so nothing is sent that the peer would reject. "t" comes first, then every
 * field in table order, except PROTO_OMIT_EMPTY fields whose value is 0 / empty. */
#include <string.h>

#include <msgpack.h>

#include "lmm/error.h"
#include "proto_internal.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "TOKEN.logits are sent as the host's float32 bytes: this code assumes a little-endian host"
#endif

typedef struct {
    char *buf;   /* [cap], NULL: only count */
    size_t cap;
    size_t len;
} writer;

static int write_cb(void *data, const char *b, size_t n) {
    writer *w = data;
    if (w->buf) {
        if (n > w->cap - w->len) return -1;
        memcpy(w->buf + w->len, b, n);
    }
    w->len += n;
    return 0;
}

static const void *at(const lmm_msg *m, size_t off) { return (const char *)m + off; }

static uint32_t u32_at(const lmm_msg *m, size_t off) {
    uint32_t v;
    memcpy(&v, at(m, off), sizeof v);
    return v;
}

static int pack_key(msgpack_packer *pk, const char *key) { return msgpack_pack_str_with_body(pk, key, strlen(key)); }

static int pack_field(msgpack_packer *pk, const proto_field *f, const lmm_msg *m) {
    int rc = pack_key(pk, f->key);
    switch (f->kind) {
    case PF_U32: rc |= msgpack_pack_uint32(pk, u32_at(m, f->off)); break;
    case PF_U64: rc |= msgpack_pack_uint64(pk, *(const uint64_t *)at(m, f->off)); break;
    case PF_F32: rc |= msgpack_pack_float(pk, *(const float *)at(m, f->off)); break;
    case PF_F64: rc |= msgpack_pack_double(pk, *(const double *)at(m, f->off)); break;
    case PF_BOOL: rc |= *(const bool *)at(m, f->off) ? msgpack_pack_true(pk) : msgpack_pack_false(pk); break;
    case PF_ENUM: {
        int v;
        memcpy(&v, at(m, f->off), sizeof v);
        rc |= pack_key(pk, f->names[v]); /* checked: 1 <= v < n_names */
        break;
    }
    case PF_STR: {
        const char *s = at(m, f->off);
        rc |= msgpack_pack_str_with_body(pk, s, strlen(s));
        break;
    }
    case PF_BYTES: {
        const lmm_proto_bytes *b = at(m, f->off);
        rc |= msgpack_pack_bin_with_body(pk, b->len ? b->ptr : "", b->len);
        break;
    }
    case PF_F32BLOB: {
        size_t n = (size_t)u32_at(m, f->len_off) * 4;
        rc |= msgpack_pack_bin_with_body(pk, n ? *(const void *const *)at(m, f->off) : "", n);
        break;
    }
    case PF_U32S: {
        uint32_t n = u32_at(m, f->len_off);
        const uint32_t *p = *(const uint32_t *const *)at(m, f->off);
        rc |= msgpack_pack_array(pk, n);
        for (uint32_t i = 0; i < n; i++) rc |= msgpack_pack_uint32(pk, p[i]);
        break;
    }
    case PF_U64S: {
        uint32_t n = u32_at(m, f->len_off);
        const uint64_t *p = *(const uint64_t *const *)at(m, f->off);
        rc |= msgpack_pack_array(pk, n);
        for (uint32_t i = 0; i < n; i++) rc |= msgpack_pack_uint64(pk, p[i]);
        break;
    }
    }
    return rc;
}

static int pack_msg(const lmm_msg *m, writer *w) {
    const proto_desc *d = &lmm_proto_descs[m->type];
    msgpack_packer pk;
    msgpack_packer_init(&pk, w, write_cb);
    size_t n = 1;
    for (uint32_t i = 0; i < d->n_fields; i++) n += !lmm_proto_field_omitted(&d->fields[i], m);
    int rc = msgpack_pack_map(&pk, n);
    rc |= pack_key(&pk, "t");
    rc |= pack_key(&pk, lmm_proto_type_name(m->type));
    for (uint32_t i = 0; i < d->n_fields && rc == 0; i++)
        if (!lmm_proto_field_omitted(&d->fields[i], m)) rc |= pack_field(&pk, &d->fields[i], m);
    return rc;
}

int lmm_proto_encode(const lmm_msg *m, void *buf, size_t cap, size_t *len) {
    *len = 0;
    if (lmm_proto_msg_check(m) != 0) return lmm_error_prefix("cannot encode %s", lmm_proto_type_name(m->type));
    writer w = {buf, buf ? cap : 0, 0};
    if (pack_msg(m, &w) != 0) {
        writer count = {NULL, 0, 0};
        pack_msg(m, &count);
        return lmm_error_set("cannot encode %s: it needs %zu bytes, the buffer has %zu", lmm_proto_type_name(m->type),
                             count.len, cap);
    }
    *len = w.len;
    return 0;
}
