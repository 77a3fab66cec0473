/* model/tokenizer/tokenizer.c — the public tokenizer API (lmm/tokenizer.h):
 * file-type detection, splitting input text around special tokens, dispatch to
 * the algorithm's encoder, BOS/EOS, and decoding of ids back to bytes. */
#include "tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lmm/error.h"
#include "lmm/gguf.h"

/* ---------------------------------------------------------------- loading */

void lmm_tokenizer_free(lmm_tokenizer *t) {
    if (!t) return;
    free(t->pieces);
    free(t->arena);
    free(t->map.slots);
    tok_pairmap_free(&t->merges);
    tok_pairmap_free(&t->spm_pairs);
    tok_cache_free(t->cache);
    free(t->spm_extra);
    free(t->special_ids);
    free(t->charsmap);
    tok_norms_free(t);
    tok_ugm_free(t);
    tok_cut_free(t);
    tok_pre_free(t);
    free(t);
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int load_file_hint(lmm_tokenizer **out, const char *path, uint32_t vocab_hint) {
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0) return lmm_error_set("%s: no such tokenizer file", path);
    if (S_ISDIR(st.st_mode)) {
        /* a model directory: tokenizer.json first (it carries the whole pipeline) */
        static const char *names[] = {"tokenizer.json", "tokenizer.model", "tokenizer.bin"};
        char buf[4096];
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            snprintf(buf, sizeof buf, "%s/%s", path, names[i]);
            if (stat(buf, &st) == 0 && S_ISREG(st.st_mode)) return load_file_hint(out, buf, vocab_hint);
        }
        return lmm_error_set("%s: directory holds no tokenizer.json, tokenizer.model or tokenizer.bin",
                             path);
    }
    unsigned char head[8] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return lmm_error_set("%s: cannot open", path);
    size_t got = fread(head, 1, sizeof head, f);
    fclose(f);
    if (got >= 4 && memcmp(head, "GGUF", 4) == 0) return tok_load_gguf_file(out, path);
    size_t i = 0;
    while (i < got && (head[i] == ' ' || head[i] == '\n' || head[i] == '\r' || head[i] == '\t')) i++;
    if (ends_with(path, ".json") || (i < got && head[i] == '{')) return tok_load_hf(out, path);
    if (ends_with(path, ".model")) return tok_load_spm_model(out, path);
    /* llama2.c tokenizer.bin has no magic: parse it strictly, else try protobuf */
    if (lmm_tokenizer_load_llama2c(out, path, vocab_hint) == 0) return 0;
    if (got >= 1 && head[0] == 0x0a) {
        char first[LMM_ERROR_MAX];
        snprintf(first, sizeof first, "%s", lmm_error_get());
        if (tok_load_spm_model(out, path) == 0) return 0;
        return lmm_error_set("%s: neither a llama2.c tokenizer (%s) nor a SentencePiece model", path,
                             first);
    }
    return -1;
}

int lmm_tokenizer_load_file(lmm_tokenizer **out, const char *path) {
    return load_file_hint(out, path, 0);
}

int lmm_tokenizer_load_for_model(lmm_tokenizer **out, const lmm_model_desc *d, const char *path) {
    *out = NULL;
    uint32_t hint = d && d->format == LMM_FORMAT_LLAMA2C ? d->hp.n_vocab : 0;
    int rc;
    if (path && *path) {
        rc = load_file_hint(out, path, hint);
    } else if (d && d->gguf) {
        const char *name = d->n_files ? d->files[0] : "model.gguf";
        rc = tok_load_gguf(out, d->gguf, name);
    } else if (d && d->tokenizer_path) {
        rc = load_file_hint(out, d->tokenizer_path, hint);
    } else {
        return lmm_error_set("%s: the model carries no tokenizer and none was found beside it; "
                             "give one with --tokenizer",
                             d && d->n_files ? d->files[0] : "model");
    }
    if (rc) return rc;
    if (d && d->hp.n_vocab && (*out)->n_vocab > d->hp.n_vocab) {
        /* ids the model cannot embed would index past its embedding table */
        uint32_t n = (*out)->n_vocab;
        lmm_tokenizer_free(*out);
        *out = NULL;
        return lmm_error_set("tokenizer has %u tokens but the model only %u", n, d->hp.n_vocab);
    }
    return 0;
}

