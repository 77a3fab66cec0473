/* model/graph/rope_table.c — precomputing RoPE rotations for every position.
 *
 * Everything is computed in double and rounded to float once, at the end: the
 * table then holds the correctly-rounded-as-far-as-libm-goes value of each
 * cos/sin, the same on every machine path, and the forward pass only reads it.
 *
 * Frequency scaling:
 *   NONE    inv_freq_i = theta^(-2i/head_dim)
 *   LLAMA3  Hugging Face's _compute_llama3_parameters: wavelen = 2*pi/inv_freq;
 *           wavelen < orig/high_ff: unchanged; wavelen > orig/low_ff: inv_freq/factor;
 *           otherwise smooth = (orig/wavelen - low_ff)/(high_ff - low_ff),
 *           inv_freq = (1-smooth)*inv_freq/factor + smooth*inv_freq.
 *   GGUF rope_freqs.weight (freq_factors): inv_freq_i / factor_i. It is the
 *           precomputed form of the Llama-3 scaling, so when present it replaces it.
 *   LINEAR  positions divided by factor (combines with any of the above). */
#include "rope_table.h"

#include <math.h>
#include <stddef.h>

double lmm_rope_inv_freq(const lmm_hparams *hp, const float *freq_factors, uint32_t i) {
    double inv_freq = pow((double)hp->rope_theta, -(double)(2 * i) / (double)hp->head_dim);
    if (freq_factors) return inv_freq / (double)freq_factors[i];
    if (hp->rope_scaling == LMM_ROPE_SCALING_LLAMA3) {
        const double pi = 3.14159265358979323846;
        double factor = hp->rope_factor, low_ff = hp->rope_low_freq_factor, high_ff = hp->rope_high_freq_factor;
        double orig = (double)hp->rope_orig_max_pos;
        double wavelen = 2.0 * pi / inv_freq;
        if (wavelen < orig / high_ff) return inv_freq;
        if (wavelen > orig / low_ff) return inv_freq / factor;
        double smooth = (orig / wavelen - low_ff) / (high_ff - low_ff);
        return (1.0 - smooth) * inv_freq / factor + smooth * inv_freq;
    }
    return inv_freq;
}

void lmm_rope_table_fill(float *table, const lmm_hparams *hp, const float *freq_factors, uint32_t n_ctx) {
    uint32_t half = hp->head_dim / 2;
    double pos_div = hp->rope_scaling == LMM_ROPE_SCALING_LINEAR ? (double)hp->rope_factor : 1.0;
    for (uint32_t i = 0; i < half; i++) {
        double inv_freq = lmm_rope_inv_freq(hp, freq_factors, i);
        for (uint32_t pos = 0; pos < n_ctx; pos++) {
            double angle = ((double)pos / pos_div) * inv_freq;
            float *cs = table + ((size_t)pos * half + i) * 2;
            cs[0] = (float)cos(angle);
            cs[1] = (float)sin(angle);
        }
    }
}
