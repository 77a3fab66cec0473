/* model/graph/executor.c — the layer math of the Llama-family forward pass, over pieces.
 *
 * The only implementation of a transformer layer in the engine (lmm/executor.h). For a
 * batch of n tokens (token t: sequence seq[t], position pos[t]), one layer is:
 *   xb = rmsnorm(x, attn_norm) row by row
 *   q = xb Wq^T (+bq);  k = xb Wk^T (+bk);  v = xb Wv^T (+bv)
 *   rope(q[t]), rope(k[t]) at pos[t];  K/V rows of t -> cache[seq[t]][layer][pos[t]]
 *   att[t][h] = attention_head(q[t][h], cache[seq[t]][layer] rows 0..pos[t], kv head h/group)
 *   x += att Wo^T
 *   xb = rmsnorm(x, ffn_norm);  hb = silu(xb Wgate^T) * (xb Wup^T);  x += hb Wdown^T
 * and the head: logits[t] = rmsnorm(x[t], output_norm) Wout^T for the tokens that ask.
 *
 * A matrix is a list of segments (row ranges, lmm/plan.h), each read in place from the
 * piece the source hands out. A segment's rows are one lmm_matmul over those weight
 * rows: with one token it writes straight into the output row; with several it writes a
 * [n][rows] scratch that is scattered into the [n][all rows] output. Every output value
 * is still the one dot product of docs/exactness.md (a row subset changes nothing), so
 * the piece size, the source and the layer split cannot change a bit. Nothing combines
 * values of two tokens except attention, which reads only the token's own sequence, rows
 * 0..pos, all written before any attention of the layer runs: batch composition cannot
 * change a bit either. All buffers are allocated in init.
 *
 * Paged live KV (opts.kv_ram_bytes, docs/kv-cache.md "Long contexts"): the same rows,
 * stored in blocks of kv_block positions in a frame pool over a spill file
 * (kv_spill.c); attention streams a sequence's blocks in position order through the two
 * halves of the attention kernel (scores, softmax, weighted sum: the order of
 * lmm_attention_head), so the bits are those of the all-in-RAM cache. */
#include "lmm/executor.h"

#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lmm/error.h"
#include "lmm/hal.h"
#include "lmm/trace.h"
#include "kv_spill.h"
#include "rope_table.h"

#define DEFAULT_MAX_BATCH 64u
#define MAX_CTX (1u << 24)
#define MAX_BATCH_LIMIT 65536u
#define MAX_SEQS_LIMIT 65536u
#define NO_POS UINT32_MAX
#define SPILL_WINDOW_MAX 64u      /* most blocks of one kind pinned by one attention window */
#define SPILL_GROUP_ROWS 16u      /* most rows of one sequence attended per pass over its blocks */
#define SPILL_BLOCK_MIN (64u << 10) /* default blocks of at least 64 KiB (up to 256 positions): fewer, larger reads */

struct lmm_executor {
    const lmm_plan *plan;
    const lmm_small_tensors *small;
    lmm_weight_source src;
    lmm_hparams hp;
    uint32_t layer_begin, layer_end, n_local; /* layers [begin, end); n_local = end - begin */
    int head;
    uint32_t max_batch, max_seqs, n_ctx;
    size_t dim, hidden_dim, head_dim, n_heads, n_kv_heads, q_dim, kv_dim, n_vocab;
    int neox;
    float attn_scale;             /* 1 / sqrtf(head_dim) */
    lmm_threadpool *pool;
    int n_slots;                  /* attention scratch rows: one per thread */
    uint32_t piece_first, piece_end;
    size_t seg_rows;              /* most rows of a segment of a split matrix */

    float *rope;                  /* [n_ctx][head_dim/2][2] {cos, sin} */
    float *x;                     /* [max_batch][dim] residual stream */
    float *xb;                    /* [max_batch][dim] normalised input of a sub-layer */
    float *q;                     /* [max_batch][q_dim] queries */
    float *k_new;                 /* [max_batch][kv_dim] this step's keys (RoPE applied here) */
    float *v_new;                 /* [max_batch][kv_dim] this step's values */
    float *att;                   /* [max_batch][q_dim] attention output, heads concatenated */
    float *proj;                  /* [max_batch][dim] output of Wo / Wdown, before the residual add */
    float *hb;                    /* [max_batch][hidden_dim] gate, then silu(gate)*up */
    float *hb2;                   /* [max_batch][hidden_dim] up */
    float *seg_out;               /* [max_batch][seg_rows] one segment's rows, before the scatter */
    float *key_cache;             /* [max_seqs][n_local][n_ctx][kv_dim] */
    float *value_cache;           /* [max_seqs][n_local][n_ctx][kv_dim] */
    float *att_scratch;           /* [n_slots][n_ctx] attention scores */
    atomic_int *slot_busy;        /* [n_slots] */
    uint32_t *seq_len;            /* [max_seqs] valid cache positions per sequence */
    uint32_t *batch_next;         /* [max_seqs] step scratch: next position of the seq, NO_POS = not seen */
    uint32_t *seq_zero;           /* [max_batch] all 0: seq ids of a batch that gives none */
    const void **embd_rows;       /* [max_batch] embedding rows from the source */
    size_t state_bytes;

    /* paged live KV (kv_spill != NULL; key_cache / value_cache are then NULL). Block of
     * (seq, local, kind 0 K / 1 V, b) = positions [b*kv_block, (b+1)*kv_block), frame
     * rows [kv_block][kv_dim]; its id is ((seq*n_local + local)*2 + kind)*blocks_per_seq + b. */
    lmm_kv_spill *kv_spill;
    uint32_t kv_block, blocks_per_seq;
    size_t kv_block_bytes;        /* kv_block * kv_dim floats, rounded up to 4 KiB */
    uint32_t window;              /* blocks per attention window (<= frames / 4, >= 1: two fit) */
    uint64_t *win_ids;            /* [2][window] the window computed on, the next one being read */
    unsigned char **win_frames;   /* [2][window] */
    uint32_t spill_rows;          /* rows per pass: min(max_batch, SPILL_GROUP_ROWS) */
    float *spill_scores;          /* [spill_rows * n_heads][n_ctx] scores of one pass's items */
    uint32_t *spill_tok;          /* [max_batch] batch rows of the sequence being attended */
    uint32_t *seq_mark;           /* [max_seqs] layer epoch: sequence already attended */
    uint32_t mark_epoch;

