/* model/format/gguf.c — GGUF v2/v3 parser: header, metadata and tensor table (lmm/gguf.h).
 *
 * The header region is read incrementally with pread() (or taken from the caller's
 * buffer for lmm_gguf_open_memory); tensor data is never read. Every length and
 * count is checked against the bytes left in the file before anything is allocated
 * from it, so a hostile header fails fast with a message instead of allocating.
 * Keys, strings and array elements are copied into an arena owned by the lmm_gguf
 * and freed in one go; keys and tensor names are hashed for O(1) lookup. */
#include "lmm/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lmm/error.h"

#define GGUF_DEFAULT_ALIGNMENT 32u
#define GGUF_MAX_DEPTH 8u              /* arrays nested deeper than this are refused */
#define GGUF_MAX_DIMS 4u
#define GGUF_READ_CHUNK (1u << 20)     /* header bytes read per pread() at least */
#define ARENA_CHUNK (64u << 10)

/* ---- ggml tensor types ----------------------------------------------------- */

typedef struct {
    const char *name;   /* NULL: unknown / retired id */
    uint32_t blck;      /* elements per block */
    uint32_t tsize;     /* bytes per block */
    bool quant;
} ggml_type_info;

/* Block geometry as published with the GGUF format (gguf-py GGML_QUANT_SIZES). */
static const ggml_type_info GGML_TYPES[] = {
    [0] = {"F32", 1, 4, false},        [1] = {"F16", 1, 2, false},
    [2] = {"Q4_0", 32, 18, true},      [3] = {"Q4_1", 32, 20, true},
    [6] = {"Q5_0", 32, 22, true},      [7] = {"Q5_1", 32, 24, true},
    [8] = {"Q8_0", 32, 34, true},      [9] = {"Q8_1", 32, 36, true},
    [10] = {"Q2_K", 256, 84, true},    [11] = {"Q3_K", 256, 110, true},
    [12] = {"Q4_K", 256, 144, true},   [13] = {"Q5_K", 256, 176, true},
    [14] = {"Q6_K", 256, 210, true},   [15] = {"Q8_K", 256, 292, true},
    [16] = {"IQ2_XXS", 256, 66, true}, [17] = {"IQ2_XS", 256, 74, true},
    [18] = {"IQ3_XXS", 256, 98, true}, [19] = {"IQ1_S", 256, 50, true},
    [20] = {"IQ4_NL", 32, 18, true},   [21] = {"IQ3_S", 256, 110, true},
    [22] = {"IQ2_S", 256, 82, true},   [23] = {"IQ4_XS", 256, 136, true},
    [24] = {"I8", 1, 1, false},        [25] = {"I16", 1, 2, false},
    [26] = {"I32", 1, 4, false},       [27] = {"I64", 1, 8, false},
    [28] = {"F64", 1, 8, false},       [29] = {"IQ1_M", 256, 56, true},
    [30] = {"BF16", 1, 2, false},      [31] = {"Q4_0_4_4", 32, 18, true},
    [32] = {"Q4_0_4_8", 32, 18, true}, [33] = {"Q4_0_8_8", 32, 18, true},
    [34] = {"TQ1_0", 256, 54, true},   [35] = {"TQ2_0", 256, 66, true},
    [36] = {"IQ4_NL_4_4", 32, 18, true}, [37] = {"IQ4_NL_4_8", 32, 18, true},
    [38] = {"IQ4_NL_8_8", 32, 18, true}, [39] = {"MXFP4", 32, 17, true},
};
#define N_GGML_TYPES (sizeof GGML_TYPES / sizeof GGML_TYPES[0])

static const ggml_type_info *ggml_type_info_of(uint32_t t) {
    return t < N_GGML_TYPES && GGML_TYPES[t].name ? &GGML_TYPES[t] : NULL;
}

const char *lmm_gguf_ggml_type_name(uint32_t ggml_type) {
    const ggml_type_info *ti = ggml_type_info_of(ggml_type);
    return ti ? ti->name : NULL;
}

bool lmm_gguf_ggml_type_is_quantized(uint32_t ggml_type) {
    const ggml_type_info *ti = ggml_type_info_of(ggml_type);
    return ti && ti->quant;
}

/* ---- metadata value types ---------------------------------------------------- */

static const char *const VALUE_TYPE_NAMES[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                               "bool", "string", "array", "u64", "i64", "f64"};
#define N_VALUE_TYPES 13u

const char *lmm_gguf_type_name(lmm_gguf_type t) {
    return (unsigned)t < N_VALUE_TYPES ? VALUE_TYPE_NAMES[t] : "?";
}

/* Bytes of a scalar of type t (0 for string/array). */
static unsigned scalar_size(uint32_t t) {
    switch (t) {
    case LMM_GGUF_U8: case LMM_GGUF_I8: case LMM_GGUF_BOOL: return 1;
    case LMM_GGUF_U16: case LMM_GGUF_I16: return 2;
    case LMM_GGUF_U32: case LMM_GGUF_I32: case LMM_GGUF_F32: return 4;
    case LMM_GGUF_U64: case LMM_GGUF_I64: case LMM_GGUF_F64: return 8;
    default: return 0;
    }
}

/* Fewest bytes one element of type t occupies in the file (strings: the length field;
 * arrays: element type + count). Used to reject counts the file cannot hold. */
static unsigned min_elem_size(uint32_t t) {
    if (t == LMM_GGUF_STRING) return 8;
    if (t == LMM_GGUF_ARRAY) return 12;
    return scalar_size(t);
}

