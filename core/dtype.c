/* core/dtype.c — dtype names and exact FP16/BF16 <-> FP32 conversion. */
#include "lmm/dtype.h"

#include <strings.h>

#include "lmm/error.h"

size_t lmm_dtype_size(lmm_dtype t) {
    switch (t) {
    case LMM_DTYPE_F32: return 4;
    case LMM_DTYPE_F16: return 2;
    case LMM_DTYPE_BF16: return 2;
    default: return 0;
    }
}

const char *lmm_dtype_name(lmm_dtype t) {
    switch (t) {
    case LMM_DTYPE_F32: return "f32";
    case LMM_DTYPE_F16: return "f16";
    case LMM_DTYPE_BF16: return "bf16";
    default: return "?";
    }
}

int lmm_dtype_parse(const char *s, lmm_dtype *out) {
    for (int t = 0; t < LMM_DTYPE_COUNT; t++) {
        if (strcasecmp(s, lmm_dtype_name((lmm_dtype)t)) == 0) {
            *out = (lmm_dtype)t;
            return 0;
        }
    }
    return lmm_error_set("unknown dtype '%s' (expected f32, f16 or bf16)", s);
}

/* IEEE half: 1 sign, 5 exponent (bias 15), 10 mantissa bits. Exact widening. */
float lmm_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while ((man & 0x400u) == 0);
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 0x1f) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

uint16_t lmm_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t absu = u & 0x7fffffffu;
    if (absu >= 0x7f800000u) /* inf / nan */
        return (uint16_t)(sign | 0x7c00u | (absu > 0x7f800000u ? 0x200u : 0));
    if (absu >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
        return (uint16_t)(sign | 0x7c00u);
    if (absu < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
        if (absu < 0x33000000u) return (uint16_t)sign; /* < 2^-25: rounds to 0 */
        uint32_t man = (absu & 0x7fffffu) | 0x800000u;
        int shift = 126 - (int)(absu >> 23); /* 14 + (113 - e) */
        uint32_t half = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1u))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t r = absu + 0xfffu + ((absu >> 13) & 1u); /* round to nearest even */
    r -= 0x38000000u;                                   /* rebias 127 -> 15 */
    return (uint16_t)(sign | (r >> 13));
}

uint16_t lmm_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet nan */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

void lmm_dtype_row_to_f32(float *dst, const void *src, lmm_dtype t, size_t n) {
    const unsigned char *p = (const unsigned char *)src;
    switch (t) {
    case LMM_DTYPE_F32:
        memcpy(dst, src, n * sizeof(float));
        break;
    case LMM_DTYPE_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = lmm_f16_to_f32(h);
        }
        break;
    case LMM_DTYPE_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = lmm_bf16_to_f32(h);
        }
        break;
    default:
        break;
    }
}
