/* model/format/gguf_model.c — GGUF file -> lmm_model_desc (lmm_model_desc_open_gguf).
 *
 * GGUF tensor names are already the canonical names of lmm/model.h; this file reads
 * the {arch}.* hyper-parameters, maps ggml types to lmm dtypes and turns ggml's
 * ne order (ne[0] innermost) into row-major shapes (shape[n_dims-1] = ne[0]).
 * Supported architectures: llama (Llama 2/3, TinyLlama, Mistral), mistral, qwen2. */
#include "model/format/gguf_model.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "lmm/error.h"

/* "{arch}.{suffix}" */
static const char *arch_key(char *buf, size_t cap, const char *arch, const char *suffix) {
    snprintf(buf, cap, "%s.%s", arch, suffix);
    return buf;
}

/* Narrows a metadata double to float after checking lo < x < hi (an out-of-range
 * double -> float conversion is undefined behaviour). */
static int to_float(const char *file, const char *key, double x, double lo, double hi, float *out) {
    if (!(x > lo && x < hi)) return lmm_error_set("%s: metadata %s = %g is out of range (%g, %g)", file, key, x, lo, hi);
    *out = (float)x;
    return 0;
}

static int map_arch(lmm_model_desc *d, const lmm_gguf *g) {
    const char *file = lmm_gguf_name(g);
    const char *arch;
    uint64_t len;
    if (lmm_gguf_get_str(g, "general.architecture", &arch, &len)) return -1;
    if (strlen(arch) != len || len >= sizeof d->arch_name)
        return lmm_error_set("%s: general.architecture is not a valid name", file);
    snprintf(d->arch_name, sizeof d->arch_name, "%s", arch);
    if (strcmp(arch, "llama") == 0 || strcmp(arch, "mistral") == 0) {
        d->arch = LMM_ARCH_LLAMA;
        d->hp.rope_layout = LMM_ROPE_INTERLEAVED;
        d->hp.qkv_bias = lmm_gguf_find_tensor(g, "blk.0.attn_q.bias") >= 0;
    } else if (strcmp(arch, "qwen2") == 0) {
        d->arch = LMM_ARCH_QWEN2;
        d->hp.rope_layout = LMM_ROPE_NEOX;
        d->hp.qkv_bias = true;
    } else {
        return lmm_error_set("%s: architecture '%s' is not supported (llama, mistral, qwen2)", file, arch);
    }
    return 0;
}

static int map_rope_scaling(lmm_model_desc *d, const lmm_gguf *g, const char *arch) {
    const char *file = lmm_gguf_name(g);
    char key[128];
    const char *type;
    double factor;
    int rc = lmm_gguf_get_str_opt(g, arch_key(key, sizeof key, arch, "rope.scaling.type"), &type, NULL);
    if (rc < 0) return -1;
    if (rc == 0) {
        if (strcmp(type, "none") == 0) return 0;
        if (strcmp(type, "linear") != 0)
            return lmm_error_set("%s: rope scaling '%s' is not supported (none, linear)", file, type);
        if (lmm_gguf_get_f64(g, arch_key(key, sizeof key, arch, "rope.scaling.factor"), &factor)) return -1;
    } else {
        /* Older files: {arch}.rope.scale_linear. */
        rc = lmm_gguf_get_f64_opt(g, arch_key(key, sizeof key, arch, "rope.scale_linear"), &factor);
        if (rc < 0) return -1;
        if (rc == 1 || factor == 1.0) return 0;
    }
    if (!(factor >= 1.0 && factor < 1e6))
        return lmm_error_set("%s: metadata %s = %g is out of range [1, 1e6)", file, key, factor);
    d->hp.rope_scaling = LMM_ROPE_SCALING_LINEAR;
    d->hp.rope_factor = (float)factor;
    return 0;
}