static bool is_unsigned_int(uint32_t t) {
    return t == LMM_GGUF_U8 || t == LMM_GGUF_U16 || t == LMM_GGUF_U32 || t == LMM_GGUF_U64;
}
static bool is_signed_int(uint32_t t) {
    return t == LMM_GGUF_I8 || t == LMM_GGUF_I16 || t == LMM_GGUF_I32 || t == LMM_GGUF_I64;
}
static bool is_float(uint32_t t) { return t == LMM_GGUF_F32 || t == LMM_GGUF_F64; }

/* ---- parsed representation ------------------------------------------------- */

typedef struct {
    const char *ptr;    /* NUL-terminated copy; may contain NUL bytes (see len) */
    uint64_t len;
} gstr;

typedef struct gval {
    uint32_t type;      /* lmm_gguf_type */
    uint32_t elem;      /* arrays: element type */
    uint64_t count;     /* arrays: element count */
    union {
        uint64_t u;             /* unsigned integers, bool (0/1) */
        int64_t i;              /* signed integers */
        double f;               /* f32 (widened exactly), f64 */
        gstr s;                 /* string */
        const uint8_t *raw;     /* array of scalars: count * scalar_size(elem) little-endian bytes */
        gstr *strs;             /* array of strings: [count] */
        struct gval *arrs;      /* array of arrays: [count], each of type ARRAY */
    } v;
} gval;

typedef struct {
    gstr key;
    gval val;
} gkv;

typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} arena_chunk;

/* Open-addressing hash of names -> index (slot holds index + 1; 0 is empty). */
typedef struct {
    uint64_t *slot;     /* [mask + 1] */
    uint64_t mask;
} name_index;

struct lmm_gguf {
    char *name;
    uint32_t version;
    uint32_t alignment;
    uint64_t file_size;
    uint64_t data_offset;
    uint64_t n_kv, n_tensors;
    gkv *kv;                    /* [n_kv] */
    lmm_gguf_tensor *tensors;   /* [n_tensors] */
    name_index key_ix, tensor_ix;
    arena_chunk *arena;
};

static void *arena_alloc(lmm_gguf *g, size_t size) {
    if (size > SIZE_MAX - 32) return NULL;
    size = (size + 15) & ~(size_t)15;
    arena_chunk *c = g->arena;
    if (c && c->cap - c->used >= size) {
        void *p = c->data + c->used;
        c->used += size;
        return p;
    }
    /* Big requests get a chunk of their own, linked behind the current one so that
     * the current chunk's free space stays in use. */
    size_t cap = size > ARENA_CHUNK / 4 ? size : ARENA_CHUNK;
    arena_chunk *n = malloc(sizeof *n + cap);
    if (!n) return NULL;
    n->cap = cap;
    n->used = size;
    if (c && size > ARENA_CHUNK / 4) {
        n->next = c->next;
        c->next = n;
    } else {
        n->next = c;
        g->arena = n;
    }
    return n->data;
}

