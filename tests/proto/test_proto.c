/* tests/proto/test_proto.c — the messages between processes (lmm/proto.h): every type
 * round-trips with edge values; every class of malformed input (not a map, every
 * truncation, wrong value types, out-of-range numbers, oversized strings and arrays,
 * unknown, missing and duplicate fields, trailing bytes, a wrong protocol version) is
 * refused with a message naming the problem; random and mutated bytes never crash;
 * decoding allocates nothing. Malformed inputs are built independently of the encoder
 * under test: with msgpack-c's packer, or by editing a valid message's map. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <inttypes.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "lmm/error.h"
#include "lmm/proto.h"

static lmm_proto_decoder *dec;
static lmm_msg got;

/* ---- sample messages -------------------------------------------------------------- */

static uint32_t s_seq[LMM_PROTO_MAX_STEP_TOKENS + 1], s_tok[LMM_PROTO_MAX_STEP_TOKENS + 1];
static uint32_t s_pos[LMM_PROTO_MAX_STEP_TOKENS + 1], s_out[LMM_PROTO_MAX_STEP_TOKENS + 1];
static uint32_t s_slots[LMM_PROTO_MAX_LAYERS + 1];
static uint32_t s_file[LMM_PROTO_MAX_SEGMENTS + 1];
static uint64_t s_off[LMM_PROTO_MAX_SEGMENTS + 1], s_len[LMM_PROTO_MAX_SEGMENTS + 1], s_soff[LMM_PROTO_MAX_SEGMENTS + 1];
static char s_prompt[LMM_PROTO_MAX_PROMPT_BYTES + 16];
static char s_text[LMM_PROTO_MAX_TEXT_BYTES + 16];
static float s_logits[LMM_PROTO_MAX_VOCAB + 1];
static char enc[LMM_PROTO_MAX_MSG_BYTES];  /* encodings */
static char enc2[LMM_PROTO_MAX_MSG_BYTES];

static void fill_str(char *dst, size_t n, char c) {
    memset(dst, c, n);
    dst[n] = '\0';
}

