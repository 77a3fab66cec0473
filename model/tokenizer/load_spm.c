/* model/tokenizer/load_spm.c — SentencePiece tokenizer.model files (a protobuf
 * ModelProto, parsed with protobuf-c from sentencepiece_model.proto): pieces with
 * scores and types, the model type (BPE or Unigram), byte fallback, the special
 * ids and the normaliser (precompiled charsmap, dummy prefix, whitespace rules). */
#include "tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmm/error.h"
#include "sentencepiece_model.pb-c.h"

static uint32_t opt_id(int32_t v, uint32_t n) { return v >= 0 && (uint32_t)v < n ? (uint32_t)v : TOK_NONE; }

int tok_load_spm_memory(lmm_tokenizer **out, const uint8_t *data, size_t size, const char *path) {
    *out = NULL;
    Sentencepiece__ModelProto *m = sentencepiece__model_proto__unpack(NULL, size, data);
    if (!m) return lmm_error_set("%s: not a SentencePiece model (protobuf parse failed)", path);
    lmm_tokenizer *t = NULL;
    int rc = -1;
    size_t n = m->n_pieces;
    if (n == 0 || n >= (1u << 30)) {
        lmm_error_set("%s: SentencePiece model with %zu pieces", path, n);
        goto done;
    }
    Sentencepiece__TrainerSpec *ts = m->trainer_spec;
    Sentencepiece__NormalizerSpec *ns = m->normalizer_spec;
    int type = ts && ts->has_model_type ? (int)ts->model_type : SENTENCEPIECE__TRAINER_SPEC__MODEL_TYPE__UNIGRAM;
    if (type != SENTENCEPIECE__TRAINER_SPEC__MODEL_TYPE__UNIGRAM && type != SENTENCEPIECE__TRAINER_SPEC__MODEL_TYPE__BPE) {
        lmm_error_set("%s: SentencePiece model type %d is not supported (BPE and Unigram are)", path, type);
        goto done;
    }
    if (ts && ts->treat_whitespace_as_suffix) {
        lmm_error_set("%s: treat_whitespace_as_suffix is not supported", path);
        goto done;
    }
    size_t arena = 0;
    for (size_t i = 0; i < n; i++) {
        if (!m->pieces[i]->has_piece) continue;
        if (m->pieces[i]->piece.len > (1u << 20)) {
            lmm_error_set("%s: piece %zu is %zu bytes long", path, i, m->pieces[i]->piece.len);
            goto done;
        }
        arena += m->pieces[i]->piece.len;
    }
    if (tok_alloc(&t, (uint32_t)n, arena)) {
        lmm_error_prefix("%s", path);
        goto done;
    }
    snprintf(t->name, sizeof t->name, "sentencepiece-%s", type == SENTENCEPIECE__TRAINER_SPEC__MODEL_TYPE__BPE ? "bpe" : "unigram");
    for (size_t i = 0; i < n; i++) {
        const Sentencepiece__ModelProto__SentencePiece *p = m->pieces[i];
        int ty = p->has_type ? (int)p->type : TOK_TYPE_NORMAL;
        if (ty < TOK_TYPE_NORMAL || ty > TOK_TYPE_BYTE) ty = TOK_TYPE_NORMAL;
        if (p->has_piece && tok_utf8_check((const char *)p->piece.data, p->piece.len) != p->piece.len) {
            lmm_error_set("%s: piece %zu is not valid UTF-8", path, i);
            goto done;
        }
        if (tok_set_piece(t, (uint32_t)i, p->has_piece ? (const char *)p->piece.data : "",
                          p->has_piece ? p->piece.len : 0, p->has_score ? p->score : 0.0f, (uint8_t)ty)) {
            lmm_error_prefix("%s", path);
            goto done;
        }
        tok_piece *tp = &t->pieces[i];
        if (ty == TOK_TYPE_CONTROL || ty == TOK_TYPE_UNKNOWN) tp->special = TOK_MATCH_SPECIAL;
        if (ty == TOK_TYPE_USER_DEFINED) tp->special = TOK_MATCH_ALWAYS;
        if (ty == TOK_TYPE_BYTE) {
            int b = tok_parse_byte_piece(tp->text, tp->len);
            if (b >= 0 && t->byte_ids[b] == TOK_NONE) t->byte_ids[b] = (uint32_t)i;
        }
    }
    t->alg = type == SENTENCEPIECE__TRAINER_SPEC__MODEL_TYPE__BPE ? TOK_ALG_SPM : TOK_ALG_UGM;
    t->unk = opt_id(ts && ts->has_unk_id ? ts->unk_id : 0, t->n_vocab);
    t->bos = opt_id(ts && ts->has_bos_id ? ts->bos_id : 1, t->n_vocab);
    t->eos = opt_id(ts && ts->has_eos_id ? ts->eos_id : 2, t->n_vocab);
    t->pad = opt_id(ts && ts->has_pad_id ? ts->pad_id : -1, t->n_vocab);
    t->byte_fallback = ts && ts->byte_fallback;
    t->add_space_prefix = ns && ns->has_add_dummy_prefix ? ns->add_dummy_prefix : true;
    t->remove_extra_ws = ns && ns->has_remove_extra_whitespaces ? ns->remove_extra_whitespaces : true;
    t->escape_spaces = ns && ns->has_escape_whitespaces ? ns->escape_whitespaces : true;
    t->spm_normalize = true;
    t->ugm_float = true;
    t->strip_bos_space = true;
    t->add_bos = t->bos != TOK_NONE;
    if (ns && ns->has_precompiled_charsmap && ns->precompiled_charsmap.len &&
        tok_charsmap_set(t, ns->precompiled_charsmap.data, ns->precompiled_charsmap.len, path))
        goto done;
    if (tok_finish(t, path)) goto done;
    if (t->alg == TOK_ALG_UGM && tok_ugm_prepare(t, path)) goto done;
    *out = t;
    t = NULL;
    rc = 0;
done:
    lmm_tokenizer_free(t);
    sentencepiece__model_proto__free_unpacked(m, NULL);
    return rc;
}

int tok_load_spm_model(lmm_tokenizer **out, const char *path) {
    unsigned char *d;
    size_t size;
    *out = NULL;
    if (tok_read_whole_file(path, &d, &size)) return -1;
    int rc = tok_load_spm_memory(out, d, size, path);
    free(d);
    return rc;
}
