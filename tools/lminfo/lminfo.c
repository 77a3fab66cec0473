/* tools/lminfo/lminfo.c — prints what a model file holds and what running it costs.
 *
 *   lminfo MODEL [--ctx N] [--json]
 *
 * Format, architecture, hyper-parameters, the tensor table (name, dtype, shape, file,
 * offset, bytes), total weight bytes and the memory for a context of N tokens
 * (weights + FP32 KV cache; N defaults to the model's max_seq_len). For GGUF files
 * also the metadata keys (big arrays summarised). A GGUF that parses but is not a
 * runnable model (vocabulary-only, quantized) still has its metadata shown; a
 * vocabulary-only file exits 0, anything else that fails exits 1 with
 * "lminfo: <message>" on stderr. */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmm/error.h"
#include "lmm/gguf.h"
#include "lmm/model.h"

#define VALUE_TEXT_MAX 512

typedef struct {
    const char *path;
    uint32_t n_ctx;     /* 0: the model's max_seq_len */
    bool json;
} options;

static void usage(FILE *f) {
    fprintf(f, "usage: lminfo MODEL [--ctx N] [--json]\n"
               "  MODEL   GGUF file, Hugging Face directory (config.json + *.safetensors) or llama2.c .bin\n"
               "  --ctx N context length for the memory estimate (default: the model's max_seq_len)\n"
               "  --json  one JSON object instead of text\n");
}

static int die(const char *msg) {
    fprintf(stderr, "lminfo: %s\n", msg);
    return 1;
}

static int parse_args(int argc, char **argv, options *o) {
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(a, "--json") == 0) {
            o->json = true;
        } else if (strcmp(a, "--ctx") == 0 || strncmp(a, "--ctx=", 6) == 0) {
            if (a[5] == '=') val = a + 6;
            else if (i + 1 < argc) val = argv[++i];
            else return lmm_error_set("--ctx needs a value");
            char *end;
            errno = 0;
            unsigned long long v = strtoull(val, &end, 10);
            if (errno || end == val || *end || val[0] == '-' || v == 0 || v > UINT32_MAX)
                return lmm_error_set("--ctx: '%s' is not a context length (1 to %u)", val, UINT32_MAX);
            o->n_ctx = (uint32_t)v;
        } else if (a[0] == '-' && a[1]) {
            return lmm_error_set("unknown option '%s' (see --help)", a);
        } else if (o->path) {
            return lmm_error_set("more than one MODEL given ('%s' and '%s')", o->path, a);
        } else {
            o->path = a;
        }
    }
    if (!o->path) return lmm_error_set("no MODEL given (see --help)");
    return 0;
}

static const char *human_bytes(uint64_t b, char *buf, size_t cap) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    unsigned u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    if (u == 0) snprintf(buf, cap, "%" PRIu64 " B", b);
    else snprintf(buf, cap, "%.2f %s", v, units[u]);
    return buf;
}

static const char *shape_text(const uint64_t *shape, uint32_t n, char *buf, size_t cap) {
    int len = snprintf(buf, cap, "[");
    for (uint32_t i = 0; i < n && len > 0 && (size_t)len < cap; i++)
        len += snprintf(buf + len, cap - (size_t)len, "%s%" PRIu64, i ? ", " : "", shape[i]);
    if (len > 0 && (size_t)len < cap) snprintf(buf + len, cap - (size_t)len, "]");
    return buf;
}

static const char *scaling_name(lmm_rope_scaling s) {
    switch (s) {
    case LMM_ROPE_SCALING_NONE: return "none";
    case LMM_ROPE_SCALING_LINEAR: return "linear";
    case LMM_ROPE_SCALING_LLAMA3: return "llama3";
    }
    return "?";
}

/* ---- GGUF metadata and raw tensor table ---------------------------------------- */

static void gguf_print_metadata(const lmm_gguf *g) {
    char value[VALUE_TEXT_MAX];
    printf("metadata (%" PRIu64 " keys):\n", lmm_gguf_n_kv(g));
    for (uint64_t i = 0; i < lmm_gguf_n_kv(g); i++) {
        lmm_gguf_value_format(g, i, value, sizeof value);
        printf("  %-44s %-6s %s\n", lmm_gguf_key_at(g, i), lmm_gguf_type_name(lmm_gguf_type_at(g, i)), value);
    }
}

