/* tools/lmsynth/write_gguf.c — writes a synthetic model as GGUF v3 (layout in lmm/gguf.h).
 *
 * Metadata as llama.cpp's converter writes it for arch "llama" (or "qwen2" with q/k/v
 * bias): general.*, {arch}.* hyper-parameters, the tokenizer (tokenizer.ggml.*, model
 * "llama": tokens, scores, token types, bos 1, eos 2, unk 0). Tensors have the canonical
 * names; ne[] is the row-major shape reversed; matrices are in the chosen dtype, 1-D
 * tensors (norms, biases) stay F32 as llama.cpp keeps them; every tensor's offset is
 * a multiple of general.alignment = 32. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lmm/error.h"
#include "synth.h"

#define GGUF_ALIGN 32u

enum { T_U32 = 4, T_I32 = 5, T_F32 = 6, T_BOOL = 7, T_STRING = 8, T_ARRAY = 9 };

/* The header is built in memory (the tokenizer makes it ~0.5 MB for 32000 tokens). */
typedef struct {
    unsigned char *p;
    size_t len, cap;
    int failed;
    uint64_t n_kv;      /* key-value pairs written (kv_* count them) */
} buf;

static void put(buf *b, const void *src, size_t n) {
    if (b->failed) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}
/* GGUF is little-endian; so is every machine this project builds for (x86-64, aarch64). */
static void put_u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(buf *b, const char *s) {
    size_t n = strlen(s);
    put_u64(b, n);
    put(b, s, n);
}
static void kv_key(buf *b, const char *k, uint32_t type) {
    put_str(b, k);
    put_u32(b, type);
    b->n_kv++;
}
static void kv_str(buf *b, const char *k, const char *v) { kv_key(b, k, T_STRING); put_str(b, v); }
static void kv_u32(buf *b, const char *k, uint32_t v) { kv_key(b, k, T_U32); put_u32(b, v); }
static void kv_f32(buf *b, const char *k, float v) { kv_key(b, k, T_F32); put(b, &v, 4); }
static void kv_bool(buf *b, const char *k, int v) {
    unsigned char c = v ? 1 : 0;
    kv_key(b, k, T_BOOL);
    put(b, &c, 1);
}
/* The caller appends the n elements. */
static void kv_arr(buf *b, const char *k, uint32_t elem_type, uint64_t n) {
    kv_key(b, k, T_ARRAY);
    put_u32(b, elem_type);
    put_u64(b, n);
}

static uint32_t ggml_type(lmm_dtype t) { return t == LMM_DTYPE_F16 ? 1 : t == LMM_DTYPE_BF16 ? 30 : 0; }
static uint32_t file_type(lmm_dtype t) { return t == LMM_DTYPE_F16 ? 1 : t == LMM_DTYPE_BF16 ? 32 : 0; }
static uint64_t align_up(uint64_t x) { return (x + GGUF_ALIGN - 1) / GGUF_ALIGN * GGUF_ALIGN; }

