/* model/graph/transformer.c — the Llama-family forward pass (lmm_transformer_*).
 *
 * One layer, for a chunk of at most max_batch tokens at positions pos0..pos0+n-1:
 *   xb = rmsnorm(x) row by row
 *   q = xb Wq^T (+bq);  k, v = xb Wk^T, xb Wv^T (+bk, bv) written straight into the
 *       KV cache rows of their positions;  rope(q), rope(k) per token at its position
 *   att[t][h] = attention_head(q[t][h], K/V rows 0..pos0+t of kv head h/group)
 *   x += att Wo^T
 *   xb = rmsnorm(x);  hb = silu(xb Wgate^T) * (xb Wup^T);  x += hb Wdown^T
 * then rmsnorm(x) and the output matrix, only for the rows whose logits are asked for.
 *
 * Bit-identity (docs/exactness.md, "Transformer"): every step above is either a hal
 * kernel applied to one row (whose result the hal defines independently of thread,
 * ISA path and batch size) or an element-wise operation on one row. Nothing combines
 * values across tokens of a chunk except attention, which for token t reads exactly
 * the cache rows 0..pos0+t, already final. So a token's logits are the same whether it
 * came in a prefill of many or alone. All buffers are allocated in init. */
#include "lmm/transformer.h"

#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lmm/error.h"
#include "rope_table.h"

#define DEFAULT_MAX_BATCH 64u
#define MAX_CTX (1u << 24)
#define MAX_BATCH_LIMIT 65536u

struct lmm_transformer {
    const lmm_weights *w;
    lmm_hparams hp;
    uint32_t n_ctx, max_batch;
    size_t dim, hidden_dim, head_dim, n_heads, n_kv_heads, q_dim, kv_dim, n_vocab;
    int neox;
    float attn_scale;             /* 1 / sqrtf(head_dim) */
    lmm_threadpool *pool;
    int n_slots;                  /* attention scratch rows: one per thread */

    float *rope;                  /* [n_ctx][head_dim/2][2] {cos, sin} */
    float *x;                     /* [max_batch][dim] residual stream */
    float *xb;                    /* [max_batch][dim] normalised input of a sub-layer */
    float *q;                     /* [max_batch][q_dim] queries */
    float *att;                   /* [max_batch][q_dim] attention output, heads concatenated */
    float *proj;                  /* [max_batch][dim] output of Wo / Wdown, before the residual add */
    float *hb;                    /* [max_batch][hidden_dim] gate, then silu(gate)*up */
    float *hb2;                   /* [max_batch][hidden_dim] up */
    float *key_cache;             /* [n_layers][n_ctx][kv_dim] */
    float *value_cache;           /* [n_layers][n_ctx][kv_dim] */
    float *att_scratch;           /* [n_slots][n_ctx] attention scores */
    atomic_int *slot_busy;        /* [n_slots] */
    size_t state_bytes;
};

/* ---- allocation ------------------------------------------------------------ */

static int mul_size(size_t *out, size_t a, size_t b) {
    if (b && a > SIZE_MAX / b) return -1;
    *out = a * b;
    return 0;
}

/* 64-byte aligned, zeroed array of a*b*c floats; counts the bytes into *total. */
static float *alloc_floats(size_t a, size_t b, size_t c, size_t *total) {
    size_t n, bytes;
    if (mul_size(&n, a, b) || mul_size(&n, n, c) || mul_size(&bytes, n, sizeof(float)) || bytes > SIZE_MAX - 64)
        return NULL;
    bytes = (bytes + 63) / 64 * 64;
    if (bytes == 0) bytes = 64;
    void *p = aligned_alloc(64, bytes);
    if (!p) return NULL;
    memset(p, 0, bytes);
    *total += bytes;
    return p;
}

void lmm_transformer_free(lmm_transformer *t) {
    if (!t) return;
    lmm_threadpool_free(t->pool);
    free(t->rope);
    free(t->x);
    free(t->xb);
    free(t->q);
    free(t->att);
    free(t->proj);
    free(t->hb);
    free(t->hb2);
    free(t->key_cache);
    free(t->value_cache);
    free(t->att_scratch);
    free(t->slot_busy);
    free(t);
}

