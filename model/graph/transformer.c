/* model/graph/transformer.c — the single-sequence forward pass (lmm_transformer_*).
 *
 * A thin wrapper: a plan with unlimited piece size (every matrix one segment, so no
 * scatter), the resident source over lmm_weights, and one executor for all layers and
 * the head with one sequence. The layer math is model/graph/executor.c; this file
 * checks the call, cuts it into chunks of max_batch tokens and says which rows want
 * logits. Bit-identity: docs/exactness.md, "Transformer". */
#include "lmm/transformer.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "lmm/error.h"

#define DEFAULT_MAX_BATCH 64u
#define MAX_CTX (1u << 24)
#define MAX_BATCH_LIMIT 65536u

struct lmm_transformer {
    lmm_plan plan;
    lmm_small_tensors small;
    lmm_weight_source src;
    lmm_executor *ex;
    uint32_t n_ctx, max_batch, n_vocab;
    uint32_t *pos;                /* [max_batch] positions of a chunk */
    uint8_t *want;                /* [max_batch] which rows of a chunk want logits */
};

void lmm_transformer_free(lmm_transformer *t) {
    if (!t) return;
    lmm_executor_free(t->ex);
    lmm_source_free(&t->src);
    lmm_small_tensors_free(&t->small);
    lmm_plan_free(&t->plan);
    free(t->pos);
    free(t->want);
    free(t);
}

int lmm_transformer_init(lmm_transformer **out, const lmm_weights *w, const lmm_transformer_opts *o) {
    *out = NULL;
    if (!w || !w->desc || !w->data) return lmm_error_set("transformer: weights are not loaded");
    const lmm_hparams *hp = &w->desc->hp;
    const char *src = w->desc->n_files ? w->desc->files[0] : "model";
    lmm_transformer_opts opts = o ? *o : (lmm_transformer_opts){0, 0, 0};
    uint32_t n_ctx = opts.n_ctx ? opts.n_ctx : hp->max_seq_len;
    uint32_t max_batch = opts.max_batch ? opts.max_batch : DEFAULT_MAX_BATCH;
    if (n_ctx > MAX_CTX) return lmm_error_set("%s: context of %u positions is too large (most %u)", src, n_ctx, MAX_CTX);
    if (max_batch > MAX_BATCH_LIMIT)
        return lmm_error_set("%s: max_batch %u is too large (most %u)", src, max_batch, MAX_BATCH_LIMIT);
    if (max_batch > n_ctx) max_batch = n_ctx;

    lmm_transformer *t = calloc(1, sizeof *t);
    if (!t) return lmm_error_set("out of memory");
    t->n_ctx = n_ctx;
    t->max_batch = max_batch;
    t->n_vocab = hp->n_vocab;
    t->pos = calloc(max_batch ? max_batch : 1, sizeof *t->pos);
    t->want = calloc(max_batch ? max_batch : 1, sizeof *t->want);
    if (!t->pos || !t->want) {
        lmm_transformer_free(t);
        return lmm_error_set("out of memory");
    }
    lmm_executor_opts eo = {0, hp->n_layers, 1, max_batch, 1, n_ctx, opts.n_threads, 0, NULL, 0};
    if (lmm_plan_build(&t->plan, w->desc, LMM_PLAN_PIECE_BYTES_MAX) || lmm_small_tensors_from_weights(&t->small, w) ||
        lmm_source_resident_init(&t->src, &t->plan, w) ||
        lmm_executor_init(&t->ex, &t->plan, &t->small, &t->src, &eo)) {
        lmm_transformer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

uint32_t lmm_transformer_n_ctx(const lmm_transformer *t) { return t->n_ctx; }

size_t lmm_transformer_state_bytes(const lmm_transformer *t) { return lmm_executor_state_bytes(t->ex); }

int lmm_transformer_forward(lmm_transformer *t, const uint32_t *tokens, uint32_t n, uint32_t pos, float *logits,
                            int all_logits) {
    if (n == 0) return lmm_error_set("transformer: forward of 0 tokens");
    if (pos > t->n_ctx || n > t->n_ctx - pos)
        return lmm_error_set("transformer: positions %u..%" PRIu64 " are beyond the context of %u positions", pos,
                             (uint64_t)pos + n - 1, t->n_ctx);
    for (uint32_t i = 0; i < n; i++)
        if (tokens[i] >= t->n_vocab)
            return lmm_error_set("transformer: token %u (at position %u) is out of range (vocabulary of %u)",
                                 tokens[i], pos + i, t->n_vocab);
    uint32_t have = lmm_executor_seq_len(t->ex, 0);
    if (pos > have)
        return lmm_error_set("transformer: position %u follows a gap: the KV cache holds positions 0..%" PRId64
                             " only (run the tokens before it first)",
                             pos, (int64_t)have - 1);

    for (uint32_t done = 0; done < n;) {
        uint32_t c = n - done < t->max_batch ? n - done : t->max_batch;
        int last = done + c == n;
        for (uint32_t i = 0; i < c; i++) {
            t->pos[i] = pos + done + i;
            t->want[i] = 0;
        }
        if (last) t->want[c - 1] = 1;
        lmm_executor_batch b = {
            .n = c,
            .pos = t->pos,
            .tokens = tokens + done,
            .want_logits = all_logits ? NULL : t->want,
            .logits = all_logits ? logits + (size_t)done * t->n_vocab : (last ? logits : NULL),
        };
        if (lmm_executor_step(t->ex, &b)) return -1;
        done += c;
    }
    return 0;
}
