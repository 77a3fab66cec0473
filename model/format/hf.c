/* model/format/hf.c — reads a Hugging Face model directory (config.json plus
 * model.safetensors or the shards listed by model.safetensors.index.json) into an
 * lmm_model_desc: hyper-parameters from config.json, tensors renamed to the canonical
 * names of lmm/model.h. All JSON goes through json-c. See docs/formats.md. */
#include "model/format/hf.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lmm/error.h"
#include "model/format/safetensors.h"

#define HF_MAX_CONFIG_BYTES (16u << 20)  /* config.json */
#define HF_MAX_INDEX_BYTES (256u << 20)  /* model.safetensors.index.json */
#define HF_PATH_MAX 4096

/* ---- files and JSON ------------------------------------------------------- */

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Reads a whole (small) file into a malloc'd buffer. */
static int read_text(const char *path, size_t max, char **out, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return lmm_error_set("%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return lmm_error_set("%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > max) {
        fclose(f);
        return lmm_error_set("%s: %" PRIu64 " bytes is too large (at most %zu)", path, (uint64_t)sb.st_size, max);
    }
    size_t n = (size_t)sb.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return lmm_error_set("out of memory");
    }
    if (fread(buf, 1, n, f) != n) {
        free(buf);
        fclose(f);
        return lmm_error_set("%s: read error", path);
    }
    fclose(f);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* Parses len bytes of JSON text that must hold one value and nothing but white
 * space after it. */
static json_object *parse_json(const char *text, size_t len, const char *name) {
    if (len > (size_t)INT32_MAX - 1) {
        lmm_error_set("%s: too large for JSON", name);
        return NULL;
    }
    struct json_tokener *tok = json_tokener_new();
    if (!tok) {
        lmm_error_set("out of memory");
        return NULL;
    }
    json_object *root = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error err = json_tokener_get_error(tok);
    if (!root && err == json_tokener_continue) {
        /* A bare top-level number needs a terminator to be complete. */
        root = json_tokener_parse_ex(tok, " ", 1);
        err = json_tokener_get_error(tok);
    }
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (!root) {
        lmm_error_set("%s: invalid JSON (%s)", name,
                      err == json_tokener_continue ? "unexpected end of data" : json_tokener_error_desc(err));
        return NULL;
    }
    for (size_t i = end; i < len; i++) {
        char c = text[i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            json_object_put(root);
            lmm_error_set("%s: invalid JSON (unexpected data at byte %zu)", name, i);
            return NULL;
        }
    }
    return root;
}

/* double -> float without the undefined behaviour of an out-of-range conversion;
 * the desc validator rejects the resulting infinities. */
static float to_float(double v) {
    if (v > FLT_MAX) return INFINITY;
    if (v < -FLT_MAX) return -INFINITY;
    return (float)v;
}

static const char *type_label(json_object *o) { return o ? json_type_to_name(json_object_get_type(o)) : "null"; }

/* ---- config.json ---------------------------------------------------------- */

typedef struct {
    json_object *root;
    const char *name;   /* file name for messages */
} config_ctx;

/* Field lookup: 1 when absent or null, 0 when present (value in *out). */
static int cfg_get(const config_ctx *c, const char *field, json_object **out) {
    json_object *v = NULL;
    if (!json_object_object_get_ex(c->root, field, &v) || v == NULL) return 1;
    *out = v;
    return 0;
}

static int cfg_missing(const config_ctx *c, const char *field) {
    return lmm_error_set("%s: missing field '%s'", c->name, field);
}

/* An integer in [0, UINT32_MAX]. Returns 1 when absent (required -> error). */
static int cfg_u32(const config_ctx *c, const char *field, int required, uint32_t *out) {
    json_object *v;
    if (cfg_get(c, field, &v)) return required ? cfg_missing(c, field) : 1;
    if (!json_object_is_type(v, json_type_int))
        return lmm_error_set("%s: field '%s' must be an integer, not %s", c->name, field, type_label(v));
    int64_t i = json_object_get_int64(v);
    if (i < 0 || (uint64_t)json_object_get_uint64(v) > UINT32_MAX)
        return lmm_error_set("%s: field '%s' = %s is out of range", c->name, field, json_object_get_string(v));
    *out = (uint32_t)i;
    return 0;
}

