/* fuzz/fuzz_gguf.c — libFuzzer target: GGUF parser (lmm_gguf_open_memory), every
 * accessor on what it returns, and the GGUF -> model description mapping.
 * Seeds: LMM_GGUF_SEED_DIR=dir build-gguf/tests/test_gguf writes valid files into dir. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../model/format/gguf_model.h"
#include "lmm/error.h"
#include "lmm/gguf.h"
#include "lmm/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lmm_gguf *g;
    if (lmm_gguf_open_memory(&g, data, size, "fuzz.gguf") != 0) {
        if (!lmm_error_get()[0]) __builtin_trap();   /* a failure must say why */
        return 0;
    }
    char text[256];
    for (uint64_t i = 0; i < lmm_gguf_n_kv(g); i++) {
        const char *key = lmm_gguf_key_at(g, i);
        if (lmm_gguf_find_key(g, key) != (int64_t)i) __builtin_trap();
        lmm_gguf_value_format(g, i, text, sizeof text);
        uint64_t u;
        int64_t s;
        double f;
        bool b;
        const char *str;
        uint64_t len;
        lmm_gguf_get_u64(g, key, &u);
        lmm_gguf_get_i64(g, key, &s);
        lmm_gguf_get_f64(g, key, &f);
        lmm_gguf_get_bool(g, key, &b);
        lmm_gguf_get_str(g, key, &str, &len);
        lmm_gguf_type et;
        uint64_t count;
        if (lmm_gguf_get_arr(g, key, &et, &count) == 0 && count > 0) {
            /* First, last and one past the end. */
            uint64_t idx[3] = {0, count - 1, count};
            for (int k = 0; k < 3; k++) {
                lmm_gguf_arr_str(g, key, idx[k], &str, &len);
                lmm_gguf_arr_f64(g, key, idx[k], &f);
                lmm_gguf_arr_i64(g, key, idx[k], &s);
            }
        }
    }
    for (uint64_t i = 0; i < lmm_gguf_n_tensors(g); i++) {
        const lmm_gguf_tensor *t = lmm_gguf_tensor_at(g, i);
        if (lmm_gguf_find_tensor(g, t->name) != (int64_t)i) __builtin_trap();
        if (t->offset > size || t->nbytes > size - t->offset) __builtin_trap();   /* inside the buffer */
    }
    lmm_model_desc d;
    lmm_model_desc_from_gguf(&d, g);   /* takes g */
    lmm_model_desc_free(&d);
    return 0;
}