    /* the step in progress */
    const uint32_t *seq, *pos;    /* [n] */
    int held;                     /* a piece is acquired */
    uint32_t held_piece;
    const unsigned char *held_base;
};

/* ---- allocation -------------------------------------------------------------------- */

static int mul_size(size_t *out, size_t a, size_t b) {
    if (b && a > SIZE_MAX / b) return -1;
    *out = a * b;
    return 0;
}

/* 64-byte aligned, zeroed array of a*b*c*d floats; counts the bytes into *total. */
static float *alloc_floats(size_t a, size_t b, size_t c, size_t d, size_t *total) {
    size_t n, bytes;
    if (mul_size(&n, a, b) || mul_size(&n, n, c) || mul_size(&n, n, d) || mul_size(&bytes, n, sizeof(float)) ||
        bytes > SIZE_MAX - 64)
        return NULL;
    bytes = (bytes + 63) / 64 * 64;
    if (bytes == 0) bytes = 64;
    void *p = aligned_alloc(64, bytes);
    if (!p) return NULL;
    memset(p, 0, bytes);
    *total += bytes;
    return p;
}

void lmm_executor_free(lmm_executor *ex) {
    if (!ex) return;
    lmm_threadpool_free(ex->pool);
    free(ex->rope);
    free(ex->x);
    free(ex->xb);
    free(ex->q);
    free(ex->k_new);
    free(ex->v_new);
    free(ex->att);
    free(ex->proj);
    free(ex->hb);
    free(ex->hb2);
    free(ex->seg_out);
    free(ex->key_cache);
    free(ex->value_cache);
    free(ex->att_scratch);
    free(ex->slot_busy);
    free(ex->seq_len);
    free(ex->batch_next);
    free(ex->seq_zero);
    free(ex->embd_rows);
    lmm_kv_spill_free(ex->kv_spill);
    free(ex->win_ids);
    free(ex->win_frames);
    free(ex->spill_scores);
    free(ex->spill_tok);
    free(ex->seq_mark);
    free(ex);
}

/* Checks that the plan's matrices and the small tensors have the shapes the graph uses. */
static int check_inputs(const lmm_executor *ex) {
    const lmm_plan *p = ex->plan;
    const char *src = p->desc->n_files ? p->desc->files[0] : "model";
    const size_t rows[LMM_MAT_PER_LAYER] = {ex->q_dim, ex->kv_dim, ex->kv_dim, ex->dim,
                                            ex->hidden_dim, ex->hidden_dim, ex->dim};
    const size_t cols[LMM_MAT_PER_LAYER] = {ex->dim, ex->dim, ex->dim, ex->q_dim, ex->dim, ex->dim, ex->hidden_dim};
    if (ex->small->n_layers != p->n_layers)
        return lmm_error_set("%s: the small tensors are of another model (%u layers, not %u)", src,
                             ex->small->n_layers, p->n_layers);
    for (uint32_t l = ex->layer_begin; l < ex->layer_end; l++) {
        const lmm_small_layer *S = &ex->small->layers[l];
        if (!S->attn_norm || !S->ffn_norm)
            return lmm_error_set("%s: the norm weights of layer %u were not read", src, l);
        if (ex->hp.qkv_bias && (!S->bq || !S->bk || !S->bv))
            return lmm_error_set("%s: the q/k/v biases of layer %u were not read", src, l);
        for (uint32_t k = 0; k < LMM_MAT_PER_LAYER; k++) {
            const lmm_plan_matrix *m = lmm_plan_matrix_of(p, l, (lmm_plan_mat)k);
            if (m->rows != rows[k] || m->cols != cols[k])
                return lmm_error_set("%s: layer %u %s is [%" PRIu64 ", %" PRIu64 "], the graph needs [%zu, %zu]", src,
                                     l, lmm_plan_mat_name((lmm_plan_mat)k), m->rows, m->cols, rows[k], cols[k]);
        }
    }
    if (ex->head) {
        const lmm_plan_matrix *m = lmm_plan_matrix_of(p, p->n_layers, LMM_MAT_PER_LAYER);
        if (!ex->small->output_norm) return lmm_error_set("%s: output_norm.weight was not read", src);
        if (m->rows != ex->n_vocab || m->cols != ex->dim)
            return lmm_error_set("%s: the output matrix is [%" PRIu64 ", %" PRIu64 "], the graph needs [%zu, %zu]", src,
                                 m->rows, m->cols, ex->n_vocab, ex->dim);
    }
    if (p->embd.dim != ex->dim || p->embd.n_rows != ex->n_vocab)
        return lmm_error_set("%s: token_embd.weight does not match dim %zu / n_vocab %zu", src, ex->dim, ex->n_vocab);
    return 0;
}

/* The paged live KV when asked for and needed (the whole cache is larger than
 * kv_ram_bytes): the frame pool, the spill file and the attention scratch. */
