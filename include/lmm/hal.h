/* lmm/hal.h — CPU kernels and the thread pool.
 *
 * Exactness rule (docs/exactness.md): every kernel's result is defined by ONE
 * fixed order of floating-point operations, the same on the scalar, AVX2 and
 * AVX-512 paths, for any thread count and any batch size. In particular:
 *
 *   dot(a, b, n): 16 partial sums s[0..15] start at +0.0f; element k goes to
 *   s[k % 16] as s = fmaf(a[k], b[k], s), k increasing. Then a fixed tree:
 *   s[l] += s[l+8] (l<8); s[l] += s[l+4] (l<4); s[l] += s[l+2] (l<2); s[0] + s[1].
 *   Matrix products compute every output element as exactly that dot product of a
 *   weight row (widened exactly to FP32) with the input row, so a token's result
 *   does not depend on which thread, which ISA path, or how many tokens were in
 *   the batch. Threads split output rows; a row is never split between threads.
 *
 * Weight pointers may be unaligned. n need not be a multiple of 16. */
#ifndef LMM_HAL_H
#define LMM_HAL_H

#include <stddef.h>
#include <stdint.h>

#include "lmm/dtype.h"

/* ---- ISA selection ------------------------------------------------------ */
typedef enum { LMM_ISA_SCALAR = 0, LMM_ISA_AVX2 = 1, LMM_ISA_AVX512 = 2 } lmm_isa;

/* Best path this CPU supports (AVX2 needs AVX2+FMA+F16C; AVX-512 needs F+BW+VL). */
lmm_isa lmm_hal_isa_best(void);
/* Current path: the best one unless lmm_hal_isa_set() or env LMM_ISA=scalar|avx2|avx512 chose. */
lmm_isa lmm_hal_isa(void);
/* Forces a path; -1 with an error when the CPU lacks it. Not thread-safe with running kernels. */
int lmm_hal_isa_set(lmm_isa isa);
const char *lmm_hal_isa_name(lmm_isa isa);
int lmm_hal_isa_parse(const char *s, lmm_isa *out);

/* ---- thread pool ---------------------------------------------------------- */
typedef struct lmm_threadpool lmm_threadpool;

/* n_threads >= 1 (the caller's thread is worker 0). */
lmm_threadpool *lmm_threadpool_create(int n_threads);
void lmm_threadpool_free(lmm_threadpool *p);
int lmm_threadpool_size(const lmm_threadpool *p);
/* Calls fn(arg, begin, end) on chunks of [0, n) of at most `chunk` items, handed
 * out dynamically to all threads (a slow core takes fewer). Returns when all done.
 * p may be NULL (runs on the caller). */
typedef void (*lmm_range_fn)(void *arg, size_t begin, size_t end);
void lmm_threadpool_for(lmm_threadpool *p, size_t n, size_t chunk, lmm_range_fn fn, void *arg);

/* ---- kernels ---------------------------------------------------------------
 * All take an optional pool (NULL = current thread only). */

/* The fixed-order dot product defined above (FP32 x FP32). */
float lmm_dot_f32(const float *a, const float *b, size_t n);

/* y[t*n_out + i] = dot(W row i, x[t*n_in ...])  for t < n_tok, i < n_out.
 * W: [n_out, n_in] of dtype wt, rows contiguous.  x: [n_tok, n_in].  y: [n_tok, n_out].
 * If bias != NULL, y[t][i] = dot + bias[i] (one rounding, after the dot). */
void lmm_matmul(lmm_threadpool *p, float *y, const float *x, const void *W, lmm_dtype wt,
                const float *bias, size_t n_out, size_t n_in, size_t n_tok);

/* out[i] = x[i] * (1 / sqrtf(ss/n + eps)) * w[i]; ss = dot(x, x, n) in the fixed order.
 * Precisely: r = 1.0f / sqrtf(ss / (float)n + eps); out[i] = (x[i] * r) * w[i]. */
void lmm_rmsnorm(float *out, const float *x, const float *w, size_t n, float eps);

/* In place: m = max; x[i] = lmm_expf(x[i] - m); s = sum in index order (plain adds,
 * s starts at 0); x[i] = x[i] / s. */
void lmm_softmax(float *x, size_t n);

/* gate[i] = (gate[i] / (1 + lmm_expf(-gate[i]))) * up[i]. */
void lmm_silu_mul(float *gate, const float *up, size_t n);

/* The one exp implementation of the engine (scalar; same bits everywhere). */
float lmm_expf(float x);

/* Rotates n_heads heads of head_dim in vec[n_heads*head_dim] in place.
 * cos_sin: [head_dim/2][2] = {cos, sin} of this position's angle per frequency i.
 * INTERLEAVED rotates (2i, 2i+1); NEOX rotates (i, i + head_dim/2):
 *   a' = a*c - b*s ; b' = a*s + b*c   (two roundings each: products, then the sum; no FMA) */
void lmm_rope(float *vec, size_t n_heads, size_t head_dim, const float *cos_sin, int neox);

/* One query head over n_keys cached positions (causal prefix already chosen by caller):
 *   score[t] = lmm_dot_f32(q, k_cache + t*kv_stride, head_dim) * scale
 *   softmax(score) as lmm_softmax
 *   out[d] = sum over t increasing of fmaf(score[t], v_cache[t*kv_stride + d], acc)  (acc from +0)
 * q: [head_dim]; k_cache/v_cache: rows of kv_stride floats; scratch: [n_keys]. */
void lmm_attention_head(float *out, const float *q, const float *k_cache, const float *v_cache,
                        size_t n_keys, size_t head_dim, size_t kv_stride, float scale,
                        float *scratch);

/* The two halves of lmm_attention_head, for keys that come in blocks (the paged live
 * KV, docs/kv-cache.md "Long contexts"): lmm_attention_head is exactly
 *   lmm_attention_scores(scratch, ..all keys..); lmm_softmax(scratch, n_keys);
 *   out = +0; lmm_attention_acc(out, scratch, ..all values..)
 * and both halves may be split over blocks of consecutive positions, called in position
 * order, with the same bits: a score depends only on its key row, and _acc continues
 * each out[d]'s fmaf chain from the value stored in out.
 * _scores: s[t] = lmm_dot_f32(q, k_cache + t*kv_stride, head_dim) * scale, t < n_keys.
 * _acc:    out[d] = fmaf(p[t], v_cache[t*kv_stride + d], out[d]) for t increasing. */
void lmm_attention_scores(float *s, const float *q, const float *k_cache, size_t n_keys, size_t head_dim,
                          size_t kv_stride, float scale);
void lmm_attention_acc(float *out, const float *p, const float *v_cache, size_t n_keys, size_t head_dim,
                       size_t kv_stride);

#endif