static uint64_t hash_name(const char *s) {
    uint64_t h = 1469598103934665603ull;  /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

typedef const char *(*name_fn)(const lmm_gguf *g, uint64_t i);
static const char *kv_name(const lmm_gguf *g, uint64_t i) { return g->kv[i].key.ptr; }
static const char *tensor_name(const lmm_gguf *g, uint64_t i) { return g->tensors[i].name; }

static int64_t index_find(const lmm_gguf *g, const name_index *ix, name_fn get, const char *name) {
    if (!ix->slot) return -1;
    for (uint64_t h = hash_name(name) & ix->mask;; h = (h + 1) & ix->mask) {
        uint64_t s = ix->slot[h];
        if (!s) return -1;
        if (strcmp(get(g, s - 1), name) == 0) return (int64_t)(s - 1);
    }
}

/* Builds the index of n names; on a duplicate returns -1 and sets *dup to its index. */
static int index_build(lmm_gguf *g, name_index *ix, name_fn get, uint64_t n, uint64_t *dup) {
    uint64_t cap = 8;
    while (cap < 2 * n) cap *= 2;
    if (cap > SIZE_MAX / sizeof *ix->slot) return lmm_error_set("%s: out of memory", g->name);
    ix->slot = calloc((size_t)cap, sizeof *ix->slot);
    if (!ix->slot) return lmm_error_set("%s: out of memory", g->name);
    ix->mask = cap - 1;
    for (uint64_t i = 0; i < n; i++) {
        const char *name = get(g, i);
        uint64_t h = hash_name(name) & ix->mask;
        while (ix->slot[h]) {
            if (strcmp(get(g, ix->slot[h] - 1), name) == 0) {
                *dup = i;
                return -1;
            }
            h = (h + 1) & ix->mask;
        }
        ix->slot[h] = i + 1;
    }
    return 0;
}

void lmm_gguf_free(lmm_gguf *g) {
    if (!g) return;
    for (arena_chunk *c = g->arena, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(g->key_ix.slot);
    free(g->tensor_ix.slot);
    free(g->kv);
    free(g->tensors);
    free(g->name);
    free(g);
}

/* ---- reading the header region ---------------------------------------------- */

typedef struct {
    lmm_gguf *g;
    const char *name;       /* for messages */
    uint64_t size;          /* bytes in the file */
    uint64_t pos;           /* next byte to parse */
    const uint8_t *base;    /* bytes [0, avail) of the file */
    uint64_t avail;
    int fd;                 /* -1: base is the whole caller buffer */
    uint8_t *buf;           /* owned copy of the header region when reading a file */
} reader;

static uint64_t left(const reader *r) { return r->size - r->pos; }

/* Makes bytes [pos, pos+n) available; fails if the file is shorter. WHAT names the field. */
static int need(reader *r, uint64_t n, const char *what) {
    if (n > left(r))
        return lmm_error_set("%s: truncated file: %s needs %" PRIu64 " bytes at offset %" PRIu64 ", only %" PRIu64
                             " left",
                             r->name, what, n, r->pos, left(r));
    uint64_t end = r->pos + n;
    if (end <= r->avail) return 0;
    /* Grow the buffer geometrically, reading at least a chunk at a time. */
    uint64_t want = r->avail * 2;
    if (want < end) want = end;
    if (want < r->avail + GGUF_READ_CHUNK) want = r->avail + GGUF_READ_CHUNK;
    if (want > r->size) want = r->size;
    if (want > SIZE_MAX) return lmm_error_set("%s: header region too large for this machine", r->name);
    uint8_t *nb = realloc(r->buf, (size_t)want);
    if (!nb) return lmm_error_set("%s: out of memory reading %" PRIu64 " header bytes", r->name, want);
    r->buf = nb;
    r->base = nb;
    while (r->avail < want) {
        ssize_t got = pread(r->fd, nb + r->avail, (size_t)(want - r->avail), (off_t)r->avail);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return lmm_error_set("%s: read error at offset %" PRIu64 ": %s", r->name, r->avail, strerror(errno));
        if (got == 0)
            return lmm_error_set("%s: file shrank while reading (expected %" PRIu64 " bytes, got %" PRIu64 ")", r->name,
                                 r->size, r->avail);
        r->avail += (uint64_t)got;
    }
    return 0;
}

static uint64_t le(const uint8_t *p, unsigned n) {
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static int read_u32(reader *r, uint32_t *out, const char *what) {
    if (need(r, 4, what)) return -1;
    *out = (uint32_t)le(r->base + r->pos, 4);
    r->pos += 4;
    return 0;
}

static int read_u64(reader *r, uint64_t *out, const char *what) {
    if (need(r, 8, what)) return -1;
    *out = le(r->base + r->pos, 8);
    r->pos += 8;
    return 0;
}

static int oom(const reader *r) { return lmm_error_set("%s: out of memory", r->name); }

/* u64 length + bytes -> NUL-terminated arena copy. */
static int read_str(reader *r, gstr *out, const char *what) {
    uint64_t len;
    if (read_u64(r, &len, what)) return -1;
    if (len > left(r))
        return lmm_error_set("%s: %s: string length %" PRIu64 " is beyond the end of the file (%" PRIu64
                             " bytes left at offset %" PRIu64 ")",
                             r->name, what, len, left(r), r->pos);
    if (need(r, len, what)) return -1;
    char *s = arena_alloc(r->g, (size_t)len + 1);
    if (!s) return oom(r);
    if (len) memcpy(s, r->base + r->pos, (size_t)len);
    s[len] = '\0';
    r->pos += len;
    out->ptr = s;
    out->len = len;
    return 0;
}

static int read_value(reader *r, uint32_t type, gval *v, unsigned depth, const char *what);

static int read_array(reader *r, gval *v, unsigned depth, const char *what) {
    if (depth >= GGUF_MAX_DEPTH) return lmm_error_set("%s: %s: arrays nested more than %u deep", r->name, what, GGUF_MAX_DEPTH);
    uint32_t elem;
    uint64_t count;
    if (read_u32(r, &elem, what) || read_u64(r, &count, what)) return -1;
    if (elem >= N_VALUE_TYPES) return lmm_error_set("%s: %s: unknown array element type %u", r->name, what, elem);
    unsigned min = min_elem_size(elem);
    if (count > left(r) / min)
        return lmm_error_set("%s: %s: array of %" PRIu64 " %s elements cannot fit in the %" PRIu64
                             " bytes left in the file",
                             r->name, what, count, VALUE_TYPE_NAMES[elem], left(r));
    v->elem = elem;
    v->count = count;
    if (elem == LMM_GGUF_STRING) {
        gstr *s = count ? arena_alloc(r->g, (size_t)count * sizeof *s) : NULL;
        if (count && !s) return oom(r);
        for (uint64_t i = 0; i < count; i++)
            if (read_str(r, &s[i], what)) return -1;
        v->v.strs = s;
    } else if (elem == LMM_GGUF_ARRAY) {
        gval *a = count ? arena_alloc(r->g, (size_t)count * sizeof *a) : NULL;
        if (count && !a) return oom(r);
        for (uint64_t i = 0; i < count; i++)
            if (read_value(r, LMM_GGUF_ARRAY, &a[i], depth + 1, what)) return -1;
        v->v.arrs = a;
    } else {
        uint64_t n = count * min;   /* <= left(r): checked above */
        if (need(r, n, what)) return -1;
        uint8_t *raw = n ? arena_alloc(r->g, (size_t)n) : NULL;
        if (n && !raw) return oom(r);
        if (n) memcpy(raw, r->base + r->pos, (size_t)n);
        if (elem == LMM_GGUF_BOOL)
            for (uint64_t i = 0; i < n; i++)
                if (raw[i] > 1)
                    return lmm_error_set("%s: %s: bool element %" PRIu64 " has value %u (expected 0 or 1)", r->name,
                                         what, i, raw[i]);
        r->pos += n;
        v->v.raw = raw;
    }
    return 0;
}

static int read_value(reader *r, uint32_t type, gval *v, unsigned depth, const char *what) {
    memset(v, 0, sizeof *v);
    v->type = type;
    if (type == LMM_GGUF_STRING) return read_str(r, &v->v.s, what);
    if (type == LMM_GGUF_ARRAY) return read_array(r, v, depth, what);
    unsigned n = scalar_size(type);
    if (n == 0) return lmm_error_set("%s: %s: unknown value type %u", r->name, what, type);
    if (need(r, n, what)) return -1;
    uint64_t bits = le(r->base + r->pos, n);
    r->pos += n;
    switch (type) {
    case LMM_GGUF_I8: v->v.i = (int8_t)(uint8_t)bits; break;
    case LMM_GGUF_I16: v->v.i = (int16_t)(uint16_t)bits; break;
    case LMM_GGUF_I32: v->v.i = (int32_t)(uint32_t)bits; break;
    case LMM_GGUF_I64: memcpy(&v->v.i, &bits, 8); break;
    case LMM_GGUF_F32: {
        uint32_t b32 = (uint32_t)bits;
        float f;
        memcpy(&f, &b32, 4);
        v->v.f = f;
        break;
    }
    case LMM_GGUF_F64: memcpy(&v->v.f, &bits, 8); break;
    case LMM_GGUF_BOOL:
        if (bits > 1) return lmm_error_set("%s: %s: bool has value %u (expected 0 or 1)", r->name, what, (unsigned)bits);
        v->v.u = bits;
        break;
    default: v->v.u = bits; break;
    }
    return 0;
}

/* ---- header, metadata, tensor table ---------------------------------------- */

#define KV_MIN_BYTES 13u      /* key length (8) + type (4) + smallest value (1) */
#define TENSOR_MIN_BYTES 32u  /* name length (8) + n_dims (4) + one ne (8) + type (4) + offset (8) */

static int parse_header(reader *r) {
    lmm_gguf *g = r->g;
    if (r->size < 4) return lmm_error_set("%s: not a GGUF file (only %" PRIu64 " bytes)", r->name, r->size);
    if (need(r, 4, "magic")) return -1;
    const uint8_t *m = r->base;
    if (memcmp(m, "GGUF", 4) != 0) {
        char shown[5];
        for (int i = 0; i < 4; i++) shown[i] = (m[i] >= 0x20 && m[i] < 0x7f) ? (char)m[i] : '.';
        shown[4] = '\0';
        return lmm_error_set("%s: not a GGUF file (magic '%s', expected 'GGUF')", r->name, shown);
    }
    r->pos = 4;
    if (read_u32(r, &g->version, "version")) return -1;
    if (g->version == 1)
        return lmm_error_set("%s: GGUF version 1 is not supported (only versions 2 and 3; re-convert the model with a "
                             "current llama.cpp)",
                             r->name);
    if (g->version != 2 && g->version != 3)
        return lmm_error_set("%s: unsupported GGUF version %u (expected 2 or 3%s)", r->name, g->version,
                             (g->version & 0xffffu) == 0 ? "; a big-endian file?" : "");
    if (read_u64(r, &g->n_tensors, "tensor count") || read_u64(r, &g->n_kv, "metadata count")) return -1;
    /* Fail fast on counts the rest of the file could not possibly hold. */
    if (g->n_kv > left(r) / KV_MIN_BYTES)
        return lmm_error_set("%s: header claims %" PRIu64 " metadata entries but only %" PRIu64
                             " bytes follow (at least %u bytes each): truncated or corrupt file",
                             r->name, g->n_kv, left(r), KV_MIN_BYTES);
    if (g->n_tensors > (left(r) - g->n_kv * KV_MIN_BYTES) / TENSOR_MIN_BYTES)
        return lmm_error_set("%s: header claims %" PRIu64 " tensors but only %" PRIu64
                             " bytes follow (at least %u bytes each): truncated or corrupt file",
                             r->name, g->n_tensors, left(r), TENSOR_MIN_BYTES);
    return 0;
}

static int parse_metadata(reader *r) {
    lmm_gguf *g = r->g;
    uint64_t n = g->n_kv;
    g->n_kv = 0;   /* counts parsed entries, so that a failure frees only those */
    uint64_t cap = 0;
    char what[160];
    for (uint64_t i = 0; i < n; i++) {
        if (g->n_kv == cap) {
            cap = cap ? cap * 2 : 64;
            if (cap > n) cap = n;
            gkv *kv = realloc(g->kv, (size_t)cap * sizeof *kv);
            if (!kv) return oom(r);
            g->kv = kv;
        }
        gkv *e = &g->kv[g->n_kv];
        snprintf(what, sizeof what, "metadata entry %" PRIu64 " key", i);
        if (read_str(r, &e->key, what)) return -1;
        if (strlen(e->key.ptr) != e->key.len)
            return lmm_error_set("%s: metadata entry %" PRIu64 ": key contains a NUL byte", r->name, i);
        snprintf(what, sizeof what, "key '%.100s'", e->key.ptr);
        uint32_t type;
        if (read_u32(r, &type, what)) return -1;
        if (type >= N_VALUE_TYPES) return lmm_error_set("%s: %s: unknown value type %u", r->name, what, type);
        if (read_value(r, type, &e->val, 0, what)) return -1;
        g->n_kv++;
    }
    uint64_t dup;
    if (index_build(g, &g->key_ix, kv_name, g->n_kv, &dup))
        return g->key_ix.slot ? lmm_error_set("%s: metadata key '%s' appears twice", r->name, g->kv[dup].key.ptr) : -1;
    return 0;
}

static int parse_alignment(reader *r) {
    lmm_gguf *g = r->g;
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    uint64_t a;
    int rc = lmm_gguf_get_u64_opt(g, "general.alignment", &a);
    if (rc < 0) return -1;
    if (rc == 0) {
        if (a == 0 || (a & (a - 1)) != 0 || a > (1u << 30))
            return lmm_error_set("%s: general.alignment = %" PRIu64 " is not a power of two (1 to 2^30)", r->name, a);
        g->alignment = (uint32_t)a;
    }
    return 0;
}

static int parse_tensor_infos(reader *r) {
    lmm_gguf *g = r->g;
    uint64_t n = g->n_tensors;
    g->n_tensors = 0;
    uint64_t cap = 0;
    char what[160];
    for (uint64_t i = 0; i < n; i++) {
        if (g->n_tensors == cap) {
            cap = cap ? cap * 2 : 64;
            if (cap > n) cap = n;
            lmm_gguf_tensor *t = realloc(g->tensors, (size_t)cap * sizeof *t);
            if (!t) return oom(r);
            g->tensors = t;
        }
        lmm_gguf_tensor *t = &g->tensors[g->n_tensors];
        memset(t, 0, sizeof *t);
        gstr name;
        snprintf(what, sizeof what, "tensor %" PRIu64 " name", i);
        if (read_str(r, &name, what)) return -1;
        if (name.len == 0) return lmm_error_set("%s: tensor %" PRIu64 " has an empty name", r->name, i);
        if (strlen(name.ptr) != name.len)
            return lmm_error_set("%s: tensor %" PRIu64 ": name contains a NUL byte", r->name, i);
        t->name = name.ptr;
        snprintf(what, sizeof what, "tensor '%.100s'", t->name);
        if (read_u32(r, &t->n_dims, what)) return -1;
        if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
            return lmm_error_set("%s: %s: %u dimensions (expected 1 to %u)", r->name, what, t->n_dims, GGUF_MAX_DIMS);
        for (uint32_t d = 0; d < t->n_dims; d++)
            if (read_u64(r, &t->ne[d], what)) return -1;
        if (read_u32(r, &t->ggml_type, what) || read_u64(r, &t->offset, what)) return -1;
        g->n_tensors++;

        uint64_t count = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            if (t->ne[d] == 0) return lmm_error_set("%s: %s: dimension ne[%u] is 0", r->name, what, d);
            if (t->ne[d] > (uint64_t)INT64_MAX || count > (uint64_t)INT64_MAX / t->ne[d])
                return lmm_error_set("%s: %s: element count overflows (ne[%u] = %" PRIu64 ")", r->name, what, d,
                                     t->ne[d]);
            count *= t->ne[d];
        }
        const ggml_type_info *ti = ggml_type_info_of(t->ggml_type);
        if (!ti) return lmm_error_set("%s: %s: unknown ggml type %u", r->name, what, t->ggml_type);
        if (t->ne[0] % ti->blck != 0)
            return lmm_error_set("%s: %s: row length ne[0] = %" PRIu64 " is not a multiple of the %s block size %u",
                                 r->name, what, t->ne[0], ti->name, ti->blck);
        uint64_t blocks = count / ti->blck;
        if (blocks > UINT64_MAX / ti->tsize) return lmm_error_set("%s: %s: byte size overflows", r->name, what);
        t->nbytes = blocks * ti->tsize;
        if (t->offset % g->alignment != 0)
            return lmm_error_set("%s: %s: offset %" PRIu64 " is not a multiple of the alignment %u", r->name, what,
                                 t->offset, g->alignment);
    }
    uint64_t dup;
    if (index_build(g, &g->tensor_ix, tensor_name, g->n_tensors, &dup))
        return g->tensor_ix.slot ? lmm_error_set("%s: tensor '%s' appears twice", r->name, g->tensors[dup].name) : -1;
    return 0;
}

/* Data section starts at the next multiple of the alignment; every tensor must lie in the file. */
static int place_tensors(reader *r) {
    lmm_gguf *g = r->g;
    uint64_t pad = (g->alignment - r->pos % g->alignment) % g->alignment;
    g->data_offset = r->pos + pad;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        lmm_gguf_tensor *t = &g->tensors[i];
        uint64_t rel = t->offset;
        if (g->data_offset > g->file_size || rel > g->file_size - g->data_offset ||
            t->nbytes > g->file_size - g->data_offset - rel)
            return lmm_error_set("%s: tensor '%s': data [%" PRIu64 ", +%" PRIu64 " bytes) at relative offset %" PRIu64
                                 " is beyond the end of the file (%" PRIu64 " bytes, data section at %" PRIu64 ")",
                                 r->name, t->name, g->data_offset + (rel > UINT64_MAX - g->data_offset ? 0 : rel),
                                 t->nbytes, rel, g->file_size, g->data_offset);
        t->offset = g->data_offset + rel;
    }
    return 0;
}

static int parse(lmm_gguf **out, reader *r) {
    lmm_gguf *g = r->g;
    g->file_size = r->size;
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    if (parse_header(r) || parse_metadata(r) || parse_alignment(r) || parse_tensor_infos(r) || place_tensors(r)) {
        lmm_gguf_free(g);
        return -1;
    }
    *out = g;
    return 0;
}

static lmm_gguf *gguf_new(const char *name) {
    lmm_gguf *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->name = strdup(name ? name : "gguf");
    if (!g->name) {
        free(g);
        return NULL;
    }
    return g;
}

int lmm_gguf_open_memory(lmm_gguf **out, const void *data, size_t size, const char *name) {
    *out = NULL;
    if (!name) name = "memory";
    if (!data && size) return lmm_error_set("%s: no data", name);
    lmm_gguf *g = gguf_new(name);
    if (!g) return lmm_error_set("%s: out of memory", name);
    reader r = {.g = g, .name = g->name, .size = size, .base = data, .avail = size, .fd = -1};
    return parse(out, &r);
}

int lmm_gguf_open(lmm_gguf **out, const char *path) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lmm_error_set("%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return lmm_error_set("%s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return lmm_error_set("%s: not a regular file", path);
    }
    lmm_gguf *g = gguf_new(path);
    if (!g) {
        close(fd);
        return lmm_error_set("%s: out of memory", path);
    }
    reader r = {.g = g, .name = g->name, .size = (uint64_t)st.st_size, .fd = fd};
    int rc = parse(out, &r);
    free(r.buf);
    close(fd);
    return rc;
}