static int spill_setup(lmm_executor *ex, const lmm_executor_opts *o, const char *srcname, size_t *total) {
    if (!o->kv_ram_bytes || ex->n_local == 0) return 0;
    const uint64_t row = (uint64_t)ex->kv_dim * sizeof(float);
    uint64_t full = 2u * (uint64_t)ex->max_seqs * ex->n_local; /* <= 2^33: no overflow below */
    if (ex->n_ctx && full * ex->n_ctx > UINT64_MAX / row) full = UINT64_MAX;
    else full = full * ex->n_ctx * row;
    if (full <= o->kv_ram_bytes) return 0; /* fits: all in RAM */
    if (!o->kv_spill_dir || !*o->kv_spill_dir)
        return lmm_error_set("%s: the live KV (%" PRIu64 " bytes) exceeds kv_ram_bytes %" PRIu64
                             " and no spill directory is given",
                             srcname, full, o->kv_ram_bytes);
    uint32_t B = o->kv_block;
    if (!B)
        for (B = 16; ((B * row) % LMM_KV_SPILL_ALIGN || B * row < SPILL_BLOCK_MIN) && B < 256;) B *= 2;
    if (B > ex->n_ctx) B = ex->n_ctx;
    const uint64_t block_bytes =
        ((uint64_t)B * row + LMM_KV_SPILL_ALIGN - 1) / LMM_KV_SPILL_ALIGN * LMM_KV_SPILL_ALIGN;
    if (block_bytes > (1u << 30))
        return lmm_error_set("%s: a KV block of %u positions is %" PRIu64 " bytes (most 1 GiB)", srcname, B,
                             block_bytes);
    uint64_t frames = o->kv_ram_bytes / block_bytes;
    if (frames < 2)
        return lmm_error_set("%s: kv_ram_bytes %" PRIu64 " holds fewer than 2 live KV blocks of %" PRIu64
                             " bytes (%u positions x %zu floats)",
                             srcname, o->kv_ram_bytes, block_bytes, B, ex->kv_dim);
    ex->kv_block = B;
    ex->kv_block_bytes = (size_t)block_bytes;
    ex->blocks_per_seq = (ex->n_ctx + B - 1) / B;
    const uint64_t n_blocks = 2u * (uint64_t)ex->max_seqs * ex->n_local * ex->blocks_per_seq;
    if (n_blocks >= UINT32_MAX)
        return lmm_error_set("%s: %" PRIu64 " live KV blocks is too many (larger kv_block?)", srcname, n_blocks);
    if (frames > n_blocks) frames = n_blocks;
    if (lmm_kv_spill_init(&ex->kv_spill, o->kv_spill_dir, n_blocks, (size_t)block_bytes, (uint32_t)frames))
        return lmm_error_prefix("%s", srcname);
    ex->window = (uint32_t)(frames / 4);
    if (ex->window < 1) ex->window = 1;
    if (ex->window > SPILL_WINDOW_MAX) ex->window = SPILL_WINDOW_MAX;
    ex->win_ids = malloc(2u * ex->window * sizeof *ex->win_ids);
    ex->win_frames = malloc(2u * ex->window * sizeof *ex->win_frames);
    ex->spill_rows = ex->max_batch < SPILL_GROUP_ROWS ? ex->max_batch : SPILL_GROUP_ROWS;
    ex->spill_scores = alloc_floats(ex->spill_rows, ex->n_heads, ex->n_ctx, 1, total);
    ex->spill_tok = malloc(ex->max_batch * sizeof *ex->spill_tok);
    ex->seq_mark = calloc(ex->max_seqs, sizeof *ex->seq_mark);
    if (!ex->win_ids || !ex->win_frames || !ex->spill_scores || !ex->spill_tok || !ex->seq_mark)
        return lmm_error_set("%s: out of memory for the paged live KV", srcname);
    *total += lmm_kv_spill_ram_bytes(ex->kv_spill) + 2u * ex->window * (sizeof *ex->win_ids + sizeof *ex->win_frames) +
              ex->max_batch * sizeof *ex->spill_tok + ex->max_seqs * sizeof *ex->seq_mark;
    return 0;
}

int lmm_executor_init(lmm_executor **out, const lmm_plan *plan, const lmm_small_tensors *small,
                      const lmm_weight_source *src, const lmm_executor_opts *o) {
    *out = NULL;
    if (!plan || !plan->desc || !plan->matrices || !small || !src || !src->acquire || !src->release)
        return lmm_error_set("executor: plan, small tensors and a source with acquire/release are needed");
    const lmm_hparams *hp = &plan->desc->hp;
    const char *srcname = plan->desc->n_files ? plan->desc->files[0] : "model";
    lmm_executor_opts opts = o ? *o : (lmm_executor_opts){0};
    uint32_t n_ctx = opts.n_ctx ? opts.n_ctx : hp->max_seq_len;
    uint32_t max_batch = opts.max_batch ? opts.max_batch : DEFAULT_MAX_BATCH;
    uint32_t max_seqs = opts.max_seqs ? opts.max_seqs : 1;
    if (n_ctx > MAX_CTX)
        return lmm_error_set("%s: context of %u positions is too large (most %u)", srcname, n_ctx, MAX_CTX);
    if (max_batch > MAX_BATCH_LIMIT)
        return lmm_error_set("%s: max_batch %u is too large (most %u)", srcname, max_batch, MAX_BATCH_LIMIT);
    if (max_seqs > MAX_SEQS_LIMIT)
        return lmm_error_set("%s: max_seqs %u is too large (most %u)", srcname, max_seqs, MAX_SEQS_LIMIT);
    int n_threads = opts.n_threads;
    if (n_threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = c > 0 ? (int)c : 1;
    }
    if (n_threads > 1024) return lmm_error_set("executor: %d threads is too many (most 1024)", n_threads);
    uint32_t pf, pe;
    if (lmm_plan_pieces_of(plan, opts.layer_begin, opts.layer_end, opts.head, &pf, &pe)) return -1;

    lmm_executor *ex = calloc(1, sizeof *ex);
    if (!ex) return lmm_error_set("out of memory");
    ex->plan = plan;
    ex->small = small;
    ex->src = *src;
    ex->hp = *hp;
    ex->layer_begin = opts.layer_begin;
    ex->layer_end = opts.layer_end;
    ex->n_local = opts.layer_end - opts.layer_begin;
    ex->head = opts.head != 0;
    ex->max_batch = max_batch;
    ex->max_seqs = max_seqs;
    ex->n_ctx = n_ctx;
    ex->dim = hp->dim;
    ex->hidden_dim = hp->hidden_dim;
    ex->head_dim = hp->head_dim;
    ex->n_heads = hp->n_heads;
    ex->n_kv_heads = hp->n_kv_heads;
    ex->q_dim = (size_t)hp->n_heads * hp->head_dim;
    ex->kv_dim = (size_t)hp->n_kv_heads * hp->head_dim;
    ex->n_vocab = hp->n_vocab;
    ex->neox = hp->rope_layout == LMM_ROPE_NEOX;
    ex->attn_scale = 1.0f / sqrtf((float)hp->head_dim);
    ex->piece_first = pf;
    ex->piece_end = pe;
    if (check_inputs(ex)) {
        lmm_executor_free(ex);
        return -1;
    }
    /* scratch for the rows of a split matrix's segment */
    for (uint32_t i = pf; i < pe; i++) {
        const lmm_plan_piece *pc = &plan->pieces[i];
        for (uint32_t s = pc->first_segment; s < pc->first_segment + pc->n_segments; s++) {
            const lmm_plan_segment *sg = &plan->segments[s];
            size_t r = (size_t)(sg->row_end - sg->row_begin);
            if (plan->matrices[sg->matrix].n_segments > 1 && r > ex->seg_rows) ex->seg_rows = r;
        }
    }

    ex->pool = lmm_threadpool_create(n_threads);
    if (!ex->pool) {
        lmm_executor_free(ex);
        return lmm_error_set("executor: cannot start %d threads", n_threads);
    }
    ex->n_slots = lmm_threadpool_size(ex->pool);

    size_t total = 0, mb = max_batch;
    if (spill_setup(ex, &opts, srcname, &total)) {
        lmm_executor_free(ex);
        return -1;
    }
    ex->rope = alloc_floats(n_ctx, ex->head_dim, 1, 1, &total);
    ex->x = alloc_floats(mb, ex->dim, 1, 1, &total);
    ex->xb = alloc_floats(mb, ex->dim, 1, 1, &total);
    ex->q = alloc_floats(mb, ex->q_dim, 1, 1, &total);
    ex->k_new = alloc_floats(mb, ex->kv_dim, 1, 1, &total);
    ex->v_new = alloc_floats(mb, ex->kv_dim, 1, 1, &total);
    ex->att = alloc_floats(mb, ex->q_dim, 1, 1, &total);
    ex->proj = alloc_floats(mb, ex->dim, 1, 1, &total);
    ex->hb = alloc_floats(mb, ex->hidden_dim, 1, 1, &total);
    ex->hb2 = alloc_floats(mb, ex->hidden_dim, 1, 1, &total);
    ex->seg_out = alloc_floats(mb, ex->seg_rows, 1, 1, &total);
    if (!ex->kv_spill) {
        ex->key_cache = alloc_floats(max_seqs, ex->n_local, n_ctx, ex->kv_dim, &total);
        ex->value_cache = alloc_floats(max_seqs, ex->n_local, n_ctx, ex->kv_dim, &total);
    }
    ex->att_scratch = alloc_floats((size_t)ex->n_slots, n_ctx, 1, 1, &total);
    ex->slot_busy = calloc((size_t)ex->n_slots, sizeof *ex->slot_busy);
    ex->seq_len = calloc(max_seqs, sizeof *ex->seq_len);
    ex->batch_next = malloc(max_seqs * sizeof *ex->batch_next);
    ex->seq_zero = calloc(mb, sizeof *ex->seq_zero);
    ex->embd_rows = calloc(mb, sizeof *ex->embd_rows);
    if (!ex->rope || !ex->x || !ex->xb || !ex->q || !ex->k_new || !ex->v_new || !ex->att || !ex->proj || !ex->hb ||
        !ex->hb2 || !ex->seg_out || (!ex->kv_spill && (!ex->key_cache || !ex->value_cache)) || !ex->att_scratch ||
        !ex->slot_busy ||
        !ex->seq_len || !ex->batch_next || !ex->seq_zero || !ex->embd_rows) {
        uint64_t kv = 2ull * max_seqs * ex->n_local * n_ctx * ex->kv_dim * sizeof(float);
        lmm_executor_free(ex);
        return lmm_error_set("%s: out of memory for the run state (KV cache of %u sequences x %u layers x %u "
                             "positions = %" PRIu64 " bytes)",
                             srcname, max_seqs, opts.layer_end - opts.layer_begin, n_ctx, kv);
    }
    total += (size_t)max_seqs * 2 * sizeof(uint32_t) + mb * (sizeof(uint32_t) + sizeof(void *));
    for (int i = 0; i < ex->n_slots; i++) atomic_init(&ex->slot_busy[i], 0);
    for (uint32_t s = 0; s < max_seqs; s++) ex->batch_next[s] = NO_POS;
    ex->state_bytes = total;
    lmm_rope_table_fill(ex->rope, hp, small->rope_freqs, n_ctx);
    *out = ex;
    return 0;
}