/* A valid message of type t: variant 0 = smallest/zero edge values, 1 = largest. */
static void sample(lmm_msg *m, lmm_msg_type t, int big) {
    lmm_proto_msg_init(m, t);
    switch (t) {
    case LMM_MSG_HELLO:
        m->hello.role = big ? LMM_PROTO_ROLE_LAUNCH : LMM_PROTO_ROLE_CLIENT;
        m->hello.pid = big ? INT32_MAX : 1;
        if (big) fill_str(m->hello.name, LMM_PROTO_MAX_NAME, 'n');
        break;
    case LMM_MSG_HELLO_ACK:
        m->hello_ack.ok = !big;
        m->hello_ack.role = big ? LMM_PROTO_ROLE_CACHE : LMM_PROTO_ROLE_SCHEDULER;
        if (big) {
            lmm_msg_hello_ack *a = &m->hello_ack;
            fill_str(a->error, LMM_PROTO_MAX_ERROR, 'e');
            fill_str(a->model, LMM_PROTO_MAX_PATH, 'm');
            fill_str(a->weights_shm, LMM_PROTO_MAX_SHM_NAME, 'w');
            a->weights_shm[0] = '/';
            strcpy(a->act_shm, "/a");
            a->layer_begin = LMM_PROTO_MAX_LAYERS - 1;
            a->layer_end = LMM_PROTO_MAX_LAYERS;
            a->max_batch = LMM_PROTO_MAX_STEP_TOKENS;
            a->piece_bytes = LMM_PROTO_MAX_BYTES;
        }
        break;
    case LMM_MSG_ERROR:
        m->error.code = big ? LMM_PROTO_E_COUNT - 1 : 1;
        m->error.req_id = big ? UINT64_MAX : 0;
        if (big) fill_str(m->error.message, LMM_PROTO_MAX_ERROR, '\xc3');
        break;
    case LMM_MSG_SHUTDOWN:
    case LMM_MSG_STATUS:
        break;
    case LMM_MSG_STATUS_REPLY: {
        lmm_msg_status_reply *r = &m->status_reply;
        r->role = big ? LMM_PROTO_ROLE_COMPUTE : LMM_PROTO_ROLE_LOADER;
        r->pid = big ? INT32_MAX : 1;
        if (big) fill_str(r->name, LMM_PROTO_MAX_NAME, 'c');
        uint64_t x = big ? UINT64_MAX : 0;
        r->uptime_ms = r->served = r->tokens = r->bytes_read = r->rss_bytes = r->shm_bytes = x;
        r->active = big ? UINT32_MAX : 0;
        r->ready = big;
        if (big) fill_str(r->waiting, LMM_PROTO_MAX_NAME, 'w');
        r->ring_slots = r->ring_pinned = r->ring_streaming = r->ring_busy = r->prefetch_depth =
            big ? LMM_PROTO_MAX_SLOTS : 0;
        r->tokens_per_s = big ? DBL_MAX : 0.0;
        r->budget_bytes = r->budget_used = r->budget_min = r->steps = x;
        break;
    }
    case LMM_MSG_GENERATE: {
        lmm_msg_generate *g = &m->generate;
        g->req_id = big ? UINT64_MAX : 0;
        if (big) {
            for (size_t i = 0; i < 1000; i++) s_prompt[i] = (char)(i * 7); /* NUL and high bytes inside */
            g->prompt = (lmm_proto_bytes){s_prompt, 1000};
            g->max_tokens = LMM_PROTO_MAX_GEN_TOKENS;
            g->sampling.temperature = FLT_MAX;
            g->sampling.top_k = UINT32_MAX;
            g->sampling.top_p = 1e-45f; /* smallest subnormal: still > 0 */
            g->sampling.repeat_penalty = FLT_MIN;
            g->sampling.repeat_last_n = UINT32_MAX;
            g->sampling.seed = UINT64_MAX;
            g->dump_logits = true;
            g->stats = true;
            g->max_tokens_default = true;
        } else {
            g->sampling.temperature = -0.0f; /* >= 0, and its sign must survive */
        }
        break;
    }
    case LMM_MSG_TOKEN:
        m->token.req_id = big ? UINT64_MAX : 0;
        m->token.id = big ? LMM_PROTO_MAX_VOCAB - 1 : 0;
        if (big) {
            for (size_t i = 0; i < LMM_PROTO_MAX_TEXT_BYTES; i++) s_text[i] = (char)(0x80 + i % 64); /* partial UTF-8 */
            m->token.text = (lmm_proto_bytes){s_text, LMM_PROTO_MAX_TEXT_BYTES};
            for (size_t i = 0; i < 1000; i++) s_logits[i] = (float)i * -0.5f;
            s_logits[1] = -INFINITY; /* payloads are raw bytes: not checked */
            s_logits[2] = NAN;
            m->token.logits = s_logits;
            m->token.n_logits = 1000;
            m->token.step_usec = UINT64_MAX;
            m->token.compute_usec = 1;
            m->token.io_wait_usec = 2;
            m->token.bytes_read = (uint64_t)1 << 40;
        }
        break;
    case LMM_MSG_DONE:
        m->done.req_id = big ? UINT64_MAX : 0;
        m->done.n_prompt = big ? LMM_PROTO_MAX_POS : 0;
        m->done.n_generated = big ? LMM_PROTO_MAX_GEN_TOKENS : 0;
        m->done.stop = big ? LMM_PROTO_STOP_CANCELLED : LMM_PROTO_STOP_LENGTH;
        m->done.tokens_per_s = big ? DBL_MAX : 0.0;
        m->done.io_stall_s = big ? DBL_MAX : 0.0; /* optional: left out when 0 */
        break;
    case LMM_MSG_CANCEL:
        m->cancel.req_id = big ? UINT64_MAX : 0;
        break;
    case LMM_MSG_RING_ATTACH:
        m->ring_attach.ring = big ? LMM_PROTO_MAX_RINGS - 1 : 0;
        if (big) {
            fill_str(m->ring_attach.shm, LMM_PROTO_MAX_SHM_NAME, 's');
            m->ring_attach.shm[0] = '/';
        } else {
            strcpy(m->ring_attach.shm, "/r");
        }
        m->ring_attach.slot_size = big ? LMM_PROTO_MAX_BYTES / LMM_PROTO_MAX_SLOTS : 1;
        m->ring_attach.n_slots = big ? LMM_PROTO_MAX_SLOTS : 1;
        break;
    case LMM_MSG_ACK:
        m->ack.of = big ? LMM_MSG_SLOT_FREE : LMM_MSG_HELLO;
        break;
    case LMM_MSG_LOAD: {
        lmm_msg_load *l = &m->load;
        l->req_id = big ? UINT64_MAX : 0;
        l->slot = big ? LMM_PROTO_MAX_SLOTS - 1 : 0;
        l->tag = big ? UINT64_MAX : 0;
        l->n_segments = big ? LMM_PROTO_MAX_SEGMENTS : 1;
        for (uint32_t i = 0; i < l->n_segments; i++) {
            s_file[i] = big ? LMM_PROTO_MAX_FILES - 1 - i % LMM_PROTO_MAX_FILES : 0;
            s_off[i] = big ? LMM_PROTO_MAX_BYTES - 1 - i : 0;
            s_len[i] = 1;
            s_soff[i] = big ? LMM_PROTO_MAX_BYTES - 4096 * (uint64_t)(i + 1) : 0;
        }
        if (big) s_off[0] = 0, s_len[0] = LMM_PROTO_MAX_BYTES; /* the largest range */
        l->file = s_file, l->offset = s_off, l->length = s_len, l->slot_offset = s_soff;
        break;
    }
    case LMM_MSG_LOADED:
        m->loaded.req_id = big ? UINT64_MAX : 0;
        m->loaded.slot = big ? LMM_PROTO_MAX_SLOTS - 1 : 0;
        m->loaded.tag = big ? UINT64_MAX : 0;
        m->loaded.generation = big ? UINT64_MAX : 0;
        m->loaded.status = big ? UINT32_MAX : 0;
        m->loaded.bytes = big ? LMM_PROTO_MAX_BYTES : 0;
        m->loaded.usec = big ? UINT64_MAX : 0;
        if (big) fill_str(m->loaded.error, LMM_PROTO_MAX_ERROR, 'x');
        break;
    case LMM_MSG_STEP: {
        lmm_msg_step *s = &m->step;
        uint32_t n = big ? LMM_PROTO_MAX_STEP_TOKENS : 1;
        for (uint32_t i = 0; i < n; i++) {
            s_seq[i] = big ? LMM_PROTO_MAX_SEQS - 1 - i % LMM_PROTO_MAX_SEQS : 0;
            s_tok[i] = big ? LMM_PROTO_MAX_VOCAB - 1 - i : 0;
            s_pos[i] = big ? LMM_PROTO_MAX_POS - 1 - i : 0;
            s_out[i] = i;
        }
        s->step_id = big ? UINT64_MAX : 0;
        s->n_tokens = n;
        s->seq = s_seq, s->tokens = s_tok, s->pos = s_pos;
        s->n_out = big ? n : 0;
        s->out = big ? s_out : NULL;
        s->layer_begin = 0;
        s->layer_end = big ? LMM_PROTO_MAX_LAYERS : 1;
        s->n_slots = s->layer_end;
        for (uint32_t i = 0; i < s->n_slots; i++) s_slots[i] = big ? LMM_PROTO_MAX_SLOTS - 1 - i : 0;
        s->slots = s_slots;
        s->act_offset = big ? LMM_PROTO_MAX_BYTES - 1 : 0;
        break;
    }
    case LMM_MSG_STEP_DONE:
        m->step_done.step_id = big ? UINT64_MAX : 0;
        m->step_done.status = big ? UINT32_MAX : 0;
        m->step_done.out_offset = 0;
        m->step_done.out_bytes = big ? LMM_PROTO_MAX_BYTES : 0;
        m->step_done.usec = big ? UINT64_MAX : 0;
        m->step_done.wait_usec = big ? UINT64_MAX : 0; /* optional: left out when 0 */
        break;
    case LMM_MSG_SLOT_FREE:
        m->slot_free.slot = big ? LMM_PROTO_MAX_SLOTS - 1 : 0;
        break;
    case LMM_MSG_PING:
        break;
    case LMM_MSG_KV_GET:
        m->kv_get.slot = big ? LMM_PROTO_MAX_SLOTS - 1 : 0;
        m->kv_get.offset = big ? LMM_PROTO_MAX_BYTES - LMM_PROTO_MAX_KV_CHUNK : 0;
        m->kv_get.length = big ? LMM_PROTO_MAX_KV_CHUNK : 1;
        break;
    case LMM_MSG_KV_DATA: {
        static char s_kv[LMM_PROTO_MAX_KV_CHUNK];
        for (size_t i = 0; i < 4096; i++) s_kv[i] = (char)(i * 31);
        m->kv_data.slot = big ? LMM_PROTO_MAX_SLOTS - 1 : 0;
        m->kv_data.offset = big ? LMM_PROTO_MAX_BYTES - LMM_PROTO_MAX_KV_CHUNK : 0;
        m->kv_data.data = (lmm_proto_bytes){s_kv, big ? LMM_PROTO_MAX_KV_CHUNK : 1};
        m->kv_data.checksum = big ? UINT64_MAX : 0;
        break;
    }
    default:
        fail_msg("no sample for type %d", (int)t);
    }
}

static size_t encode_ok(const lmm_msg *m, char *buf) {
    size_t n = 0;
    if (lmm_proto_encode(m, buf, LMM_PROTO_MAX_MSG_BYTES, &n) != 0)
        fail_msg("encode %s: %s", lmm_proto_type_name(m->type), lmm_error_get());
    return n;
}

static void expect_fail_(const void *buf, size_t len, const char *want, int line) {
    if (lmm_proto_decode(dec, buf, len, &got) == 0)
        fail_msg("line %d: %zu bytes decoded as %s; expected an error containing \"%s\"", line, len,
                 lmm_proto_type_name(got.type), want);
    if (!strstr(lmm_error_get(), want))
        fail_msg("line %d: error \"%s\" does not contain \"%s\"", line, lmm_error_get(), want);
}
#define expect_fail(b, l, w) expect_fail_(b, l, w, __LINE__)

/* ---- editing a valid message's map (independent of the decoder under test) --------- */

typedef void (*pack_fn)(msgpack_packer *pk, const void *arg);

typedef struct {
    const char *drop;   /* leave this entry out */
    const char *dup;    /* write this entry twice */
    const char *set;    /* replace this entry's value (or add the entry) */
    pack_fn set_fn;
    const void *set_arg;
} edit;

static bool key_eq(const msgpack_object *k, const char *s) {
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(s) && memcmp(k->via.str.ptr, s, k->via.str.size) == 0;
}