/* ---- accessors ---------------------------------------------------------------- */

uint32_t lmm_gguf_version(const lmm_gguf *g) { return g->version; }
uint64_t lmm_gguf_n_kv(const lmm_gguf *g) { return g->n_kv; }
uint64_t lmm_gguf_n_tensors(const lmm_gguf *g) { return g->n_tensors; }
uint64_t lmm_gguf_data_offset(const lmm_gguf *g) { return g->data_offset; }
uint32_t lmm_gguf_alignment(const lmm_gguf *g) { return g->alignment; }
const char *lmm_gguf_name(const lmm_gguf *g) { return g->name; }
uint64_t lmm_gguf_file_size(const lmm_gguf *g) { return g->file_size; }

const lmm_gguf_tensor *lmm_gguf_tensor_at(const lmm_gguf *g, uint64_t i) {
    return i < g->n_tensors ? &g->tensors[i] : NULL;
}

int64_t lmm_gguf_find_tensor(const lmm_gguf *g, const char *name) {
    return index_find(g, &g->tensor_ix, tensor_name, name);
}

int64_t lmm_gguf_find_key(const lmm_gguf *g, const char *key) { return index_find(g, &g->key_ix, kv_name, key); }

const char *lmm_gguf_key_at(const lmm_gguf *g, uint64_t i) { return i < g->n_kv ? g->kv[i].key.ptr : NULL; }

