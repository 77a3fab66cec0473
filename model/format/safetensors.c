/* model/format/safetensors.c — parses the JSON header of one .safetensors file into a
 * checked tensor list (see safetensors.h for the layout and the checks). */
#include "model/format/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lmm/error.h"

/* Nesting the header needs: root object -> tensor object -> shape array. */
#define ST_JSON_DEPTH 8

/* ---- dtypes --------------------------------------------------------------- */

typedef struct {
    const char *name;
    unsigned bits;      /* element size in bits (sub-byte types are packed) */
    int lmm;            /* lmm_dtype, or -1 when the engine cannot use it */
} st_dtype_info;

static const st_dtype_info st_dtypes[] = {
    {"F32", 32, LMM_DTYPE_F32}, {"F16", 16, LMM_DTYPE_F16}, {"BF16", 16, LMM_DTYPE_BF16},
    {"F64", 64, -1},            {"I64", 64, -1},            {"U64", 64, -1},
    {"I32", 32, -1},            {"U32", 32, -1},            {"I16", 16, -1},
    {"U16", 16, -1},            {"I8", 8, -1},              {"U8", 8, -1},
    {"BOOL", 8, -1},            {"F8_E4M3", 8, -1},         {"F8_E5M2", 8, -1},
    {"F8_E8M0", 8, -1},         {"E8M0", 8, -1},            {"F6_E2M3", 6, -1},
    {"F6_E3M2", 6, -1},         {"F4", 4, -1},              {"C64", 64, -1},
};

static const st_dtype_info *st_dtype_lookup(const char *s) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(s, st_dtypes[i].name) == 0) return &st_dtypes[i];
    return NULL;
}

/* ---- small helpers -------------------------------------------------------- */

static uint64_t le64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* A JSON integer >= 0 (json-c saturates values beyond 2^64-1 to UINT64_MAX,
 * which every later range check rejects). */
static int json_get_u64(json_object *o, uint64_t *out) {
    if (!o || !json_object_is_type(o, json_type_int)) return -1;
    if (json_object_get_int64(o) < 0) return -1;
    *out = json_object_get_uint64(o);
    return 0;
}

static const char *json_type_label(json_object *o) { return o ? json_type_to_name(json_object_get_type(o)) : "null"; }

void lmm_safetensors_free(lmm_safetensors *st) {
    if (!st) return;
    for (uint32_t i = 0; i < st->n_tensors; i++) free(st->tensors[i].name);
    free(st->tensors);
    memset(st, 0, sizeof *st);
}

int64_t lmm_safetensors_find(const lmm_safetensors *st, const char *name) {
    for (uint32_t i = 0; i < st->n_tensors; i++)
        if (strcmp(st->tensors[i].name, name) == 0) return i;
    return -1;
}

/* ---- one tensor entry ----------------------------------------------------- */

static int st_parse_entry(lmm_st_tensor *t, const char *key, json_object *val, uint64_t data_size,
                          uint64_t data_start, const char *fname) {
    if (!json_object_is_type(val, json_type_object))
        return lmm_error_set("%s: tensor '%s': entry is a %s, expected an object", fname, key, json_type_label(val));

    json_object *jd = NULL, *js = NULL, *jo = NULL;
    if (!json_object_object_get_ex(val, "dtype", &jd) || !json_object_is_type(jd, json_type_string))
        return lmm_error_set("%s: tensor '%s': \"dtype\" is missing or not a string", fname, key);
    if (!json_object_object_get_ex(val, "shape", &js) || !json_object_is_type(js, json_type_array))
        return lmm_error_set("%s: tensor '%s': \"shape\" is missing or not an array", fname, key);
    if (!json_object_object_get_ex(val, "data_offsets", &jo) || !json_object_is_type(jo, json_type_array) ||
        json_object_array_length(jo) != 2)
        return lmm_error_set("%s: tensor '%s': \"data_offsets\" is missing or not an array of 2 integers", fname,
                             key);

    const char *dts = json_object_get_string(jd);
    const st_dtype_info *di = st_dtype_lookup(dts);
    if (!di) return lmm_error_set("%s: tensor '%s': dtype %.32s is not supported", fname, key, dts);
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", di->name);
    t->supported = di->lmm >= 0;
    t->dtype = di->lmm >= 0 ? (lmm_dtype)di->lmm : LMM_DTYPE_F32;

    size_t nd = json_object_array_length(js);
    if (nd > LMM_ST_MAX_DIMS)
        return lmm_error_set("%s: tensor '%s': %zu dimensions (at most %d supported)", fname, key, nd, LMM_ST_MAX_DIMS);
    t->n_dims = (uint32_t)nd;
    uint64_t count = 1;
    int overflow = 0;
    for (size_t i = 0; i < nd; i++) {
        uint64_t v;
        if (json_get_u64(json_object_array_get_idx(js, i), &v))
            return lmm_error_set("%s: tensor '%s': shape entry %zu is not a non-negative integer", fname, key, i);
        t->shape[i] = v;
        /* A zero dimension makes the count 0 whatever follows; keep checking entries. */
        if (v != 0 && count > UINT64_MAX / v) overflow = 1;
        else count *= v;
    }
    if (overflow && count != 0) return lmm_error_set("%s: tensor '%s': element count overflows", fname, key);
    if (overflow) count = 0;

    uint64_t begin, end;
    if (json_get_u64(json_object_array_get_idx(jo, 0), &begin) || json_get_u64(json_object_array_get_idx(jo, 1), &end))
        return lmm_error_set("%s: tensor '%s': data_offsets are not non-negative integers", fname, key);
    if (begin > end)
        return lmm_error_set("%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] end before they begin", fname,
                             key, begin, end);
    if (end > data_size)
        return lmm_error_set("%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                             ") are beyond the end of the data (%" PRIu64 " bytes)",
                             fname, key, begin, end, data_size);

    if (count > UINT64_MAX / di->bits) return lmm_error_set("%s: tensor '%s': byte size overflows", fname, key);
    uint64_t bits = count * di->bits;
    if (bits % 8 != 0)
        return lmm_error_set("%s: tensor '%s': %" PRIu64 " elements of %s do not fill whole bytes", fname, key, count,
                             di->name);
    if (bits / 8 != end - begin)
        return lmm_error_set("%s: tensor '%s': data_offsets give %" PRIu64 " bytes but shape and dtype %s need %" PRIu64,
                             fname, key, end - begin, di->name, bits / 8);
    t->offset = data_start + begin;
    t->nbytes = end - begin;
    return 0;
}

