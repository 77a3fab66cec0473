/* lmm/gguf.h — GGUF v2/v3 reader (metadata and tensor table).
 *
 * File layout (little-endian):
 *   u32 magic "GGUF" | u32 version (2 or 3) | u64 n_tensors | u64 n_kv
 *   n_kv x { string key | u32 type | value }
 *   n_tensors x { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
 *   padding to general.alignment (default 32) | tensor data (offsets relative to here)
 *   string = u64 length + bytes (no NUL).  Value types: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32,
 *   5 i32, 6 f32, 7 bool, 8 string, 9 array (u32 elem type, u64 count, elems), 10 u64,
 *   11 i64, 12 f64.  ne[0] is the innermost (contiguous) dimension.
 * Every length, count and offset is bounds-checked against the file size before use.
 *
 * The parser accepts every ggml tensor type it knows (F32, F16, BF16, I8..I64, F64 and
 * the block-quantized Q4_0..Q8_K, IQ1_S..IQ4_XS, TQ1_0, TQ2_0, MXFP4, with nbytes from
 * their block size), so metadata and tokenizers of any GGUF can be read;
 * lmm_model_desc_open_gguf() is where anything but F32/F16/BF16 weights is refused.
 * Unknown type ids fail here ("unknown ggml type 77"). */
#ifndef LMM_GGUF_H
#define LMM_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    LMM_GGUF_U8 = 0, LMM_GGUF_I8 = 1, LMM_GGUF_U16 = 2, LMM_GGUF_I16 = 3,
    LMM_GGUF_U32 = 4, LMM_GGUF_I32 = 5, LMM_GGUF_F32 = 6, LMM_GGUF_BOOL = 7,
    LMM_GGUF_STRING = 8, LMM_GGUF_ARRAY = 9, LMM_GGUF_U64 = 10, LMM_GGUF_I64 = 11,
    LMM_GGUF_F64 = 12
} lmm_gguf_type;

typedef struct lmm_gguf lmm_gguf;

typedef struct {
    const char *name;        /* NUL-terminated copy */
    uint32_t n_dims;         /* 1..4 */
    uint64_t ne[4];          /* ggml order: ne[0] innermost */
    uint32_t ggml_type;      /* 0 F32, 1 F16, 30 BF16; see lmm_gguf_ggml_type_name() */
    uint64_t offset;         /* absolute offset in the file */
    uint64_t nbytes;
} lmm_gguf_tensor;

/* Parses the header, metadata and tensor table of PATH. Tensor data is not read. */
int lmm_gguf_open(lmm_gguf **out, const char *path);
/* Same on a memory buffer (for the fuzzer and tests); `name` is used in messages. */
int lmm_gguf_open_memory(lmm_gguf **out, const void *data, size_t size, const char *name);
void lmm_gguf_free(lmm_gguf *g);

uint32_t lmm_gguf_version(const lmm_gguf *g);
uint64_t lmm_gguf_n_kv(const lmm_gguf *g);
uint64_t lmm_gguf_n_tensors(const lmm_gguf *g);
const lmm_gguf_tensor *lmm_gguf_tensor_at(const lmm_gguf *g, uint64_t i);
uint64_t lmm_gguf_data_offset(const lmm_gguf *g);
uint32_t lmm_gguf_alignment(const lmm_gguf *g);
/* The path (or memory name) given at open; used in messages. */
const char *lmm_gguf_name(const lmm_gguf *g);
uint64_t lmm_gguf_file_size(const lmm_gguf *g);
/* Index of the tensor called NAME, or -1. */
int64_t lmm_gguf_find_tensor(const lmm_gguf *g, const char *name);

/* "F32", "Q4_0", "IQ2_XXS", ... or NULL for an unknown id. */
const char *lmm_gguf_ggml_type_name(uint32_t ggml_type);
/* True for the block-quantized types (Q4_0, Q2_K, IQ2_XXS, TQ1_0, MXFP4, ...); false for
 * F32, F16, BF16, I8..I64 and F64. */
bool lmm_gguf_ggml_type_is_quantized(uint32_t ggml_type);
/* "u8", "i32", "f32", "bool", "string", "array", ... ("?" when out of range). */
const char *lmm_gguf_type_name(lmm_gguf_type t);

/* Metadata lookup. Index of KEY or -1. */
int64_t lmm_gguf_find_key(const lmm_gguf *g, const char *key);
const char *lmm_gguf_key_at(const lmm_gguf *g, uint64_t i);
lmm_gguf_type lmm_gguf_type_at(const lmm_gguf *g, uint64_t i);

/* Typed getters: return 0 and set *out when KEY exists and converts losslessly
 * (any integer type to u32/u64/i64 if in range; f32/f64, or an integer of magnitude
 * <= 2^53, to double), -1 with an error naming the key otherwise. The _opt variants return 1 when the key is absent
 * (leaving *out untouched), 0 when read, -1 on a type error. */
int lmm_gguf_get_u64(const lmm_gguf *g, const char *key, uint64_t *out);
int lmm_gguf_get_i64(const lmm_gguf *g, const char *key, int64_t *out);
int lmm_gguf_get_u32(const lmm_gguf *g, const char *key, uint32_t *out);
int lmm_gguf_get_f64(const lmm_gguf *g, const char *key, double *out);
int lmm_gguf_get_bool(const lmm_gguf *g, const char *key, bool *out);
/* String values: pointer into the parsed copy (NUL-terminated; may contain NUL bytes, see len). */
int lmm_gguf_get_str(const lmm_gguf *g, const char *key, const char **out, uint64_t *len);
int lmm_gguf_get_u64_opt(const lmm_gguf *g, const char *key, uint64_t *out);
int lmm_gguf_get_u32_opt(const lmm_gguf *g, const char *key, uint32_t *out);
int lmm_gguf_get_f64_opt(const lmm_gguf *g, const char *key, double *out);
int lmm_gguf_get_bool_opt(const lmm_gguf *g, const char *key, bool *out);
int lmm_gguf_get_str_opt(const lmm_gguf *g, const char *key, const char **out, uint64_t *len);

/* Arrays: element type and count; element accessors for the value types above
 * (-1 with an error when KEY is not an array of a suitable type or i >= count).
 * Arrays of arrays are parsed and shown by lmm_gguf_value_format() only. */
int lmm_gguf_get_arr(const lmm_gguf *g, const char *key, lmm_gguf_type *elem_type, uint64_t *count);
int lmm_gguf_arr_str(const lmm_gguf *g, const char *key, uint64_t i, const char **out, uint64_t *len);
int lmm_gguf_arr_f64(const lmm_gguf *g, const char *key, uint64_t i, double *out);   /* any numeric elem */
int lmm_gguf_arr_i64(const lmm_gguf *g, const char *key, uint64_t i, int64_t *out);  /* any integer elem */

/* Human-readable rendering of value i for lminfo ("[32000 strings]" for big arrays);
 * truncated to fit cap (always NUL-terminated). -1 when i >= n_kv or cap == 0. */
int lmm_gguf_value_format(const lmm_gguf *g, uint64_t i, char *buf, size_t cap);

#endif
