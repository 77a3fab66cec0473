/* model/format/llama2c.c — reads a llama2.c checkpoint (.bin) into an lmm_model_desc.
 *
 * Version 0 (legacy, read by llama2.c's run.c): 7 x int32 header, then FP32 arrays,
 * each stacked over layers: token_embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2,
 * w3, rms_final, freq_cis_real and freq_cis_imag ([seq_len][head_size/2] each,
 * skipped), then wcls when vocab_size < 0 (unshared classifier).
 * Version 1 (export.py version1_export): 256-byte header (magic "ak42", version, the
 * 7 ints, u8 shared_classifier), then rms_att, rms_ffn, rms_final, token_embedding,
 * wq, wk, wv, wo, w1, w2, w3, and wcls when not shared. No frequency tables.
 * Stacked arrays become per-layer canonical tensors (w1 = ffn_gate, w2 = ffn_down,
 * w3 = ffn_up). Every size is computed in uint64_t with overflow checks. */
#include "model/format/llama2c.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lmm/error.h"

/* ---- header --------------------------------------------------------------- */

/* Upper bounds checked on the header, before the tensor table is built (building it
 * costs time that grows faster than n_layers): the limits of
 * lmm_model_desc_validate, which runs afterwards and stays the authority. */
#define L2C_MAX_DIM (1 << 20)
#define L2C_MAX_VOCAB (1 << 24)
#define L2C_MAX_LAYERS 4096
#define L2C_MAX_HEADS 4096
#define L2C_MAX_SEQ (1 << 24)

static int32_t le32(const unsigned char *p) {
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    int32_t v;
    memcpy(&v, &u, sizeof v);
    return v;
}

static int positive(const char *name, const char *field, int32_t v) {
    if (v <= 0) return lmm_error_set("%s: llama2.c header: %s = %" PRId32 " must be positive", name, field, v);
    return 0;
}

static int at_most(const char *name, const char *field, int32_t v, int32_t max) {
    if (v > max)
        return lmm_error_set("%s: llama2.c header: %s = %" PRId32 " is out of range [1, %" PRId32 "]", name, field, v,
                             max);
    return 0;
}