/* A number (integer or floating point) in OBJ; `parent` prefixes the field in messages. */
static int cfg_f64(const config_ctx *c, json_object *obj, const char *parent, const char *field, int required,
                   double *out) {
    json_object *v = NULL;
    if (!json_object_object_get_ex(obj, field, &v) || v == NULL)
        return required ? lmm_error_set("%s: missing field '%s%s'", c->name, parent, field) : 1;
    if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
        return lmm_error_set("%s: field '%s%s' must be a number, not %s", c->name, parent, field, type_label(v));
    *out = json_object_get_double(v);
    return 0;
}

static int cfg_bool(const config_ctx *c, const char *field, bool *out) {
    json_object *v;
    if (cfg_get(c, field, &v)) return 1;
    if (!json_object_is_type(v, json_type_boolean))
        return lmm_error_set("%s: field '%s' must be true or false, not %s", c->name, field, type_label(v));
    *out = json_object_get_boolean(v);
    return 0;
}

/* A token id: an integer, or a list whose first element is one (eos_token_id). */
static int cfg_token_id(const config_ctx *c, const char *field, uint32_t *out) {
    json_object *v;
    if (cfg_get(c, field, &v)) return 1;
    if (json_object_is_type(v, json_type_array)) {
        if (json_object_array_length(v) == 0) return 1;
        v = json_object_array_get_idx(v, 0);
    }
    if (!v || !json_object_is_type(v, json_type_int))
        return lmm_error_set("%s: field '%s' must be an integer or a list of integers, not %s", c->name, field,
                             type_label(v));
    int64_t i = json_object_get_int64(v);
    if (i < 0 || i > (int64_t)UINT32_MAX - 1)
        return lmm_error_set("%s: field '%s' = %s is out of range", c->name, field, json_object_get_string(v));
    *out = (uint32_t)i;
    return 0;
}

static int cfg_rope_scaling(const config_ctx *c, lmm_hparams *hp) {
    json_object *rs;
    if (cfg_get(c, "rope_scaling", &rs)) return 0;
    if (!json_object_is_type(rs, json_type_object))
        return lmm_error_set("%s: field 'rope_scaling' must be an object or null, not %s", c->name, type_label(rs));
    json_object *t = NULL;
    if (!json_object_object_get_ex(rs, "rope_type", &t) || !t) json_object_object_get_ex(rs, "type", &t);
    if (!t) return lmm_error_set("%s: field 'rope_scaling' has no 'rope_type' or 'type'", c->name);
    if (!json_object_is_type(t, json_type_string))
        return lmm_error_set("%s: field 'rope_scaling.rope_type' must be a string, not %s", c->name, type_label(t));
    const char *type = json_object_get_string(t);
    double factor = 1.0, lo = 0.0, hi = 0.0, orig = 0.0;
    if (strcmp(type, "default") == 0) return 0;
    if (strcmp(type, "linear") == 0) {
        if (cfg_f64(c, rs, "rope_scaling.", "factor", 1, &factor)) return -1;
        hp->rope_scaling = LMM_ROPE_SCALING_LINEAR;
        hp->rope_factor = to_float(factor);
        return 0;
    }
    if (strcmp(type, "llama3") == 0) {
        if (cfg_f64(c, rs, "rope_scaling.", "factor", 1, &factor) ||
            cfg_f64(c, rs, "rope_scaling.", "low_freq_factor", 1, &lo) ||
            cfg_f64(c, rs, "rope_scaling.", "high_freq_factor", 1, &hi) ||
            cfg_f64(c, rs, "rope_scaling.", "original_max_position_embeddings", 1, &orig))
            return -1;
        if (!(orig >= 1.0 && orig <= (double)UINT32_MAX) || orig != (double)(uint32_t)orig)
            return lmm_error_set("%s: field 'rope_scaling.original_max_position_embeddings' = %g is not a valid length", c->name,
                                 orig);
        hp->rope_scaling = LMM_ROPE_SCALING_LLAMA3;
        hp->rope_factor = to_float(factor);
        hp->rope_low_freq_factor = to_float(lo);
        hp->rope_high_freq_factor = to_float(hi);
        hp->rope_orig_max_pos = (uint32_t)orig;
        return 0;
    }
    return lmm_error_set("%s: rope_scaling type '%.40s' is not supported (linear and llama3 are)", c->name, type);
}

/* Sliding-window attention equals full attention for positions inside the window,
 * so a model that uses it is run exactly by capping the context at the window. */
