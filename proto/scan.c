/* proto/scan.c — a structural pass over the raw bytes of a message before msgpack-c
 * unpacks them.
 *
 * Why: msgpack-c reserves an array's or map's element storage from the count in its
 * header before it reads a single element, so 5 bytes declaring 2^32 elements would
 * make it ask for ~100 GB, and a 1 MiB message of nested headers could make it build
 * millions of objects. This pass walks the MessagePack headers (it never decodes a
 * value) and accepts only what every message of docs/protocol.md can look like: one
 * map at the top with at most PROTO_MAX_FIELDS entries, containers nested at most 2
 * deep (map -> array -> scalars), every declared length and element count inside the
 * buffer, at most PROTO_MAX_VALUES values, and nothing after the map. After it, the
 * memory msgpack-c takes is bounded by the decoder's one zone chunk. */
#include <inttypes.h>
#include <stdint.h>

#include "lmm/error.h"
#include "proto_internal.h"

#define MAX_DEPTH 2 /* root map = 0, its keys/values = 1, array elements = 2 */

static const char *kind(uint8_t b) {
    if (b <= 0x7f || b >= 0xe0 || (b >= 0xcc && b <= 0xd3)) return "an integer";
    if (b <= 0x8f || b == 0xde || b == 0xdf) return "a map";
    if (b <= 0x9f || b == 0xdc || b == 0xdd) return "an array";
    if (b <= 0xbf || (b >= 0xd9 && b <= 0xdb)) return "a string";
    if (b == 0xc0) return "nil";
    if (b == 0xc2 || b == 0xc3) return "a boolean";
    if (b >= 0xc4 && b <= 0xc6) return "binary data";
    if (b == 0xca || b == 0xcb) return "a float";
    if (b == 0xc1) return "the never-used byte";
    return "an extension";
}

static uint64_t read_be(const uint8_t *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}

int lmm_proto_scan(const void *buf, size_t len, size_t *n_values, uint32_t *code) {
    const uint8_t *start = buf, *p = start, *end = start + len;
    *code = LMM_PROTO_E_BAD_MESSAGE;
    if (len == 0) return lmm_error_set("empty message");
    if (!((p[0] >= 0x80 && p[0] <= 0x8f) || p[0] == 0xde || p[0] == 0xdf))
        return lmm_error_set("message is not a map (it starts with %s, byte 0x%02x)", kind(p[0]), p[0]);

    uint64_t left[MAX_DEPTH + 1]; /* values still to read at each depth */
    int depth = 0;
    left[0] = 1;
    size_t values = 0;
    while (depth >= 0) {
        if (left[depth] == 0) {
            depth--;
            continue;
        }
        left[depth]--;
        size_t here = (size_t)(p - start);
        if (p == end) return lmm_error_set("message truncated: %zu bytes end where a value should start", len);
        uint8_t b = *p++;
        uint64_t skip = 0, n = 0;
        size_t lenbytes = 0, extra = 0;
        int container = 0; /* 1 array, 2 map */
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            /* one byte */
        } else if (b <= 0x8f) {
            container = 2, n = b & 0x0f;
        } else if (b <= 0x9f) {
            container = 1, n = b & 0x0f;
        } else if (b <= 0xbf) {
            skip = b & 0x1f;
        } else {
            switch (b) {
            case 0xc1: return lmm_error_set("byte 0x%02x at offset %zu is not valid MessagePack", b, here);
            case 0xc4: case 0xd9: lenbytes = 1; break;                 /* bin8, str8 */
            case 0xc5: case 0xda: lenbytes = 2; break;                 /* bin16, str16 */
            case 0xc6: case 0xdb: lenbytes = 4; break;                 /* bin32, str32 */
            case 0xc7: lenbytes = 1, extra = 1; break;                 /* ext8 (+ type) */
            case 0xc8: lenbytes = 2, extra = 1; break;
            case 0xc9: lenbytes = 4, extra = 1; break;
            case 0xca: skip = 4; break;                                /* float32 */
            case 0xcb: skip = 8; break;                                /* float64 */
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xce: case 0xd2: skip = 4; break;
            case 0xcf: case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break;                                /* fixext 1..16 (+ type) */
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc: container = 1, lenbytes = 2; break;
            case 0xdd: container = 1, lenbytes = 4; break;
            case 0xde: container = 2, lenbytes = 2; break;
            case 0xdf: container = 2, lenbytes = 4; break;
            default: return lmm_error_set("byte 0x%02x at offset %zu is not valid MessagePack", b, here);
            }
        }
        if (lenbytes) {
            if (lenbytes > (size_t)(end - p))
                return lmm_error_set("message truncated: %zu bytes end inside the header of the value at byte %zu", len,
                                     here);
            uint64_t l = read_be(p, lenbytes);
            p += lenbytes;
            if (container)
                n = l;
            else
                skip = l + extra;
        }
        if (skip > (uint64_t)(end - p))
            return lmm_error_set("message truncated: the value at byte %zu needs %" PRIu64 " bytes, %zu remain", here,
                                 skip, (size_t)(end - p));
        p += skip;
        if (++values > PROTO_MAX_VALUES) {
            *code = LMM_PROTO_E_LIMIT;
            return lmm_error_set("message has more than %u values", PROTO_MAX_VALUES);
        }
        if (!container) continue;
        if (values == 1 && n > PROTO_MAX_FIELDS)
            return lmm_error_set("message map has %" PRIu64 " entries; no message has more than %u fields", n,
                                 PROTO_MAX_FIELDS);
        uint64_t items = container == 2 ? 2 * n : n; /* n < 2^32: no overflow */
        if (items > (uint64_t)(end - p)) /* every value takes at least one byte */
            return lmm_error_set("message truncated: %s at byte %zu declares %" PRIu64 " elements, %zu bytes remain",
                                 container == 2 ? "a map" : "an array", here, n, (size_t)(end - p));
        if (items == 0) continue;
        if (depth + 1 > MAX_DEPTH)
            return lmm_error_set("%s at byte %zu is nested deeper than any message field",
                                 container == 2 ? "a map" : "an array", here);
        left[++depth] = items;
    }
    if (p != end)
        return lmm_error_set("%zu bytes of trailing garbage after the message (%zu bytes)", (size_t)(end - p),
                             (size_t)(p - start));
    *n_values = values;
    return 0;
}