int lmm_llama2c_parse_header(lmm_llama2c_header *h, const void *data, size_t len, uint64_t file_size,
                             const char *name) {
    const unsigned char *p = data;
    memset(h, 0, sizeof *h);
    if (len > file_size) len = (size_t)file_size;
    int versioned = len >= 4 && (uint32_t)le32(p) == LMM_LLAMA2C_MAGIC;
    uint32_t need = versioned ? LMM_LLAMA2C_V1_HEADER : LMM_LLAMA2C_V0_HEADER;
    if (versioned && len >= 8) {
        int32_t version = le32(p + 4);
        if (version == 2)
            return lmm_error_set("%s: quantized llama2.c checkpoints (version 2) are not supported yet", name);
        if (version != 1) return lmm_error_set("%s: unknown llama2.c checkpoint version %" PRId32, name, version);
    }
    if (len < need)
        return lmm_error_set("%s: truncated: header implies %u bytes, file has %" PRIu64, name, need, file_size);

    const unsigned char *q = versioned ? p + 8 : p;
    h->version = versioned ? 1 : 0;
    h->header_bytes = need;
    h->dim = le32(q);
    h->hidden_dim = le32(q + 4);
    h->n_layers = le32(q + 8);
    h->n_heads = le32(q + 12);
    h->n_kv_heads = le32(q + 16);
    h->vocab_size = le32(q + 20);
    h->seq_len = le32(q + 24);

    if (positive(name, "dim", h->dim) || positive(name, "hidden_dim", h->hidden_dim) ||
        positive(name, "n_layers", h->n_layers) || positive(name, "n_heads", h->n_heads) ||
        positive(name, "n_kv_heads", h->n_kv_heads) || positive(name, "seq_len", h->seq_len))
        return -1;
    if (versioned) {
        if (positive(name, "vocab_size", h->vocab_size)) return -1;
        unsigned char flag = p[36];
        if (flag > 1)
            return lmm_error_set("%s: llama2.c header: shared_classifier = %u must be 0 or 1", name, flag);
        h->shared_classifier = flag == 1;
    } else {
        /* The sign is the flag; INT32_MIN has no positive counterpart. */
        if (h->vocab_size == 0 || h->vocab_size == INT32_MIN)
            return lmm_error_set("%s: llama2.c header: vocab_size = %" PRId32 " is invalid", name, h->vocab_size);
        h->shared_classifier = h->vocab_size > 0;
    }
    int32_t vocab = h->vocab_size < 0 ? -h->vocab_size : h->vocab_size;
    if (at_most(name, "dim", h->dim, L2C_MAX_DIM) || at_most(name, "hidden_dim", h->hidden_dim, L2C_MAX_DIM) ||
        at_most(name, "n_layers", h->n_layers, L2C_MAX_LAYERS) || at_most(name, "n_heads", h->n_heads, L2C_MAX_HEADS) ||
        at_most(name, "vocab_size", vocab, L2C_MAX_VOCAB) || at_most(name, "seq_len", h->seq_len, L2C_MAX_SEQ))
        return -1;
    if (h->dim % h->n_heads != 0)
        return lmm_error_set("%s: llama2.c header: dim (%" PRId32 ") is not a multiple of n_heads (%" PRId32 ")", name,
                             h->dim, h->n_heads);
    if (h->n_kv_heads > h->n_heads || h->n_heads % h->n_kv_heads != 0)
        return lmm_error_set("%s: llama2.c header: n_kv_heads (%" PRId32 ") must divide n_heads (%" PRId32 ")", name,
                             h->n_kv_heads, h->n_heads);
    if ((h->dim / h->n_heads) % 2 != 0)
        return lmm_error_set("%s: llama2.c header: head size %" PRId32 " must be even for RoPE", name,
                             h->dim / h->n_heads);
    return 0;
}

/* ---- layout --------------------------------------------------------------- */

typedef enum {
    SEC_TOK, SEC_ATTN_NORM, SEC_WQ, SEC_WK, SEC_WV, SEC_WO, SEC_FFN_NORM,
    SEC_W1, SEC_W2, SEC_W3, SEC_OUT_NORM, SEC_FREQ, SEC_WCLS, SEC_END
} section;

/* Order of the FP32 arrays in the file (SEC_WCLS only when not shared). */
static const section order_v0[] = {SEC_TOK, SEC_ATTN_NORM, SEC_WQ,       SEC_WK,   SEC_WV,   SEC_WO,   SEC_FFN_NORM,
                                   SEC_W1,  SEC_W2,        SEC_W3,       SEC_OUT_NORM, SEC_FREQ, SEC_WCLS, SEC_END};
static const section order_v1[] = {SEC_ATTN_NORM, SEC_FFN_NORM, SEC_OUT_NORM, SEC_TOK, SEC_WQ, SEC_WK, SEC_WV,
                                   SEC_WO,        SEC_W1,       SEC_W2,       SEC_W3,  SEC_WCLS, SEC_END};

typedef struct {
    const char *name;   /* canonical name; per-layer ones get "blk.L." in front; NULL: skipped */
    int per_layer;
    uint64_t rows, cols; /* cols == 0: a vector of `rows` */
} section_info;