static int cfg_sliding_window(const config_ctx *c, lmm_arch arch, lmm_hparams *hp) {
    bool use = arch != LMM_ARCH_QWEN2; /* Mistral uses "sliding_window" alone; Qwen2 gates it */
    if (arch == LMM_ARCH_QWEN2) {
        use = false;
        if (cfg_bool(c, "use_sliding_window", &use) < 0) return -1;
    }
    uint32_t w = 0;
    int r = cfg_u32(c, "sliding_window", 0, &w);
    if (r < 0) return -1;
    if (r == 1 || !use) return 0;
    if (w == 0) return lmm_error_set("%s: field 'sliding_window' = 0 is out of range", c->name);
    if (w < hp->max_seq_len) hp->max_seq_len = w;
    return 0;
}

int lmm_hf_parse_config(lmm_model_desc *d, const char *text, size_t len, const char *name) {
    json_object *root = parse_json(text, len, name);
    if (!root) return -1;
    config_ctx cc = {root, name};
    const config_ctx *c = &cc;
    lmm_hparams *hp = &d->hp;
    int rc = -1;
    if (!json_object_is_type(root, json_type_object)) {
        lmm_error_set("%s: expected a JSON object, not %s", name, type_label(root));
        goto out;
    }

    /* architecture */
    json_object *archs, *a0;
    if (cfg_get(c, "architectures", &archs)) {
        cfg_missing(c, "architectures");
        goto out;
    }
    if (!json_object_is_type(archs, json_type_array) || json_object_array_length(archs) == 0 ||
        !(a0 = json_object_array_get_idx(archs, 0)) || !json_object_is_type(a0, json_type_string)) {
        lmm_error_set("%s: field 'architectures' must be a non-empty list of strings", name);
        goto out;
    }
    const char *arch = json_object_get_string(a0);
    if (strcmp(arch, "LlamaForCausalLM") == 0 || strcmp(arch, "MistralForCausalLM") == 0) {
        d->arch = LMM_ARCH_LLAMA;
    } else if (strcmp(arch, "Qwen2ForCausalLM") == 0) {
        d->arch = LMM_ARCH_QWEN2;
    } else {
        lmm_error_set("%s: architecture %.64s is not supported (LlamaForCausalLM, MistralForCausalLM and "
                      "Qwen2ForCausalLM are)",
                      name, arch);
        goto out;
    }
    snprintf(d->arch_name, sizeof d->arch_name, "%s", arch);

    /* sizes */
    if (cfg_u32(c, "hidden_size", 1, &hp->dim) || cfg_u32(c, "intermediate_size", 1, &hp->hidden_dim) ||
        cfg_u32(c, "num_hidden_layers", 1, &hp->n_layers) || cfg_u32(c, "num_attention_heads", 1, &hp->n_heads) ||
        cfg_u32(c, "vocab_size", 1, &hp->n_vocab) || cfg_u32(c, "max_position_embeddings", 1, &hp->max_seq_len))
        goto out;
    if (hp->n_heads == 0) {
        lmm_error_set("%s: field 'num_attention_heads' = 0 is out of range", name);
        goto out;
    }
    hp->n_kv_heads = hp->n_heads;
    if (cfg_u32(c, "num_key_value_heads", 0, &hp->n_kv_heads) < 0) goto out;
    int r = cfg_u32(c, "head_dim", 0, &hp->head_dim);
    if (r < 0) goto out;
    if (r == 1) {
        if (hp->dim % hp->n_heads != 0) {
            lmm_error_set("%s: hidden_size (%u) is not a multiple of num_attention_heads (%u) and head_dim is not "
                          "given",
                          name, hp->dim, hp->n_heads);
            goto out;
        }
        hp->head_dim = hp->dim / hp->n_heads;
    }

    /* numbers */
    double eps, theta = 10000.0;
    if (cfg_f64(c, root, "", "rms_norm_eps", 1, &eps) || cfg_f64(c, root, "", "rope_theta", 0, &theta) < 0) goto out;
    hp->norm_eps = to_float(eps);
    hp->rope_theta = to_float(theta);
    if (cfg_rope_scaling(c, hp)) goto out;
    hp->rope_layout = LMM_ROPE_NEOX; /* HF applies rotate_half: pairs (i, i + head_dim/2) */

    /* flags */
    hp->tied_embeddings = false;
    if (cfg_bool(c, "tie_word_embeddings", &hp->tied_embeddings) < 0) goto out;
    hp->qkv_bias = d->arch == LMM_ARCH_QWEN2;
    if (d->arch == LMM_ARCH_LLAMA && cfg_bool(c, "attention_bias", &hp->qkv_bias) < 0) goto out;
    bool mlp_bias = false;
    if (cfg_bool(c, "mlp_bias", &mlp_bias) < 0) goto out;
    if (mlp_bias) {
        lmm_error_set("%s: mlp_bias = true is not supported", name);
        goto out;
    }
    json_object *act;
    if (!cfg_get(c, "hidden_act", &act) &&
        (!json_object_is_type(act, json_type_string) || strcmp(json_object_get_string(act), "silu") != 0)) {
        lmm_error_set("%s: hidden_act %.40s is not supported (silu is)", name, json_object_get_string(act));
        goto out;
    }
    if (cfg_sliding_window(c, d->arch, hp)) goto out;

    /* special tokens (absent or null: keep the defaults) */
    if (cfg_token_id(c, "bos_token_id", &d->bos_id) < 0 || cfg_token_id(c, "eos_token_id", &d->eos_id) < 0) goto out;
    rc = 0;
out:
    json_object_put(root);
    return rc;
}