uint32_t lmm_executor_n_ctx(const lmm_executor *ex) { return ex->n_ctx; }
uint32_t lmm_executor_max_batch(const lmm_executor *ex) { return ex->max_batch; }
size_t lmm_executor_state_bytes(const lmm_executor *ex) { return ex->state_bytes; }

int lmm_executor_kv_spill_stats(const lmm_executor *ex, size_t *ram_bytes, uint64_t *reads, uint64_t *writes) {
    uint64_t r = 0, w = 0;
    size_t ram = 0;
    if (ex->kv_spill) {
        lmm_kv_spill_counts(ex->kv_spill, &r, &w);
        ram = (size_t)lmm_kv_spill_n_frames(ex->kv_spill) * ex->kv_block_bytes;
    }
    if (ram_bytes) *ram_bytes = ram;
    if (reads) *reads = r;
    if (writes) *writes = w;
    return ex->kv_spill != NULL;
}

void lmm_executor_pieces(const lmm_executor *ex, uint32_t *first, uint32_t *end) {
    *first = ex->piece_first;
    *end = ex->piece_end;
}

uint32_t lmm_executor_seq_len(const lmm_executor *ex, uint32_t seq) {
    return seq < ex->max_seqs ? ex->seq_len[seq] : 0;
}

void lmm_executor_seq_truncate(lmm_executor *ex, uint32_t seq, uint32_t len) {
    if (seq < ex->max_seqs && len < ex->seq_len[seq]) ex->seq_len[seq] = len;
}

/* ---- KV export / import (the cache service's blocks, docs/kv-cache.md) ---------- */

static float *cache_rows(const lmm_executor *ex, float *cache, uint32_t seq, uint32_t local);

/* ---- paged live KV: blocks ---------------------------------------------------------- */

static uint64_t block_id(const lmm_executor *ex, uint32_t seq, uint32_t local, int kind, uint32_t b) {
    return (((uint64_t)seq * ex->n_local + local) * 2u + (uint64_t)kind) * ex->blocks_per_seq + b;
}

/* Copies `n` rows between positions [p, p+n) of (seq, local, kind) and rows[n][kv_dim]
 * (to_cache: into the cache). Rows [p, p+n) stay within one block. A block whose first
 * written position is the block's first is not read from the spill file (the positions
 * after the ones written are invalid: they are written before they are read). */
static int paged_rows(const lmm_executor *ex, uint32_t seq, uint32_t local, int kind, uint32_t p, uint32_t n,
                      float *rows, int to_cache) {
    const uint32_t B = ex->kv_block, b = p / B;
    uint64_t id = block_id(ex, seq, local, kind, b);
    uint8_t fresh = to_cache && p % B == 0;
    unsigned char *frame;
    if (lmm_kv_spill_pin(ex->kv_spill, &id, 1, &fresh, &frame)) return -1;
    float *at = (float *)frame + (size_t)(p % B) * ex->kv_dim;
    if (to_cache) memcpy(at, rows, (size_t)n * ex->kv_dim * sizeof(float));
    else memcpy(rows, at, (size_t)n * ex->kv_dim * sizeof(float));
    lmm_kv_spill_unpin(ex->kv_spill, &id, 1, to_cache);
    return 0;
}