lmm_gguf_type lmm_gguf_type_at(const lmm_gguf *g, uint64_t i) {
    return i < g->n_kv ? (lmm_gguf_type)g->kv[i].val.type : (lmm_gguf_type)-1;
}

/* ---- typed getters ----------------------------------------------------------- */

static const gval *lookup(const lmm_gguf *g, const char *key) {
    int64_t i = lmm_gguf_find_key(g, key);
    return i < 0 ? NULL : &g->kv[i].val;
}

static int missing(const lmm_gguf *g, const char *key) {
    return lmm_error_set("%s: metadata key '%s' not found", g->name, key);
}

static int type_error(const lmm_gguf *g, const char *key, const gval *v, const char *expected) {
    return lmm_error_set("%s: metadata key '%s' has type %s, expected %s", g->name, key, VALUE_TYPE_NAMES[v->type],
                         expected);
}

/* Integer value as (negative?, magnitude-ish): unsigned -> *u, signed -> *s. */
static int get_int(const lmm_gguf *g, const char *key, const gval *v, bool *neg, uint64_t *u, int64_t *s) {
    if (is_unsigned_int(v->type)) {
        *neg = false;
        *u = v->v.u;
        *s = v->v.u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v->v.u;
        return 0;
    }
    if (is_signed_int(v->type)) {
        *neg = v->v.i < 0;
        *u = *neg ? 0 : (uint64_t)v->v.i;
        *s = v->v.i;
        return 0;
    }
    return type_error(g, key, v, "an integer");
}