/* ---- tensor names --------------------------------------------------------- */

typedef struct {
    const char *hf;      /* suffix after "model.layers.L." or the whole name */
    const char *canon;   /* canonical suffix / name; NULL: unsupported, fail */
} name_rule;

static const name_rule layer_rules[] = {
    {"input_layernorm.weight", "attn_norm.weight"},
    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.q_proj.bias", "attn_q.bias"},
    {"self_attn.k_proj.bias", "attn_k.bias"},
    {"self_attn.v_proj.bias", "attn_v.bias"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
    /* Present in the graph but not computed by the engine: refusing beats wrong logits. */
    {"self_attn.o_proj.bias", NULL},
    {"mlp.gate_proj.bias", NULL},
    {"mlp.up_proj.bias", NULL},
    {"mlp.down_proj.bias", NULL},
};

static const name_rule global_rules[] = {
    {"model.embed_tokens.weight", "token_embd.weight"},
    {"model.norm.weight", "output_norm.weight"},
    {"lm_head.weight", "output.weight"},
};

int lmm_hf_map_name(const char *hf, char *out, size_t cap, uint32_t *layer) {
    *layer = UINT32_MAX;
    for (size_t i = 0; i < sizeof global_rules / sizeof global_rules[0]; i++)
        if (strcmp(hf, global_rules[i].hf) == 0) {
            snprintf(out, cap, "%s", global_rules[i].canon);
            return 1;
        }
    static const char prefix[] = "model.layers.";
    if (strncmp(hf, prefix, sizeof prefix - 1) != 0) return 0;
    const char *p = hf + sizeof prefix - 1;
    /* Block number: decimal digits, no leading zeros, at most 7 digits. */
    uint32_t l = 0;
    size_t nd = 0;
    while (p[nd] >= '0' && p[nd] <= '9') {
        if (nd >= 7) return 0;
        l = l * 10 + (uint32_t)(p[nd] - '0');
        nd++;
    }
    if (nd == 0 || p[nd] != '.' || (nd > 1 && p[0] == '0')) return 0;
    const char *suffix = p + nd + 1;
    for (size_t i = 0; i < sizeof layer_rules / sizeof layer_rules[0]; i++) {
        if (strcmp(suffix, layer_rules[i].hf) != 0) continue;
        if (!layer_rules[i].canon)
            return lmm_error_set("tensor '%s': %s is not supported by the engine", hf, layer_rules[i].hf);
        snprintf(out, cap, "blk.%u.%s", l, layer_rules[i].canon);
        *layer = l;
        return 1;
    }
    return 0;
}

/* ---- the directory -------------------------------------------------------- */

typedef struct {
    char dir[HF_PATH_MAX];        /* model directory, no trailing '/' */
    char data_file[HF_PATH_MAX];  /* a .safetensors file named by the caller, or "" */
} hf_paths;

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int hf_resolve(hf_paths *hp, const char *path) {
    memset(hp, 0, sizeof *hp);
    struct stat sb;
    if (stat(path, &sb) != 0) return lmm_error_set("%s: cannot open: %s", path, strerror(errno));
    if (strlen(path) >= HF_PATH_MAX - 64) return lmm_error_set("%s: path too long", path);
    if (S_ISDIR(sb.st_mode)) {
        snprintf(hp->dir, sizeof hp->dir, "%s", path);
        size_t n = strlen(hp->dir);
        while (n > 1 && hp->dir[n - 1] == '/') hp->dir[--n] = '\0';
        return 0;
    }
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!S_ISREG(sb.st_mode) ||
        !(strcmp(base, "config.json") == 0 || strcmp(base, "model.safetensors.index.json") == 0 ||
          ends_with(base, ".safetensors")))
        return lmm_error_set("%s: not a Hugging Face model (expected a directory, config.json, a .safetensors file "
                             "or model.safetensors.index.json)",
                             path);
    if (ends_with(base, ".safetensors")) snprintf(hp->data_file, sizeof hp->data_file, "%s", path);
    if (!slash) snprintf(hp->dir, sizeof hp->dir, ".");
    else if (slash == path) snprintf(hp->dir, sizeof hp->dir, "/");
    else snprintf(hp->dir, sizeof hp->dir, "%.*s", (int)(slash - path), path);
    return 0;
}