/* Positions [p0, p1) of (seq, local, kind) <-> rows[p1-p0][kv_dim], block by block. */
static int paged_range(const lmm_executor *ex, uint32_t seq, uint32_t local, int kind, uint32_t p0, uint32_t p1,
                       float *rows, int to_cache) {
    for (uint32_t p = p0; p < p1;) {
        uint32_t end = (p / ex->kv_block + 1) * ex->kv_block;
        if (end > p1) end = p1;
        if (paged_rows(ex, seq, local, kind, p, end - p, rows + (size_t)(p - p0) * ex->kv_dim, to_cache)) return -1;
        p = end;
    }
    return 0;
}

static int kv_range_check(const lmm_executor *ex, uint32_t seq, uint32_t p0, uint32_t p1, const char *what) {
    if (seq >= ex->max_seqs) return lmm_error_set("%s: sequence %u >= max_seqs %u", what, seq, ex->max_seqs);
    if (p0 >= p1 || p1 > ex->n_ctx)
        return lmm_error_set("%s: positions [%u, %u) not within the context of %u", what, p0, p1, ex->n_ctx);
    return 0;
}

size_t lmm_executor_kv_bytes(const lmm_executor *ex, uint32_t n_pos) {
    return 2u * (size_t)ex->n_local * n_pos * ex->kv_dim * sizeof(float);
}

int lmm_executor_kv_read(const lmm_executor *ex, uint32_t seq, uint32_t p0, uint32_t p1, float *dst) {
    if (kv_range_check(ex, seq, p0, p1, "kv_read")) return -1;
    if (p1 > ex->seq_len[seq])
        return lmm_error_set("kv_read: positions [%u, %u) of sequence %u: only %u are valid", p0, p1, seq,
                             ex->seq_len[seq]);
    size_t n = (size_t)(p1 - p0) * ex->kv_dim;
    if (ex->kv_spill) {
        for (uint32_t l = 0; l < ex->n_local; l++)
            for (int kind = 0; kind < 2; kind++, dst += n)
                if (paged_range(ex, seq, l, kind, p0, p1, dst, 0)) return lmm_error_prefix("kv_read");
        return 0;
    }
    for (uint32_t l = 0; l < ex->n_local; l++) {
        memcpy(dst, cache_rows(ex, ex->key_cache, seq, l) + (size_t)p0 * ex->kv_dim, n * sizeof(float));
        dst += n;
        memcpy(dst, cache_rows(ex, ex->value_cache, seq, l) + (size_t)p0 * ex->kv_dim, n * sizeof(float));
        dst += n;
    }
    return 0;
}

int lmm_executor_kv_write(lmm_executor *ex, uint32_t seq, uint32_t p0, uint32_t p1, const float *src) {
    if (kv_range_check(ex, seq, p0, p1, "kv_write")) return -1;
    if (p0 > ex->seq_len[seq])
        return lmm_error_set("kv_write: position %u of sequence %u: only %u are valid (a gap)", p0, seq,
                             ex->seq_len[seq]);
    size_t n = (size_t)(p1 - p0) * ex->kv_dim;
    if (ex->kv_spill) {
        if (ex->seq_len[seq] > p0) ex->seq_len[seq] = p0; /* positions >= p0 are being replaced */
        for (uint32_t l = 0; l < ex->n_local; l++)
            for (int kind = 0; kind < 2; kind++, src += n)
                if (paged_range(ex, seq, l, kind, p0, p1, (float *)src, 1)) return lmm_error_prefix("kv_write");
        ex->seq_len[seq] = p1;
        return 0;
    }
    for (uint32_t l = 0; l < ex->n_local; l++) {
        memcpy(cache_rows(ex, ex->key_cache, seq, l) + (size_t)p0 * ex->kv_dim, src, n * sizeof(float));
        src += n;
        memcpy(cache_rows(ex, ex->value_cache, seq, l) + (size_t)p0 * ex->kv_dim, src, n * sizeof(float));
        src += n;
    }
    ex->seq_len[seq] = p1;
    return 0;
}

/* ---- sources ------------------------------------------------------------------------ */

void lmm_source_free(lmm_weight_source *s) {
    if (!s) return;
    if (s->destroy && s->ctx) s->destroy(s->ctx);
    *s = (lmm_weight_source){0};
}

/* ---- pieces ------------------------------------------------------------------------- */

static void piece_drop(lmm_executor *ex) {
    if (!ex->held) return;
    ex->held = 0;
    ex->src.release(ex->src.ctx, ex->held_piece);
}

/* Base of `piece`'s slot bytes, acquiring it if it is not the one held; NULL on error. */
static const unsigned char *piece_take(lmm_executor *ex, uint32_t piece) {
    if (ex->held && ex->held_piece == piece) return ex->held_base;
    piece_drop(ex);
    const unsigned char *base = ex->src.acquire(ex->src.ctx, piece);
    if (!base) {
        lmm_error_prefix("executor: piece %u (layer %u)", piece, ex->plan->pieces[piece].layer);
        return NULL;
    }
    ex->held = 1;
    ex->held_piece = piece;
    ex->held_base = base;
    return base;
}

/* y[t][0..m->rows) = W x[t] (+ bias) for t < n_tok, segment by segment, each from its
 * piece. n_tok == 0 only walks the pieces (acquire, release). y: [n_tok][m->rows]. */
static int run_matrix(lmm_executor *ex, const lmm_plan_matrix *m, float *y, const float *x, const float *bias,
                      size_t n_tok) {
    const lmm_plan *p = ex->plan;
    for (uint32_t si = m->first_segment; si < m->first_segment + m->n_segments; si++) {
        const lmm_plan_segment *s = &p->segments[si];
        const unsigned char *base = piece_take(ex, s->piece);
        if (!base) return -1;
        if (n_tok > 0) {
            const void *w = ex->src.segment_data ? ex->src.segment_data(ex->src.ctx, si)
                                                  : base + lmm_plan_segment_data_offset(s);
            if (!w) {
                piece_drop(ex);
                return lmm_error_prefix("executor: piece %u (layer %u), segment %u", s->piece,
                                        p->pieces[s->piece].layer, si);
            }
            size_t r0 = (size_t)s->row_begin, rows = (size_t)(s->row_end - s->row_begin), n_out = (size_t)m->rows;
            const float *b = bias ? bias + r0 : NULL;
            if (m->n_segments == 1 || n_tok == 1) {
                lmm_matmul(ex->pool, y + r0, x, w, m->dtype, b, rows, (size_t)m->cols, n_tok);
            } else {
                lmm_matmul(ex->pool, ex->seg_out, x, w, m->dtype, b, rows, (size_t)m->cols, n_tok);
                for (size_t t = 0; t < n_tok; t++)
                    memcpy(y + t * n_out + r0, ex->seg_out + t * rows, rows * sizeof(float));
            }
        }
        const lmm_plan_piece *pc = &p->pieces[s->piece];
        if (si + 1 == pc->first_segment + pc->n_segments) piece_drop(ex);
    }
    return 0;
}

