/* model/graph/rope_table.h — the RoPE cos/sin table (internal to model/graph and its tests). */
#ifndef LMM_GRAPH_ROPE_TABLE_H
#define LMM_GRAPH_ROPE_TABLE_H

#include <stdint.h>

#include "lmm/model.h"

/* Inverse frequency of pair i (i < head_dim/2) after the model's scaling
 * (Llama-3 frequency-dependent scaling, or rope_freqs.weight divisors when
 * freq_factors != NULL). Computed in double. LINEAR scaling is not applied here:
 * it divides positions, see lmm_rope_table_fill. */
double lmm_rope_inv_freq(const lmm_hparams *hp, const float *freq_factors, uint32_t i);

/* table: [n_ctx][head_dim/2][2] = {cos, sin} of pos' * inv_freq_i, with pos' = pos
 * (or pos / factor under LINEAR scaling); angle, cos and sin in double, each
 * rounded once to float. */
void lmm_rope_table_fill(float *table, const lmm_hparams *hp, const float *freq_factors, uint32_t n_ctx);

#endif