int synth_write_gguf(const synth_config *c) {
    const char *arch = c->qkv_bias ? "qwen2" : "llama";
    synth_tensor *ts = NULL;
    size_t nt = 0;
    synth_vocab v;
    if (synth_tensors(c, &ts, &nt)) return -1;
    if (synth_vocab_build(&v, c->n_vocab)) {
        free(ts);
        return -1;
    }

    /* h: fixed header, then metadata (n_kv patched in once counted), then the tensor table */
    buf h = {0};
    char key[96];
    put(&h, "GGUF", 4);
    put_u32(&h, 3);
    put_u64(&h, nt);
    put_u64(&h, 0); /* n_kv, at byte 16 */
    kv_str(&h, "general.architecture", arch);
    kv_str(&h, "general.name", "lmsynth");
    kv_u32(&h, "general.alignment", GGUF_ALIGN);
    kv_u32(&h, "general.file_type", file_type(c->dtype));
#define KEY(suffix) (snprintf(key, sizeof key, "%s." suffix, arch), key)
    kv_u32(&h, KEY("context_length"), c->max_seq_len);
    kv_u32(&h, KEY("embedding_length"), c->dim);
    kv_u32(&h, KEY("block_count"), c->n_layers);
    kv_u32(&h, KEY("feed_forward_length"), c->hidden_dim);
    kv_u32(&h, KEY("attention.head_count"), c->n_heads);
    kv_u32(&h, KEY("attention.head_count_kv"), c->n_kv_heads);
    kv_f32(&h, KEY("attention.layer_norm_rms_epsilon"), c->norm_eps);
    kv_f32(&h, KEY("rope.freq_base"), c->rope_theta);
    kv_u32(&h, KEY("rope.dimension_count"), c->head_dim);
    kv_u32(&h, KEY("vocab_size"), c->n_vocab);
#undef KEY
    kv_str(&h, "tokenizer.ggml.model", "llama");
    kv_arr(&h, "tokenizer.ggml.tokens", T_STRING, v.n);
    for (uint32_t i = 0; i < v.n; i++) put_str(&h, v.pieces[i]);
    kv_arr(&h, "tokenizer.ggml.scores", T_F32, v.n);
    put(&h, v.scores, (size_t)v.n * 4);
    kv_arr(&h, "tokenizer.ggml.token_type", T_I32, v.n);
    put(&h, v.types, (size_t)v.n * 4);
    kv_u32(&h, "tokenizer.ggml.bos_token_id", 1);
    kv_u32(&h, "tokenizer.ggml.eos_token_id", 2);
    kv_u32(&h, "tokenizer.ggml.unknown_token_id", 0);
    kv_bool(&h, "tokenizer.ggml.add_bos_token", 1);
    kv_bool(&h, "tokenizer.ggml.add_eos_token", 0);
    synth_vocab_free(&v);

    if (!h.failed) memcpy(h.p + 16, &h.n_kv, 8);

    uint64_t offset = 0; /* relative to the data section */
    for (size_t i = 0; i < nt; i++) {
        const synth_tensor *t = &ts[i];
        lmm_dtype dt = t->n_dims == 1 ? LMM_DTYPE_F32 : c->dtype;
        put_str(&h, t->name);
        put_u32(&h, t->n_dims);
        if (t->n_dims == 1) {
            put_u64(&h, t->shape[0]);
        } else {
            put_u64(&h, t->shape[1]);
            put_u64(&h, t->shape[0]);
        }
        put_u32(&h, ggml_type(dt));
        put_u64(&h, offset);
        offset = align_up(offset + synth_tensor_elems(t) * lmm_dtype_size(dt));
    }
    int rc = -1;
    FILE *f = NULL;
    if (h.failed) {
        lmm_error_set("out of memory");
        goto done;
    }
    f = fopen(c->out, "wb");
    if (!f) {
        lmm_error_set("%s: cannot create: %s", c->out, strerror(errno));
        goto done;
    }
    synth_progress_begin(c, align_up(h.len) + offset);
    if (synth_write(f, c->out, h.p, h.len) || synth_write_zeros(f, c->out, align_up(h.len) - h.len)) goto done;
    for (size_t i = 0; i < nt; i++) {
        const synth_tensor *t = &ts[i];
        lmm_dtype dt = t->n_dims == 1 ? LMM_DTYPE_F32 : c->dtype;
        uint64_t nbytes = synth_tensor_elems(t) * lmm_dtype_size(dt);
        if (synth_write_tensor(f, c->out, c, t, dt, false)) goto done;
        /* pad every tensor, the last one too, so the file size is aligned as llama.cpp writes it */
        if (synth_write_zeros(f, c->out, align_up(nbytes) - nbytes)) goto done;
    }
    rc = 0;
done:
    synth_progress_end();
    if (f && fclose(f) != 0 && rc == 0) rc = lmm_error_set("%s: write failed: %s", c->out, strerror(errno));
    if (rc && f) unlink(c->out);
    free(h.p);
    free(ts);
    return rc;
}