static int conv_u64(const lmm_gguf *g, const char *key, const gval *v, uint64_t max, uint64_t *out) {
    bool neg;
    uint64_t u;
    int64_t s;
    if (get_int(g, key, v, &neg, &u, &s)) return -1;
    if (neg) return lmm_error_set("%s: metadata key '%s' = %" PRId64 " is negative", g->name, key, s);
    if (u > max) return lmm_error_set("%s: metadata key '%s' = %" PRIu64 " is too large (max %" PRIu64 ")", g->name, key, u, max);
    *out = u;
    return 0;
}

int lmm_gguf_get_u64(const lmm_gguf *g, const char *key, uint64_t *out) {
    const gval *v = lookup(g, key);
    return v ? conv_u64(g, key, v, UINT64_MAX, out) : missing(g, key);
}

int lmm_gguf_get_u32(const lmm_gguf *g, const char *key, uint32_t *out) {
    const gval *v = lookup(g, key);
    if (!v) return missing(g, key);
    uint64_t u;
    if (conv_u64(g, key, v, UINT32_MAX, &u)) return -1;
    *out = (uint32_t)u;
    return 0;
}

int lmm_gguf_get_i64(const lmm_gguf *g, const char *key, int64_t *out) {
    const gval *v = lookup(g, key);
    if (!v) return missing(g, key);
    bool neg;
    uint64_t u;
    int64_t s;
    if (get_int(g, key, v, &neg, &u, &s)) return -1;
    if (!neg && u > (uint64_t)INT64_MAX)
        return lmm_error_set("%s: metadata key '%s' = %" PRIu64 " does not fit in i64", g->name, key, u);
    *out = s;
    return 0;
}

#define EXACT_INT_IN_DOUBLE (1ull << 53)

static int conv_f64(const lmm_gguf *g, const char *key, const gval *v, double *out) {
    if (is_float(v->type)) {
        *out = v->v.f;
        return 0;
    }
    bool neg;
    uint64_t u;
    int64_t s;
    if (!is_unsigned_int(v->type) && !is_signed_int(v->type)) return type_error(g, key, v, "a number");
    if (get_int(g, key, v, &neg, &u, &s)) return -1;
    if (neg ? (s < -(int64_t)EXACT_INT_IN_DOUBLE) : (u > EXACT_INT_IN_DOUBLE))
        return lmm_error_set("%s: metadata key '%s': integer is not exactly representable as a double", g->name, key);
    *out = neg ? (double)s : (double)u;
    return 0;
}