int lmm_transformer_init(lmm_transformer **out, const lmm_weights *w, const lmm_transformer_opts *o) {
    *out = NULL;
    if (!w || !w->desc || !w->layers) return lmm_error_set("transformer: weights are not loaded");
    const lmm_hparams *hp = &w->desc->hp;
    const char *src = w->desc->n_files ? w->desc->files[0] : "model";
    lmm_transformer_opts opts = o ? *o : (lmm_transformer_opts){0, 0, 0};
    uint32_t n_ctx = opts.n_ctx ? opts.n_ctx : hp->max_seq_len;
    uint32_t max_batch = opts.max_batch ? opts.max_batch : DEFAULT_MAX_BATCH;
    if (n_ctx > MAX_CTX) return lmm_error_set("%s: context of %u positions is too large (most %u)", src, n_ctx, MAX_CTX);
    if (max_batch > MAX_BATCH_LIMIT)
        return lmm_error_set("%s: max_batch %u is too large (most %u)", src, max_batch, MAX_BATCH_LIMIT);
    if (max_batch > n_ctx) max_batch = n_ctx;
    int n_threads = opts.n_threads;
    if (n_threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = c > 0 ? (int)c : 1;
    }
    if (n_threads > 1024) return lmm_error_set("transformer: %d threads is too many (most 1024)", n_threads);
    if (hp->n_heads % hp->n_kv_heads != 0 || hp->head_dim % 2 != 0)
        return lmm_error_set("%s: n_heads %u / n_kv_heads %u / head_dim %u do not fit the graph", src, hp->n_heads,
                             hp->n_kv_heads, hp->head_dim);

    lmm_transformer *t = calloc(1, sizeof *t);
    if (!t) return lmm_error_set("out of memory");
    t->w = w;
    t->hp = *hp;
    t->n_ctx = n_ctx;
    t->max_batch = max_batch;
    t->dim = hp->dim;
    t->hidden_dim = hp->hidden_dim;
    t->head_dim = hp->head_dim;
    t->n_heads = hp->n_heads;
    t->n_kv_heads = hp->n_kv_heads;
    t->q_dim = (size_t)hp->n_heads * hp->head_dim;
    t->kv_dim = (size_t)hp->n_kv_heads * hp->head_dim;
    t->n_vocab = hp->n_vocab;
    t->neox = hp->rope_layout == LMM_ROPE_NEOX;
    t->attn_scale = 1.0f / sqrtf((float)hp->head_dim);

    t->pool = lmm_threadpool_create(n_threads);
    if (!t->pool) {
        lmm_transformer_free(t);
        return lmm_error_set("transformer: cannot start %d threads", n_threads);
    }
    t->n_slots = lmm_threadpool_size(t->pool);

    size_t total = 0, mb = max_batch;
    t->rope = alloc_floats(n_ctx, t->head_dim, 1, &total);
    t->x = alloc_floats(mb, t->dim, 1, &total);
    t->xb = alloc_floats(mb, t->dim, 1, &total);
    t->q = alloc_floats(mb, t->q_dim, 1, &total);
    t->att = alloc_floats(mb, t->q_dim, 1, &total);
    t->proj = alloc_floats(mb, t->dim, 1, &total);
    t->hb = alloc_floats(mb, t->hidden_dim, 1, &total);
    t->hb2 = alloc_floats(mb, t->hidden_dim, 1, &total);
    t->key_cache = alloc_floats(hp->n_layers, n_ctx, t->kv_dim, &total);
    t->value_cache = alloc_floats(hp->n_layers, n_ctx, t->kv_dim, &total);
    t->att_scratch = alloc_floats((size_t)t->n_slots, n_ctx, 1, &total);
    t->slot_busy = calloc((size_t)t->n_slots, sizeof *t->slot_busy);
    if (!t->rope || !t->x || !t->xb || !t->q || !t->att || !t->proj || !t->hb || !t->hb2 || !t->key_cache ||
        !t->value_cache || !t->att_scratch || !t->slot_busy) {
        uint64_t kv = lmm_model_desc_kv_bytes(w->desc, n_ctx);
        lmm_transformer_free(t);
        return lmm_error_set("%s: out of memory for the run state (KV cache of %u positions = %" PRIu64 " bytes)", src,
                             n_ctx, kv);
    }
    for (int i = 0; i < t->n_slots; i++) atomic_init(&t->slot_busy[i], 0);
    t->state_bytes = total;
    lmm_rope_table_fill(t->rope, hp, w->rope_freq_factors, n_ctx);
    *out = t;
    return 0;
}

