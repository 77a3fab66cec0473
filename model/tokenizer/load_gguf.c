/* model/tokenizer/load_gguf.c — the tokenizer a GGUF file carries in its metadata:
 *   tokenizer.ggml.model    "llama" (SentencePiece BPE), "gpt2" (byte-level BPE),
 *                           "bert" (WordPiece), "t5" (Unigram)
 *   tokenizer.ggml.tokens / scores / token_type / merges / pre
 *   tokenizer.ggml.{bos,eos,unknown,seperator,padding,cls,mask}_token_id
 *   tokenizer.ggml.add_bos_token / add_eos_token / add_space_prefix /
 *   remove_extra_whitespaces / precompiled_charsmap
 * Every id is checked against the vocabulary size. */
#include "tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmm/error.h"
#include "lmm/gguf.h"

static int get_id(const lmm_gguf *g, const char *key, uint32_t n, uint32_t *id, const char *file) {
    uint32_t v;
    int rc = lmm_gguf_get_u32_opt(g, key, &v);
    if (rc < 0) {
        /* some writers store -1 for "none" */
        double d;
        if (lmm_gguf_get_f64_opt(g, key, &d) == 0 && d < 0) return 0;
        return -1;
    }
    if (rc == 1) return 0;
    if (v >= n) return lmm_error_set("%s: %s = %u is outside the vocabulary (%u tokens)", file, key, v, n);
    *id = v;
    return 0;
}

static int get_flag(const lmm_gguf *g, const char *key, bool *flag) {
    bool b;
    int rc = lmm_gguf_get_bool_opt(g, key, &b);
    if (rc < 0) return -1;
    if (rc == 0) *flag = b;
    return 0;
}

static int load_merges(lmm_tokenizer *t, const lmm_gguf *g, const char *file) {
    lmm_gguf_type et;
    uint64_t n;
    if (lmm_gguf_find_key(g, "tokenizer.ggml.merges") < 0) {
        return lmm_error_set("%s: BPE tokenizer without tokenizer.ggml.merges", file);
    }
    if (lmm_gguf_get_arr(g, "tokenizer.ggml.merges", &et, &n)) return -1;
    if (et != LMM_GGUF_STRING) return lmm_error_set("%s: tokenizer.ggml.merges is not an array of strings", file);
    if (n >= UINT32_MAX) return lmm_error_set("%s: too many merges", file);
    if (tok_pairmap_init(&t->merges, n)) return -1;
    for (uint64_t i = 0; i < n; i++) {
        const char *s;
        uint64_t len;
        if (lmm_gguf_arr_str(g, "tokenizer.ggml.merges", i, &s, &len)) return -1;
        if (tok_add_merge(t, s, (size_t)len, (uint32_t)i)) return lmm_error_prefix("%s", file);
    }
    return 0;
}