uint32_t lmm_tokenizer_vocab_size(const lmm_tokenizer *t) { return t->n_vocab; }

int lmm_tokenizer_is_control(const lmm_tokenizer *t, uint32_t id) {
    return id < t->n_vocab && t->pieces[id].type == TOK_TYPE_CONTROL;
}

const char *lmm_tokenizer_piece(const lmm_tokenizer *t, uint32_t id, size_t *len) {
    if (id >= t->n_vocab) return NULL;
    if (len) *len = t->pieces[id].len;
    return t->pieces[id].text;
}

const char *lmm_tokenizer_kind(const lmm_tokenizer *t) {
    static const char *names[] = {"spm-bpe", "bpe", "wordpiece", "unigram"};
    return names[t->alg];
}
uint32_t lmm_tokenizer_bos(const lmm_tokenizer *t) { return t->bos; }
uint32_t lmm_tokenizer_eos(const lmm_tokenizer *t) { return t->eos; }

/* ---------------------------------------------------------------- encoding */

/* Metaspace (tokenizer.json): spaces as U+2581, and U+2581 in front when asked
 * for and not there already. */
static int metaspace(const char *s, size_t n, bool prefix, tok_str *out) {
    static const char WS[] = "\xe2\x96\x81";
    if (prefix && n && !(s[0] == ' ' || (n >= 3 && memcmp(s, WS, 3) == 0))) {
        if (tok_str_put(out, WS, 3)) return -1;
    }
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && s[j] != ' ') j++;
        if (tok_str_put(out, s + i, j - i)) return -1;
        if (j < n && tok_str_put(out, WS, 3)) return -1;
        i = j + 1;
    }
    return 0;
}

/* One fragment of text between special tokens: normalise (tokenizer.json steps,
 * Metaspace), then the algorithm. PREFIX: whether a dummy prefix is due here. */
static int encode_fragment(const lmm_tokenizer *t, const char *s, size_t n, bool prefix,
                           tok_ids *ids, tok_cache *cache) {
    tok_str a = {0}, b = {0};
    int rc = 0;
    if (t->n_norms) {
        if ((rc = tok_norms_apply(t, s, n, &a))) goto done;
        s = a.v ? a.v : "";
        n = a.n;
    }
    if (t->metaspace) {
        if ((rc = metaspace(s, n, prefix && t->metaspace_prefix, &b))) goto done;
        s = b.v ? b.v : "";
        n = b.n;
    } else if (t->bpe_prefix_space && n && s[0] != ' ') {
        if ((rc = tok_str_put(&b, " ", 1)) || (rc = tok_str_put(&b, s, n))) goto done;
        s = b.v ? b.v : "";
        n = b.n;
    }
    switch (t->alg) {
    case TOK_ALG_SPM: rc = tok_spm_encode(t, s, n, prefix, ids, cache); break;
    case TOK_ALG_BPE: rc = tok_bpe_encode(t, s, n, ids, cache); break;
    case TOK_ALG_WPM: rc = tok_wpm_encode(t, s, n, ids); break;
    case TOK_ALG_UGM: rc = tok_ugm_encode(t, s, n, prefix, ids); break;
    }
done:
    free(a.v);
    free(b.v);
    return rc;
}