static int map_hparams(lmm_model_desc *d, const lmm_gguf *g) {
    const char *file = lmm_gguf_name(g);
    const char *arch = d->arch_name;
    lmm_hparams *h = &d->hp;
    char key[128];
    int rc;
    if (lmm_gguf_get_u32(g, arch_key(key, sizeof key, arch, "context_length"), &h->max_seq_len) ||
        lmm_gguf_get_u32(g, arch_key(key, sizeof key, arch, "embedding_length"), &h->dim) ||
        lmm_gguf_get_u32(g, arch_key(key, sizeof key, arch, "block_count"), &h->n_layers) ||
        lmm_gguf_get_u32(g, arch_key(key, sizeof key, arch, "feed_forward_length"), &h->hidden_dim) ||
        lmm_gguf_get_u32(g, arch_key(key, sizeof key, arch, "attention.head_count"), &h->n_heads))
        return -1;
    if (h->n_heads == 0) return lmm_error_set("%s: %s is 0", file, key);
    h->n_kv_heads = h->n_heads;
    if (lmm_gguf_get_u32_opt(g, arch_key(key, sizeof key, arch, "attention.head_count_kv"), &h->n_kv_heads) < 0)
        return -1;

    /* Head size: attention.key_length, else rope.dimension_count, else dim / heads. */
    uint32_t key_len = 0, rope_dims = 0, value_len = 0;
    int has_key = lmm_gguf_get_u32_opt(g, arch_key(key, sizeof key, arch, "attention.key_length"), &key_len);
    int has_rope = lmm_gguf_get_u32_opt(g, arch_key(key, sizeof key, arch, "rope.dimension_count"), &rope_dims);
    int has_value = lmm_gguf_get_u32_opt(g, arch_key(key, sizeof key, arch, "attention.value_length"), &value_len);
    if (has_key < 0 || has_rope < 0 || has_value < 0) return -1;
    if (has_key == 0) {
        h->head_dim = key_len;
    } else if (has_rope == 0) {
        h->head_dim = rope_dims;
    } else {
        if (h->dim % h->n_heads != 0)
            return lmm_error_set("%s: embedding_length %u is not a multiple of head_count %u and %s.attention.key_length "
                                 "is absent",
                                 file, h->dim, h->n_heads, arch);
        h->head_dim = h->dim / h->n_heads;
    }
    if (has_rope == 0 && rope_dims != h->head_dim)
        return lmm_error_set("%s: %s.rope.dimension_count = %u differs from the head size %u: partial rotary "
                             "embeddings are not supported",
                             file, arch, rope_dims, h->head_dim);
    if (has_value == 0 && value_len != h->head_dim)
        return lmm_error_set("%s: %s.attention.value_length = %u differs from the key length %u: not supported", file,
                             arch, value_len, h->head_dim);

    double x;
    rc = lmm_gguf_get_f64_opt(g, arch_key(key, sizeof key, arch, "attention.layer_norm_rms_epsilon"), &x);
    if (rc < 0 || (rc == 0 && to_float(file, key, x, 0.0, 1.0, &h->norm_eps))) return -1;
    rc = lmm_gguf_get_f64_opt(g, arch_key(key, sizeof key, arch, "rope.freq_base"), &x);
    if (rc < 0 || (rc == 0 && to_float(file, key, x, 1.0, 1e12, &h->rope_theta))) return -1;
    if (map_rope_scaling(d, g, arch)) return -1;

    /* Vocabulary: {arch}.vocab_size, else the tokenizer's token list, else token_embd rows. */
    rc = lmm_gguf_get_u32_opt(g, arch_key(key, sizeof key, arch, "vocab_size"), &h->n_vocab);
    if (rc < 0) return -1;
    if (rc == 1) {
        uint64_t count;
        int64_t te;
        if (lmm_gguf_find_key(g, "tokenizer.ggml.tokens") >= 0) {
            if (lmm_gguf_get_arr(g, "tokenizer.ggml.tokens", NULL, &count)) return -1;
            if (count > UINT32_MAX) return lmm_error_set("%s: %" PRIu64 " tokens is too many", file, count);
            h->n_vocab = (uint32_t)count;
        } else if ((te = lmm_gguf_find_tensor(g, "token_embd.weight")) >= 0) {
            const lmm_gguf_tensor *t = lmm_gguf_tensor_at(g, (uint64_t)te);
            if (t->n_dims != 2 || t->ne[1] > UINT32_MAX)
                return lmm_error_set("%s: tensor 'token_embd.weight' is not a [n_vocab, dim] matrix", file);
            h->n_vocab = (uint32_t)t->ne[1];
        } else {
            return lmm_error_set("%s: cannot tell the vocabulary size (no %s.vocab_size, tokenizer.ggml.tokens or "
                                 "token_embd.weight)",
                                 file, arch);
        }
    }
    if (lmm_gguf_get_u32_opt(g, "tokenizer.ggml.bos_token_id", &d->bos_id) < 0 ||
        lmm_gguf_get_u32_opt(g, "tokenizer.ggml.eos_token_id", &d->eos_id) < 0)
        return -1;
    h->tied_embeddings = lmm_gguf_find_tensor(g, "output.weight") < 0;
    return 0;
}

static int map_tensors(lmm_model_desc *d, const lmm_gguf *g) {
    const char *file = lmm_gguf_name(g);
    uint32_t fi;
    if (lmm_model_desc_add_file(d, file, lmm_gguf_file_size(g), &fi)) return -1;
    for (uint64_t i = 0; i < lmm_gguf_n_tensors(g); i++) {
        const lmm_gguf_tensor *t = lmm_gguf_tensor_at(g, i);
        lmm_dtype dt;
        switch (t->ggml_type) {
        case 0: dt = LMM_DTYPE_F32; break;
        case 1: dt = LMM_DTYPE_F16; break;
        case 30: dt = LMM_DTYPE_BF16; break;
        default: {
            const char *tn = lmm_gguf_ggml_type_name(t->ggml_type);
            if (lmm_gguf_ggml_type_is_quantized(t->ggml_type))
                return lmm_error_set("%s: tensor '%s' has type %s: quantized types are not supported yet", file,
                                     t->name, tn);
            return lmm_error_set("%s: tensor '%s' has type %s: not supported (weights must be F32, F16 or BF16)", file,
                                 t->name, tn ? tn : "?");
        }
        }
        uint64_t shape[LMM_MAX_DIMS] = {0};
        for (uint32_t k = 0; k < t->n_dims; k++) shape[k] = t->ne[t->n_dims - 1 - k];
        if (lmm_model_desc_add_tensor(d, t->name, dt, t->n_dims, shape, fi, t->offset, t->nbytes)) return -1;
    }
    return 0;
}

int lmm_model_desc_from_gguf(lmm_model_desc *d, lmm_gguf *g) {
    lmm_model_desc_init(d);
    d->format = LMM_FORMAT_GGUF;
    d->gguf = g;
    if (lmm_gguf_n_tensors(g) == 0) {
        lmm_error_set("%s: no tensors (vocabulary-only GGUF)", lmm_gguf_name(g));
        goto fail;
    }
    /* Tensor types before hyper-parameters: "quantized types are not supported" is the
     * message that matters for a quantized model. */
    if (map_arch(d, g) || map_tensors(d, g) || map_hparams(d, g) || lmm_model_desc_validate(d)) goto fail;
    return 0;
fail:
    lmm_model_desc_free(d);
    return -1;
}

int lmm_model_desc_open_gguf(lmm_model_desc *d, const char *path) {
    lmm_model_desc_init(d);
    lmm_gguf *g;
    if (lmm_gguf_open(&g, path)) return -1;
    return lmm_model_desc_from_gguf(d, g);
}