int tok_load_gguf(lmm_tokenizer **out, const lmm_gguf *g, const char *file) {
    *out = NULL;
    const char *model;
    uint64_t mlen;
    if (lmm_gguf_find_key(g, "tokenizer.ggml.model") < 0) {
        return lmm_error_set("%s: no tokenizer in the metadata (tokenizer.ggml.model missing)", file);
    }
    if (lmm_gguf_get_str(g, "tokenizer.ggml.model", &model, &mlen)) return -1;
    tok_alg alg;
    if (!strcmp(model, "llama")) alg = TOK_ALG_SPM;
    else if (!strcmp(model, "gpt2")) alg = TOK_ALG_BPE;
    else if (!strcmp(model, "bert")) alg = TOK_ALG_WPM;
    else if (!strcmp(model, "t5")) alg = TOK_ALG_UGM;
    else return lmm_error_set("%s: tokenizer.ggml.model '%.40s' is not supported (llama, gpt2, bert, t5)", file, model);

    lmm_gguf_type et;
    uint64_t n;
    if (lmm_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n)) return -1;
    if (et != LMM_GGUF_STRING) return lmm_error_set("%s: tokenizer.ggml.tokens is not an array of strings", file);
    if (n == 0 || n >= (1u << 30)) return lmm_error_set("%s: %llu tokens", file, (unsigned long long)n);
    bool have_scores = lmm_gguf_find_key(g, "tokenizer.ggml.scores") >= 0;
    bool have_types = lmm_gguf_find_key(g, "tokenizer.ggml.token_type") >= 0;
    uint64_t cnt;
    if (have_scores && (lmm_gguf_get_arr(g, "tokenizer.ggml.scores", &et, &cnt) || cnt != n)) {
        return lmm_error_set("%s: tokenizer.ggml.scores does not have one score per token", file);
    }
    if (have_types && (lmm_gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &cnt) || cnt != n)) {
        return lmm_error_set("%s: tokenizer.ggml.token_type does not have one type per token", file);
    }
    size_t arena = 0;
    for (uint64_t i = 0; i < n; i++) {
        const char *s;
        uint64_t len;
        if (lmm_gguf_arr_str(g, "tokenizer.ggml.tokens", i, &s, &len)) return -1;
        if (len > (1u << 20)) return lmm_error_set("%s: token %llu is %llu bytes long", file, (unsigned long long)i, (unsigned long long)len);
        arena += (size_t)len;
    }
    lmm_tokenizer *t;
    if (tok_alloc(&t, (uint32_t)n, arena)) return lmm_error_prefix("%s", file);
    snprintf(t->name, sizeof t->name, "%s", model);
    t->alg = alg;
    for (uint64_t i = 0; i < n; i++) {
        const char *s;
        uint64_t len;
        double score = 0;
        int64_t type = TOK_TYPE_NORMAL;
        if (lmm_gguf_arr_str(g, "tokenizer.ggml.tokens", i, &s, &len)) goto fail;
        if (have_scores && lmm_gguf_arr_f64(g, "tokenizer.ggml.scores", i, &score)) goto fail;
        if (have_types && lmm_gguf_arr_i64(g, "tokenizer.ggml.token_type", i, &type)) goto fail;
        if (type < 0 || type > TOK_TYPE_BYTE) type = TOK_TYPE_NORMAL;
        if (tok_set_piece(t, (uint32_t)i, s, (size_t)len, (float)score, (uint8_t)type)) goto fail_prefix;
        tok_piece *p = &t->pieces[i];
        if (type == TOK_TYPE_CONTROL || type == TOK_TYPE_UNKNOWN) p->special = TOK_MATCH_SPECIAL;
        if (type == TOK_TYPE_USER_DEFINED) p->special = TOK_MATCH_ALWAYS;
        if (type == TOK_TYPE_BYTE) {
            int b = tok_parse_byte_piece(s, (uint32_t)len);
            if (b >= 0 && t->byte_ids[b] == TOK_NONE) t->byte_ids[b] = (uint32_t)i;
        }
    }
    if (get_id(g, "tokenizer.ggml.bos_token_id", t->n_vocab, &t->bos, file) ||
        get_id(g, "tokenizer.ggml.eos_token_id", t->n_vocab, &t->eos, file) ||
        get_id(g, "tokenizer.ggml.unknown_token_id", t->n_vocab, &t->unk, file) ||
        get_id(g, "tokenizer.ggml.seperator_token_id", t->n_vocab, &t->sep, file) ||
        get_id(g, "tokenizer.ggml.padding_token_id", t->n_vocab, &t->pad, file) ||
        get_id(g, "tokenizer.ggml.cls_token_id", t->n_vocab, &t->cls, file) ||
        get_id(g, "tokenizer.ggml.mask_token_id", t->n_vocab, &t->mask, file))
        goto fail;
    if (tok_build_map(t, file)) goto fail;
    switch (alg) {
    case TOK_ALG_SPM:
        t->add_bos = true;
        t->add_space_prefix = true;
        t->escape_spaces = true;
        t->strip_bos_space = true;
        t->byte_fallback = t->byte_ids[0] != TOK_NONE;
        if (t->unk == TOK_NONE) t->unk = tok_lookup_type(t, TOK_TYPE_UNKNOWN);
        break;
    case TOK_ALG_BPE: {
        const char *pre = "default";
        uint64_t plen;
        if (lmm_gguf_get_str_opt(g, "tokenizer.ggml.pre", &pre, &plen) < 0) goto fail;
        if (tok_pre_preset(t, pre, file)) goto fail;
        if (t->pre == TOK_PRE_QWEN2) { /* Qwen2's tokenizer.json normalises to NFC first */
            tok_norm nfc = {.kind = TOK_NORM_NF, .arg = TOK_NF_NFC};
            if (tok_norm_add(t, &nfc)) goto fail;
        }
        t->ignore_merges = t->pre == TOK_PRE_LLAMA3;
        t->add_bos = t->pre == TOK_PRE_LLAMA3;
        t->bpe_bytes = true;
        for (unsigned b = 0; b < 256; b++) {
            char c[4];
            int l = tok_bpe_byte_char(b, c);
            t->byte_ids[b] = tok_lookup(t, c, (size_t)l);
        }
        if (load_merges(t, g, file)) goto fail;
        break;
    }
    case TOK_ALG_WPM:
        t->add_sep = true;
        t->lowercase = true;
        t->strip_accents = true;
        t->tokenize_chinese = true;
        t->wpm_phantom_space = true;
        t->escape_spaces = true;   /* decoding: U+2581 is a space */
        if (t->unk == TOK_NONE) t->unk = tok_lookup(t, "[UNK]", 5);
        if (t->cls == TOK_NONE) t->cls = t->bos;
        if (t->sep == TOK_NONE) t->sep = t->eos;
        break;
    case TOK_ALG_UGM: {
        t->add_eos = true;
        t->add_space_prefix = true;
        t->escape_spaces = true;
        t->strip_bos_space = true;
        t->remove_extra_ws = true;
        t->spm_normalize = true;
        t->ugm_float = true;
        t->byte_fallback = t->byte_ids[0] != TOK_NONE;
        bool b = true;
        if (get_flag(g, "tokenizer.ggml.remove_extra_whitespaces", &b)) goto fail;
        t->remove_extra_ws = b;
        if (lmm_gguf_find_key(g, "tokenizer.ggml.precompiled_charsmap") >= 0) {
            uint64_t cn;
            if (lmm_gguf_get_arr(g, "tokenizer.ggml.precompiled_charsmap", &et, &cn)) goto fail;
            if (cn > (1u << 28)) {
                lmm_error_set("%s: precompiled_charsmap of %llu bytes", file, (unsigned long long)cn);
                goto fail;
            }
            uint8_t *cm = malloc(cn ? (size_t)cn : 1);
            if (!cm) {
                lmm_error_set("%s: out of memory", file);
                goto fail;
            }
            for (uint64_t i = 0; i < cn; i++) {
                int64_t v;
                if (lmm_gguf_arr_i64(g, "tokenizer.ggml.precompiled_charsmap", i, &v)) {
                    free(cm);
                    goto fail;
                }
                cm[i] = (uint8_t)v;
            }
            int rc = tok_charsmap_set(t, cm, (size_t)cn, file);
            free(cm);
            if (rc) goto fail;
        }
        if (t->unk == TOK_NONE) t->unk = tok_lookup_type(t, TOK_TYPE_UNKNOWN);
        break;
    }
    }
    if (get_flag(g, "tokenizer.ggml.add_bos_token", &t->add_bos) ||
        get_flag(g, "tokenizer.ggml.add_eos_token", &t->add_eos) ||
        get_flag(g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix))
        goto fail;
    if (tok_finish(t, file)) goto fail;
    if (t->alg == TOK_ALG_UGM && tok_ugm_prepare(t, file)) goto fail;
    *out = t;
    return 0;
fail_prefix:
    lmm_error_prefix("%s", file);
fail:
    lmm_tokenizer_free(t);
    return -1;
}

int tok_load_gguf_file(lmm_tokenizer **out, const char *path) {
    lmm_gguf *g;
    *out = NULL;
    if (lmm_gguf_open(&g, path)) return -1;
    int rc = tok_load_gguf(out, g, path);
    lmm_gguf_free(g);
    return rc;
}
