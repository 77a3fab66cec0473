/* fuzz/fuzz_safetensors.c — libFuzzer target for the safetensors header parser
 * (model/format/safetensors.c). The input is the start of a file; it is parsed as a
 * whole file and as the prefix of a longer one, and every accepted tensor must lie
 * inside the file. */
#include <stddef.h>
#include <stdint.h>

#include "../model/format/safetensors.h"

static void check(const uint8_t *data, size_t size, uint64_t file_size) {
    lmm_safetensors st;
    if (lmm_safetensors_parse(&st, data, size, file_size, "fuzz.safetensors") == 0) {
        for (uint32_t i = 0; i < st.n_tensors; i++) {
            const lmm_st_tensor *t = &st.tensors[i];
            if (t->offset < st.data_start || t->offset > file_size || t->nbytes > file_size - t->offset ||
                t->n_dims > LMM_ST_MAX_DIMS || !t->name)
                __builtin_trap();
        }
        if (lmm_safetensors_find(&st, "model.embed_tokens.weight") >= (int64_t)st.n_tensors) __builtin_trap();
    }
    lmm_safetensors_free(&st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    check(data, size, size);
    check(data, size, (uint64_t)size + 4096);
    return 0;
}