int lmm_gguf_get_f64(const lmm_gguf *g, const char *key, double *out) {
    const gval *v = lookup(g, key);
    return v ? conv_f64(g, key, v, out) : missing(g, key);
}

int lmm_gguf_get_bool(const lmm_gguf *g, const char *key, bool *out) {
    const gval *v = lookup(g, key);
    if (!v) return missing(g, key);
    if (v->type != LMM_GGUF_BOOL) return type_error(g, key, v, "bool");
    *out = v->v.u != 0;
    return 0;
}

int lmm_gguf_get_str(const lmm_gguf *g, const char *key, const char **out, uint64_t *len) {
    const gval *v = lookup(g, key);
    if (!v) return missing(g, key);
    if (v->type != LMM_GGUF_STRING) return type_error(g, key, v, "string");
    *out = v->v.s.ptr;
    if (len) *len = v->v.s.len;
    return 0;
}

int lmm_gguf_get_u64_opt(const lmm_gguf *g, const char *key, uint64_t *out) {
    return lmm_gguf_find_key(g, key) < 0 ? 1 : lmm_gguf_get_u64(g, key, out);
}
int lmm_gguf_get_u32_opt(const lmm_gguf *g, const char *key, uint32_t *out) {
    return lmm_gguf_find_key(g, key) < 0 ? 1 : lmm_gguf_get_u32(g, key, out);
}
int lmm_gguf_get_f64_opt(const lmm_gguf *g, const char *key, double *out) {
    return lmm_gguf_find_key(g, key) < 0 ? 1 : lmm_gguf_get_f64(g, key, out);
}
int lmm_gguf_get_bool_opt(const lmm_gguf *g, const char *key, bool *out) {
    return lmm_gguf_find_key(g, key) < 0 ? 1 : lmm_gguf_get_bool(g, key, out);
}
int lmm_gguf_get_str_opt(const lmm_gguf *g, const char *key, const char **out, uint64_t *len) {
    return lmm_gguf_find_key(g, key) < 0 ? 1 : lmm_gguf_get_str(g, key, out, len);
}

/* ---- arrays ------------------------------------------------------------------ */

static const gval *lookup_arr(const lmm_gguf *g, const char *key) {
    const gval *v = lookup(g, key);
    if (!v) {
        missing(g, key);
        return NULL;
    }
    if (v->type != LMM_GGUF_ARRAY) {
        type_error(g, key, v, "array");
        return NULL;
    }
    return v;
}

int lmm_gguf_get_arr(const lmm_gguf *g, const char *key, lmm_gguf_type *elem_type, uint64_t *count) {
    const gval *v = lookup_arr(g, key);
    if (!v) return -1;
    if (elem_type) *elem_type = (lmm_gguf_type)v->elem;
    if (count) *count = v->count;
    return 0;
}

static const gval *lookup_elem(const lmm_gguf *g, const char *key, uint64_t i) {
    const gval *v = lookup_arr(g, key);
    if (v && i >= v->count) {
        lmm_error_set("%s: metadata key '%s': index %" PRIu64 " is out of range (%" PRIu64 " elements)", g->name, key,
                      i, v->count);
        return NULL;
    }
    return v;
}

int lmm_gguf_arr_str(const lmm_gguf *g, const char *key, uint64_t i, const char **out, uint64_t *len) {
    const gval *v = lookup_elem(g, key, i);
    if (!v) return -1;
    if (v->elem != LMM_GGUF_STRING)
        return lmm_error_set("%s: metadata key '%s' is an array of %s, expected strings", g->name, key,
                             VALUE_TYPE_NAMES[v->elem]);
    *out = v->v.strs[i].ptr;
    if (len) *len = v->v.strs[i].len;
    return 0;
}

/* Element i of a scalar array as a temporary scalar gval. */
static void scalar_elem(const gval *arr, uint64_t i, gval *out) {
    unsigned n = scalar_size(arr->elem);
    uint64_t bits = le(arr->v.raw + i * n, n);
    memset(out, 0, sizeof *out);
    out->type = arr->elem;
    switch (arr->elem) {
    case LMM_GGUF_I8: out->v.i = (int8_t)(uint8_t)bits; break;
    case LMM_GGUF_I16: out->v.i = (int16_t)(uint16_t)bits; break;
    case LMM_GGUF_I32: out->v.i = (int32_t)(uint32_t)bits; break;
    case LMM_GGUF_I64: memcpy(&out->v.i, &bits, 8); break;
    case LMM_GGUF_F32: {
        uint32_t b32 = (uint32_t)bits;
        float f;
        memcpy(&f, &b32, 4);
        out->v.f = f;
        break;
    }
    case LMM_GGUF_F64: memcpy(&out->v.f, &bits, 8); break;
    default: out->v.u = bits; break;
    }
}

static bool is_numeric(uint32_t t) { return is_unsigned_int(t) || is_signed_int(t) || is_float(t); }

int lmm_gguf_arr_f64(const lmm_gguf *g, const char *key, uint64_t i, double *out) {
    const gval *v = lookup_elem(g, key, i);
    if (!v) return -1;
    if (!is_numeric(v->elem))
        return lmm_error_set("%s: metadata key '%s' is an array of %s, expected numbers", g->name, key,
                             VALUE_TYPE_NAMES[v->elem]);
    gval e;
    scalar_elem(v, i, &e);
    return conv_f64(g, key, &e, out);
}

