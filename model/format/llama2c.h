/* model/format/llama2c.h — private: the llama2.c checkpoint reader split into its
 * header parse and its layout computation, so that tests and the fuzzer can run
 * them on a header in memory with a made-up file size. The public entry point is
 * lmm_model_desc_open_llama2c (lmm/model.h); the layouts are in docs/formats.md. */
#ifndef LMM_FORMAT_LLAMA2C_H
#define LMM_FORMAT_LLAMA2C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lmm/model.h"

#define LMM_LLAMA2C_MAGIC 0x616b3432u   /* "ak42" as a little-endian u32 */
#define LMM_LLAMA2C_V0_HEADER 28u       /* 7 x int32 */
#define LMM_LLAMA2C_V1_HEADER 256u      /* magic, version, 7 x int32, u8 flag, zero padding */

typedef struct {
    int version;                /* 0 (legacy, what llama2.c's run.c reads) or 1 */
    int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads;
    int32_t vocab_size;         /* as stored; legacy: negative = unshared classifier */
    int32_t seq_len;
    bool shared_classifier;     /* token embedding doubles as the classifier */
    uint32_t header_bytes;      /* where the weights start */
} lmm_llama2c_header;

/* Parses and sanity-checks the header from the first `len` bytes of a file of
 * `file_size` bytes. `name` is used in messages. */
int lmm_llama2c_parse_header(lmm_llama2c_header *h, const void *data, size_t len, uint64_t file_size,
                             const char *name);

/* Fills d (freshly initialised) for the checkpoint PATH of `file_size` bytes with
 * header h: hyper-parameters, the one data file, every tensor at its offset; checks
 * that the file is as long as the header implies and validates the result. */
int lmm_llama2c_build(lmm_model_desc *d, const lmm_llama2c_header *h, const char *path, uint64_t file_size);

#endif