uint32_t lmm_transformer_n_ctx(const lmm_transformer *t) { return t->n_ctx; }

size_t lmm_transformer_state_bytes(const lmm_transformer *t) { return t->state_bytes; }

/* ---- attention ------------------------------------------------------------- */

typedef struct {
    lmm_transformer *t;
    const float *k_layer;   /* [n_ctx][kv_dim] of this layer */
    const float *v_layer;
    uint32_t pos0;          /* position of token 0 of the chunk */
} attn_job;

/* A free scratch row. At most n_slots calls run at once (one per thread), so one is
 * always free; which one a call gets does not matter (scores are overwritten). */
static int slot_acquire(lmm_transformer *t) {
    for (;;)
        for (int i = 0; i < t->n_slots; i++)
            if (!atomic_load_explicit(&t->slot_busy[i], memory_order_relaxed) &&
                !atomic_exchange_explicit(&t->slot_busy[i], 1, memory_order_acquire))
                return i;
}

static void slot_release(lmm_transformer *t, int i) { atomic_store_explicit(&t->slot_busy[i], 0, memory_order_release); }

/* Items are (token, head) pairs: item = token * n_heads + head. */
static void attn_range(void *arg, size_t begin, size_t end) {
    const attn_job *j = arg;
    lmm_transformer *t = j->t;
    int slot = slot_acquire(t);
    float *scratch = t->att_scratch + (size_t)slot * t->n_ctx;
    size_t group = t->n_heads / t->n_kv_heads;
    for (size_t item = begin; item < end; item++) {
        size_t tok = item / t->n_heads, h = item % t->n_heads;
        size_t kvh = h / group;
        size_t n_keys = (size_t)j->pos0 + tok + 1; /* causal: positions 0..pos */
        lmm_attention_head(t->att + tok * t->q_dim + h * t->head_dim, t->q + tok * t->q_dim + h * t->head_dim,
                           j->k_layer + kvh * t->head_dim, j->v_layer + kvh * t->head_dim, n_keys, t->head_dim,
                           t->kv_dim, t->attn_scale, scratch);
    }
    slot_release(t, slot);
}

/* ---- forward ---------------------------------------------------------------- */

static void add_rows(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = x[i] + y[i];
}

