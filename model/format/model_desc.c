/* model/format/model_desc.c — building, checking and querying the model description
 * that every format reader produces (see lmm/model.h). */
#include "lmm/model.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmm/error.h"

/* Limits that reject absurd headers before anything is allocated from them. */
#define DESC_MAX_TENSORS 65536u
#define DESC_MAX_FILES 4096u
#define HP_MAX_DIM (1u << 20)
#define HP_MAX_VOCAB (1u << 24)
#define HP_MAX_LAYERS 4096u
#define HP_MAX_HEADS 4096u
#define HP_MAX_SEQ (1u << 24)

void lmm_model_desc_init(lmm_model_desc *d) {
    memset(d, 0, sizeof *d);
    d->hp.norm_eps = 1e-5f;
    d->hp.rope_theta = 10000.0f;
    d->hp.rope_factor = 1.0f;
    d->bos_id = 1;
    d->eos_id = 2;
}

void lmm_model_desc_free(lmm_model_desc *d) {
    if (!d) return;
    for (uint32_t i = 0; i < d->n_files; i++) free(d->files[i]);
    free(d->files);
    free(d->file_sizes);
    free(d->tensors);
    free(d->name_index);
    free(d->tokenizer_path);
    lmm_gguf_free(d->gguf);
    memset(d, 0, sizeof *d);
}

int lmm_model_desc_add_file(lmm_model_desc *d, const char *path, uint64_t size, uint32_t *index) {
    if (d->n_files >= DESC_MAX_FILES) return lmm_error_set("%s: too many model files", path);
    char **files = realloc(d->files, (d->n_files + 1) * sizeof *files);
    if (!files) return lmm_error_set("out of memory");
    d->files = files;
    uint64_t *sizes = realloc(d->file_sizes, (d->n_files + 1) * sizeof *sizes);
    if (!sizes) return lmm_error_set("out of memory");
    d->file_sizes = sizes;
    d->files[d->n_files] = strdup(path);
    if (!d->files[d->n_files]) return lmm_error_set("out of memory");
    d->file_sizes[d->n_files] = size;
    if (index) *index = d->n_files;
    d->n_files++;
    return 0;
}