int lmm_gguf_arr_i64(const lmm_gguf *g, const char *key, uint64_t i, int64_t *out) {
    const gval *v = lookup_elem(g, key, i);
    if (!v) return -1;
    if (!is_unsigned_int(v->elem) && !is_signed_int(v->elem))
        return lmm_error_set("%s: metadata key '%s' is an array of %s, expected integers", g->name, key,
                             VALUE_TYPE_NAMES[v->elem]);
    gval e;
    scalar_elem(v, i, &e);
    if (is_unsigned_int(e.type) && e.v.u > (uint64_t)INT64_MAX)
        return lmm_error_set("%s: metadata key '%s'[%" PRIu64 "] = %" PRIu64 " does not fit in i64", g->name, key, i,
                             e.v.u);
    *out = is_unsigned_int(e.type) ? (int64_t)e.v.u : e.v.i;
    return 0;
}

/* ---- rendering for lminfo ----------------------------------------------------- */

#define FMT_MAX_ITEMS 16u    /* arrays longer than this are summarised */
#define FMT_MAX_STR 200u     /* bytes of a string shown */
#define FMT_MAX_ELEM_STR 40u /* bytes of each string shown inside an array */

typedef struct {
    char *buf;
    size_t cap, len;
    bool full;
} out_buf;

static void put(out_buf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out_buf *o, const char *fmt, ...) {
    if (o->full) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->cap - o->len) {
        o->len = o->cap - 1;
        o->full = true;
        /* Mark the cut where there is room for it. */
        if (o->cap >= 4) memcpy(o->buf + o->cap - 4, "...", 4);
        return;
    }
    o->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at p (n bytes available), or 0 if invalid. */
static unsigned utf8_len(const unsigned char *p, uint64_t n) {
    unsigned len;
    uint32_t cp;
    if (p[0] < 0x80) return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) len = 2, cp = p[0] & 0x1fu;
    else if (p[0] >= 0xe0 && p[0] <= 0xef) len = 3, cp = p[0] & 0x0fu;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4) len = 4, cp = p[0] & 0x07u;
    else return 0;
    if (n < len) return 0;
    for (unsigned k = 1; k < len; k++) {
        if ((p[k] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (p[k] & 0x3fu);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

/* Quoted, with control characters and invalid UTF-8 bytes escaped as \xNN. */
static void put_str(out_buf *o, const gstr *s, size_t max) {
    put(o, "\"");
    const unsigned char *p = (const unsigned char *)s->ptr;
    uint64_t shown = s->len < max ? s->len : max;
    uint64_t i = 0;
    while (i < shown && !o->full) {
        unsigned char c = p[i];
        unsigned n = utf8_len(p + i, s->len - i);
        if (c == '"' || c == '\\') put(o, "\\%c", c);
        else if (c == '\n') put(o, "\\n");
        else if (c == '\t') put(o, "\\t");
        else if (n == 0 || c < 0x20 || c == 0x7f) put(o, "\\x%02x", c);
        else if (n == 1) put(o, "%c", c);
        else {
            put(o, "%.*s", (int)n, (const char *)p + i);
            i += n;
            continue;
        }
        i++;
    }
    if (i < s->len) put(o, "...\" (%" PRIu64 " bytes)", s->len);
    else put(o, "\"");
}

static void put_scalar(out_buf *o, const gval *v) {
    switch (v->type) {
    case LMM_GGUF_U8: case LMM_GGUF_U16: case LMM_GGUF_U32: case LMM_GGUF_U64: put(o, "%" PRIu64, v->v.u); break;
    case LMM_GGUF_I8: case LMM_GGUF_I16: case LMM_GGUF_I32: case LMM_GGUF_I64: put(o, "%" PRId64, v->v.i); break;
    case LMM_GGUF_F32: put(o, "%.9g", v->v.f); break;
    case LMM_GGUF_F64: put(o, "%.17g", v->v.f); break;
    case LMM_GGUF_BOOL: put(o, "%s", v->v.u ? "true" : "false"); break;
    default: put(o, "?"); break;
    }
}

static void put_value(out_buf *o, const gval *v, size_t max_str) {
    if (v->type == LMM_GGUF_STRING) {
        put_str(o, &v->v.s, max_str);
        return;
    }
    if (v->type != LMM_GGUF_ARRAY) {
        put_scalar(o, v);
        return;
    }
    if (v->count > FMT_MAX_ITEMS || (v->elem == LMM_GGUF_ARRAY && v->count > 4)) {
        if (v->elem == LMM_GGUF_STRING) put(o, "[%" PRIu64 " strings]", v->count);
        else if (v->elem == LMM_GGUF_ARRAY) put(o, "[%" PRIu64 " arrays]", v->count);
        else put(o, "[%" PRIu64 " x %s]", v->count, VALUE_TYPE_NAMES[v->elem]);
        return;
    }
    put(o, "[");
    for (uint64_t i = 0; i < v->count && !o->full; i++) {
        if (i) put(o, ", ");
        if (v->elem == LMM_GGUF_STRING) {
            put_str(o, &v->v.strs[i], FMT_MAX_ELEM_STR);
        } else if (v->elem == LMM_GGUF_ARRAY) {
            put_value(o, &v->v.arrs[i], FMT_MAX_ELEM_STR);
        } else {
            gval e;
            scalar_elem(v, i, &e);
            put_scalar(o, &e);
        }
    }
    put(o, "]");
}

int lmm_gguf_value_format(const lmm_gguf *g, uint64_t i, char *buf, size_t cap) {
    if (!buf || cap == 0) return lmm_error_set("%s: value_format: no buffer", g->name);
    buf[0] = '\0';
    if (i >= g->n_kv)
        return lmm_error_set("%s: metadata index %" PRIu64 " is out of range (%" PRIu64 " entries)", g->name, i, g->n_kv);
    out_buf o = {buf, cap, 0, false};
    put_value(&o, &g->kv[i].val, FMT_MAX_STR);
    return 0;
}