static section_info section_get(section s, const lmm_llama2c_header *h) {
    uint64_t dim = (uint64_t)h->dim, hidden = (uint64_t)h->hidden_dim;
    uint64_t hs = dim / (uint64_t)h->n_heads, kv_dim = (uint64_t)h->n_kv_heads * hs;
    uint64_t vocab = h->vocab_size < 0 ? (uint64_t)(-(int64_t)h->vocab_size) : (uint64_t)h->vocab_size;
    switch (s) {
    case SEC_TOK: return (section_info){"token_embd.weight", 0, vocab, dim};
    case SEC_ATTN_NORM: return (section_info){"attn_norm.weight", 1, dim, 0};
    case SEC_WQ: return (section_info){"attn_q.weight", 1, dim, dim};
    case SEC_WK: return (section_info){"attn_k.weight", 1, kv_dim, dim};
    case SEC_WV: return (section_info){"attn_v.weight", 1, kv_dim, dim};
    case SEC_WO: return (section_info){"attn_output.weight", 1, dim, dim};
    case SEC_FFN_NORM: return (section_info){"ffn_norm.weight", 1, dim, 0};
    case SEC_W1: return (section_info){"ffn_gate.weight", 1, hidden, dim};
    case SEC_W2: return (section_info){"ffn_down.weight", 1, dim, hidden};
    case SEC_W3: return (section_info){"ffn_up.weight", 1, hidden, dim};
    case SEC_OUT_NORM: return (section_info){"output_norm.weight", 0, dim, 0};
    /* freq_cis_real + freq_cis_imag: 2 x [seq_len][hs/2] floats, unused (RoPE is recomputed). */
    case SEC_FREQ: return (section_info){NULL, 0, (uint64_t)h->seq_len, hs};
    case SEC_WCLS: return (section_info){"output.weight", 0, vocab, dim};
    case SEC_END: break;
    }
    return (section_info){NULL, 0, 0, 0};
}

/* Bytes of one tensor of a section (FP32), 0 with *overflow set when it overflows. */
static uint64_t section_tensor_bytes(const section_info *si, int *overflow) {
    uint64_t cols = si->cols ? si->cols : 1;
    if (si->rows > UINT64_MAX / cols || si->rows * cols > UINT64_MAX / sizeof(float)) {
        *overflow = 1;
        return 0;
    }
    return si->rows * cols * sizeof(float);
}

int lmm_llama2c_build(lmm_model_desc *d, const lmm_llama2c_header *h, const char *path, uint64_t file_size) {
    const section *order = h->version == 1 ? order_v1 : order_v0;
    uint64_t n_layers = (uint64_t)h->n_layers;

    /* Pass 1: the size the header implies, with every step checked. */
    uint64_t total = h->header_bytes;
    int overflow = 0;
    for (const section *s = order; *s != SEC_END && !overflow; s++) {
        if (*s == SEC_WCLS && h->shared_classifier) continue;
        section_info si = section_get(*s, h);
        uint64_t b = section_tensor_bytes(&si, &overflow);
        uint64_t count = si.per_layer ? n_layers : 1;
        if (overflow || b > UINT64_MAX / count || b * count > UINT64_MAX - total) overflow = 1;
        else total += b * count;
    }
    if (overflow) return lmm_error_set("%s: llama2.c header: the sizes it implies overflow 64 bits", path);
    if (file_size < total)
        return lmm_error_set("%s: truncated: header implies %" PRIu64 " bytes, file has %" PRIu64, path, total,
                             file_size);

    /* Hyper-parameters (those the file does not carry are llama2.c's fixed ones). */
    lmm_hparams *hp = &d->hp;
    section_info tok = section_get(SEC_TOK, h);
    d->format = LMM_FORMAT_LLAMA2C;
    d->arch = LMM_ARCH_LLAMA;
    snprintf(d->arch_name, sizeof d->arch_name, "llama");
    hp->n_vocab = (uint32_t)tok.rows;
    hp->dim = (uint32_t)h->dim;
    hp->hidden_dim = (uint32_t)h->hidden_dim;
    hp->n_layers = (uint32_t)h->n_layers;
    hp->n_heads = (uint32_t)h->n_heads;
    hp->n_kv_heads = (uint32_t)h->n_kv_heads;
    hp->head_dim = (uint32_t)(h->dim / h->n_heads);
    hp->max_seq_len = (uint32_t)h->seq_len;
    hp->norm_eps = 1e-5f;
    hp->rope_theta = 10000.0f;
    hp->rope_layout = LMM_ROPE_INTERLEAVED;
    hp->rope_scaling = LMM_ROPE_SCALING_NONE;
    hp->tied_embeddings = h->shared_classifier;
    hp->qkv_bias = false;
    d->bos_id = 1;
    d->eos_id = 2;
    /* Pass 1 proved that every offset below fits in 64 bits. */

    uint32_t fi;
    if (lmm_model_desc_add_file(d, path, file_size, &fi)) return -1;

    /* Pass 2: one canonical tensor per array (per layer for stacked arrays). */
    uint64_t off = h->header_bytes;
    for (const section *s = order; *s != SEC_END; s++) {
        if (*s == SEC_WCLS && h->shared_classifier) continue;
        section_info si = section_get(*s, h);
        uint64_t b = section_tensor_bytes(&si, &overflow);
        if (!si.name) {
            off += b;
            continue;
        }
        uint64_t shape[2] = {si.rows, si.cols};
        uint32_t nd = si.cols ? 2 : 1;
        uint64_t count = si.per_layer ? n_layers : 1;
        for (uint64_t l = 0; l < count; l++) {
            char name[LMM_TENSOR_NAME_MAX];
            if (si.per_layer) snprintf(name, sizeof name, "blk.%" PRIu64 ".%s", l, si.name);
            else snprintf(name, sizeof name, "%s", si.name);
            if (lmm_model_desc_add_tensor(d, name, LMM_DTYPE_F32, nd, shape, fi, off, b)) return -1;
            off += b;
        }
    }
    return lmm_model_desc_validate(d);
}