/* FNV-1a: spreads canonical names ("blk.17.attn_q.weight") well enough. */
static uint32_t name_hash(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* Slot of NAME in the index: either the slot holding it or the empty slot where it goes. */
static uint32_t name_slot(const lmm_model_desc *d, const char *name) {
    uint32_t mask = d->name_index_cap - 1;
    uint32_t i = name_hash(name) & mask;
    while (d->name_index[i] && strcmp(d->tensors[d->name_index[i] - 1].name, name) != 0) i = (i + 1) & mask;
    return i;
}

/* Makes room for one more tensor in the index (rebuilds at twice the size when half full). */
static int name_index_reserve(lmm_model_desc *d) {
    if (d->name_index_cap >= 2 * (d->n_tensors + 1)) return 0;
    uint32_t cap = d->name_index_cap ? d->name_index_cap * 2 : 64;
    uint32_t *idx = calloc(cap, sizeof *idx);
    if (!idx) return lmm_error_set("out of memory");
    free(d->name_index);
    d->name_index = idx;
    d->name_index_cap = cap;
    for (uint32_t t = 0; t < d->n_tensors; t++) d->name_index[name_slot(d, d->tensors[t].name)] = t + 1;
    return 0;
}

int lmm_model_desc_add_tensor(lmm_model_desc *d, const char *name, lmm_dtype dtype, uint32_t n_dims,
                              const uint64_t *shape, uint32_t file, uint64_t offset, uint64_t nbytes) {
    const char *fname = file < d->n_files ? d->files[file] : "?";
    if (file >= d->n_files) return lmm_error_set("tensor '%s': bad file index %u", name, file);
    if (strlen(name) >= LMM_TENSOR_NAME_MAX)
        return lmm_error_set("%s: tensor name too long (%zu bytes): '%.40s...'", fname, strlen(name), name);
    if (n_dims < 1 || n_dims > LMM_MAX_DIMS)
        return lmm_error_set("%s: tensor '%s': %u dimensions (expected 1 to %d)", fname, name, n_dims, LMM_MAX_DIMS);
    if ((unsigned)dtype >= LMM_DTYPE_COUNT) return lmm_error_set("%s: tensor '%s': unknown dtype", fname, name);
    if (d->n_tensors >= DESC_MAX_TENSORS) return lmm_error_set("%s: more than %u tensors", fname, DESC_MAX_TENSORS);
    uint64_t count = 1;
    for (uint32_t i = 0; i < n_dims; i++) {
        if (shape[i] == 0) return lmm_error_set("%s: tensor '%s': dimension %u is 0", fname, name, i);
        if (count > UINT64_MAX / shape[i]) return lmm_error_set("%s: tensor '%s': element count overflows", fname, name);
        count *= shape[i];
    }
    uint64_t esize = lmm_dtype_size(dtype);
    if (count > UINT64_MAX / esize) return lmm_error_set("%s: tensor '%s': byte size overflows", fname, name);
    if (count * esize != nbytes)
        return lmm_error_set("%s: tensor '%s': %" PRIu64 " bytes stored but shape and dtype need %" PRIu64, fname,
                             name, nbytes, count * esize);
    uint64_t fsize = d->file_sizes[file];
    if (offset > fsize || nbytes > fsize - offset)
        return lmm_error_set("%s: tensor '%s': data [%" PRIu64 ", %" PRIu64 ") is beyond the end of the file (%" PRIu64
                             " bytes)",
                             fname, name, offset, offset + (nbytes > UINT64_MAX - offset ? 0 : nbytes), fsize);
    if (lmm_model_desc_find(d, name)) return lmm_error_set("%s: tensor '%s' appears twice", fname, name);
    if (name_index_reserve(d)) return -1;
    if (d->n_tensors == d->tensors_cap) { /* geometric growth: linear total copying */
        uint32_t cap = d->tensors_cap ? d->tensors_cap * 2 : 64;
        lmm_tensor_desc *t = realloc(d->tensors, (size_t)cap * sizeof *t);
        if (!t) return lmm_error_set("out of memory");
        d->tensors = t;
        d->tensors_cap = cap;
    }
    lmm_tensor_desc *e = &d->tensors[d->n_tensors++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->dtype = dtype;
    e->n_dims = n_dims;
    for (uint32_t i = 0; i < n_dims; i++) e->shape[i] = shape[i];
    e->file = file;
    e->offset = offset;
    e->nbytes = nbytes;
    d->name_index[name_slot(d, e->name)] = d->n_tensors;
    return 0;
}

const lmm_tensor_desc *lmm_model_desc_find(const lmm_model_desc *d, const char *name) {
    if (d->name_index_cap == 0) return NULL;
    uint32_t v = d->name_index[name_slot(d, name)];
    return v ? &d->tensors[v - 1] : NULL;
}

static const char *desc_source(const lmm_model_desc *d) { return d->n_files ? d->files[0] : "model"; }

/* Checks that tensor NAME exists with exactly the given shape (n_dims entries). */
static int desc_expect(const lmm_model_desc *d, const char *name, uint32_t n_dims, uint64_t d0, uint64_t d1) {
    const lmm_tensor_desc *t = lmm_model_desc_find(d, name);
    if (!t) return lmm_error_set("%s: missing tensor '%s'", desc_source(d), name);
    uint64_t want[2] = {d0, d1};
    int ok = t->n_dims == n_dims;
    for (uint32_t i = 0; ok && i < n_dims; i++) ok = t->shape[i] == want[i];
    if (!ok) {
        char got[96];
        int len = snprintf(got, sizeof got, "[");
        for (uint32_t i = 0; i < t->n_dims && len < (int)sizeof got - 24; i++)
            len += snprintf(got + len, sizeof got - (size_t)len, "%s%" PRIu64, i ? ", " : "", t->shape[i]);
        snprintf(got + len, sizeof got - (size_t)len, "]");
        if (n_dims == 1)
            return lmm_error_set("%s: tensor '%s' has shape %s, expected [%" PRIu64 "]", desc_source(d), name, got, d0);
        return lmm_error_set("%s: tensor '%s' has shape %s, expected [%" PRIu64 ", %" PRIu64 "]", desc_source(d), name,
                             got, d0, d1);
    }
    return 0;
}

static int hp_check(const lmm_model_desc *d, const char *field, uint64_t v, uint64_t lo, uint64_t hi) {
    if (v < lo || v > hi)
        return lmm_error_set("%s: hyper-parameter %s = %" PRIu64 " is out of range [%" PRIu64 ", %" PRIu64 "]",
                             desc_source(d), field, v, lo, hi);
    return 0;
}

int lmm_model_desc_validate(const lmm_model_desc *d) {
    const lmm_hparams *h = &d->hp;
    if (hp_check(d, "n_vocab", h->n_vocab, 1, HP_MAX_VOCAB) || hp_check(d, "dim", h->dim, 1, HP_MAX_DIM) ||
        hp_check(d, "hidden_dim", h->hidden_dim, 1, HP_MAX_DIM) ||
        hp_check(d, "n_layers", h->n_layers, 1, HP_MAX_LAYERS) ||
        hp_check(d, "n_heads", h->n_heads, 1, HP_MAX_HEADS) ||
        hp_check(d, "n_kv_heads", h->n_kv_heads, 1, h->n_heads) ||
        hp_check(d, "head_dim", h->head_dim, 2, HP_MAX_DIM) ||
        hp_check(d, "max_seq_len", h->max_seq_len, 1, HP_MAX_SEQ))
        return -1;
    if (h->n_heads % h->n_kv_heads != 0)
        return lmm_error_set("%s: n_heads (%u) is not a multiple of n_kv_heads (%u)", desc_source(d), h->n_heads,
                             h->n_kv_heads);
    if (h->head_dim % 2 != 0) return lmm_error_set("%s: head_dim (%u) must be even for RoPE", desc_source(d), h->head_dim);
    if (!(h->norm_eps > 0.0f && h->norm_eps < 1.0f))
        return lmm_error_set("%s: RMSNorm epsilon %g is out of range (0, 1)", desc_source(d), (double)h->norm_eps);
    if (!(h->rope_theta > 1.0f && h->rope_theta < 1e12f))
        return lmm_error_set("%s: rope_theta %g is out of range", desc_source(d), (double)h->rope_theta);
    if (h->rope_scaling != LMM_ROPE_SCALING_NONE && !(h->rope_factor >= 1.0f && h->rope_factor < 1e6f))
        return lmm_error_set("%s: rope scaling factor %g is out of range", desc_source(d), (double)h->rope_factor);
    if (h->rope_scaling == LMM_ROPE_SCALING_LLAMA3 &&
        !(h->rope_high_freq_factor > h->rope_low_freq_factor && h->rope_low_freq_factor > 0.0f &&
          h->rope_orig_max_pos > 0))
        return lmm_error_set("%s: Llama-3 rope scaling needs high_freq_factor > low_freq_factor > 0 and "
                             "original_max_position_embeddings > 0",
                             desc_source(d));

    uint64_t q_rows = (uint64_t)h->n_heads * h->head_dim;
    uint64_t kv_rows = (uint64_t)h->n_kv_heads * h->head_dim;
    if (desc_expect(d, "token_embd.weight", 2, h->n_vocab, h->dim) ||
        desc_expect(d, "output_norm.weight", 1, h->dim, 0))
        return -1;
    if (!h->tied_embeddings && desc_expect(d, "output.weight", 2, h->n_vocab, h->dim)) return -1;
    if (lmm_model_desc_find(d, "rope_freqs.weight") && desc_expect(d, "rope_freqs.weight", 1, h->head_dim / 2, 0))
        return -1;
    char name[LMM_TENSOR_NAME_MAX];
#define EXPECT(suffix, nd, a, b)                                   \
    do {                                                           \
        snprintf(name, sizeof name, "blk.%u." suffix, l);          \
        if (desc_expect(d, name, nd, a, b)) return -1;             \
    } while (0)
    for (uint32_t l = 0; l < h->n_layers; l++) {
        EXPECT("attn_norm.weight", 1, h->dim, 0);
        EXPECT("attn_q.weight", 2, q_rows, h->dim);
        EXPECT("attn_k.weight", 2, kv_rows, h->dim);
        EXPECT("attn_v.weight", 2, kv_rows, h->dim);
        EXPECT("attn_output.weight", 2, h->dim, q_rows);
        EXPECT("ffn_norm.weight", 1, h->dim, 0);
        EXPECT("ffn_gate.weight", 2, h->hidden_dim, h->dim);
        EXPECT("ffn_up.weight", 2, h->hidden_dim, h->dim);
        EXPECT("ffn_down.weight", 2, h->dim, h->hidden_dim);
        if (h->qkv_bias) {
            EXPECT("attn_q.bias", 1, q_rows, 0);
            EXPECT("attn_k.bias", 1, kv_rows, 0);
            EXPECT("attn_v.bias", 1, kv_rows, 0);
        }
    }
#undef EXPECT
    return 0;
}

uint64_t lmm_model_desc_weight_bytes(const lmm_model_desc *d) {
    uint64_t s = 0;
    for (uint32_t i = 0; i < d->n_tensors; i++) s += d->tensors[i].nbytes;
    return s;
}

uint64_t lmm_model_desc_kv_bytes(const lmm_model_desc *d, uint32_t n_ctx) {
    return 2ull * d->hp.n_layers * n_ctx * d->hp.n_kv_heads * d->hp.head_dim * sizeof(float);
}

const char *lmm_format_name(lmm_format f) {
    switch (f) {
    case LMM_FORMAT_GGUF: return "gguf";
    case LMM_FORMAT_HF: return "safetensors";
    case LMM_FORMAT_LLAMA2C: return "llama2c";
    }
    return "?";
}

const char *lmm_rope_layout_name(lmm_rope_layout r) { return r == LMM_ROPE_NEOX ? "neox" : "interleaved"; }
