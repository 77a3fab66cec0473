/* model/format/safetensors.h — private: the header of one .safetensors file.
 *
 * File layout:
 *   u64 N (little-endian) | N bytes of JSON | data
 *   JSON = { "__metadata__": { string: string, ... },            (optional)
 *            NAME: { "dtype": "F32", "shape": [d0, d1, ...],
 *                    "data_offsets": [begin, end] }, ... }
 *   begin/end are relative to the first data byte (8 + N); the header may be padded
 *   with spaces. A tensor's bytes are [8 + N + begin, 8 + N + end).
 *
 * The parser checks everything a reader needs before trusting a number: N against
 * the file size (and a 100 MiB cap), that the JSON is an object of well-formed
 * entries, that shape entries are non-negative integers whose product times the
 * element size neither overflows nor disagrees with end - begin, and that the data
 * lies inside the file. Every dtype of the safetensors spec is recognised (so that
 * tensors a reader ignores may have any of them); only F32/F16/BF16 are marked
 * `supported`. An unknown dtype string is an error. */
#ifndef LMM_FORMAT_SAFETENSORS_H
#define LMM_FORMAT_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lmm/dtype.h"

#define LMM_ST_MAX_HEADER (100ull << 20) /* largest JSON header accepted (bytes) */
#define LMM_ST_MAX_DIMS 8

typedef struct {
    char *name;                         /* as stored in the file (Hugging Face name) */
    char dtype_name[16];                /* as stored: "F32", "BF16", "I8", ... */
    bool supported;                     /* dtype is F32, F16 or BF16 */
    lmm_dtype dtype;                    /* valid when supported */
    uint32_t n_dims;                    /* 0 (scalar) .. LMM_ST_MAX_DIMS */
    uint64_t shape[LMM_ST_MAX_DIMS];    /* row-major */
    uint64_t offset;                    /* absolute file offset: 8 + N + begin */
    uint64_t nbytes;                    /* end - begin */
} lmm_st_tensor;

typedef struct {
    uint64_t header_len;     /* N */
    uint64_t data_start;     /* 8 + N */
    uint64_t file_size;
    uint32_t n_tensors;
    lmm_st_tensor *tensors;  /* [n_tensors], in the order of the header */
} lmm_safetensors;

/* Parses a header held in memory. `data` holds the first `len` bytes of a file of
 * `file_size` bytes (len <= file_size; the whole file or at least its first 8 + N
 * bytes). `name` is used in messages. On failure *st is left empty. */
int lmm_safetensors_parse(lmm_safetensors *st, const void *data, size_t len, uint64_t file_size,
                          const char *name);
/* Reads and parses the header of the file at PATH (the data is not read). */
int lmm_safetensors_read(lmm_safetensors *st, const char *path);
void lmm_safetensors_free(lmm_safetensors *st);
/* Index of the tensor NAME or -1. */
int64_t lmm_safetensors_find(const lmm_safetensors *st, const char *name);

#endif
