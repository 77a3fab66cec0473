/* tools/lmsynth/synth_weights.c — the tensor list of a synthetic model and the
 * deterministic generator that streams its values to a file in large chunks. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lmm/error.h"
#include "lmm/progress.h"
#include "synth.h"

/* ---- tensor list ------------------------------------------------------------ */

static void tensor_set(synth_tensor *t, const char *name, uint32_t n_dims, uint64_t d0, uint64_t d1,
                       synth_init init, uint32_t rope_heads) {
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = n_dims;
    t->shape[0] = d0;
    t->shape[1] = n_dims == 2 ? d1 : 0;
    t->init = init;
    t->rope_heads = rope_heads;
}

int synth_tensors(const synth_config *c, synth_tensor **out, size_t *n_out) {
    size_t per_layer = c->qkv_bias ? 12 : 9;
    size_t cap = 3 + (size_t)c->n_layers * per_layer;
    synth_tensor *ts = calloc(cap, sizeof *ts);
    if (!ts) return lmm_error_set("out of memory");
    uint64_t q_rows = (uint64_t)c->n_heads * c->head_dim;
    uint64_t kv_rows = (uint64_t)c->n_kv_heads * c->head_dim;
    /* Arch llama keeps the interleaved row order as the logical one; qwen2 is NeoX everywhere. */
    uint32_t q_rope = c->qkv_bias ? 0 : c->n_heads;
    uint32_t k_rope = c->qkv_bias ? 0 : c->n_kv_heads;
    size_t n = 0;
    char name[64];
    tensor_set(&ts[n++], "token_embd.weight", 2, c->n_vocab, c->dim, SYNTH_INIT_EMBED, 0);
    for (uint32_t l = 0; l < c->n_layers; l++) {
#define ADD(suffix, nd, a, b, init, rope)                          \
    do {                                                           \
        snprintf(name, sizeof name, "blk.%u." suffix, l);          \
        tensor_set(&ts[n++], name, nd, a, b, init, rope);          \
    } while (0)
        ADD("attn_norm.weight", 1, c->dim, 0, SYNTH_INIT_NORM, 0);
        ADD("attn_q.weight", 2, q_rows, c->dim, SYNTH_INIT_MATRIX, q_rope);
        ADD("attn_k.weight", 2, kv_rows, c->dim, SYNTH_INIT_MATRIX, k_rope);
        ADD("attn_v.weight", 2, kv_rows, c->dim, SYNTH_INIT_MATRIX, 0);
        if (c->qkv_bias) {
            ADD("attn_q.bias", 1, q_rows, 0, SYNTH_INIT_BIAS, 0);
            ADD("attn_k.bias", 1, kv_rows, 0, SYNTH_INIT_BIAS, 0);
            ADD("attn_v.bias", 1, kv_rows, 0, SYNTH_INIT_BIAS, 0);
        }
        ADD("attn_output.weight", 2, c->dim, q_rows, SYNTH_INIT_MATRIX, 0);
        ADD("ffn_norm.weight", 1, c->dim, 0, SYNTH_INIT_NORM, 0);
        ADD("ffn_gate.weight", 2, c->hidden_dim, c->dim, SYNTH_INIT_MATRIX, 0);
        ADD("ffn_up.weight", 2, c->hidden_dim, c->dim, SYNTH_INIT_MATRIX, 0);
        ADD("ffn_down.weight", 2, c->dim, c->hidden_dim, SYNTH_INIT_MATRIX, 0);
#undef ADD
    }
    tensor_set(&ts[n++], "output_norm.weight", 1, c->dim, 0, SYNTH_INIT_NORM, 0);
    if (!c->tied) tensor_set(&ts[n++], "output.weight", 2, c->n_vocab, c->dim, SYNTH_INIT_MATRIX, 0);
    *out = ts;
    *n_out = n;
    return 0;
}

/* ---- generator ---------------------------------------------------------------- */

/* splitmix64 (Steele, Lea, Flood 2014): a 64-bit counter through a bijective mixer. */
static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static inline uint64_t splitmix64_next(uint64_t *s) {
    *s += 0x9e3779b97f4a7c15ull;
    return mix64(*s);
}

