/* model/format/gguf_model.h — internal: mapping a parsed GGUF onto lmm_model_desc.
 * Shared by lmm_model_desc_open_gguf() and fuzz/fuzz_gguf.c (which parses from memory). */
#ifndef LMM_FORMAT_GGUF_MODEL_H
#define LMM_FORMAT_GGUF_MODEL_H

#include "lmm/gguf.h"
#include "lmm/model.h"

/* Initialises D and fills it from G: architecture, hyper-parameters, tensor table
 * (file 0 is lmm_gguf_name(g), of lmm_gguf_file_size(g) bytes), then validates.
 * Takes ownership of G in every case: on success it is D->gguf, on failure it has
 * been freed together with D (D is left zeroed). Returns 0 or -1 with an error. */
int lmm_model_desc_from_gguf(lmm_model_desc *d, lmm_gguf *g);

#endif