/* Runs n <= max_batch tokens at pos0..; leaves the final residual stream in t->x. */
static void forward_chunk(lmm_transformer *t, const uint32_t *tokens, uint32_t n, uint32_t pos0) {
    const lmm_weights *w = t->w;
    const size_t dim = t->dim, hd = t->head_dim, esize = lmm_dtype_size(w->token_embd.dtype);
    const float eps = t->hp.norm_eps;

    for (uint32_t i = 0; i < n; i++)
        lmm_dtype_row_to_f32(t->x + i * dim, (const unsigned char *)w->token_embd.data + (size_t)tokens[i] * dim * esize,
                             w->token_embd.dtype, dim);

    for (uint32_t l = 0; l < t->hp.n_layers; l++) {
        const lmm_layer_weights *L = &w->layers[l];
        float *k_layer = t->key_cache + (size_t)l * t->n_ctx * t->kv_dim;
        float *v_layer = t->value_cache + (size_t)l * t->n_ctx * t->kv_dim;
        float *k_rows = k_layer + (size_t)pos0 * t->kv_dim; /* [n][kv_dim], rows of this chunk */
        float *v_rows = v_layer + (size_t)pos0 * t->kv_dim;

        /* attention */
        for (uint32_t i = 0; i < n; i++) lmm_rmsnorm(t->xb + i * dim, t->x + i * dim, L->attn_norm, dim, eps);
        lmm_matmul(t->pool, t->q, t->xb, L->wq.data, L->wq.dtype, L->bq, t->q_dim, dim, n);
        lmm_matmul(t->pool, k_rows, t->xb, L->wk.data, L->wk.dtype, L->bk, t->kv_dim, dim, n);
        lmm_matmul(t->pool, v_rows, t->xb, L->wv.data, L->wv.dtype, L->bv, t->kv_dim, dim, n);
        for (uint32_t i = 0; i < n; i++) {
            const float *cs = t->rope + (size_t)(pos0 + i) * hd; /* [head_dim/2][2] */
            lmm_rope(t->q + i * t->q_dim, t->n_heads, hd, cs, t->neox);
            lmm_rope(k_rows + i * t->kv_dim, t->n_kv_heads, hd, cs, t->neox);
        }
        attn_job job = {t, k_layer, v_layer, pos0};
        lmm_threadpool_for(t->pool, (size_t)n * t->n_heads, 1, attn_range, &job);
        lmm_matmul(t->pool, t->proj, t->att, L->wo.data, L->wo.dtype, NULL, dim, t->q_dim, n);
        add_rows(t->x, t->proj, (size_t)n * dim);

        /* feed-forward */
        for (uint32_t i = 0; i < n; i++) lmm_rmsnorm(t->xb + i * dim, t->x + i * dim, L->ffn_norm, dim, eps);
        lmm_matmul(t->pool, t->hb, t->xb, L->w_gate.data, L->w_gate.dtype, NULL, t->hidden_dim, dim, n);
        lmm_matmul(t->pool, t->hb2, t->xb, L->w_up.data, L->w_up.dtype, NULL, t->hidden_dim, dim, n);
        for (uint32_t i = 0; i < n; i++)
            lmm_silu_mul(t->hb + i * t->hidden_dim, t->hb2 + i * t->hidden_dim, t->hidden_dim);
        lmm_matmul(t->pool, t->proj, t->hb, L->w_down.data, L->w_down.dtype, NULL, dim, t->hidden_dim, n);
        add_rows(t->x, t->proj, (size_t)n * dim);
    }
}

/* logits[r][n_vocab] for rows first..first+count-1 of the chunk's residual stream. */
static void output_rows(lmm_transformer *t, uint32_t first, uint32_t count, float *logits) {
    const lmm_weights *w = t->w;
    for (uint32_t i = 0; i < count; i++)
        lmm_rmsnorm(t->xb + (size_t)i * t->dim, t->x + (size_t)(first + i) * t->dim, w->output_norm, t->dim,
                    t->hp.norm_eps);
    lmm_matmul(t->pool, logits, t->xb, w->output.data, w->output.dtype, NULL, t->n_vocab, t->dim, count);
}

int lmm_transformer_forward(lmm_transformer *t, const uint32_t *tokens, uint32_t n, uint32_t pos, float *logits,
                            int all_logits) {
    if (n == 0) return lmm_error_set("transformer: forward of 0 tokens");
    if (pos > t->n_ctx || n > t->n_ctx - pos)
        return lmm_error_set("transformer: positions %u..%" PRIu64 " are beyond the context of %u positions", pos,
                             (uint64_t)pos + n - 1, t->n_ctx);
    for (uint32_t i = 0; i < n; i++)
        if (tokens[i] >= t->n_vocab)
            return lmm_error_set("transformer: token %u (at position %u) is out of range (vocabulary of %zu)",
                                 tokens[i], pos + i, t->n_vocab);

    for (uint32_t done = 0; done < n;) {
        uint32_t c = n - done < t->max_batch ? n - done : t->max_batch;
        forward_chunk(t, tokens + done, c, pos + done);
        if (all_logits)
            output_rows(t, 0, c, logits + (size_t)done * t->n_vocab);
        else if (done + c == n)
            output_rows(t, c - 1, 1, logits);
        done += c;
    }
    return 0;
}
