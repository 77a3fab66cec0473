/* lmm/dtype.h — element types of weights and their exact widening to FP32. */
#ifndef LMM_DTYPE_H
#define LMM_DTYPE_H

#include <stdint.h>
#include <stddef.h>
#include <string.h>

typedef enum {
    LMM_DTYPE_F32 = 0,
    LMM_DTYPE_F16 = 1,
    LMM_DTYPE_BF16 = 2,
    LMM_DTYPE_COUNT
} lmm_dtype;

/* Bytes per element. */
size_t lmm_dtype_size(lmm_dtype t);
/* "f32", "f16", "bf16". */
const char *lmm_dtype_name(lmm_dtype t);
/* Parses "f32"/"f16"/"bf16" (case-insensitive); -1 with an error otherwise. */
int lmm_dtype_parse(const char *s, lmm_dtype *out);

/* Exact conversions (every F16/BF16 value is representable in FP32). */
static inline float lmm_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
float lmm_f16_to_f32(uint16_t h);
/* Round-to-nearest-even narrowing (used by lmsynth and tests only). */
uint16_t lmm_f32_to_f16(float f);
uint16_t lmm_f32_to_bf16(float f);

/* dst[i] = (float)src[i] for n elements of type t; src may be unaligned. */
void lmm_dtype_row_to_f32(float *dst, const void *src, lmm_dtype t, size_t n);

#endif