/* ---- attention ------------------------------------------------------------------------ */

typedef struct {
    lmm_executor *ex;
    uint32_t local;         /* layer index within the range */
} attn_job;

/* A free scratch row. At most n_slots calls run at once (one per thread), so one is
 * always free; which one a call gets does not matter (scores are overwritten). */
static int slot_acquire(lmm_executor *ex) {
    for (;;)
        for (int i = 0; i < ex->n_slots; i++)
            if (!atomic_load_explicit(&ex->slot_busy[i], memory_order_relaxed) &&
                !atomic_exchange_explicit(&ex->slot_busy[i], 1, memory_order_acquire))
                return i;
}

static void slot_release(lmm_executor *ex, int i) {
    atomic_store_explicit(&ex->slot_busy[i], 0, memory_order_release);
}

/* K (or V) rows of layer `local` of sequence `seq`: [n_ctx][kv_dim]. */
static float *cache_rows(const lmm_executor *ex, float *cache, uint32_t seq, uint32_t local) {
    return cache + ((size_t)seq * ex->n_local + local) * ex->n_ctx * ex->kv_dim;
}

/* Items are (token, head) pairs: item = token * n_heads + head. */
static void attn_range(void *arg, size_t begin, size_t end) {
    const attn_job *j = arg;
    lmm_executor *ex = j->ex;
    int slot = slot_acquire(ex);
    float *scratch = ex->att_scratch + (size_t)slot * ex->n_ctx;
    size_t group = ex->n_heads / ex->n_kv_heads, hd = ex->head_dim;
    for (size_t item = begin; item < end; item++) {
        size_t tok = item / ex->n_heads, h = item % ex->n_heads, kvh = h / group;
        const float *k = cache_rows(ex, ex->key_cache, ex->seq[tok], j->local);
        const float *v = cache_rows(ex, ex->value_cache, ex->seq[tok], j->local);
        size_t n_keys = (size_t)ex->pos[tok] + 1; /* causal: positions 0..pos of its own sequence */
        lmm_attention_head(ex->att + tok * ex->q_dim + h * hd, ex->q + tok * ex->q_dim + h * hd, k + kvh * hd,
                           v + kvh * hd, n_keys, hd, ex->kv_dim, ex->attn_scale, scratch);
    }
    slot_release(ex, slot);
}

/* ---- attention over the paged live KV ------------------------------------------------------
 *
 * The same three steps as lmm_attention_head, with the keys in blocks: for one sequence
 * of the batch, its items (its tokens x heads) first get their scores from the K blocks,
 * streamed in position order a window of blocks at a time (s[t] depends only on key row
 * t); then each item's softmax over its positions 0..pos; then out = +0 and the V blocks
 * in position order, each window continuing every out[d]'s fmaf chain (lmm/hal.h). */

typedef struct {
    lmm_executor *ex;
    uint32_t tok0, n_tok;   /* rows of the sequence in this pass: ex->spill_tok[tok0..tok0+n_tok) */
    uint32_t b0, n_blk;     /* the window: blocks [b0, b0+n_blk) in frames[0..n_blk) */
    unsigned char **frames;
    int phase;              /* 0 scores (K blocks), 1 softmax and out = +0, 2 weighted sum (V blocks) */
} paged_job;

/* Items are (row of the sequence, head): item = i * n_heads + head. */
static void attn_paged_range(void *arg, size_t begin, size_t end) {
    const paged_job *j = arg;
    lmm_executor *ex = j->ex;
    const size_t group = ex->n_heads / ex->n_kv_heads, hd = ex->head_dim, B = ex->kv_block;
    for (size_t item = begin; item < end; item++) {
        const size_t tok = ex->spill_tok[j->tok0 + item / ex->n_heads], h = item % ex->n_heads, kvh = h / group;
        const size_t n_keys = (size_t)ex->pos[tok] + 1; /* causal: positions 0..pos of its own sequence */
        float *sc = ex->spill_scores + item * ex->n_ctx;
        float *out = ex->att + tok * ex->q_dim + h * hd;
        if (j->phase == 1) {
            lmm_softmax(sc, n_keys);
            for (size_t d = 0; d < hd; d++) out[d] = 0.0f;
            continue;
        }
        for (uint32_t k = 0; k < j->n_blk; k++) {
            const size_t p0 = (size_t)(j->b0 + k) * B;
            if (p0 >= n_keys) break;
            const size_t cnt = n_keys - p0 < B ? n_keys - p0 : B;
            const float *rows = (const float *)j->frames[k] + kvh * hd; /* [B][kv_dim] */
            if (j->phase == 0)
                lmm_attention_scores(sc + p0, ex->q + tok * ex->q_dim + h * hd, rows, cnt, hd, ex->kv_dim,
                                     ex->attn_scale);
            else
                lmm_attention_acc(out, sc + p0, rows, cnt, hd, ex->kv_dim);
        }
    }
}

/* Streams the blocks [0, n_blocks) of (seq, local, kind) a window at a time through
 * attn_paged_range's `phase`; the next window's reads are queued before the current
 * one is computed on (two windows pinned at once). */