/* ---- the header ----------------------------------------------------------- */

int lmm_safetensors_parse(lmm_safetensors *st, const void *data, size_t len, uint64_t file_size,
                          const char *name) {
    memset(st, 0, sizeof *st);
    const unsigned char *p = data;
    if (len > file_size) len = (size_t)file_size;
    if (file_size < 8)
        return lmm_error_set("%s: truncated: %" PRIu64 " bytes, a safetensors file starts with an 8-byte header length",
                             name, file_size);
    if (len < 8) return lmm_error_set("%s: truncated: only %zu bytes of the header are available", name, len);
    uint64_t n = le64(p);
    if (n > LMM_ST_MAX_HEADER)
        return lmm_error_set("%s: header length %" PRIu64 " is absurd (more than %llu MiB)", name, n,
                             LMM_ST_MAX_HEADER >> 20);
    if (n > file_size - 8)
        return lmm_error_set("%s: header length %" PRIu64 " exceeds the file size (%" PRIu64 " bytes)", name, n,
                             file_size);
    if (n < 2) return lmm_error_set("%s: header length %" PRIu64 " is too small for a JSON object", name, n);
    if (len - 8 < n)
        return lmm_error_set("%s: truncated: header needs %" PRIu64 " bytes, only %zu available", name, n, len - 8);

    const char *json = (const char *)p + 8;
    struct json_tokener *tok = json_tokener_new_ex(ST_JSON_DEPTH);
    if (!tok) return lmm_error_set("out of memory");
    json_object *root = json_tokener_parse_ex(tok, json, (int)n);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (!root) {
        return lmm_error_set("%s: header is not valid JSON (%s at byte %zu)", name,
                             jerr == json_tokener_continue ? "unexpected end of data" : json_tokener_error_desc(jerr),
                             end);
    }
    int rc = -1;
    for (size_t i = end; i < n; i++) {
        char c = json[i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            lmm_error_set("%s: header is not valid JSON (unexpected data after the object at byte %zu)", name, i);
            goto out;
        }
    }
    if (!json_object_is_type(root, json_type_object)) {
        lmm_error_set("%s: header is a JSON %s, expected an object", name, json_type_label(root));
        goto out;
    }

    st->header_len = n;
    st->data_start = 8 + n;
    st->file_size = file_size;
    size_t cap = (size_t)json_object_object_length(root);
    st->tensors = calloc(cap ? cap : 1, sizeof *st->tensors);
    if (!st->tensors) {
        lmm_error_set("out of memory");
        goto out;
    }
    uint64_t data_size = file_size - st->data_start;
    json_object_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_object_is_type(val, json_type_object)) {
                lmm_error_set("%s: \"__metadata__\" is a %s, expected an object", name, json_type_label(val));
                goto out;
            }
            continue;
        }
        if (st->n_tensors >= cap) break; /* cannot happen: cap counts every key */
        lmm_st_tensor *t = &st->tensors[st->n_tensors];
        if (st_parse_entry(t, key, val, data_size, st->data_start, name)) goto out;
        t->name = strdup(key);
        if (!t->name) {
            lmm_error_set("out of memory");
            goto out;
        }
        st->n_tensors++;
    }
    rc = 0;
out:
    json_object_put(root);
    if (rc) lmm_safetensors_free(st);
    return rc;
}

static int read_full(int fd, void *buf, size_t n, uint64_t off) {
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

int lmm_safetensors_read(lmm_safetensors *st, const char *path) {
    memset(st, 0, sizeof *st);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lmm_error_set("%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return lmm_error_set("%s: not a regular file", path);
    }
    uint64_t fsize = (uint64_t)sb.st_size;
    unsigned char head[8];
    if (fsize < 8) {
        close(fd);
        return lmm_safetensors_parse(st, head, 0, fsize, path); /* reports the truncation */
    }
    if (read_full(fd, head, 8, 0)) {
        close(fd);
        return lmm_error_set("%s: read error: %s", path, strerror(errno));
    }
    uint64_t n = le64(head);
    if (n > LMM_ST_MAX_HEADER || n > fsize - 8) {
        close(fd);
        return lmm_safetensors_parse(st, head, 8, fsize, path); /* reports the bad length */
    }
    size_t len = (size_t)(8 + n);
    unsigned char *buf = malloc(len);
    if (!buf) {
        close(fd);
        return lmm_error_set("out of memory");
    }
    memcpy(buf, head, 8);
    int rc;
    if (read_full(fd, buf + 8, (size_t)n, 8)) rc = lmm_error_set("%s: read error: %s", path, strerror(errno));
    else rc = lmm_safetensors_parse(st, buf, len, fsize, path);
    free(buf);
    close(fd);
    return rc;
}
