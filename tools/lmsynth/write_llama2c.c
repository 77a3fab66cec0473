/* tools/lmsynth/write_llama2c.c — writes a synthetic model as a legacy (version 0)
 * llama2.c checkpoint, and tokenizer.bin beside it.
 *
 * Checkpoint (little-endian), as run.c's memory_map_weights reads it:
 *   int32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
 *     (vocab_size < 0: the classifier is not shared with the embedding)
 *   float token_embedding[vocab][dim]
 *   rms_att[layers][dim]  wq[layers][heads*hd][dim]  wk[layers][kv*hd][dim]
 *   wv[layers][kv*hd][dim]  wo[layers][dim][heads*hd]  rms_ffn[layers][dim]
 *   w1[layers][hidden][dim]  w2[layers][dim][hidden]  w3[layers][hidden][dim]
 *   rms_final[dim]  freq_cis_real[seq][hd/2]  freq_cis_imag[seq][hd/2]
 *   wcls[vocab][dim]  (only when vocab_size < 0)
 * w1 = ffn_gate, w2 = ffn_down, w3 = ffn_up; q/k rows in the interleaved-RoPE order.
 *
 * tokenizer.bin: int32 max_token_length, then per token {float score, int32 len, bytes}.
 * As llama2.c's exporter writes it: "▁" becomes " ", BOS/EOS are "\n<s>\n"/"\n</s>\n",
 * byte tokens stay "<0xXX>" (run.c's decode parses that form). */
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lmm/error.h"
#include "synth.h"

static const synth_tensor *find(const synth_tensor *ts, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(ts[i].name, name) == 0) return &ts[i];
    return NULL;
}

/* Writes blk.L.<suffix> of every layer L, one after the other. */
static int write_stack(FILE *f, const synth_config *c, const synth_tensor *ts, size_t nt, const char *suffix) {
    char name[64];
    for (uint32_t l = 0; l < c->n_layers; l++) {
        snprintf(name, sizeof name, "blk.%u.%s", l, suffix);
        const synth_tensor *t = find(ts, nt, name);
        if (!t) return lmm_error_set("internal: tensor '%s' missing", name);
        if (synth_write_tensor(f, c->out, c, t, LMM_DTYPE_F32, false)) return -1;
    }
    return 0;
}

/* The RoPE tables the legacy format still carries (run.c skips them). */
static int write_freq_cis(FILE *f, const synth_config *c, int imag) {
    uint32_t half = c->head_dim / 2;
    float *row = malloc((size_t)half * sizeof *row); /* [head_dim/2] */
    if (!row) return lmm_error_set("out of memory");
    int rc = 0;
    for (uint32_t pos = 0; pos < c->max_seq_len && rc == 0; pos++) {
        for (uint32_t i = 0; i < half; i++) {
            double freq = 1.0 / pow((double)c->rope_theta, (double)(2 * i) / (double)c->head_dim);
            double a = (double)pos * freq;
            row[i] = (float)(imag ? sin(a) : cos(a));
        }
        rc = synth_write(f, c->out, row, (size_t)half * sizeof *row);
    }
    free(row);
    return rc;
}