/* Tensor table straight from the GGUF (used when it is not a runnable model). */
static void gguf_print_tensors(const lmm_gguf *g) {
    char shape[128];
    printf("tensors (%" PRIu64 "):\n", lmm_gguf_n_tensors(g));
    printf("  %-36s %-8s %-22s %14s %14s\n", "name", "type", "shape", "offset", "bytes");
    for (uint64_t i = 0; i < lmm_gguf_n_tensors(g); i++) {
        const lmm_gguf_tensor *t = lmm_gguf_tensor_at(g, i);
        uint64_t rm[4];
        for (uint32_t k = 0; k < t->n_dims; k++) rm[k] = t->ne[t->n_dims - 1 - k];
        const char *tn = lmm_gguf_ggml_type_name(t->ggml_type);
        printf("  %-36s %-8s %-22s %14" PRIu64 " %14" PRIu64 "\n", t->name, tn ? tn : "?",
               shape_text(rm, t->n_dims, shape, sizeof shape), t->offset, t->nbytes);
    }
}

static void gguf_print_header(const lmm_gguf *g) {
    printf("format:       gguf v%u (alignment %u, data section at offset %" PRIu64 ", file %" PRIu64 " bytes)\n",
           lmm_gguf_version(g), lmm_gguf_alignment(g), lmm_gguf_data_offset(g), lmm_gguf_file_size(g));
}

/* True when the len bytes at s are well-formed UTF-8 (JSON strings must be). */
static bool utf8_valid(const unsigned char *s, uint64_t len) {
    for (uint64_t i = 0; i < len;) {
        unsigned n;
        uint32_t cp;
        if (s[i] < 0x80) n = 1, cp = s[i];
        else if (s[i] >= 0xc2 && s[i] <= 0xdf) n = 2, cp = s[i] & 0x1fu;
        else if (s[i] >= 0xe0 && s[i] <= 0xef) n = 3, cp = s[i] & 0x0fu;
        else if (s[i] >= 0xf0 && s[i] <= 0xf4) n = 4, cp = s[i] & 0x07u;
        else return false;
        if (len - i < n) return false;
        for (unsigned k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3fu);
        }
        if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        i += n;
    }
    return true;
}

/* Metadata as a JSON object: numbers, bools and UTF-8 strings as such; arrays and
 * other strings as the rendered text of lmm_gguf_value_format(). */
static json_object *gguf_json_metadata(const lmm_gguf *g) {
    json_object *m = json_object_new_object();
    char value[VALUE_TEXT_MAX];
    for (uint64_t i = 0; i < lmm_gguf_n_kv(g); i++) {
        const char *key = lmm_gguf_key_at(g, i);
        lmm_gguf_type t = lmm_gguf_type_at(g, i);
        json_object *v = NULL;
        uint64_t u;
        int64_t s;
        double f;
        bool b;
        const char *str;
        switch (t) {
        case LMM_GGUF_STRING:
            if (lmm_gguf_get_str(g, key, &str, &u) == 0 && u <= INT32_MAX && utf8_valid((const unsigned char *)str, u))
                v = json_object_new_string_len(str, (int)u);
            break;
        case LMM_GGUF_U8: case LMM_GGUF_U16: case LMM_GGUF_U32: case LMM_GGUF_U64:
            if (lmm_gguf_get_u64(g, key, &u) == 0) v = json_object_new_uint64(u);
            break;
        case LMM_GGUF_I8: case LMM_GGUF_I16: case LMM_GGUF_I32: case LMM_GGUF_I64:
            if (lmm_gguf_get_i64(g, key, &s) == 0) v = json_object_new_int64(s);
            break;
        case LMM_GGUF_F32: case LMM_GGUF_F64:
            if (lmm_gguf_get_f64(g, key, &f) == 0) v = json_object_new_double(f);
            break;
        case LMM_GGUF_BOOL:
            if (lmm_gguf_get_bool(g, key, &b) == 0) v = json_object_new_boolean(b);
            break;
        default: break;
        }
        if (!v) {
            lmm_gguf_value_format(g, i, value, sizeof value);
            v = json_object_new_string(value);
        }
        json_object_object_add(m, key, v);
    }
    return m;
}