/* Encodes m, applies e, and leaves the result in *sb (initialised here). */
static void edit_msg(const lmm_msg *m, const edit *e, msgpack_sbuffer *sb) {
    size_t n = encode_ok(m, enc2);
    msgpack_zone z;
    msgpack_zone_init(&z, 4096);
    msgpack_object root;
    size_t off = 0;
    assert_int_equal(msgpack_unpack(enc2, n, &off, &z, &root), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(root.type, MSGPACK_OBJECT_MAP);
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    uint32_t count = 0;
    bool has_set = false;
    for (uint32_t i = 0; i < root.via.map.size; i++) {
        const msgpack_object *k = &root.via.map.ptr[i].key;
        if (e->drop && key_eq(k, e->drop)) continue;
        count += e->dup && key_eq(k, e->dup) ? 2 : 1;
        if (e->set && key_eq(k, e->set)) has_set = true;
    }
    if (e->set && !has_set) count++;
    msgpack_pack_map(&pk, count);
    for (uint32_t i = 0; i < root.via.map.size; i++) {
        const msgpack_object_kv *kv = &root.via.map.ptr[i];
        if (e->drop && key_eq(&kv->key, e->drop)) continue;
        for (int r = 0; r < (e->dup && key_eq(&kv->key, e->dup) ? 2 : 1); r++) {
            msgpack_pack_object(&pk, kv->key);
            if (e->set && key_eq(&kv->key, e->set))
                e->set_fn(&pk, e->set_arg);
            else
                msgpack_pack_object(&pk, kv->val);
        }
    }
    if (e->set && !has_set) {
        msgpack_pack_str_with_body(&pk, e->set, strlen(e->set));
        e->set_fn(&pk, e->set_arg);
    }
    msgpack_zone_destroy(&z);
}

static void expect_edit_fails_(lmm_msg_type t, int big, const edit *e, const char *want, int line) {
    lmm_msg m;
    sample(&m, t, big);
    msgpack_sbuffer sb;
    edit_msg(&m, e, &sb);
    expect_fail_(sb.data, sb.size, want, line);
    msgpack_sbuffer_destroy(&sb);
}
#define expect_edit_fails(t, e, w) expect_edit_fails_(t, 0, e, w, __LINE__)

static void pk_i64(msgpack_packer *pk, const void *a) { msgpack_pack_int64(pk, *(const int64_t *)a); }
static void pk_u64(msgpack_packer *pk, const void *a) { msgpack_pack_uint64(pk, *(const uint64_t *)a); }
static void pk_f64(msgpack_packer *pk, const void *a) { msgpack_pack_double(pk, *(const double *)a); }
static void pk_f32(msgpack_packer *pk, const void *a) { msgpack_pack_float(pk, *(const float *)a); }
static void pk_str(msgpack_packer *pk, const void *a) { msgpack_pack_str_with_body(pk, a, strlen(a)); }
static void pk_bin(msgpack_packer *pk, const void *a) { msgpack_pack_bin_with_body(pk, a, strlen(a)); }
static void pk_nil(msgpack_packer *pk, const void *a) { (void)a, msgpack_pack_nil(pk); }
static void pk_true(msgpack_packer *pk, const void *a) { (void)a, msgpack_pack_true(pk); }
static void pk_false(msgpack_packer *pk, const void *a) { (void)a, msgpack_pack_false(pk); }
static void pk_map0(msgpack_packer *pk, const void *a) { (void)a, msgpack_pack_map(pk, 0); }
/* An array of p[0] copies of p[1] (int64_t p[2]); a negative p[1] only as the last element. */
static void pk_uarr(msgpack_packer *pk, const void *a) {
    const int64_t *p = a;
    msgpack_pack_array(pk, (size_t)p[0]);
    for (int64_t i = 0; i < p[0]; i++) {
        if (i == p[0] - 1 && p[1] < 0)
            msgpack_pack_int64(pk, p[1]);
        else
            msgpack_pack_uint64(pk, (uint64_t)p[1]);
    }
}
static void pk_arr_str(msgpack_packer *pk, const void *a) {
    (void)a;
    msgpack_pack_array(pk, 1);
    msgpack_pack_str_with_body(pk, "x", 1);
}
static void pk_bytes_n(msgpack_packer *pk, const void *a) { /* bin of *(size_t*)a bytes */
    size_t n = *(const size_t *)a;
    msgpack_pack_bin(pk, n);
    for (size_t i = 0; i < n; i += 4096) msgpack_pack_bin_body(pk, s_prompt, n - i < 4096 ? n - i : 4096);
}

#define SET(k, fn, arg) (&(edit){.set = k, .set_fn = fn, .set_arg = arg})

/* ---- round trips -------------------------------------------------------------------- */

static void test_roundtrip_every_type(void **state) {
    (void)state;
    for (int t = 1; t < LMM_MSG_COUNT; t++)
        for (int big = 0; big < 2; big++) {
            lmm_msg m;
            sample(&m, (lmm_msg_type)t, big);
            size_t n = encode_ok(&m, enc), counted = 0;
            assert_int_equal(lmm_proto_encode(&m, NULL, 0, &counted), 0);
            assert_int_equal(counted, n);
            if (lmm_proto_decode(dec, enc, n, &got) != 0)
                fail_msg("%s/%d: %s", lmm_proto_type_name((lmm_msg_type)t), big, lmm_error_get());
            if (!lmm_proto_msg_equal(&m, &got)) fail_msg("%s/%d: differs after a round trip", lmm_proto_type_name((lmm_msg_type)t), big);
            /* Payloads point into the input, arrays into the decoder. */
            if (t == LMM_MSG_GENERATE && big)
                assert_true((const char *)got.generate.prompt.ptr > enc && (const char *)got.generate.prompt.ptr < enc + n);
            if (t == LMM_MSG_STEP) assert_true(got.step.tokens != s_tok);
            /* A buffer one byte short is refused with the size needed. */
            size_t dummy;
            assert_int_equal(lmm_proto_encode(&m, enc2, n - 1, &dummy), -1);
            char want[64];
            snprintf(want, sizeof want, "needs %zu bytes", n);
            if (!strstr(lmm_error_get(), want)) fail_msg("%s", lmm_error_get());
        }
}

static void test_edge_values_exact(void **state) {
    (void)state;
    lmm_msg m;
    sample(&m, LMM_MSG_GENERATE, 0);
    size_t n = encode_ok(&m, enc);
    assert_int_equal(lmm_proto_decode(dec, enc, n, &got), 0);
    assert_true(signbit(got.generate.sampling.temperature)); /* -0.0 kept */
    assert_int_equal(got.generate.prompt.len, 0);

    sample(&m, LMM_MSG_TOKEN, 1);
    n = encode_ok(&m, enc);
    assert_int_equal(lmm_proto_decode(dec, enc, n, &got), 0);
    assert_int_equal(got.token.n_logits, 1000);
    assert_true(got.token.step_usec == UINT64_MAX && got.token.compute_usec == 1 && got.token.io_wait_usec == 2 &&
                got.token.bytes_read == (uint64_t)1 << 40);
    float f[3];
    memcpy(f, got.token.logits, sizeof f); /* possibly unaligned */
    assert_true(f[0] == 0.0f && isinf(f[1]) && f[1] < 0 && isnan(f[2]));
    memcpy(f, (const char *)got.token.logits + 999 * 4, 4);
    assert_true(f[0] == -499.5f);

    /* Fields that are left out when empty: absent on the wire, 0 / empty after decoding. */
    sample(&m, LMM_MSG_STEP, 0);
    m.step.n_slots = 0;
    m.step.slots = NULL;
    n = encode_ok(&m, enc);
    assert_null(memmem(enc, n, "slots", 5));
    assert_int_equal(lmm_proto_decode(dec, enc, n, &got), 0);
    assert_int_equal(got.step.n_slots, 0);
    assert_true(lmm_proto_msg_equal(&m, &got));
    sample(&m, LMM_MSG_HELLO_ACK, 0);
    n = encode_ok(&m, enc);
    assert_null(memmem(enc, n, "model", 5));
    assert_null(memmem(enc, n, "piece_bytes", 11));
    sample(&m, LMM_MSG_HELLO_ACK, 1);
    n = encode_ok(&m, enc);
    assert_non_null(memmem(enc, n, "piece_bytes", 11));
}

/* The biggest valid messages fit LMM_PROTO_MAX_MSG_BYTES. */
static void test_largest_messages_fit(void **state) {
    (void)state;
    lmm_msg m;
    size_t n;
    sample(&m, LMM_MSG_GENERATE, 1);
    memset(s_prompt, 0xff, LMM_PROTO_MAX_PROMPT_BYTES);
    m.generate.prompt = (lmm_proto_bytes){s_prompt, LMM_PROTO_MAX_PROMPT_BYTES};
    assert_int_equal(lmm_proto_encode(&m, NULL, 0, &n), 0);
    assert_true(n <= LMM_PROTO_MAX_MSG_BYTES);
    n = encode_ok(&m, enc);
    assert_int_equal(lmm_proto_decode(dec, enc, n, &got), 0);
    assert_true(lmm_proto_msg_equal(&m, &got));

    sample(&m, LMM_MSG_TOKEN, 1);
    m.token.n_logits = LMM_PROTO_MAX_VOCAB;
    n = encode_ok(&m, enc);
    assert_int_equal(lmm_proto_decode(dec, enc, n, &got), 0);
    assert_true(lmm_proto_msg_equal(&m, &got));
}

static void test_generate_defaults_and_numbers(void **state) {
    (void)state;
    /* A client in another language sends only what it needs, floats as float64 or integers. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
    pk_str(&pk, "prompt"), pk_str(&pk, "Once upon");
    pk_str(&pk, "t"), pk_str(&pk, "GENERATE");
    pk_str(&pk, "req_id"), msgpack_pack_uint8(&pk, 7);
    pk_str(&pk, "max_tokens"), msgpack_pack_uint16(&pk, 300);
    pk_str(&pk, "top_p"), msgpack_pack_double(&pk, 0.5);
    if (lmm_proto_decode(dec, sb.data, sb.size, &got) != 0) fail_msg("%s", lmm_error_get());
    lmm_sampler_opts def;
    lmm_sampler_opts_default(&def);
    assert_int_equal(got.type, LMM_MSG_GENERATE);
    assert_int_equal(got.generate.req_id, 7);
    assert_int_equal(got.generate.max_tokens, 300);
    assert_int_equal(got.generate.prompt.len, 9);
    assert_memory_equal(got.generate.prompt.ptr, "Once upon", 9);
    assert_true(got.generate.sampling.top_p == 0.5f);
    assert_true(got.generate.sampling.temperature == def.temperature);
    assert_int_equal(got.generate.sampling.top_k, def.top_k);
    assert_int_equal(got.generate.sampling.seed, def.seed);
    assert_false(got.generate.dump_logits);
    msgpack_sbuffer_destroy(&sb);

    int64_t one = 1;
    lmm_msg m;
    sample(&m, LMM_MSG_GENERATE, 0);
    msgpack_sbuffer_init(&sb);
    edit_msg(&m, SET("temperature", pk_i64, &one), &sb);
    assert_int_equal(lmm_proto_decode(dec, sb.data, sb.size, &got), 0);
    assert_true(got.generate.sampling.temperature == 1.0f);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- malformed input, one class at a time ---------------------------------------------- */

static void test_not_a_map(void **state) {
    (void)state;
    const unsigned char arr[] = {0x91, 0x01}, num[] = {0x05}, str[] = {0xa1, 't'}, nil[] = {0xc0};
    expect_fail(arr, sizeof arr, "not a map (it starts with an array");
    expect_fail(num, sizeof num, "not a map (it starts with an integer");
    expect_fail(str, sizeof str, "not a map (it starts with a string");
    expect_fail(nil, sizeof nil, "not a map");
    expect_fail("", 0, "empty message");
    const unsigned char bad[] = {0x81, 0xc1, 0x00};
    expect_fail(bad, sizeof bad, "byte 0xc1 at offset 1 is not valid MessagePack");
}

static void test_truncated_at_every_length(void **state) {
    (void)state;
    for (int t = 1; t < LMM_MSG_COUNT; t++)
        for (int big = 0; big < 2; big++) {
            if (big && (t == LMM_MSG_STEP || t == LMM_MSG_TOKEN || t == LMM_MSG_LOAD || t == LMM_MSG_KV_DATA))
                continue; /* long: below */
            lmm_msg m;
            sample(&m, (lmm_msg_type)t, big);
            size_t n = encode_ok(&m, enc);
            for (size_t len = 0; len < n; len++) {
                if (lmm_proto_decode(dec, enc, len, &got) == 0)
                    fail_msg("%s: a prefix of %zu of %zu bytes decoded", lmm_proto_type_name((lmm_msg_type)t), len, n);
                const char *e = lmm_error_get();
                if (!strstr(e, len ? "truncated" : "empty message"))
                    fail_msg("%s prefix %zu: %s", lmm_proto_type_name((lmm_msg_type)t), len, e);
            }
        }
    /* A KV_DATA of a whole chunk, at a few lengths through its data. */
    lmm_msg kd;
    sample(&kd, LMM_MSG_KV_DATA, 1);
    size_t nk = encode_ok(&kd, enc);
    for (size_t len = 0; len < nk; len += 4099) expect_fail(enc, len, len ? "truncated" : "empty");
    /* The STEP at its limits, at a few lengths through each array. */
    lmm_msg m;
    sample(&m, LMM_MSG_STEP, 1);
    size_t n = encode_ok(&m, enc);
    for (size_t len = 0; len < n; len += 997) expect_fail(enc, len, len ? "truncated" : "empty");
    expect_fail(enc, n - 1, "truncated");
    sample(&m, LMM_MSG_LOAD, 1);
    n = encode_ok(&m, enc);
    for (size_t len = 0; len < n; len += 997) expect_fail(enc, len, len ? "truncated" : "empty");
    expect_fail(enc, n - 1, "truncated");
}

static void test_wrong_value_types(void **state) {
    (void)state;
    int64_t one = 1;
    expect_edit_fails(LMM_MSG_GENERATE, SET("max_tokens", pk_str, "10"),
                      "field 'max_tokens' in GENERATE: expected an unsigned integer, got a string");
    expect_edit_fails(LMM_MSG_GENERATE, SET("prompt", pk_i64, &one),
                      "field 'prompt' in GENERATE: expected a string or binary data, got an unsigned integer");
    expect_edit_fails(LMM_MSG_GENERATE, SET("dump_logits", pk_i64, &one),
                      "field 'dump_logits' in GENERATE: expected a boolean, got an unsigned integer");
    expect_edit_fails(LMM_MSG_GENERATE, SET("temperature", pk_str, "hot"),
                      "field 'temperature' in GENERATE: expected a number, got a string");
    expect_edit_fails(LMM_MSG_GENERATE, SET("seed", pk_nil, NULL), "field 'seed' in GENERATE: expected an unsigned integer, got nil");
    expect_edit_fails(LMM_MSG_STEP, SET("tokens", pk_map0, NULL), "field 'tokens' in STEP: expected an array, got a map");
    expect_edit_fails(LMM_MSG_STEP, SET("tokens", pk_arr_str, NULL),
                      "field 'tokens' in STEP: element 0: expected an unsigned integer, got a string");
    expect_edit_fails(LMM_MSG_HELLO, SET("role", pk_i64, &one), "field 'role' in HELLO: expected a string, got an unsigned integer");
    expect_edit_fails(LMM_MSG_HELLO, SET("role", pk_str, "boss"),
                      "field 'role' in HELLO: 'boss' is not one of client, scheduler, loader, compute, cache, launch");
    expect_edit_fails(LMM_MSG_TOKEN, SET("logits", pk_str, "abcd"), "field 'logits' in TOKEN: expected binary data, got a string");
    expect_edit_fails(LMM_MSG_TOKEN, SET("logits", pk_bin, "abcde"),
                      "field 'logits' in TOKEN: 5 bytes is not a whole number of float32");
    expect_edit_fails(LMM_MSG_HELLO, SET("name", pk_true, NULL),
                      "field 'name' in HELLO: expected a string or binary data, got a boolean");
    expect_edit_fails(LMM_MSG_ACK, SET("of", pk_str, "NOPE"), "field 'of' in ACK: 'NOPE' is not one of HELLO");
    expect_edit_fails(LMM_MSG_GENERATE, SET("t", pk_i64, &one), "field 't' (message type): expected a string, got an unsigned integer");
    expect_edit_fails(LMM_MSG_GENERATE, SET("t", pk_str, "GENERATE\x01"), "unknown message type 'GENERATE\\x01'");

    /* A key that is not a string. */
    const unsigned char intkey[] = {0x82, 0xa1, 't', 0xa6, 'C', 'A', 'N', 'C', 'E', 'L', 0x01, 0x02};
    expect_fail(intkey, sizeof intkey, "key of entry 1 is an unsigned integer, not a string");
}

static void pk_str_nul(msgpack_packer *pk, const void *a) {
    (void)a;
    msgpack_pack_str_with_body(pk, "/a\0b", 4);
}

static void test_out_of_range_numbers(void **state) {
    (void)state;
    int64_t neg = -3, neg1 = -1;
    uint64_t big = (uint64_t)LMM_PROTO_MAX_GEN_TOKENS + 1, u32over = (uint64_t)UINT32_MAX + 1, slots = LMM_PROTO_MAX_SLOTS;
    uint64_t zero = 0;
    double huge = 1e300, nan_ = NAN, inf = INFINITY, neg_tps = -1.0;
    float topp = 1.5f, negtemp = -1.0f, zpen = 0.0f;
    expect_edit_fails(LMM_MSG_GENERATE, SET("max_tokens", pk_i64, &neg), "field 'max_tokens' in GENERATE: -3 is negative");
    expect_edit_fails(LMM_MSG_GENERATE, SET("max_tokens", pk_u64, &big),
                      "field 'max_tokens' in GENERATE: 1048577 is out of range [0, 1048576]");
    expect_edit_fails(LMM_MSG_GENERATE, SET("top_k", pk_u64, &u32over),
                      "field 'top_k' in GENERATE: 4294967296 is out of range [0, 4294967295]");
    expect_edit_fails(LMM_MSG_GENERATE, SET("req_id", pk_i64, &neg1), "field 'req_id' in GENERATE: -1 is negative");
    expect_edit_fails(LMM_MSG_GENERATE, SET("temperature", pk_f64, &huge),
                      "field 'temperature' in GENERATE: 1e+300 is out of range for a float32");
    expect_edit_fails(LMM_MSG_GENERATE, SET("temperature", pk_f64, &nan_), "field 'temperature' in GENERATE: nan is not a finite number");
    expect_edit_fails(LMM_MSG_GENERATE, SET("top_p", pk_f64, &inf), "field 'top_p' in GENERATE: inf is not a finite number");
    expect_edit_fails(LMM_MSG_GENERATE, SET("top_p", pk_f32, &topp), "field 'top_p' in GENERATE: 1.5 is not in (0, 1]");
    expect_edit_fails(LMM_MSG_GENERATE, SET("temperature", pk_f32, &negtemp), "field 'temperature' in GENERATE: -1 is negative");
    expect_edit_fails(LMM_MSG_GENERATE, SET("repeat_penalty", pk_f32, &zpen),
                      "field 'repeat_penalty' in GENERATE: 0 is not positive");
    expect_edit_fails(LMM_MSG_DONE, SET("tokens_per_s", pk_f64, &neg_tps), "field 'tokens_per_s' in DONE: -1 is negative");
    expect_edit_fails(LMM_MSG_DONE, SET("io_stall_s", pk_f64, &neg_tps), "field 'io_stall_s' in DONE: -1 is negative");
    expect_edit_fails(LMM_MSG_STEP_DONE, SET("wait_usec", pk_i64, &neg1), "field 'wait_usec' in STEP_DONE: -1 is negative");
    expect_edit_fails(LMM_MSG_SLOT_FREE, SET("slot", pk_u64, &slots), "field 'slot' in SLOT_FREE: 65536 is out of range [0, 65535]");
    uint64_t chunk_over = (uint64_t)LMM_PROTO_MAX_KV_CHUNK + 1, far = LMM_PROTO_MAX_BYTES;
    expect_edit_fails(LMM_MSG_KV_GET, SET("slot", pk_u64, &slots), "field 'slot' in KV_GET: 65536 is out of range [0, 65535]");
    expect_edit_fails(LMM_MSG_KV_GET, SET("length", pk_u64, &zero), "field 'length' in KV_GET: 0 is out of range [1, 1048576]");
    expect_edit_fails(LMM_MSG_KV_GET, SET("length", pk_u64, &chunk_over),
                      "field 'length' in KV_GET: 1048577 is out of range [1, 1048576]");
    expect_edit_fails(LMM_MSG_KV_GET, SET("offset", pk_u64, &far), "KV_GET: offset 281474976710656 + length 1 exceed");
    expect_edit_fails(LMM_MSG_KV_DATA, SET("data", pk_bin, ""), "field 'data' in KV_DATA: empty");
    expect_edit_fails(LMM_MSG_KV_DATA, SET("offset", pk_u64, &far), "KV_DATA: offset 281474976710656 + 1 bytes exceed");
    expect_edit_fails(LMM_MSG_KV_DATA, SET("checksum", pk_i64, &neg1), "field 'checksum' in KV_DATA: -1 is negative");
    expect_edit_fails(LMM_MSG_HELLO, SET("pid", pk_u64, &zero), "field 'pid' in HELLO: 0 is out of range [1, 2147483647]");
    expect_edit_fails(LMM_MSG_ERROR, SET("code", pk_u64, &zero), "field 'code' in ERROR: 0 is out of range");
    int64_t len0[2] = {1, 0}, file_big[2] = {1, LMM_PROTO_MAX_FILES}, soff_odd[2] = {1, 100};
    int64_t off_far[2] = {1, (int64_t)LMM_PROTO_MAX_BYTES}, segs2[2] = {2, 0};
    expect_edit_fails(LMM_MSG_LOAD, SET("length", pk_uarr, len0), "field 'length' in LOAD: element 0: 0 is out of range [1, ");
    expect_edit_fails(LMM_MSG_LOAD, SET("file", pk_uarr, file_big), "field 'file' in LOAD: element 0: 1024 is out of range [0, 1023]");
    expect_edit_fails(LMM_MSG_LOAD, SET("slot_offset", pk_uarr, soff_odd),
                      "field 'slot_offset' in LOAD: element 0: 100 is not a multiple of 4096");
    expect_edit_fails(LMM_MSG_LOAD, SET("offset", pk_uarr, off_far), "LOAD: segment 0: range [281474976710656, +1) ends beyond");
    expect_edit_fails(LMM_MSG_LOAD, SET("slot_offset", pk_uarr, segs2), "field 'slot_offset' in LOAD: 2 elements, but 'file' has 1");
    expect_edit_fails(LMM_MSG_LOAD, SET("offset", pk_str, "0"), "field 'offset' in LOAD: expected an array, got a string");
    expect_edit_fails(LMM_MSG_RING_ATTACH, SET("shm", pk_str, "noslash"),
                      "field 'shm' in RING_ATTACH: 'noslash' is not a shared-memory name");
    expect_edit_fails(LMM_MSG_RING_ATTACH, SET("shm", pk_str, "/a/b"), "field 'shm' in RING_ATTACH: '/a/b' is not a shared-memory name");
    expect_edit_fails(LMM_MSG_RING_ATTACH, SET("shm", pk_str_nul, NULL), "field 'shm' in RING_ATTACH: contains a NUL byte");
    uint64_t l0 = 1;
    expect_edit_fails(LMM_MSG_HELLO_ACK, SET("layer_begin", pk_u64, &l0), "HELLO_ACK: empty layer range [1, 0)");
    expect_edit_fails(LMM_MSG_HELLO_ACK, SET("weights_shm", pk_str, "ring"),
                      "field 'weights_shm' in HELLO_ACK: 'ring' is not a shared-memory name");
    expect_edit_fails_(LMM_MSG_HELLO_ACK, 1, SET("ok", pk_true, NULL), "field 'error' in HELLO_ACK: must be empty when ok is true",
                       __LINE__);
    expect_edit_fails(LMM_MSG_HELLO_ACK, SET("ok", pk_false, NULL), "field 'error' in HELLO_ACK: must say why when ok is false");
    (void)neg;

    /* STEP: element bounds and the cross-field rules. */
    int64_t tok_neg[2] = {1, -1}, tok_big[2] = {1, LMM_PROTO_MAX_VOCAB}, two[2] = {2, 0}, none[2] = {0, 0};
    int64_t seq_big[2] = {1, LMM_PROTO_MAX_SEQS}, out_bad[2] = {1, 1}, outs_dup[2] = {2, 0};
    expect_edit_fails(LMM_MSG_STEP, SET("tokens", pk_uarr, tok_neg), "field 'tokens' in STEP: element 0: -1 is negative");
    expect_edit_fails(LMM_MSG_STEP, SET("tokens", pk_uarr, tok_big),
                      "field 'tokens' in STEP: element 0: 262144 is out of range [0, 262143]");
    expect_edit_fails(LMM_MSG_STEP, SET("seq", pk_uarr, seq_big), "field 'seq' in STEP: element 0: 256 is out of range [0, 255]");
    expect_edit_fails(LMM_MSG_STEP, SET("pos", pk_uarr, two), "in STEP: 2 elements, but");
    expect_edit_fails(LMM_MSG_STEP, SET("slots", pk_uarr, two), "field 'slots' in STEP: 2 slots for 1 layers [0, 1)");
    expect_edit_fails(LMM_MSG_STEP, SET("out", pk_uarr, out_bad), "field 'out' in STEP: element 0: row 1 is beyond the batch of 1");
    expect_edit_fails(LMM_MSG_STEP, SET("out", pk_uarr, outs_dup), "field 'out' in STEP: 2 rows for a batch of 1");
    uint64_t one = 1;
    expect_edit_fails(LMM_MSG_STEP, SET("layer_begin", pk_u64, &one), "STEP: empty layer range [1, 1)");
    /* All three per-token arrays empty. */
    lmm_msg m;
    sample(&m, LMM_MSG_STEP, 0);
    msgpack_sbuffer sb;
    edit_msg(&m, SET("seq", pk_uarr, none), &sb);
    /* seq is empty but tok/pos are not: the length mismatch is named */
    expect_fail(sb.data, sb.size, "elements, but 'seq' has 0");
    msgpack_sbuffer_destroy(&sb);
}

static void test_oversized(void **state) {
    (void)state;
    size_t over = LMM_PROTO_MAX_PROMPT_BYTES + 1;
    lmm_msg m, reply;
    sample(&m, LMM_MSG_GENERATE, 0);
    m.generate.req_id = 42;
    msgpack_sbuffer sb;
    edit_msg(&m, SET("prompt", pk_bytes_n, &over), &sb);
    expect_fail(sb.data, sb.size, "field 'prompt' in GENERATE: 1048577 bytes, more than the limit of 1048576");
    /* The reply a service sends back: LIMIT, with the request id, encodable. */
    lmm_proto_decoder_error_reply(dec, &reply);
    assert_int_equal(reply.type, LMM_MSG_ERROR);
    assert_int_equal(reply.error.code, LMM_PROTO_E_LIMIT);
    assert_int_equal(reply.error.req_id, 42);
    assert_non_null(strstr(reply.error.message, "more than the limit"));
    size_t n;
    assert_int_equal(lmm_proto_encode(&reply, enc, sizeof enc, &n), 0);
    msgpack_sbuffer_destroy(&sb);

    size_t text_over = LMM_PROTO_MAX_TEXT_BYTES + 1;
    expect_edit_fails(LMM_MSG_TOKEN, SET("text", pk_bytes_n, &text_over), "field 'text' in TOKEN: 4097 bytes, more than the limit of 4096");
    expect_edit_fails(LMM_MSG_HELLO, SET("name", pk_str, "0123456789012345678901234567890123456789012345678901234567890123"),
                      "field 'name' in HELLO: 64 bytes, more than the limit of 63");
    int64_t many[2] = {LMM_PROTO_MAX_STEP_TOKENS + 1, 0};
    expect_edit_fails(LMM_MSG_STEP, SET("tokens", pk_uarr, many), "field 'tokens' in STEP: 4097 elements, more than the limit of 4096");
    size_t blob = (size_t)(LMM_PROTO_MAX_VOCAB + 1) * 4;
    expect_edit_fails(LMM_MSG_TOKEN, SET("logits", pk_bytes_n, &blob), "field 'logits' in TOKEN: 262145 floats, more than the limit");

    /* A message larger than any valid one is refused before it is parsed. */
    static char huge[LMM_PROTO_MAX_MSG_BYTES + 1];
    huge[0] = (char)0x80;
    expect_fail(huge, sizeof huge, "message of 1114113 bytes exceeds the limit of 1114112");
    lmm_proto_decoder_error_reply(dec, &reply);
    assert_int_equal(reply.error.code, LMM_PROTO_E_LIMIT);

    /* Declared counts far beyond the bytes present: refused before msgpack-c reserves memory. */
    const unsigned char arr4g[] = {0x81, 0xa1, 't', 0xdd, 0xff, 0xff, 0xff, 0xff};
    expect_fail(arr4g, sizeof arr4g, "an array at byte 3 declares 4294967295 elements, 0 bytes remain");
    const unsigned char map4g[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    expect_fail(map4g, sizeof map4g, "message map has 4294967295 entries");
    const unsigned char str4g[] = {0x81, 0xdb, 0xff, 0xff, 0xff, 0xff, 0x00};
    expect_fail(str4g, sizeof str4g, "the value at byte 1 needs 4294967295 bytes, 1 remain");
    const unsigned char deep[] = {0x81, 0xa1, 't', 0x91, 0x91, 0x01};
    expect_fail(deep, sizeof deep, "an array at byte 4 is nested deeper than any message field");
    /* Many values: a map value holding a 30000-element array of nils (more than a STEP at
     * its limits, KV triples included, has). */
    static char many_vals[30016];
    size_t k = 0;
    many_vals[k++] = (char)0x81, many_vals[k++] = (char)0xa1, many_vals[k++] = 'x';
    many_vals[k++] = (char)0xdc, many_vals[k++] = (char)(30000 >> 8), many_vals[k++] = (char)(30000 & 0xff);
    memset(many_vals + k, 0xc0, 30000);
    expect_fail(many_vals, k + 30000, "message has more than");
}

static void test_unknown_fields(void **state) {
    (void)state;
    int64_t one = 1;
    expect_edit_fails(LMM_MSG_GENERATE, SET("x", pk_i64, &one), "unknown field 'x' in GENERATE");
    expect_edit_fails(LMM_MSG_STEP, SET("prompt", pk_str, "hi"), "unknown field 'prompt' in STEP");
    expect_edit_fails(LMM_MSG_SHUTDOWN, SET("now", pk_true, NULL), "unknown field 'now' in SHUTDOWN");
    expect_edit_fails(LMM_MSG_HELLO, SET("bad\n\x01'", pk_true, NULL), "unknown field 'bad\\x0a\\x01\\x27' in HELLO");
    /* "v" belongs to HELLO/HELLO_ACK only. */
    expect_edit_fails(LMM_MSG_CANCEL, SET("v", pk_i64, &one), "unknown field 'v' in CANCEL");
    /* A key longer than 40 bytes is cut in the message. */
    expect_edit_fails(LMM_MSG_CANCEL, SET("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", pk_true, NULL),
                      "unknown field 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...' in CANCEL");
    const unsigned char unk[] = {0x81, 0xa1, 't', 0xa3, 'F', 'O', 'O'};
    expect_fail(unk, sizeof unk, "unknown message type 'FOO'");
    const unsigned char notype[] = {0x81, 0xa1, 'x', 0x01};
    expect_fail(notype, sizeof notype, "message has no type field 't'");
}

/* Every required field of every type, left out in turn; every field duplicated in turn. */
static void test_missing_and_duplicate_fields(void **state) {
    (void)state;
    for (int t = 1; t < LMM_MSG_COUNT; t++) {
        lmm_msg m;
        sample(&m, (lmm_msg_type)t, 0);
        size_t n = encode_ok(&m, enc);
        msgpack_zone z;
        msgpack_zone_init(&z, 4096);
        msgpack_object root;
        size_t off = 0;
        assert_int_equal(msgpack_unpack(enc, n, &off, &z, &root), MSGPACK_UNPACK_SUCCESS);
        for (uint32_t i = 0; i < root.via.map.size; i++) {
            char key[64], want[128];
            const msgpack_object *k = &root.via.map.ptr[i].key;
            snprintf(key, sizeof key, "%.*s", (int)k->via.str.size, k->via.str.ptr);
            msgpack_sbuffer sb;
            static const char *const optional_keys[] = {"temperature", "top_k", "top_p", "repeat_penalty",
                                                         "repeat_last_n", "seed", "dump_logits", "context_shift",
                                                         "no_prefix_cache", "slots",
                                                         "ready", "waiting"};
            bool optional = false;
            for (size_t o = 0; o < sizeof optional_keys / sizeof optional_keys[0]; o++)
                optional |= !strcmp(key, optional_keys[o]);
            edit_msg(&m, &(edit){.drop = key}, &sb);
            if (!strcmp(key, "t")) {
                expect_fail(sb.data, sb.size, "message has no type field 't'");
            } else if (optional) {
                if (lmm_proto_decode(dec, sb.data, sb.size, &got) != 0) fail_msg("%s without %s: %s", lmm_proto_type_name(m.type), key, lmm_error_get());
            } else {
                snprintf(want, sizeof want, "missing field '%s' in %s", key, lmm_proto_type_name(m.type));
                expect_fail(sb.data, sb.size, want);
            }
            msgpack_sbuffer_destroy(&sb);

            edit_msg(&m, &(edit){.dup = key}, &sb);
            if (!strcmp(key, "t"))
                snprintf(want, sizeof want, "duplicate field 't'");
            else
                snprintf(want, sizeof want, "duplicate field '%s' in %s", key, lmm_proto_type_name(m.type));
            expect_fail(sb.data, sb.size, want);
            msgpack_sbuffer_destroy(&sb);
        }
        msgpack_zone_destroy(&z);
    }
}

static void test_trailing_garbage(void **state) {
    (void)state;
    for (int t = 1; t < LMM_MSG_COUNT; t++) {
        lmm_msg m;
        sample(&m, (lmm_msg_type)t, 0);
        size_t n = encode_ok(&m, enc);
        enc[n] = 0x00;
        expect_fail(enc, n + 1, "1 bytes of trailing garbage after the message");
        memcpy(enc + n, enc, n); /* two messages in one frame */
        expect_fail(enc, 2 * n, "trailing garbage");
    }
}

static void test_protocol_version(void **state) {
    (void)state;
    uint64_t seven = 7;
    lmm_msg reply;
    expect_edit_fails(LMM_MSG_HELLO, SET("v", pk_u64, &seven), "protocol version 7 not supported (this build speaks 1)");
    lmm_proto_decoder_error_reply(dec, &reply);
    assert_int_equal(reply.error.code, LMM_PROTO_E_VERSION);
    assert_string_equal(reply.error.message, "protocol version 7 not supported (this build speaks 1)");
    expect_edit_fails(LMM_MSG_HELLO_ACK, SET("v", pk_u64, &seven), "protocol version 7 not supported (this build speaks 1)");

    /* A newer peer's HELLO with a field this build does not know, before "t" and "v":
     * still the version error, not a complaint about the field. */
    lmm_msg m;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    pk_str(&pk, "flags"), msgpack_pack_uint8(&pk, 3);
    pk_str(&pk, "t"), pk_str(&pk, "HELLO");
    pk_str(&pk, "v"), msgpack_pack_uint8(&pk, 2);
    expect_fail(sb.data, sb.size, "protocol version 2 not supported (this build speaks 1)");
    msgpack_sbuffer_destroy(&sb);

    int64_t neg = -1;
    expect_edit_fails(LMM_MSG_HELLO, SET("v", pk_i64, &neg), "field 'v' in HELLO: -1 is negative");
    expect_edit_fails(LMM_MSG_HELLO, &(edit){.drop = "v"}, "missing field 'v' in HELLO");

    assert_int_equal(lmm_proto_version_check(LMM_PROTO_VERSION), 0);
    assert_int_equal(lmm_proto_version_check(7), -1);
    assert_string_equal(lmm_error_get(), "protocol version 7 not supported (this build speaks 1)");
    /* The encoder refuses to speak another version. */
    sample(&m, LMM_MSG_HELLO, 0);
    m.hello.version = 2;
    size_t n;
    assert_int_equal(lmm_proto_encode(&m, enc, sizeof enc, &n), -1);
    assert_non_null(strstr(lmm_error_get(), "cannot encode HELLO: protocol version 2"));
}

static void test_encoder_refuses_invalid(void **state) {
    (void)state;
    lmm_msg m;
    size_t n;
    sample(&m, LMM_MSG_STEP, 0);
    m.step.tokens = NULL;
    assert_int_equal(lmm_proto_encode(&m, enc, sizeof enc, &n), -1);
    assert_non_null(strstr(lmm_error_get(), "field 'tokens' in STEP: NULL with 1 elements"));
    sample(&m, LMM_MSG_HELLO, 0);
    memset(m.hello.name, 'x', sizeof m.hello.name); /* no NUL */
    assert_int_equal(lmm_proto_encode(&m, enc, sizeof enc, &n), -1);
    assert_non_null(strstr(lmm_error_get(), "field 'name' in HELLO: not NUL-terminated within 63 bytes"));
    sample(&m, LMM_MSG_HELLO, 0);
    m.hello.role = 0;
    assert_int_equal(lmm_proto_encode(&m, enc, sizeof enc, &n), -1);
    assert_non_null(strstr(lmm_error_get(), "field 'role' in HELLO: 0 is not a valid value"));
    lmm_proto_msg_init(&m, LMM_MSG_NONE);
    assert_int_equal(lmm_proto_encode(&m, enc, sizeof enc, &n), -1);
    sample(&m, LMM_MSG_GENERATE, 0);
    m.generate.sampling.top_p = 0;
    assert_int_equal(lmm_proto_encode(&m, enc, sizeof enc, &n), -1);
    assert_non_null(strstr(lmm_error_get(), "field 'top_p' in GENERATE: 0 is not in (0, 1]"));
    sample(&m, LMM_MSG_STEP, 0);
    m.step.n_tokens = 0;
    assert_int_equal(lmm_proto_encode(&m, enc, sizeof enc, &n), -1);
    assert_non_null(strstr(lmm_error_get(), "STEP: no tokens"));
    sample(&m, LMM_MSG_TOKEN, 0);
    m.token.text.len = LMM_PROTO_MAX_TEXT_BYTES + 1;
    m.token.text.ptr = s_text;
    assert_int_equal(lmm_proto_encode(&m, enc, sizeof enc, &n), -1);
    assert_non_null(strstr(lmm_error_get(), "4097 bytes, more than the limit of 4096"));
}

static void test_error_reply_for_garbage(void **state) {
    (void)state;
    lmm_msg reply;
    const unsigned char junk[] = {0x13, 0x37, 0xde, 0xad};
    assert_int_equal(lmm_proto_decode(dec, junk, sizeof junk, &got), -1);
    lmm_proto_decoder_error_reply(dec, &reply);
    assert_int_equal(reply.error.code, LMM_PROTO_E_BAD_MESSAGE);
    assert_int_equal(reply.error.req_id, 0);
    assert_string_equal(reply.error.message, "message is not a map (it starts with an integer, byte 0x13)");
    size_t n = encode_ok(&reply, enc);
    /* and the decoder serves the next message normally */
    assert_int_equal(lmm_proto_decode(dec, enc, n, &got), 0);
    assert_true(lmm_proto_msg_equal(&reply, &got));
    assert_string_equal(lmm_proto_errcode_name(reply.error.code), "bad message");
}

/* ---- random and mutated bytes -------------------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void) {
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    return rng * 0x2545f4914f6cdd1dull;
}

static void check_any(const void *buf, size_t len) {
    if (lmm_proto_decode(dec, buf, len, &got) != 0) return;
    /* Whatever decodes re-encodes to something that decodes to the same message. */
    size_t n = encode_ok(&got, enc2);
    lmm_msg again;
    static lmm_proto_decoder *dec2;
    if (!dec2) assert_int_equal(lmm_proto_decoder_create(&dec2), 0);
    if (lmm_proto_decode(dec2, enc2, n, &again) != 0) fail_msg("re-decode: %s", lmm_error_get());
    assert_true(lmm_proto_msg_equal(&got, &again));
}

static void test_random_bytes_never_crash(void **state) {
    (void)state;
    static unsigned char buf[512];
    for (int it = 0; it < 200000; it++) {
        size_t len = next_rand() % sizeof buf;
        for (size_t i = 0; i < len; i++) buf[i] = (unsigned char)next_rand();
        if (len && it % 2) buf[0] = (unsigned char)(0x80 | (next_rand() % 8)); /* a map, to get further */
        check_any(buf, len);
    }
    /* Mutations of valid messages: flip, set, insert, delete bytes. */
    size_t accepted = 0;
    for (int t = 1; t < LMM_MSG_COUNT; t++)
        for (int it = 0; it < 20000; it++) {
            lmm_msg m;
            sample(&m, (lmm_msg_type)t, 0);
            size_t n = encode_ok(&m, enc);
            for (int k = 0, nm = 1 + (int)(next_rand() % 3); k < nm; k++) {
                size_t at = next_rand() % n;
                switch (next_rand() % 4) {
                case 0: enc[at] ^= (char)(1u << (next_rand() % 8)); break;
                case 1: enc[at] = (char)next_rand(); break;
                case 2: memmove(enc + at + 1, enc + at, n - at), enc[at] = (char)next_rand(), n++; break;
                default: memmove(enc + at, enc + at + 1, n - at - 1), n--; break;
                }
                if (n == 0) break;
            }
            if (lmm_proto_decode(dec, enc, n, &got) == 0) accepted++;
            memcpy(enc2, enc, n);
            check_any(enc2, n);
        }
    assert_true(accepted > 0); /* some mutations (a changed value) stay valid */
}

/* Decoding allocates nothing once the decoder exists (no allocation in the token loop). */
static void test_decode_does_not_allocate(void **state) {
    (void)state;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
    lmm_msg m;
    sample(&m, LMM_MSG_STEP, 1);
    size_t n = encode_ok(&m, enc);
    assert_int_equal(lmm_proto_decode(dec, enc, n, &got), 0);
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < 10; i++) assert_int_equal(lmm_proto_decode(dec, enc, n, &got), 0);
    sample(&m, LMM_MSG_TOKEN, 1);
    n = encode_ok(&m, enc);
    for (int i = 0; i < 10; i++) assert_int_equal(lmm_proto_decode(dec, enc, n, &got), 0);
    struct mallinfo2 after = mallinfo2();
    assert_int_equal(after.uordblks, before.uordblks);
    assert_int_equal(after.hblkhd, before.hblkhd);
#else
    skip();
#endif
}

static int setup(void **state) {
    (void)state;
    return lmm_proto_decoder_create(&dec);
}
static int teardown(void **state) {
    (void)state;
    lmm_proto_decoder_free(dec);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_every_type),
        cmocka_unit_test(test_edge_values_exact),
        cmocka_unit_test(test_largest_messages_fit),
        cmocka_unit_test(test_generate_defaults_and_numbers),
        cmocka_unit_test(test_not_a_map),
        cmocka_unit_test(test_truncated_at_every_length),
        cmocka_unit_test(test_wrong_value_types),
        cmocka_unit_test(test_out_of_range_numbers),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_unknown_fields),
        cmocka_unit_test(test_missing_and_duplicate_fields),
        cmocka_unit_test(test_trailing_garbage),
        cmocka_unit_test(test_protocol_version),
        cmocka_unit_test(test_encoder_refuses_invalid),
        cmocka_unit_test(test_error_reply_for_garbage),
        cmocka_unit_test(test_random_bytes_never_crash),
        cmocka_unit_test(test_decode_does_not_allocate),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
