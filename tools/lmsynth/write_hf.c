/* tools/lmsynth/write_hf.c — writes a synthetic model as a Hugging Face directory:
 * config.json (LlamaForCausalLM, or Qwen2ForCausalLM with q/k/v bias) and one
 * model.safetensors.
 *
 * safetensors: u64 little-endian header length N | N bytes of JSON
 *   {"__metadata__": {...}, "<name>": {"dtype": "F32"|"F16"|"BF16", "shape": [...],
 *    "data_offsets": [begin, end]}, ...} padded with spaces to a multiple of 8 |
 *   the tensor bytes, offsets relative to the end of the header, no holes.
 * Every tensor (norms too) has the one dtype of the checkpoint, as HF saves it.
 * attn_q/attn_k rows of arch llama are stored in HF's NeoX order (see synth.h). */
#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lmm/error.h"
#include "synth.h"

/* Canonical name -> Hugging Face name. */
static void hf_name(const char *canon, char *out, size_t cap) {
    static const struct {
        const char *canon, *hf;
    } k_block[] = {
        {"attn_norm.weight", "input_layernorm.weight"},
        {"attn_q.weight", "self_attn.q_proj.weight"},
        {"attn_k.weight", "self_attn.k_proj.weight"},
        {"attn_v.weight", "self_attn.v_proj.weight"},
        {"attn_q.bias", "self_attn.q_proj.bias"},
        {"attn_k.bias", "self_attn.k_proj.bias"},
        {"attn_v.bias", "self_attn.v_proj.bias"},
        {"attn_output.weight", "self_attn.o_proj.weight"},
        {"ffn_norm.weight", "post_attention_layernorm.weight"},
        {"ffn_gate.weight", "mlp.gate_proj.weight"},
        {"ffn_up.weight", "mlp.up_proj.weight"},
        {"ffn_down.weight", "mlp.down_proj.weight"},
    };
    unsigned layer;
    int used = 0;
    if (strcmp(canon, "token_embd.weight") == 0) {
        snprintf(out, cap, "model.embed_tokens.weight");
    } else if (strcmp(canon, "output_norm.weight") == 0) {
        snprintf(out, cap, "model.norm.weight");
    } else if (strcmp(canon, "output.weight") == 0) {
        snprintf(out, cap, "lm_head.weight");
    } else if (sscanf(canon, "blk.%u.%n", &layer, &used) == 1 && used > 0) {
        for (size_t i = 0; i < sizeof k_block / sizeof k_block[0]; i++)
            if (strcmp(canon + used, k_block[i].canon) == 0) {
                snprintf(out, cap, "model.layers.%u.%s", layer, k_block[i].hf);
                return;
            }
        snprintf(out, cap, "%s", canon); /* not reached: synth_tensors makes only the names above */
    } else {
        snprintf(out, cap, "%s", canon);
    }
}

static const char *st_dtype(lmm_dtype t) { return t == LMM_DTYPE_F16 ? "F16" : t == LMM_DTYPE_BF16 ? "BF16" : "F32"; }
static const char *torch_dtype(lmm_dtype t) {
    return t == LMM_DTYPE_F16 ? "float16" : t == LMM_DTYPE_BF16 ? "bfloat16" : "float32";
}

static int write_config(const synth_config *c, const char *path) {
    json_object *o = json_object_new_object();
    json_object *archs = json_object_new_array();
    if (!o || !archs) {
        json_object_put(o);
        json_object_put(archs);
        return lmm_error_set("out of memory");
    }
    json_object_array_add(archs, json_object_new_string(c->qkv_bias ? "Qwen2ForCausalLM" : "LlamaForCausalLM"));
    json_object_object_add(o, "architectures", archs);
    json_object_object_add(o, "model_type", json_object_new_string(c->qkv_bias ? "qwen2" : "llama"));
    json_object_object_add(o, "hidden_size", json_object_new_int64(c->dim));
    json_object_object_add(o, "intermediate_size", json_object_new_int64(c->hidden_dim));
    json_object_object_add(o, "num_hidden_layers", json_object_new_int64(c->n_layers));
    json_object_object_add(o, "num_attention_heads", json_object_new_int64(c->n_heads));
    json_object_object_add(o, "num_key_value_heads", json_object_new_int64(c->n_kv_heads));
    json_object_object_add(o, "head_dim", json_object_new_int64(c->head_dim));
    json_object_object_add(o, "vocab_size", json_object_new_int64(c->n_vocab));
    json_object_object_add(o, "max_position_embeddings", json_object_new_int64(c->max_seq_len));
    char num[32];
    for (int prec = 1; prec <= 9; prec++) { /* shortest text that reads back to the same float: "1e-05" */
        snprintf(num, sizeof num, "%.*g", prec, (double)c->norm_eps);
        if (strtof(num, NULL) == c->norm_eps) break;
    }
    json_object_object_add(o, "rms_norm_eps", json_object_new_double_s((double)c->norm_eps, num));
    snprintf(num, sizeof num, "%.1f", (double)c->rope_theta);
    json_object_object_add(o, "rope_theta", json_object_new_double_s((double)c->rope_theta, num));
    json_object_object_add(o, "rope_scaling", NULL);
    json_object_object_add(o, "hidden_act", json_object_new_string("silu"));
    json_object_object_add(o, "tie_word_embeddings", json_object_new_boolean(c->tied));
    if (!c->qkv_bias) json_object_object_add(o, "attention_bias", json_object_new_boolean(0));
    json_object_object_add(o, "bos_token_id", json_object_new_int64(1));
    json_object_object_add(o, "eos_token_id", json_object_new_int64(2));
    json_object_object_add(o, "torch_dtype", json_object_new_string(torch_dtype(c->dtype)));
    int rc = 0;
    if (json_object_to_file_ext(path, o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED) != 0)
        rc = lmm_error_set("%s: cannot write: %s", path, json_util_get_last_err());
    json_object_put(o);
    return rc;
}