static json_object *gguf_json(const lmm_gguf *g, bool with_tensors) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "version", json_object_new_int(lmm_gguf_version(g)));
    json_object_object_add(o, "alignment", json_object_new_int64(lmm_gguf_alignment(g)));
    json_object_object_add(o, "data_offset", json_object_new_uint64(lmm_gguf_data_offset(g)));
    json_object_object_add(o, "n_tensors", json_object_new_uint64(lmm_gguf_n_tensors(g)));
    if (with_tensors) {
        json_object *arr = json_object_new_array();
        for (uint64_t i = 0; i < lmm_gguf_n_tensors(g); i++) {
            const lmm_gguf_tensor *t = lmm_gguf_tensor_at(g, i);
            json_object *e = json_object_new_object();
            const char *tn = lmm_gguf_ggml_type_name(t->ggml_type);
            json_object_object_add(e, "name", json_object_new_string(t->name));
            json_object_object_add(e, "type", json_object_new_string(tn ? tn : "?"));
            json_object *sh = json_object_new_array();
            for (uint32_t k = 0; k < t->n_dims; k++)
                json_object_array_add(sh, json_object_new_uint64(t->ne[t->n_dims - 1 - k]));
            json_object_object_add(e, "shape", sh);
            json_object_object_add(e, "offset", json_object_new_uint64(t->offset));
            json_object_object_add(e, "bytes", json_object_new_uint64(t->nbytes));
            json_object_array_add(arr, e);
        }
        json_object_object_add(o, "tensors", arr);
    }
    json_object_object_add(o, "metadata", gguf_json_metadata(g));
    return o;
}

/* ---- a model description -------------------------------------------------------- */

static void print_desc(const lmm_model_desc *d, uint32_t n_ctx) {
    const lmm_hparams *h = &d->hp;
    char b1[32], b2[32], b3[32], shape[128];
    if (d->gguf) gguf_print_header(d->gguf);
    else printf("format:       %s\n", lmm_format_name(d->format));
    printf("architecture: %s (%s)\n", d->arch == LMM_ARCH_QWEN2 ? "qwen2" : "llama", d->arch_name);
    printf("hyper-parameters:\n");
    printf("  n_vocab          %u\n", h->n_vocab);
    printf("  dim              %u\n", h->dim);
    printf("  hidden_dim       %u\n", h->hidden_dim);
    printf("  n_layers         %u\n", h->n_layers);
    printf("  n_heads          %u\n", h->n_heads);
    printf("  n_kv_heads       %u\n", h->n_kv_heads);
    printf("  head_dim         %u\n", h->head_dim);
    printf("  max_seq_len      %u\n", h->max_seq_len);
    printf("  norm_eps         %g\n", (double)h->norm_eps);
    printf("  rope_theta       %g\n", (double)h->rope_theta);
    printf("  rope_layout      %s\n", lmm_rope_layout_name(h->rope_layout));
    printf("  rope_scaling     %s", scaling_name(h->rope_scaling));
    if (h->rope_scaling == LMM_ROPE_SCALING_LINEAR) printf(" (factor %g)", (double)h->rope_factor);
    if (h->rope_scaling == LMM_ROPE_SCALING_LLAMA3)
        printf(" (factor %g, low_freq_factor %g, high_freq_factor %g, original_max_position %u)",
               (double)h->rope_factor, (double)h->rope_low_freq_factor, (double)h->rope_high_freq_factor,
               h->rope_orig_max_pos);
    if (lmm_model_desc_find(d, "rope_freqs.weight")) printf(" + rope_freqs.weight frequency factors");
    printf("\n");
    printf("  tied_embeddings  %s\n", h->tied_embeddings ? "yes" : "no");
    printf("  qkv_bias         %s\n", h->qkv_bias ? "yes" : "no");
    printf("  bos_id, eos_id   %u, %u\n", d->bos_id, d->eos_id);
    printf("files (%u):\n", d->n_files);
    for (uint32_t i = 0; i < d->n_files; i++)
        printf("  [%u] %s (%" PRIu64 " bytes)\n", i, d->files[i], d->file_sizes[i]);
    if (d->tokenizer_path) printf("tokenizer:    %s\n", d->tokenizer_path);
    printf("tensors (%u):\n", d->n_tensors);
    printf("  %-36s %-5s %-22s %4s %14s %14s\n", "name", "dtype", "shape", "file", "offset", "bytes");
    for (uint32_t i = 0; i < d->n_tensors; i++) {
        const lmm_tensor_desc *t = &d->tensors[i];
        printf("  %-36s %-5s %-22s %4u %14" PRIu64 " %14" PRIu64 "\n", t->name, lmm_dtype_name(t->dtype),
               shape_text(t->shape, t->n_dims, shape, sizeof shape), t->file, t->offset, t->nbytes);
    }
    uint64_t w = lmm_model_desc_weight_bytes(d), kv = lmm_model_desc_kv_bytes(d, n_ctx);
    printf("weights:      %" PRIu64 " bytes (%s)\n", w, human_bytes(w, b1, sizeof b1));
    printf("memory for a context of %u tokens: weights %s + FP32 KV cache %s = %s (%" PRIu64 " bytes)\n", n_ctx,
           human_bytes(w, b1, sizeof b1), human_bytes(kv, b2, sizeof b2), human_bytes(w + kv, b3, sizeof b3), w + kv);
    if (d->gguf) gguf_print_metadata(d->gguf);
}