static void join(char *out, size_t cap, const char *dir, const char *name) {
    snprintf(out, cap, "%s%s%s", dir, strcmp(dir, "/") == 0 ? "" : "/", name);
}

/* Adds the tensors of one safetensors file that the engine uses. `wanted`, when not
 * NULL, returns whether the index assigns a tensor to this file. */
typedef int (*wanted_fn)(void *ctx, const char *hf_name);

static int hf_add_file(lmm_model_desc *d, const char *path, wanted_fn wanted, void *ctx) {
    lmm_safetensors st;
    if (lmm_safetensors_read(&st, path)) return -1;
    uint32_t fi;
    int rc = -1;
    if (lmm_model_desc_add_file(d, path, st.file_size, &fi)) goto out;
    for (uint32_t i = 0; i < st.n_tensors; i++) {
        const lmm_st_tensor *t = &st.tensors[i];
        char canon[LMM_TENSOR_NAME_MAX];
        uint32_t layer;
        int m = lmm_hf_map_name(t->name, canon, sizeof canon, &layer);
        if (m < 0) {
            lmm_error_prefix("%s", path);
            goto out;
        }
        if (m == 0 || (layer != UINT32_MAX && layer >= d->hp.n_layers)) continue;
        if (wanted && !wanted(ctx, t->name)) continue;
        if (d->hp.tied_embeddings && strcmp(canon, "output.weight") == 0) continue;
        if (!d->hp.qkv_bias && ends_with(canon, ".bias")) {
            lmm_error_set("%s: tensor '%s' is present but config.json says the attention has no bias", path, t->name);
            goto out;
        }
        if (!t->supported) {
            lmm_error_set("%s: tensor '%s': dtype %s is not supported (F32, F16 and BF16 are)", path, t->name,
                          t->dtype_name);
            goto out;
        }
        if (t->n_dims == 0) {
            lmm_error_set("%s: tensor '%s' is a scalar, expected a vector or matrix", path, t->name);
            goto out;
        }
        if (t->n_dims > LMM_MAX_DIMS) {
            lmm_error_set("%s: tensor '%s' has %u dimensions (at most %d)", path, t->name, t->n_dims, LMM_MAX_DIMS);
            goto out;
        }
        if (lmm_model_desc_add_tensor(d, canon, t->dtype, t->n_dims, t->shape, fi, t->offset, t->nbytes)) goto out;
    }
    rc = 0;
out:
    lmm_safetensors_free(&st);
    return rc;
}

typedef struct {
    json_object *weight_map;
    const char *shard;
} index_ctx;

static int index_wants(void *ctx, const char *hf_name) {
    index_ctx *ic = ctx;
    json_object *v;
    return json_object_object_get_ex(ic->weight_map, hf_name, &v) && json_object_is_type(v, json_type_string) &&
           strcmp(json_object_get_string(v), ic->shard) == 0;
}

/* A shard name must be a plain file name in the model directory. */
static int shard_name_ok(json_object *v) {
    if (!json_object_is_type(v, json_type_string)) return 0;
    const char *s = json_object_get_string(v);
    size_t n = (size_t)json_object_get_string_len(v);
    return n > 0 && n < 256 && strlen(s) == n && !strchr(s, '/') && !strchr(s, '\\') && strcmp(s, ".") != 0 &&
           strcmp(s, "..") != 0;
}