static int write_tokenizer(const synth_config *c) {
    char *copy = strdup(c->out);
    if (!copy) return lmm_error_set("out of memory");
    const char *dir = dirname(copy);
    size_t plen = strlen(dir) + 32;
    char *path = malloc(plen);
    synth_vocab v;
    char **text = NULL;
    FILE *f = NULL;
    int rc = -1;
    if (!path) {
        lmm_error_set("out of memory");
        goto done;
    }
    snprintf(path, plen, "%s/tokenizer.bin", dir);
    if (synth_vocab_build(&v, c->n_vocab)) goto done;
    text = calloc(v.n, sizeof *text);
    if (!text) {
        lmm_error_set("out of memory");
        goto vocab_done;
    }
    int32_t max_len = 0;
    for (uint32_t i = 0; i < v.n; i++) {
        const char *p = v.pieces[i];
        if (i == 1 || i == 2) {
            text[i] = strdup(i == 1 ? "\n<s>\n" : "\n</s>\n");
        } else {
            text[i] = malloc(strlen(p) + 1);
            if (text[i]) { /* "▁" (3 bytes) -> " " */
                char *o = text[i];
                while (*p) {
                    if (strncmp(p, "\xe2\x96\x81", 3) == 0) {
                        *o++ = ' ';
                        p += 3;
                    } else {
                        *o++ = *p++;
                    }
                }
                *o = 0;
            }
        }
        if (!text[i]) {
            lmm_error_set("out of memory");
            goto vocab_done;
        }
        if ((int32_t)strlen(text[i]) > max_len) max_len = (int32_t)strlen(text[i]);
    }
    f = fopen(path, "wb");
    if (!f) {
        lmm_error_set("%s: cannot create: %s", path, strerror(errno));
        goto vocab_done;
    }
    if (synth_write(f, path, &max_len, 4)) goto vocab_done;
    for (uint32_t i = 0; i < v.n; i++) {
        int32_t len = (int32_t)strlen(text[i]);
        if (synth_write(f, path, &v.scores[i], 4) || synth_write(f, path, &len, 4) ||
            synth_write(f, path, text[i], (size_t)len))
            goto vocab_done;
    }
    rc = 0;
vocab_done:
    if (f && fclose(f) != 0 && rc == 0) rc = lmm_error_set("%s: write failed: %s", path, strerror(errno));
    if (rc && f) unlink(path);
    if (text)
        for (uint32_t i = 0; i < v.n; i++) free(text[i]);
    free(text);
    synth_vocab_free(&v);
done:
    free(path);
    free(copy);
    return rc;
}

int synth_write_llama2c(const synth_config *c) {
    synth_tensor *ts = NULL;
    size_t nt = 0;
    if (synth_tensors(c, &ts, &nt)) return -1;
    uint64_t total = 28 + (uint64_t)c->max_seq_len * c->head_dim * 4; /* header + freq_cis */
    for (size_t i = 0; i < nt; i++) total += synth_tensor_elems(&ts[i]) * 4;
    int rc = -1;
    FILE *f = fopen(c->out, "wb");
    if (!f) {
        lmm_error_set("%s: cannot create: %s", c->out, strerror(errno));
        goto done;
    }
    synth_progress_begin(c, total);
    int32_t hdr[7] = {(int32_t)c->dim,     (int32_t)c->hidden_dim, (int32_t)c->n_layers,
                      (int32_t)c->n_heads, (int32_t)c->n_kv_heads, (int32_t)c->n_vocab,
                      (int32_t)c->max_seq_len};
    if (!c->tied) hdr[5] = -hdr[5];
    if (synth_write(f, c->out, hdr, sizeof hdr)) goto done;
    if (synth_write_tensor(f, c->out, c, find(ts, nt, "token_embd.weight"), LMM_DTYPE_F32, false)) goto done;
    static const char *const k_order[] = {"attn_norm.weight", "attn_q.weight",   "attn_k.weight",
                                          "attn_v.weight",    "attn_output.weight", "ffn_norm.weight",
                                          "ffn_gate.weight",  "ffn_down.weight", "ffn_up.weight"};
    for (size_t k = 0; k < sizeof k_order / sizeof k_order[0]; k++)
        if (write_stack(f, c, ts, nt, k_order[k])) goto done;
    if (synth_write_tensor(f, c->out, c, find(ts, nt, "output_norm.weight"), LMM_DTYPE_F32, false)) goto done;
    if (write_freq_cis(f, c, 0) || write_freq_cis(f, c, 1)) goto done;
    if (!c->tied && synth_write_tensor(f, c->out, c, find(ts, nt, "output.weight"), LMM_DTYPE_F32, false)) goto done;
    rc = 0;
done:
    synth_progress_end();
    if (f && fclose(f) != 0 && rc == 0) rc = lmm_error_set("%s: write failed: %s", c->out, strerror(errno));
    if (rc && f) unlink(c->out);
    free(ts);
    if (rc == 0) rc = write_tokenizer(c);
    return rc;
}