/* ---- the file ------------------------------------------------------------- */

/* First existing of DIR/tokenizer.bin and DIR/tok<vocab>.bin, or NULL. */
static int find_tokenizer(lmm_model_desc *d, const char *path) {
    const char *slash = strrchr(path, '/');
    int dlen = slash ? (int)(slash - path) : 1;
    const char *dir = slash ? path : ".";
    if (slash == path) dlen = 0; /* file in "/" */
    char cand[2][4096];
    snprintf(cand[0], sizeof cand[0], "%.*s/tokenizer.bin", dlen, dir);
    snprintf(cand[1], sizeof cand[1], "%.*s/tok%u.bin", dlen, dir, d->hp.n_vocab);
    for (int i = 0; i < 2; i++) {
        struct stat sb;
        if (stat(cand[i], &sb) == 0 && S_ISREG(sb.st_mode)) {
            d->tokenizer_path = strdup(cand[i]);
            if (!d->tokenizer_path) return lmm_error_set("out of memory");
            return 0;
        }
    }
    return 0;
}

int lmm_model_desc_open_llama2c(lmm_model_desc *d, const char *path) {
    lmm_model_desc_init(d);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lmm_error_set("%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return lmm_error_set("%s: not a regular file", path);
    }
    uint64_t fsize = (uint64_t)sb.st_size;
    unsigned char head[LMM_LLAMA2C_V1_HEADER];
    size_t want = fsize < sizeof head ? (size_t)fsize : sizeof head, got = 0;
    while (got < want) {
        ssize_t r = pread(fd, head + got, want - got, (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            close(fd);
            return lmm_error_set("%s: read error: %s", path, r < 0 ? strerror(errno) : "unexpected end of file");
        }
        got += (size_t)r;
    }
    close(fd);

    lmm_llama2c_header h;
    if (lmm_llama2c_parse_header(&h, head, got, fsize, path) || lmm_llama2c_build(d, &h, path, fsize) ||
        find_tokenizer(d, path)) {
        lmm_model_desc_free(d);
        return -1;
    }
    return 0;
}