/* Longest special token starting at s[0..n), or TOK_NONE. */
static uint32_t match_special(const lmm_tokenizer *t, const char *s, size_t n, unsigned flags) {
    unsigned char b = (unsigned char)s[0];
    for (uint32_t k = t->spec_off[b]; k < t->spec_off[b + 1]; k++) {
        uint32_t id = t->special_ids[k];
        const tok_piece *p = &t->pieces[id];
        if (p->special == TOK_MATCH_SPECIAL && !(flags & LMM_TOK_PARSE_SPECIAL)) continue;
        if (p->len <= n && memcmp(p->text, s, p->len) == 0) return id;
    }
    return TOK_NONE;
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

static int encode_all(const lmm_tokenizer *t, const char *text, size_t len, unsigned flags,
                      tok_ids *ids, tok_cache *cache) {
    size_t bad = tok_utf8_check(text, len);
    if (bad != len) {
        return lmm_error_set("%s tokenizer: invalid UTF-8 at byte offset %zu (0x%02x)", t->name, bad,
                             (unsigned char)text[bad]);
    }
    if (flags & LMM_TOK_ADD_SPECIAL) {
        uint32_t first = t->alg == TOK_ALG_WPM && t->cls != TOK_NONE ? t->cls : t->bos;
        if ((t->add_bos || (t->alg == TOK_ALG_WPM && t->add_sep)) && first != TOK_NONE) {
            if (tok_ids_push(ids, first)) return -1;
        }
    }
    size_t frag = 0;      /* start of the pending text fragment */
    bool after_special = true; /* the fragment starts the text or follows a special token */
    for (size_t i = 0; i <= len;) {
        uint32_t id = TOK_NONE;
        if (i < len && t->spec_off[(unsigned char)text[i] + 1] > t->spec_off[(unsigned char)text[i]]) {
            id = match_special(t, text + i, len - i, flags);
        }
        if (id == TOK_NONE && i < len) {
            i++;
            continue;
        }
        /* text fragment [frag, end) before the special token (or the end) */
        const tok_piece *p = id != TOK_NONE ? &t->pieces[id] : NULL;
        size_t end = i;
        if (p && p->lstrip) {
            while (end > frag && is_ws(text[end - 1])) end--;
        }
        if (end > frag) {
            bool prefix = t->prefix_mode == TOK_PREFIX_ALWAYS ||
                          (t->prefix_mode == TOK_PREFIX_FIRST && frag == 0) ||
                          (t->prefix_mode == TOK_PREFIX_AFTER_SPECIAL && after_special);
            if (encode_fragment(t, text + frag, end - frag, prefix, ids, cache)) return -1;
            after_special = false;
        }
        if (!p) break;
        if (tok_ids_push(ids, id)) return -1;
        after_special = true;
        i += p->len;
        if (p->rstrip) {
            while (i < len && is_ws(text[i])) i++;
        }
        frag = i;
    }
    if (flags & LMM_TOK_ADD_SPECIAL) {
        uint32_t last = t->alg == TOK_ALG_WPM && t->sep != TOK_NONE ? t->sep : t->eos;
        if ((t->add_eos || (t->alg == TOK_ALG_WPM && t->add_sep)) && last != TOK_NONE) {
            if (tok_ids_push(ids, last)) return -1;
        }
    }
    return 0;
}

int lmm_tokenizer_encode(const lmm_tokenizer *t, const char *text, size_t len, unsigned flags,
                         uint32_t *ids, size_t cap, size_t *n_ids) {
    *n_ids = 0;
    if (!text && len) return lmm_error_set("tokenizer: NULL text");
    tok_ids v = {0};
    tok_cache *cache = tok_cache_acquire(t->cache);
    int rc = encode_all(t, text ? text : "", len, flags, &v, cache);
    tok_cache_release(cache);
    if (rc) {
        free(v.v);
        return -1;
    }
    size_t k = v.n < cap ? v.n : cap;
    if (k) memcpy(ids, v.v, k * sizeof *ids);
    *n_ids = v.n;
    free(v.v);
    return 0;
}

/* ---------------------------------------------------------------- decoding */

typedef struct {
    char *buf;
    size_t cap, len;   /* len counts every byte, also those past cap */
} outbuf;

static void put(outbuf *o, const char *s, size_t n) {
    if (o->len < o->cap) {
        size_t k = o->cap - o->len < n ? o->cap - o->len : n;
        memcpy(o->buf + o->len, s, k);
    }
    o->len += n;
}

static void put_unescaped(const lmm_tokenizer *t, outbuf *o, const char *s, size_t n, bool strip) {
    size_t i = 0;
    if (strip) {
        if (n >= 1 && s[0] == ' ') i = 1;
        else if (t->escape_spaces && n >= 3 && memcmp(s, "\xe2\x96\x81", 3) == 0) i = 3;
    }
    while (i < n) {
        if (t->escape_spaces && n - i >= 3 && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
            put(o, " ", 1);
            i += 3;
        } else {
            size_t j = i + 1;
            while (j < n && s[j] != '\xe2') j++;
            put(o, s + i, j - i);
            i = j;
        }
    }
}

static int decode_into(const lmm_tokenizer *t, uint32_t prev, uint32_t id, outbuf *o) {
    if (id >= t->n_vocab) {
        return lmm_error_set("%s tokenizer: token id %u is out of range (vocabulary of %u)", t->name,
                             id, t->n_vocab);
    }
    const tok_piece *p = &t->pieces[id];
    if (p->type == TOK_TYPE_CONTROL) return 0;
    if (p->type == TOK_TYPE_BYTE) {
        int b = tok_parse_byte_piece(p->text, p->len);
        if (b >= 0) {
            char c = (char)b;
            put(o, &c, 1);
            return 0;
        }
        if (id >= 3 && id < 259 && t->byte_ids[id - 3] == id) { /* llama2.c raw-byte piece */
            char c = (char)(id - 3);
            put(o, &c, 1);
            return 0;
        }
    }
    bool at_start = prev == TOK_NONE || (prev < t->n_vocab && prev == t->bos);
    switch (t->alg) {
    case TOK_ALG_SPM:
    case TOK_ALG_UGM:
        put_unescaped(t, o, p->text, p->len, at_start && t->strip_bos_space);
        return 0;
    case TOK_ALG_BPE:
        if (p->type == TOK_TYPE_USER_DEFINED) {
            put(o, p->text, p->len);
        } else if (!t->bpe_bytes) {
            put_unescaped(t, o, p->text, p->len, at_start && t->strip_bos_space);
        } else {
            tok_bpe_unmap(t, p->text, p->len, o->buf ? o->buf : NULL, o->cap, &o->len);
        }
        return 0;
    case TOK_ALG_WPM: {
        if (t->wpm_phantom_space) { /* GGUF: "\u2581word" starts a word */
            put_unescaped(t, o, p->text, p->len, at_start || (prev < t->n_vocab &&
                                                              t->pieces[prev].type == TOK_TYPE_CONTROL));
            return 0;
        }
        bool cont = p->len >= 2 && p->text[0] == '#' && p->text[1] == '#';
        bool after_special = prev != TOK_NONE && prev < t->n_vocab &&
                             t->pieces[prev].type == TOK_TYPE_CONTROL;
        if (cont) {
            put(o, p->text + 2, p->len - 2);
        } else {
            if (!(prev == TOK_NONE || after_special)) put(o, " ", 1);
            put(o, p->text, p->len);
        }
        return 0;
    }
    }
    return 0;
}

int lmm_tokenizer_decode_token(const lmm_tokenizer *t, uint32_t prev, uint32_t id, char *buf,
                               size_t cap, size_t *len) {
    outbuf o = {buf, cap, 0};
    *len = 0;
    if (decode_into(t, prev, id, &o)) return -1;
    *len = o.len;
    if (o.len > cap) {
        return lmm_error_set("%s tokenizer: token %u needs %zu bytes, buffer holds %zu", t->name, id,
                             o.len, cap);
    }
    return 0;
}

int lmm_tokenizer_decode(const lmm_tokenizer *t, const uint32_t *ids, size_t n, char *buf,
                         size_t cap, size_t *len) {
    outbuf o = {buf, cap, 0};
    *len = 0;
    uint32_t prev = TOK_NONE;
    for (size_t i = 0; i < n; i++) {
        if (decode_into(t, prev, ids[i], &o)) return -1;
        prev = ids[i];
    }
    *len = o.len;
    if (o.len < cap) buf[o.len] = '\0';
    return 0;
}