static uint64_t fnv1a64(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

/* Each row has its own generator, so any row can be produced without the ones before it
 * (that is what lets the HF writer store q/k rows in another order). */
static void stream_start_row(synth_stream *s) {
    uint64_t logical = s->row;
    uint32_t heads = s->t->rope_heads;
    if (s->neox_rows && heads) {
        /* File row h*hd + j*hd/2 + i (NeoX) holds logical row h*hd + 2i + j (interleaved). */
        uint64_t hd = s->rows / heads, h = s->row / hd, r = s->row % hd;
        uint64_t j = r / (hd / 2), i = r % (hd / 2);
        logical = h * hd + 2 * i + j;
    }
    s->state = mix64(mix64(s->seed ^ fnv1a64(s->t->name)) ^ (logical + 1));
    s->col = 0;
}

void synth_stream_init(synth_stream *s, const synth_tensor *t, uint64_t seed, bool neox_rows) {
    memset(s, 0, sizeof *s);
    s->t = t;
    s->seed = seed;
    s->neox_rows = neox_rows;
    s->rows = t->n_dims == 1 ? 1 : t->shape[0];
    s->cols = t->n_dims == 1 ? t->shape[0] : t->shape[1];
    switch (t->init) {
    case SYNTH_INIT_MATRIX: s->scale = 1.0f / sqrtf((float)s->cols); break;
    case SYNTH_INIT_EMBED: s->scale = 0.5f; break;
    case SYNTH_INIT_BIAS: s->scale = 0.1f; break;
    case SYNTH_INIT_NORM: s->scale = 0.0f; break;
    }
    stream_start_row(s);
}

static inline float draw(synth_stream *s) {
    uint64_t z = splitmix64_next(&s->state);
    if (s->t->init == SYNTH_INIT_NORM) {
        int k = (int)((z >> 32) % 17u) - 8;
        return 1.0f + (float)k / 128.0f;
    }
    float u = (float)(z >> 40) * 0x1p-24f;  /* [0, 1), 24 bits: exact */
    return (2.0f * u - 1.0f) * s->scale;    /* 2u - 1 is exact; one rounding */
}

void synth_stream_fill(synth_stream *s, void *dst, lmm_dtype dtype, size_t n) {
    float *f32 = dst;
    uint16_t *u16 = dst;
    for (size_t i = 0; i < n; i++) {
        if (s->col == s->cols) {
            s->row++;
            stream_start_row(s);
        }
        float v = draw(s);
        s->col++;
        switch (dtype) {
        case LMM_DTYPE_F16: u16[i] = lmm_f32_to_f16(v); break;
        case LMM_DTYPE_BF16: u16[i] = lmm_f32_to_bf16(v); break;
        default: f32[i] = v; break;
        }
    }
}

/* ---- output -------------------------------------------------------------------- */

#define WRITE_BUF_BYTES (8u << 20)

static lmm_progress g_progress; /* lmm/progress.h: drawn only when stderr is a terminal */

void synth_progress_begin(const synth_config *c, uint64_t total) {
    (void)c;
    lmm_progress_init(&g_progress, "lmsynth: writing", total);
}

void synth_progress_end(void) { lmm_progress_done(&g_progress); }

int synth_write(FILE *f, const char *path, const void *p, size_t n) {
    if (n && fwrite(p, 1, n, f) != n) {
        lmm_progress_clear(&g_progress);
        return lmm_error_set("%s: write failed: %s", path, strerror(errno));
    }
    lmm_progress_add(&g_progress, n);
    return 0;
}

int synth_write_zeros(FILE *f, const char *path, size_t n) {
    static const unsigned char zeros[64];
    while (n) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        if (synth_write(f, path, zeros, k)) return -1;
        n -= k;
    }
    return 0;
}

int synth_write_tensor(FILE *f, const char *path, const synth_config *c, const synth_tensor *t, lmm_dtype dtype,
                       bool neox_rows) {
    static float buf[WRITE_BUF_BYTES / sizeof(float)]; /* [chunk] values of any dtype */
    size_t esize = lmm_dtype_size(dtype);
    size_t chunk = sizeof buf / esize;
    synth_stream s;
    synth_stream_init(&s, t, c->seed, neox_rows);
    for (uint64_t left = synth_tensor_elems(t); left;) {
        size_t n = left < chunk ? (size_t)left : chunk;
        synth_stream_fill(&s, buf, dtype, n);
        if (synth_write(f, path, buf, n * esize)) return -1;
        left -= n;
    }
    return 0;
}