static json_object *desc_json(const lmm_model_desc *d, const char *path, uint32_t n_ctx) {
    const lmm_hparams *h = &d->hp;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "path", json_object_new_string(path));
    json_object_object_add(o, "format", json_object_new_string(lmm_format_name(d->format)));
    json_object_object_add(o, "arch", json_object_new_string(d->arch == LMM_ARCH_QWEN2 ? "qwen2" : "llama"));
    json_object_object_add(o, "arch_name", json_object_new_string(d->arch_name));
    json_object *hp = json_object_new_object();
    json_object_object_add(hp, "n_vocab", json_object_new_int64(h->n_vocab));
    json_object_object_add(hp, "dim", json_object_new_int64(h->dim));
    json_object_object_add(hp, "hidden_dim", json_object_new_int64(h->hidden_dim));
    json_object_object_add(hp, "n_layers", json_object_new_int64(h->n_layers));
    json_object_object_add(hp, "n_heads", json_object_new_int64(h->n_heads));
    json_object_object_add(hp, "n_kv_heads", json_object_new_int64(h->n_kv_heads));
    json_object_object_add(hp, "head_dim", json_object_new_int64(h->head_dim));
    json_object_object_add(hp, "max_seq_len", json_object_new_int64(h->max_seq_len));
    json_object_object_add(hp, "norm_eps", json_object_new_double(h->norm_eps));
    json_object_object_add(hp, "rope_theta", json_object_new_double(h->rope_theta));
    json_object_object_add(hp, "rope_layout", json_object_new_string(lmm_rope_layout_name(h->rope_layout)));
    json_object_object_add(hp, "rope_scaling", json_object_new_string(scaling_name(h->rope_scaling)));
    json_object_object_add(hp, "rope_factor", json_object_new_double(h->rope_factor));
    json_object_object_add(hp, "rope_low_freq_factor", json_object_new_double(h->rope_low_freq_factor));
    json_object_object_add(hp, "rope_high_freq_factor", json_object_new_double(h->rope_high_freq_factor));
    json_object_object_add(hp, "rope_orig_max_pos", json_object_new_int64(h->rope_orig_max_pos));
    json_object_object_add(hp, "tied_embeddings", json_object_new_boolean(h->tied_embeddings));
    json_object_object_add(hp, "qkv_bias", json_object_new_boolean(h->qkv_bias));
    json_object_object_add(hp, "bos_id", json_object_new_int64(d->bos_id));
    json_object_object_add(hp, "eos_id", json_object_new_int64(d->eos_id));
    json_object_object_add(o, "hparams", hp);
    json_object *files = json_object_new_array();
    for (uint32_t i = 0; i < d->n_files; i++) {
        json_object *f = json_object_new_object();
        json_object_object_add(f, "path", json_object_new_string(d->files[i]));
        json_object_object_add(f, "bytes", json_object_new_uint64(d->file_sizes[i]));
        json_object_array_add(files, f);
    }
    json_object_object_add(o, "files", files);
    if (d->tokenizer_path) json_object_object_add(o, "tokenizer", json_object_new_string(d->tokenizer_path));
    json_object *tensors = json_object_new_array();
    for (uint32_t i = 0; i < d->n_tensors; i++) {
        const lmm_tensor_desc *t = &d->tensors[i];
        json_object *e = json_object_new_object();
        json_object_object_add(e, "name", json_object_new_string(t->name));
        json_object_object_add(e, "dtype", json_object_new_string(lmm_dtype_name(t->dtype)));
        json_object *sh = json_object_new_array();
        for (uint32_t k = 0; k < t->n_dims; k++) json_object_array_add(sh, json_object_new_uint64(t->shape[k]));
        json_object_object_add(e, "shape", sh);
        json_object_object_add(e, "file", json_object_new_int64(t->file));
        json_object_object_add(e, "offset", json_object_new_uint64(t->offset));
        json_object_object_add(e, "bytes", json_object_new_uint64(t->nbytes));
        json_object_array_add(tensors, e);
    }
    json_object_object_add(o, "tensors", tensors);
    uint64_t w = lmm_model_desc_weight_bytes(d), kv = lmm_model_desc_kv_bytes(d, n_ctx);
    json_object_object_add(o, "weight_bytes", json_object_new_uint64(w));
    json_object_object_add(o, "n_ctx", json_object_new_int64(n_ctx));
    json_object_object_add(o, "kv_bytes", json_object_new_uint64(kv));
    json_object_object_add(o, "total_bytes", json_object_new_uint64(w + kv));
    if (d->gguf) json_object_object_add(o, "gguf", gguf_json(d->gguf, false));
    return o;
}

