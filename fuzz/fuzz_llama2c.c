/* fuzz/fuzz_llama2c.c — libFuzzer target for the llama2.c checkpoint reader
 * (model/format/llama2c.c): header parse and layout computation. The first 8 bytes
 * of the input are a made-up file size (little-endian), the rest is the start of the
 * file. An accepted layout must keep every tensor inside that size. */
#include <stddef.h>
#include <stdint.h>

#include "../model/format/llama2c.h"
#include "lmm/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 8) return 0;
    uint64_t file_size = 0;
    for (int i = 7; i >= 0; i--) file_size = file_size << 8 | data[i];
    data += 8;
    size -= 8;
    lmm_llama2c_header h;
    if (lmm_llama2c_parse_header(&h, data, size, file_size, "fuzz.bin") != 0) return 0;
    lmm_model_desc d;
    lmm_model_desc_init(&d);
    if (lmm_llama2c_build(&d, &h, "fuzz.bin", file_size) == 0) {
        for (uint32_t i = 0; i < d.n_tensors; i++) {
            const lmm_tensor_desc *t = &d.tensors[i];
            if (t->offset < h.header_bytes || t->offset > file_size || t->nbytes > file_size - t->offset)
                __builtin_trap();
        }
    }
    lmm_model_desc_free(&d);
    return 0;
}
