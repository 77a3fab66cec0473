/* model/format/hf.h — private: pieces of the Hugging Face reader exposed for tests
 * and the fuzzer (the public entry point is lmm_model_desc_open_hf in lmm/model.h). */
#ifndef LMM_FORMAT_HF_H
#define LMM_FORMAT_HF_H

#include <stddef.h>
#include <stdint.h>

#include "lmm/model.h"

/* Parses config.json text (len bytes, not NUL-terminated) into d->arch, d->arch_name,
 * d->hp (everything but the tensor table) and d->bos_id / d->eos_id. `name` is used
 * in messages ("config.json: field 'hidden_size' ..."). d must have been initialised
 * with lmm_model_desc_init; only those fields are written. */
int lmm_hf_parse_config(lmm_model_desc *d, const char *text, size_t len, const char *name);

/* Maps a Hugging Face tensor name to its canonical name (lmm/model.h). Returns 1 and
 * writes `out` (and *layer: the block number, or UINT32_MAX for tensors outside the
 * blocks) when the engine uses the tensor; 0 when it is to be ignored
 * (rotary_emb.inv_freq, ...); -1 with an error when the tensor changes the model in a
 * way the engine cannot compute (an o_proj or MLP bias), so ignoring it would give
 * wrong logits. */
int lmm_hf_map_name(const char *hf_name, char *out, size_t cap, uint32_t *layer);

#endif