static int attn_paged_pass(lmm_executor *ex, paged_job *job, uint32_t seq, uint32_t local, int kind,
                           uint32_t n_blocks) {
    const size_t n_items = (size_t)job->n_tok * ex->n_heads;
    const uint32_t W = ex->window;
    uint32_t cur = 0, m = n_blocks < W ? n_blocks : W;
    for (uint32_t k = 0; k < m; k++) ex->win_ids[k] = block_id(ex, seq, local, kind, k);
    if (m && lmm_kv_spill_pin(ex->kv_spill, ex->win_ids, m, NULL, ex->win_frames)) return -1;
    for (uint32_t b0 = 0; b0 < n_blocks; b0 += W) {
        uint64_t *ids = ex->win_ids + (size_t)cur * W, *next_ids = ex->win_ids + (size_t)(cur ^ 1u) * W;
        unsigned char **next_frames = ex->win_frames + (size_t)(cur ^ 1u) * W;
        const uint32_t nb0 = b0 + W, nm = nb0 < n_blocks ? (n_blocks - nb0 < W ? n_blocks - nb0 : W) : 0;
        if (nm) {
            for (uint32_t k = 0; k < nm; k++) next_ids[k] = block_id(ex, seq, local, kind, nb0 + k);
            if (lmm_kv_spill_pin_start(ex->kv_spill, next_ids, nm, NULL, next_frames)) {
                lmm_kv_spill_unpin(ex->kv_spill, ids, m, 0);
                return -1;
            }
        }
        job->b0 = b0;
        job->n_blk = m;
        job->frames = ex->win_frames + (size_t)cur * W;
        lmm_threadpool_for(ex->pool, n_items, 1, attn_paged_range, job);
        lmm_kv_spill_unpin(ex->kv_spill, ids, m, 0);
        if (nm && lmm_kv_spill_pin_wait(ex->kv_spill)) {
            lmm_kv_spill_unpin(ex->kv_spill, next_ids, nm, 0);
            return -1;
        }
        cur ^= 1u;
        m = nm;
    }
    return 0;
}

/* Attention of the n batch rows at layer `local`, sequence by sequence. */
static int attn_paged(lmm_executor *ex, uint32_t local, uint32_t n) {
    if (++ex->mark_epoch == 0) { /* wrapped: forget every mark */
        memset(ex->seq_mark, 0, ex->max_seqs * sizeof *ex->seq_mark);
        ex->mark_epoch = 1;
    }
    for (uint32_t t = 0; t < n; t++) {
        const uint32_t seq = ex->seq[t];
        if (ex->seq_mark[seq] == ex->mark_epoch) continue;
        ex->seq_mark[seq] = ex->mark_epoch;
        uint32_t n_rows = 0;
        for (uint32_t u = t; u < n; u++)
            if (ex->seq[u] == seq) ex->spill_tok[n_rows++] = u; /* positions increasing */
        /* a pass per group of rows: the scores scratch holds spill_rows rows */
        for (uint32_t r0 = 0; r0 < n_rows; r0 += ex->spill_rows) {
            paged_job job = {ex, r0, n_rows - r0 < ex->spill_rows ? n_rows - r0 : ex->spill_rows, 0, 0, NULL, 0};
            const uint32_t n_keys = ex->pos[ex->spill_tok[r0 + job.n_tok - 1]] + 1;
            const uint32_t n_blocks = (n_keys + ex->kv_block - 1) / ex->kv_block;
            if (attn_paged_pass(ex, &job, seq, local, 0, n_blocks)) return -1;
            job.phase = 1;
            job.n_blk = 0;
            lmm_threadpool_for(ex->pool, (size_t)job.n_tok * ex->n_heads, 1, attn_paged_range, &job);
            job.phase = 2;
            if (attn_paged_pass(ex, &job, seq, local, 1, n_blocks)) return -1;
        }
    }
    return 0;
}

/* ---- one layer, the head ---------------------------------------------------------------- */

static void add_rows(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = x[i] + y[i];
}

static int run_layer(lmm_executor *ex, uint32_t local, uint32_t n) {
    const uint32_t l = ex->layer_begin + local;
    const lmm_small_layer *S = &ex->small->layers[l];
    const lmm_plan_matrix *M = lmm_plan_matrix_of(ex->plan, l, LMM_MAT_ATTN_Q); /* the 7, in order */
    const size_t dim = ex->dim, hd = ex->head_dim, kv = ex->kv_dim;
    const float eps = ex->hp.norm_eps;

    /* attention */
    for (uint32_t i = 0; i < n; i++) lmm_rmsnorm(ex->xb + i * dim, ex->x + i * dim, S->attn_norm, dim, eps);
    if (run_matrix(ex, &M[LMM_MAT_ATTN_Q], ex->q, ex->xb, S->bq, n) ||
        run_matrix(ex, &M[LMM_MAT_ATTN_K], ex->k_new, ex->xb, S->bk, n) ||
        run_matrix(ex, &M[LMM_MAT_ATTN_V], ex->v_new, ex->xb, S->bv, n))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        const float *cs = ex->rope + (size_t)ex->pos[i] * hd; /* [head_dim/2][2] */
        lmm_rope(ex->q + i * ex->q_dim, ex->n_heads, hd, cs, ex->neox);
        lmm_rope(ex->k_new + i * kv, ex->n_kv_heads, hd, cs, ex->neox);
        if (ex->kv_spill) {
            if (paged_rows(ex, ex->seq[i], local, 0, ex->pos[i], 1, ex->k_new + i * kv, 1) ||
                paged_rows(ex, ex->seq[i], local, 1, ex->pos[i], 1, ex->v_new + i * kv, 1))
                return lmm_error_prefix("executor: layer %u", l);
            continue;
        }
        size_t row = (size_t)ex->pos[i] * kv;
        memcpy(cache_rows(ex, ex->key_cache, ex->seq[i], local) + row, ex->k_new + i * kv, kv * sizeof(float));
        memcpy(cache_rows(ex, ex->value_cache, ex->seq[i], local) + row, ex->v_new + i * kv, kv * sizeof(float));
    }
    if (ex->kv_spill) {
        if (attn_paged(ex, local, n)) return lmm_error_prefix("executor: layer %u", l);
    } else {
        attn_job job = {ex, local};
        lmm_threadpool_for(ex->pool, (size_t)n * ex->n_heads, 1, attn_range, &job);
    }
    if (run_matrix(ex, &M[LMM_MAT_ATTN_OUTPUT], ex->proj, ex->att, NULL, n)) return -1;
    add_rows(ex->x, ex->proj, (size_t)n * dim);

    /* feed-forward */
    for (uint32_t i = 0; i < n; i++) lmm_rmsnorm(ex->xb + i * dim, ex->x + i * dim, S->ffn_norm, dim, eps);
    if (run_matrix(ex, &M[LMM_MAT_FFN_GATE], ex->hb, ex->xb, NULL, n) ||
        run_matrix(ex, &M[LMM_MAT_FFN_UP], ex->hb2, ex->xb, NULL, n))
        return -1;
    for (uint32_t i = 0; i < n; i++)
        lmm_silu_mul(ex->hb + i * ex->hidden_dim, ex->hb2 + i * ex->hidden_dim, ex->hidden_dim);
    if (run_matrix(ex, &M[LMM_MAT_FFN_DOWN], ex->proj, ex->hb, NULL, n)) return -1;
    add_rows(ex->x, ex->proj, (size_t)n * dim);
    return 0;
}

