/* lmm/sampler.h — choosing the next token from logits.
 * Order of operations (as llama.cpp users expect): repetition penalty over the last
 * `repeat_last_n` tokens -> greedy if temperature == 0 -> temperature -> top-k ->
 * softmax -> top-p -> draw with a seeded xorshift64* generator. Same seed, same text.
 * Candidates are ranked by (logit before temperature desc, id asc), so top-k = 1 or a
 * tiny top-p pick exactly the greedy token. No allocation after init. */
#ifndef LMM_SAMPLER_H
#define LMM_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    float temperature;       /* 0: greedy (argmax, lowest id wins ties) */
    uint32_t top_k;          /* 0: off */
    float top_p;             /* 1.0: off */
    float repeat_penalty;    /* 1.0: off; logit>0 ? logit/p : logit*p */
    uint32_t repeat_last_n;  /* window for the penalty (0: 64) */
    uint64_t seed;           /* any value (mixed by splitmix64 into the xorshift state) */
} lmm_sampler_opts;

typedef struct lmm_sampler lmm_sampler;

/* Defaults as llama.cpp users expect: temperature 0.8, top-k 40, top-p 0.95,
 * repetition penalty 1.0 (off) over 64 tokens, seed 0. */
void lmm_sampler_opts_default(lmm_sampler_opts *o);
/* o may be NULL (defaults). Errors: n_vocab 0, temperature < 0, top_p not in (0, 1],
 * repeat_penalty <= 0. */
int lmm_sampler_init(lmm_sampler **out, uint32_t n_vocab, const lmm_sampler_opts *o);
void lmm_sampler_free(lmm_sampler *s);
/* Records an accepted token (prompt tokens too) for the repetition penalty. */
void lmm_sampler_accept(lmm_sampler *s, uint32_t token);
/* Picks a token. logits is modified (penalty/temperature applied in place). */
uint32_t lmm_sampler_sample(lmm_sampler *s, float *logits);

#endif
