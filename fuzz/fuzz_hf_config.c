/* fuzz/fuzz_hf_config.c — libFuzzer target for the Hugging Face config.json parser
 * (lmm_hf_parse_config in model/format/hf.c), then the hyper-parameter checks of the
 * model description on whatever it accepted. */
#include <stddef.h>
#include <stdint.h>

#include "../model/format/hf.h"
#include "lmm/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lmm_model_desc d;
    lmm_model_desc_init(&d);
    if (lmm_hf_parse_config(&d, (const char *)data, size, "config.json") == 0) {
        if (d.hp.rope_layout != LMM_ROPE_NEOX) __builtin_trap();
        (void)lmm_model_desc_validate(&d); /* fails (no tensors) but runs the range checks */
        (void)lmm_model_desc_kv_bytes(&d, 16);
    }
    lmm_model_desc_free(&d);
    /* The name mapper on the same bytes, as a NUL-terminated string. */
    char name[256], out[LMM_TENSOR_NAME_MAX];
    size_t n = size < sizeof name - 1 ? size : sizeof name - 1;
    for (size_t i = 0; i < n; i++) name[i] = data[i] ? (char)data[i] : '.';
    name[n] = '\0';
    uint32_t layer;
    (void)lmm_hf_map_name(name, out, sizeof out, &layer);
    return 0;
}