static int hf_add_index(lmm_model_desc *d, const char *dir, const char *index_path) {
    char *text = NULL;
    size_t len = 0;
    if (read_text(index_path, HF_MAX_INDEX_BYTES, &text, &len)) return -1;
    json_object *root = parse_json(text, len, index_path);
    free(text);
    if (!root) return -1;
    int rc = -1;
    const char **shards = NULL;
    size_t n_shards = 0;
    json_object *wm;
    if (!json_object_is_type(root, json_type_object) || !json_object_object_get_ex(root, "weight_map", &wm) ||
        !json_object_is_type(wm, json_type_object)) {
        lmm_error_set("%s: missing object 'weight_map'", index_path);
        goto out;
    }
    size_t n = (size_t)json_object_object_length(wm);
    shards = calloc(n ? n : 1, sizeof *shards);
    if (!shards) {
        lmm_error_set("out of memory");
        goto out;
    }
    /* Distinct shard names, in order of first appearance. */
    json_object_object_foreach(wm, key, val) {
        if (!shard_name_ok(val)) {
            lmm_error_set("%s: tensor '%s': shard %.80s is not a plain file name in the model directory", index_path,
                          key, json_object_is_type(val, json_type_string) ? json_object_get_string(val) : "(not a string)");
            goto out;
        }
        const char *s = json_object_get_string(val);
        size_t k = n_shards;
        while (k > 0 && strcmp(shards[k - 1], s) != 0) k--;
        if (k == 0 && n_shards < n) shards[n_shards++] = s;
    }
    for (size_t i = 0; i < n_shards; i++) {
        char path[HF_PATH_MAX + 256];
        join(path, sizeof path, dir, shards[i]);
        if (!file_exists(path)) {
            lmm_error_set("%s: shard %s is missing (%s)", index_path, shards[i], path);
            goto out;
        }
        index_ctx ic = {wm, shards[i]};
        if (hf_add_file(d, path, index_wants, &ic)) goto out;
    }
    /* Every used tensor the index lists must have been found in its shard. */
    json_object_object_foreach(wm, key2, val2) {
        char canon[LMM_TENSOR_NAME_MAX];
        uint32_t layer;
        int m = lmm_hf_map_name(key2, canon, sizeof canon, &layer);
        if (m < 0) {
            lmm_error_prefix("%s", index_path);
            goto out;
        }
        if (m == 0 || (layer != UINT32_MAX && layer >= d->hp.n_layers)) continue;
        if (d->hp.tied_embeddings && strcmp(canon, "output.weight") == 0) continue;
        if (!lmm_model_desc_find(d, canon)) {
            lmm_error_set("%s: tensor '%s' is listed in shard %s but that file does not hold it", index_path, key2,
                          json_object_get_string(val2));
            goto out;
        }
    }
    rc = 0;
out:
    free(shards);
    json_object_put(root);
    return rc;
}

int lmm_model_desc_open_hf(lmm_model_desc *d, const char *path) {
    lmm_model_desc_init(d);
    d->format = LMM_FORMAT_HF;
    hf_paths hp;
    if (hf_resolve(&hp, path)) return -1;

    char file[HF_PATH_MAX + 64];
    join(file, sizeof file, hp.dir, "config.json");
    char *text = NULL;
    size_t len = 0;
    if (read_text(file, HF_MAX_CONFIG_BYTES, &text, &len)) goto fail;
    int rc = lmm_hf_parse_config(d, text, len, file);
    free(text);
    if (rc) goto fail;

    join(file, sizeof file, hp.dir, "model.safetensors.index.json");
    if (file_exists(file)) {
        if (hf_add_index(d, hp.dir, file)) goto fail;
    } else {
        join(file, sizeof file, hp.dir, "model.safetensors");
        if (!file_exists(file) && hp.data_file[0]) snprintf(file, sizeof file, "%s", hp.data_file);
        if (!file_exists(file)) {
            lmm_error_set("%s: no model.safetensors or model.safetensors.index.json", hp.dir);
            goto fail;
        }
        if (hf_add_file(d, file, NULL, NULL)) goto fail;
    }

    /* tokenizer.json, else a SentencePiece tokenizer.model (older Llama-2 repositories). */
    join(file, sizeof file, hp.dir, "tokenizer.json");
    if (!file_exists(file)) join(file, sizeof file, hp.dir, "tokenizer.model");
    if (file_exists(file)) {
        d->tokenizer_path = strdup(file);
        if (!d->tokenizer_path) {
            lmm_error_set("out of memory");
            goto fail;
        }
    }
    if (lmm_model_desc_validate(d)) goto fail;
    return 0;
fail:
    lmm_model_desc_free(d);
    return -1;
}