int synth_write_hf(const synth_config *c) {
    if (mkdir(c->out, 0777) != 0 && errno != EEXIST)
        return lmm_error_set("%s: cannot create directory: %s", c->out, strerror(errno));
    struct stat st;
    if (stat(c->out, &st) != 0 || !S_ISDIR(st.st_mode))
        return lmm_error_set("%s: is not a directory (the Hugging Face format writes a directory)", c->out);
    size_t plen = strlen(c->out) + 32;
    char *cfg_path = malloc(plen), *st_path = malloc(plen);
    synth_tensor *ts = NULL;
    size_t nt = 0;
    json_object *hdr = NULL;
    FILE *f = NULL;
    int rc = -1;
    if (!cfg_path || !st_path) {
        lmm_error_set("out of memory");
        goto done;
    }
    snprintf(cfg_path, plen, "%s/config.json", c->out);
    snprintf(st_path, plen, "%s/model.safetensors", c->out);
    if (write_config(c, cfg_path) || synth_tensors(c, &ts, &nt)) goto done;

    hdr = json_object_new_object();
    json_object *meta = json_object_new_object();
    if (!hdr || !meta) {
        json_object_put(meta);
        lmm_error_set("out of memory");
        goto done;
    }
    json_object_object_add(meta, "format", json_object_new_string("pt"));
    json_object_object_add(hdr, "__metadata__", meta);
    size_t esize = lmm_dtype_size(c->dtype);
    uint64_t offset = 0;
    for (size_t i = 0; i < nt; i++) {
        char name[128];
        hf_name(ts[i].name, name, sizeof name);
        json_object *e = json_object_new_object(), *shape = json_object_new_array(),
                    *offs = json_object_new_array();
        if (!e || !shape || !offs) {
            json_object_put(e);
            json_object_put(shape);
            json_object_put(offs);
            lmm_error_set("out of memory");
            goto done;
        }
        for (uint32_t d = 0; d < ts[i].n_dims; d++)
            json_object_array_add(shape, json_object_new_int64((int64_t)ts[i].shape[d]));
        uint64_t end = offset + synth_tensor_elems(&ts[i]) * esize;
        json_object_array_add(offs, json_object_new_int64((int64_t)offset));
        json_object_array_add(offs, json_object_new_int64((int64_t)end));
        json_object_object_add(e, "dtype", json_object_new_string(st_dtype(c->dtype)));
        json_object_object_add(e, "shape", shape);
        json_object_object_add(e, "data_offsets", offs);
        json_object_object_add(hdr, name, e);
        offset = end;
    }
    const char *text = json_object_to_json_string_ext(hdr, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    size_t tlen = strlen(text);
    uint64_t hlen = (tlen + 7) / 8 * 8; /* pad with spaces so the data starts 8-byte aligned */

    f = fopen(st_path, "wb");
    if (!f) {
        lmm_error_set("%s: cannot create: %s", st_path, strerror(errno));
        goto done;
    }
    synth_progress_begin(c, 8 + hlen + offset);
    if (synth_write(f, st_path, &hlen, 8) || synth_write(f, st_path, text, tlen) ||
        synth_write(f, st_path, "        ", hlen - tlen))
        goto done;
    /* Arch llama: HF keeps q/k rows in the NeoX order (qwen2 tensors have rope_heads 0). */
    for (size_t i = 0; i < nt; i++)
        if (synth_write_tensor(f, st_path, c, &ts[i], c->dtype, true)) goto done;
    rc = 0;
done:
    synth_progress_end();
    if (f && fclose(f) != 0 && rc == 0) rc = lmm_error_set("%s: write failed: %s", st_path, strerror(errno));
    if (rc && f) unlink(st_path);
    json_object_put(hdr);
    free(ts);
    free(cfg_path);
    free(st_path);
    return rc;
}