/* logits[k] for the k-th token that wants them: rmsnorm into xb rows, then the matrix. */
static int run_head(lmm_executor *ex, const lmm_executor_batch *b) {
    uint32_t k = 0;
    for (uint32_t t = 0; t < b->n; t++)
        if (!b->want_logits || b->want_logits[t])
            lmm_rmsnorm(ex->xb + (size_t)k++ * ex->dim, ex->x + (size_t)t * ex->dim, ex->small->output_norm, ex->dim,
                        ex->hp.norm_eps);
    return run_matrix(ex, lmm_plan_matrix_of(ex->plan, ex->plan->n_layers, LMM_MAT_PER_LAYER), b->logits, ex->xb,
                      NULL, k);
}

/* ---- one step ------------------------------------------------------------------------- */

static void batch_next_reset(lmm_executor *ex, const uint32_t *seq, uint32_t n) {
    for (uint32_t t = 0; t < n; t++)
        if (seq[t] < ex->max_seqs) ex->batch_next[seq[t]] = NO_POS;
}

/* Checks the batch; on success truncates each sequence to its first position in the
 * batch and leaves batch_next[seq] = its last position + 1 (reset by the caller). */
static int check_batch(lmm_executor *ex, const lmm_executor_batch *b, const uint32_t *seq) {
    if (b->n == 0 || b->n > ex->max_batch)
        return lmm_error_set("executor: a step of %u tokens (1..%u)", b->n, ex->max_batch);
    if (!b->pos) return lmm_error_set("executor: the batch has no positions");
    if (!b->x_in && !b->embd_rows && !b->tokens)
        return lmm_error_set("executor: the batch has no input (token ids, embedding rows or x)");
    if (!b->x_in && !b->embd_rows && !ex->src.embd_rows)
        return lmm_error_set("executor: the source cannot fetch embedding rows: give embd_rows or x_in");
    if (b->tokens)
        for (uint32_t t = 0; t < b->n; t++)
            if (b->tokens[t] >= ex->n_vocab)
                return lmm_error_set("executor: token %u (batch row %u) is out of range (vocabulary of %zu)",
                                     b->tokens[t], t, ex->n_vocab);
    if (ex->head && !b->logits) {
        for (uint32_t t = 0; t < b->n; t++)
            if (!b->want_logits || b->want_logits[t])
                return lmm_error_set("executor: logits are wanted but the batch has no logits buffer");
    }
    int rc = 0;
    for (uint32_t t = 0; t < b->n && rc == 0; t++) {
        uint32_t s = seq[t], p = b->pos[t];
        if (s >= ex->max_seqs)
            rc = lmm_error_set("executor: batch row %u: sequence %u is out of range (max_seqs %u)", t, s,
                               ex->max_seqs);
        else if (p >= ex->n_ctx)
            rc = lmm_error_set("executor: batch row %u: position %u is beyond the context of %u positions", t, p,
                               ex->n_ctx);
        else if (ex->batch_next[s] == NO_POS && p > ex->seq_len[s])
            rc = lmm_error_set("executor: batch row %u: sequence %u has %u positions in the KV cache, so position %u "
                               "cannot follow",
                               t, s, ex->seq_len[s], p);
        else if (ex->batch_next[s] != NO_POS && p != ex->batch_next[s])
            rc = lmm_error_set("executor: batch row %u: sequence %u comes at position %u, expected %u (the tokens of "
                               "a sequence must come in order at consecutive positions)",
                               t, s, p, ex->batch_next[s]);
        else
            ex->batch_next[s] = p + 1;
    }
    batch_next_reset(ex, seq, b->n);
    if (rc) return -1;
    /* valid: positions >= the first of each sequence in the batch are overwritten from now on */
    for (uint32_t t = 0; t < b->n; t++) {
        uint32_t s = seq[t], p = b->pos[t];
        if (ex->batch_next[s] == NO_POS && p < ex->seq_len[s]) ex->seq_len[s] = p;
        ex->batch_next[s] = p + 1;
    }
    return 0;
}

int lmm_executor_step(lmm_executor *ex, const lmm_executor_batch *b) {
    const uint32_t *seq = b->seq ? b->seq : ex->seq_zero;
    if (check_batch(ex, b, seq)) return -1;
    ex->seq = seq;
    ex->pos = b->pos;
    const uint32_t n = b->n;
    const size_t dim = ex->dim;
    int rc = -1;

    if (b->x_in) {
        memcpy(ex->x, b->x_in, (size_t)n * dim * sizeof(float));
    } else {
        const void *const *rows = b->embd_rows;
        if (!rows) {
            if (ex->src.embd_rows(ex->src.ctx, b->tokens, n, ex->embd_rows)) {
                lmm_error_prefix("executor: embedding rows");
                goto done;
            }
            rows = ex->embd_rows;
        }
        for (uint32_t t = 0; t < n; t++) lmm_dtype_row_to_f32(ex->x + t * dim, rows[t], ex->plan->embd.dtype, dim);
    }
    for (uint32_t local = 0; local < ex->n_local; local++) {
        uint64_t t0 = lmm_trace_begin(); /* 0 (and no span) when tracing is off */
        if (run_layer(ex, local, n)) goto done;
        lmm_trace_end("compute", "layer", t0, "layer", (int64_t)(ex->layer_begin + local), "tokens", n);
    }
    if (b->x_out) memcpy(b->x_out, ex->x, (size_t)n * dim * sizeof(float));
    if (ex->head) {
        uint64_t t0 = lmm_trace_begin();
        if (run_head(ex, b)) goto done;
        lmm_trace_end("compute", "head", t0, "tokens", n, NULL, 0);
    }
    for (uint32_t t = 0; t < n; t++) ex->seq_len[seq[t]] = ex->batch_next[seq[t]];
    rc = 0;
done:
    piece_drop(ex);
    batch_next_reset(ex, seq, n);
    return rc;
}