static void print_json(json_object *o) {
    printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
}

static bool is_gguf_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    char m[4];
    bool yes = fread(m, 1, 4, f) == 4 && memcmp(m, "GGUF", 4) == 0;
    fclose(f);
    return yes;
}

/* A GGUF that parses but does not describe a runnable model: show what it holds.
 * Returns the exit status. */
static int show_gguf_only(const options *o, const char *desc_error) {
    lmm_gguf *g;
    if (lmm_gguf_open(&g, o->path)) return die(desc_error);
    bool vocab_only = lmm_gguf_n_tensors(g) == 0;
    if (o->json) {
        json_object *j = json_object_new_object();
        json_object_object_add(j, "path", json_object_new_string(o->path));
        json_object_object_add(j, "format", json_object_new_string("gguf"));
        json_object_object_add(j, "runnable", json_object_new_boolean(false));
        json_object_object_add(j, "reason", json_object_new_string(desc_error));
        json_object_object_add(j, "gguf", gguf_json(g, true));
        print_json(j);
    } else {
        printf("model:        %s\n", o->path);
        gguf_print_header(g);
        const char *arch;
        if (lmm_gguf_get_str_opt(g, "general.architecture", &arch, NULL) == 0) printf("architecture: %s\n", arch);
        if (vocab_only) printf("tensors:      none (vocabulary-only GGUF: a tokenizer, not a model)\n");
        else gguf_print_tensors(g);
        gguf_print_metadata(g);
    }
    lmm_gguf_free(g);
    if (vocab_only) return 0;
    return die(desc_error);
}

int main(int argc, char **argv) {
    options o;
    if (parse_args(argc, argv, &o)) return die(lmm_error_get());
    lmm_model_desc d;
    if (lmm_model_desc_open(&d, o.path)) {
        char err[LMM_ERROR_MAX];
        snprintf(err, sizeof err, "%s", lmm_error_get());
        if (is_gguf_file(o.path)) return show_gguf_only(&o, err);
        return die(err);
    }
    uint32_t n_ctx = o.n_ctx ? o.n_ctx : d.hp.max_seq_len;
    if (o.json) {
        print_json(desc_json(&d, o.path, n_ctx));
    } else {
        printf("model:        %s\n", o.path);
        print_desc(&d, n_ctx);
    }
    lmm_model_desc_free(&d);
    if (fflush(stdout) != 0) return die("error writing to standard output");
    return 0;
}
