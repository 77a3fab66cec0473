/* model/tokenizer/load_hf.c — Hugging Face tokenizer.json (+ tokenizer_config.json
 * beside it), read with json-c:
 *   model          BPE (merges as "a b" or ["a", "b"]), WordPiece, Unigram
 *   added_tokens   special ones match with LMM_TOK_PARSE_SPECIAL, others always
 *   normalizer     NFC/NFD/NFKC/NFKD, Lowercase, Prepend, Replace, Strip,
 *                  StripAccents, Precompiled, BertNormalizer, Sequence
 *   pre_tokenizer  Split (Isolated), ByteLevel, Metaspace, Digits, Punctuation,
 *                  Whitespace, WhitespaceSplit, BertPreTokenizer, Sequence
 *   post_processor TemplateProcessing / BertProcessing / RobertaProcessing: BOS/EOS
 *   decoder        ByteLevel, Metaspace, Replace/ByteFallback/Fuse/Strip, WordPiece
 * tokenizer_config.json: add_bos_token / add_eos_token, bos_token / eos_token.
 * Anything else is refused with a message naming it, rather than tokenized wrongly. */
#include "tok_internal.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmm/error.h"

#define RE_WS_ISOLATED_PUNCT "[\\p{P}\\x21-\\x2F\\x3A-\\x40\\x5B-\\x60\\x7B-\\x7E]"

static json_object *get(json_object *o, const char *key) {
    json_object *v = NULL;
    if (!o || !json_object_is_type(o, json_type_object)) return NULL;
    if (!json_object_object_get_ex(o, key, &v)) return NULL;
    return v;
}

static const char *get_str(json_object *o, const char *key) {
    json_object *v = get(o, key);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static int get_bool(json_object *o, const char *key, int def) {
    json_object *v = get(o, key);
    return v && json_object_is_type(v, json_type_boolean) ? json_object_get_boolean(v) : def;
}

static int is_str(json_object *v) { return v && json_object_is_type(v, json_type_string); }

/* ------------------------------------------------------------------ base64 */

static int b64_val(int c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

static uint8_t *b64_decode(const char *s, size_t n, size_t *out_len) {
    uint8_t *out = malloc(n / 4 * 3 + 3);
    if (!out) return NULL;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '=') break;
        int v = b64_val((unsigned char)s[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    *out_len = o;
    return out;
}

/* ---------------------------------------------------------- normalizers */

static int add_norm(lmm_tokenizer *t, tok_norm n) {
    if (tok_norm_add(t, &n) == 0) return 0;
    free(n.a);
    free(n.b);
    return -1;
}

static char *dup_bytes(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

static int parse_normalizer(lmm_tokenizer *t, json_object *n, const char *file) {
    if (!n || json_object_is_type(n, json_type_null)) return 0;
    const char *type = get_str(n, "type");
    if (!type) return lmm_error_set("%s: normalizer without a type", file);
    tok_norm st = {0};
    if (!strcmp(type, "Sequence")) {
        json_object *list = get(n, "normalizers");
        size_t len = list ? json_object_array_length(list) : 0;
        for (size_t i = 0; i < len; i++) {
            if (parse_normalizer(t, json_object_array_get_idx(list, i), file)) return -1;
        }
        return 0;
    }
    if (!strcmp(type, "NFC") || !strcmp(type, "NFD") || !strcmp(type, "NFKC") || !strcmp(type, "NFKD")) {
        st.kind = TOK_NORM_NF;
        st.arg = !strcmp(type, "NFC") ? TOK_NF_NFC : !strcmp(type, "NFD") ? TOK_NF_NFD
                 : !strcmp(type, "NFKC") ? TOK_NF_NFKC : TOK_NF_NFKD;
        return add_norm(t, st);
    }
    if (!strcmp(type, "Lowercase")) {
        st.kind = TOK_NORM_LOWER;
        return add_norm(t, st);
    }
    if (!strcmp(type, "StripAccents")) {
        st.kind = TOK_NORM_STRIP_ACCENTS;
        return add_norm(t, st);
    }
    if (!strcmp(type, "Strip")) {
        st.kind = TOK_NORM_STRIP;
        st.arg = (get_bool(n, "strip_left", 1) ? 1 : 0) | (get_bool(n, "strip_right", 1) ? 2 : 0);
        return add_norm(t, st);
    }
    if (!strcmp(type, "Prepend")) {
        json_object *p = get(n, "prepend");
        if (!is_str(p)) return lmm_error_set("%s: Prepend normalizer without a string", file);
        st.kind = TOK_NORM_PREPEND;
        st.alen = (size_t)json_object_get_string_len(p);
        st.a = dup_bytes(json_object_get_string(p), st.alen);
        if (!st.a) return lmm_error_set("out of memory");
        return add_norm(t, st);
    }
    if (!strcmp(type, "Replace")) {
        json_object *pat = get(n, "pattern"), *content = get(n, "content");
        json_object *ps = get(pat, "String"), *pr = get(pat, "Regex");
        if (!is_str(content) || (!is_str(ps) && !is_str(pr))) {
            return lmm_error_set("%s: Replace normalizer needs a String or Regex pattern and content", file);
        }
        st.kind = TOK_NORM_REPLACE;
        st.blen = (size_t)json_object_get_string_len(content);
        st.b = dup_bytes(json_object_get_string(content), st.blen);
        json_object *p = is_str(ps) ? ps : pr;
        st.alen = (size_t)json_object_get_string_len(p);
        st.a = dup_bytes(json_object_get_string(p), st.alen);
        if (!st.a || !st.b) {
            free(st.a);
            free(st.b);
            return lmm_error_set("out of memory");
        }
        if (is_str(pr) && !(st.re = tok_regex_compile(st.a, st.alen, file))) {
            free(st.a);
            free(st.b);
            return -1;
        }
        return add_norm(t, st);
    }
    if (!strcmp(type, "Precompiled")) {
        json_object *p = get(n, "precompiled_charsmap");
        if (!p || json_object_is_type(p, json_type_null)) return 0;
        if (!is_str(p)) return lmm_error_set("%s: Precompiled normalizer: charsmap is not a string", file);
        size_t len;
        uint8_t *cm = b64_decode(json_object_get_string(p), (size_t)json_object_get_string_len(p), &len);
        if (!cm) return lmm_error_set("%s: Precompiled normalizer: bad base64", file);
        int rc = tok_charsmap_set(t, cm, len, file);
        free(cm);
        if (rc) return -1;
        st.kind = TOK_NORM_PRECOMPILED;
        return add_norm(t, st);
    }
    if (!strcmp(type, "BertNormalizer")) {
        if (t->alg != TOK_ALG_WPM) return lmm_error_set("%s: BertNormalizer outside a WordPiece model is not supported", file);
        t->lowercase = get_bool(n, "lowercase", 1);
        json_object *sa = get(n, "strip_accents");
        t->strip_accents = sa && json_object_is_type(sa, json_type_boolean) ? json_object_get_boolean(sa) : t->lowercase;
        t->tokenize_chinese = get_bool(n, "handle_chinese_chars", 1);
        t->wpm_normalizer = true;
        return 0;
    }
    return lmm_error_set("%s: normalizer '%s' is not supported", file, type);
}

/* ------------------------------------------------------- pre-tokenizers */

static int parse_pretok(lmm_tokenizer *t, json_object *p, const char *file, int depth) {
    if (!p || json_object_is_type(p, json_type_null)) return 0;
    const char *type = get_str(p, "type");
    if (!type) return lmm_error_set("%s: pre_tokenizer without a type", file);
    if (!strcmp(type, "Sequence")) {
        json_object *list = get(p, "pretokenizers");
        size_t len = list ? json_object_array_length(list) : 0;
        for (size_t i = 0; i < len; i++) {
            if (parse_pretok(t, json_object_array_get_idx(list, i), file, depth + 1)) return -1;
        }
        return 0;
    }
    if (!strcmp(type, "Split")) {
        json_object *pat = get(p, "pattern");
        json_object *ps = get(pat, "String"), *pr = get(pat, "Regex");
        const char *beh = get_str(p, "behavior");
        if (get_bool(p, "invert", 0)) return lmm_error_set("%s: Split with invert is not supported", file);
        if (!beh || (strcmp(beh, "Isolated") && strcmp(beh, "Removed"))) {
            return lmm_error_set("%s: Split behavior '%s' is not supported", file, beh ? beh : "?");
        }
        if (!is_str(ps) && !is_str(pr)) return lmm_error_set("%s: Split without a pattern", file);
        json_object *s = is_str(ps) ? ps : pr;
        return tok_pre_add(t, json_object_get_string(s), (size_t)json_object_get_string_len(s),
                           is_str(ps), !strcmp(beh, "Isolated"), file);
    }
    if (!strcmp(type, "ByteLevel")) {
        t->bpe_bytes = true;
        if (get_bool(p, "add_prefix_space", 0)) {
            if (t->n_pre_regex) return lmm_error_set("%s: ByteLevel add_prefix_space after a Split is not supported", file);
            t->bpe_prefix_space = true;
        }
        if (get_bool(p, "use_regex", 1)) {
            return tok_pre_add(t, TOK_RE_GPT2, strlen(TOK_RE_GPT2), false, true, file);
        }
        return 0;
    }
    if (!strcmp(type, "Metaspace")) {
        const char *rep = get_str(p, "replacement");
        if (rep && strcmp(rep, "\xe2\x96\x81")) return lmm_error_set("%s: Metaspace replacement must be U+2581", file);
        const char *scheme = get_str(p, "prepend_scheme");
        t->metaspace = true;
        t->escape_spaces = true;
        if (scheme) {
            t->metaspace_prefix = strcmp(scheme, "never") != 0;
            t->prefix_mode = !strcmp(scheme, "first") ? TOK_PREFIX_FIRST : TOK_PREFIX_ALWAYS;
        } else {
            t->metaspace_prefix = get_bool(p, "add_prefix_space", 1);
            t->prefix_mode = TOK_PREFIX_ALWAYS;
        }
        if (get_bool(p, "split", 1)) {
            static const char re[] = "\xe2\x96\x81[^\xe2\x96\x81]*|[^\xe2\x96\x81]+";
            return tok_pre_add(t, re, strlen(re), false, true, file);
        }
        return 0;
    }
    if (!strcmp(type, "Digits")) {
        const char *re = get_bool(p, "individual_digits", 0) ? "\\p{N}" : "\\p{N}+";
        return tok_pre_add(t, re, strlen(re), false, true, file);
    }
    if (!strcmp(type, "Punctuation")) {
        const char *beh = get_str(p, "behavior");
        const char *re = beh && !strcmp(beh, "Contiguous") ? RE_WS_ISOLATED_PUNCT "+" : RE_WS_ISOLATED_PUNCT;
        if (beh && strcmp(beh, "Isolated") && strcmp(beh, "Contiguous")) {
            return lmm_error_set("%s: Punctuation behavior '%s' is not supported", file, beh);
        }
        return tok_pre_add(t, re, strlen(re), false, true, file);
    }
    if (!strcmp(type, "Whitespace")) {
        static const char re[] = "\\w+|[^\\w\\s]+";
        return tok_pre_add_mode(t, re, strlen(re), false, TOK_SPLIT_MATCHES_ONLY, file);
    }
    if (!strcmp(type, "WhitespaceSplit")) {
        static const char re[] = "\\S+";
        return tok_pre_add_mode(t, re, strlen(re), false, TOK_SPLIT_MATCHES_ONLY, file);
    }
    if (!strcmp(type, "BertPreTokenizer")) {
        if (t->alg != TOK_ALG_WPM) return lmm_error_set("%s: BertPreTokenizer outside WordPiece is not supported", file);
        return 0; /* WordPiece splits on whitespace and punctuation itself */
    }
    (void)depth;
    return lmm_error_set("%s: pre_tokenizer '%s' is not supported", file, type);
}

/* ------------------------------------------------------------- decoder */

static void parse_decoder(lmm_tokenizer *t, json_object *d) {
    if (!d || json_object_is_type(d, json_type_null)) return;
    const char *type = get_str(d, "type");
    if (!type) return;
    if (!strcmp(type, "Sequence")) {
        json_object *list = get(d, "decoders");
        size_t len = list ? json_object_array_length(list) : 0;
        for (size_t i = 0; i < len; i++) parse_decoder(t, json_object_array_get_idx(list, i));
    } else if (!strcmp(type, "ByteLevel")) {
        t->bpe_bytes = true;
    } else if (!strcmp(type, "Metaspace")) {
        t->escape_spaces = true;
        const char *scheme = get_str(d, "prepend_scheme");
        t->strip_bos_space = scheme ? strcmp(scheme, "never") != 0 : get_bool(d, "add_prefix_space", 1);
    } else if (!strcmp(type, "Replace")) {
        const char *c = get_str(d, "content");
        const char *s = get_str(get(d, "pattern"), "String");
        if (s && c && !strcmp(s, "\xe2\x96\x81") && !strcmp(c, " ")) t->escape_spaces = true;
    } else if (!strcmp(type, "Strip")) {
        json_object *st = get(d, "start");
        const char *c = get_str(d, "content");
        if (c && !strcmp(c, " ") && st && json_object_get_int(st) > 0) t->strip_bos_space = true;
    }
}

/* --------------------------------------------------------------- vocab */

static uint32_t id_of(const lmm_tokenizer *t, json_object *v) {
    if (!v) return TOK_NONE;
    if (json_object_is_type(v, json_type_object)) v = get(v, "content");
    if (!is_str(v)) return TOK_NONE;
    return tok_lookup(t, json_object_get_string(v), (size_t)json_object_get_string_len(v));
}

static int set_piece_checked(lmm_tokenizer *t, int64_t id, const char *s, size_t len, float score,
                             uint8_t type, const char *file) {
    if (id < 0 || (uint64_t)id >= t->n_vocab) return lmm_error_set("%s: token id %lld out of range", file, (long long)id);
    if (tok_utf8_check(s, len) != len) return lmm_error_set("%s: token %lld is not valid UTF-8", file, (long long)id);
    if (tok_set_piece(t, (uint32_t)id, s, len, score, type)) return lmm_error_prefix("%s", file);
    return 0;
}

static int parse_post(lmm_tokenizer *t, json_object *pp, const char *file) {
    if (!pp || json_object_is_type(pp, json_type_null)) return 0;
    const char *type = get_str(pp, "type");
    if (!type) return 0;
    if (!strcmp(type, "Sequence")) {
        json_object *list = get(pp, "processors");
        size_t len = list ? json_object_array_length(list) : 0;
        for (size_t i = 0; i < len; i++) {
            if (parse_post(t, json_object_array_get_idx(list, i), file)) return -1;
        }
        return 0;
    }
    if (!strcmp(type, "TemplateProcessing")) {
        json_object *single = get(pp, "single");
        size_t len = single ? json_object_array_length(single) : 0;
        int seen_a = 0;
        for (size_t i = 0; i < len; i++) {
            json_object *e = json_object_array_get_idx(single, i);
            json_object *sp = get(e, "SpecialToken");
            if (get(e, "Sequence")) {
                seen_a = 1;
                continue;
            }
            if (!sp) continue;
            const char *name = get_str(sp, "id");
            json_object *st = get(get(get(pp, "special_tokens"), name ? name : ""), "ids");
            uint32_t id = TOK_NONE;
            if (st && json_object_array_length(st) == 1) {
                int64_t v = json_object_get_int64(json_object_array_get_idx(st, 0));
                if (v >= 0 && (uint64_t)v < t->n_vocab) id = (uint32_t)v;
            } else if (name) {
                id = tok_lookup(t, name, strlen(name));
            }
            if (id == TOK_NONE) return lmm_error_set("%s: TemplateProcessing token '%s' not in the vocabulary", file, name ? name : "?");
            if (!seen_a) {
                t->bos = id;
                t->add_bos = true;
            } else {
                t->eos = id;
                t->add_eos = true;
            }
        }
        return 0;
    }
    if (!strcmp(type, "BertProcessing") || !strcmp(type, "RobertaProcessing")) {
        json_object *cls = get(pp, "cls"), *sep = get(pp, "sep");
        if (cls && json_object_array_length(cls) == 2) {
            int64_t v = json_object_get_int64(json_object_array_get_idx(cls, 1));
            if (v >= 0 && (uint64_t)v < t->n_vocab) t->cls = t->bos = (uint32_t)v;
        }
        if (sep && json_object_array_length(sep) == 2) {
            int64_t v = json_object_get_int64(json_object_array_get_idx(sep, 1));
            if (v >= 0 && (uint64_t)v < t->n_vocab) t->sep = t->eos = (uint32_t)v;
        }
        t->add_sep = true;
        t->add_bos = t->add_eos = true;
        return 0;
    }
    return 0; /* ByteLevel and others add no tokens */
}

static void read_config(lmm_tokenizer *t, const char *path) {
    /* tokenizer_config.json beside tokenizer.json */
    char cfg[4096];
    const char *slash = strrchr(path, '/');
    int dl = slash ? (int)(slash - path + 1) : 0;
    snprintf(cfg, sizeof cfg, "%.*stokenizer_config.json", dl, path);
    FILE *f = fopen(cfg, "rb");
    if (!f) return;
    fclose(f);
    json_object *c = json_object_from_file(cfg);
    if (!c) return;
    uint32_t id;
    if ((id = id_of(t, get(c, "bos_token"))) != TOK_NONE) t->bos = id;
    if ((id = id_of(t, get(c, "eos_token"))) != TOK_NONE) t->eos = id;
    json_object *v;
    if ((v = get(c, "add_bos_token")) && json_object_is_type(v, json_type_boolean)) t->add_bos = json_object_get_boolean(v);
    if ((v = get(c, "add_eos_token")) && json_object_is_type(v, json_type_boolean)) t->add_eos = json_object_get_boolean(v);
    if (t->add_bos && t->bos == TOK_NONE) t->add_bos = false;
    if (t->add_eos && t->eos == TOK_NONE) t->add_eos = false;
    json_object_put(c);
}

static int load_json(lmm_tokenizer **out, json_object *root, const char *path) {
    lmm_tokenizer *t = NULL;
    json_object *model = get(root, "model");
    const char *mtype = get_str(model, "type");
    json_object *vocab = get(model, "vocab");
    json_object *added = get(root, "added_tokens");
    if (!model || !vocab) return lmm_error_set("%s: no model.vocab (not a tokenizer.json?)", path);
    if (!mtype) { /* old files: infer from the fields */
        mtype = get(model, "merges") ? "BPE" : json_object_is_type(vocab, json_type_array) ? "Unigram" : "WordPiece";
    }
    tok_alg alg;
    if (!strcmp(mtype, "BPE")) alg = TOK_ALG_BPE;
    else if (!strcmp(mtype, "WordPiece")) alg = TOK_ALG_WPM;
    else if (!strcmp(mtype, "Unigram")) alg = TOK_ALG_UGM;
    else return lmm_error_set("%s: model type '%s' is not supported (BPE, WordPiece, Unigram)", path, mtype);
    if (alg == TOK_ALG_UGM ? !json_object_is_type(vocab, json_type_array) : !json_object_is_type(vocab, json_type_object)) {
        return lmm_error_set("%s: model.vocab has the wrong JSON type for %s", path, mtype);
    }
    /* size: the largest id of the vocabulary and the added tokens */
    int64_t max_id = -1;
    size_t arena = 0;
    if (alg == TOK_ALG_UGM) {
        size_t n = json_object_array_length(vocab);
        max_id = (int64_t)n - 1;
        for (size_t i = 0; i < n; i++) {
            json_object *e = json_object_array_get_idx(vocab, i);
            json_object *s = json_object_is_type(e, json_type_array) ? json_object_array_get_idx(e, 0) : NULL;
            if (!is_str(s)) return lmm_error_set("%s: Unigram vocab entry %zu is not [piece, score]", path, i);
            arena += (size_t)json_object_get_string_len(s);
        }
    } else {
        json_object_object_foreach(vocab, key, val) {
            if (!json_object_is_type(val, json_type_int)) return lmm_error_set("%s: vocab entry '%.40s' has no integer id", path, key);
            int64_t id = json_object_get_int64(val);
            if (id < 0 || id >= (1 << 30)) return lmm_error_set("%s: vocab entry '%.40s' has id %lld", path, key, (long long)id);
            if (id > max_id) max_id = id;
            arena += strlen(key);
        }
    }
    size_t n_added = added && json_object_is_type(added, json_type_array) ? json_object_array_length(added) : 0;
    for (size_t i = 0; i < n_added; i++) {
        json_object *a = json_object_array_get_idx(added, i);
        json_object *idv = get(a, "id"), *c = get(a, "content");
        if (!idv || !is_str(c)) return lmm_error_set("%s: added_tokens[%zu] needs id and content", path, i);
        int64_t id = json_object_get_int64(idv);
        if (id < 0 || id >= (1 << 30)) return lmm_error_set("%s: added_tokens[%zu] has id %lld", path, i, (long long)id);
        if (id > max_id) max_id = id;
        arena += (size_t)json_object_get_string_len(c);
    }
    if (max_id < 0) return lmm_error_set("%s: empty vocabulary", path);
    if (tok_alloc(&t, (uint32_t)(max_id + 1), arena)) return lmm_error_prefix("%s", path);
    snprintf(t->name, sizeof t->name, "tokenizer.json %s", mtype);
    t->alg = alg;
    for (uint32_t i = 0; i < t->n_vocab; i++) t->pieces[i].type = TOK_TYPE_UNUSED; /* gaps */
    if (alg == TOK_ALG_UGM) {
        size_t n = json_object_array_length(vocab);
        for (size_t i = 0; i < n; i++) {
            json_object *e = json_object_array_get_idx(vocab, i);
            json_object *s = json_object_array_get_idx(e, 0), *sc = json_object_array_get_idx(e, 1);
            if (set_piece_checked(t, (int64_t)i, json_object_get_string(s), (size_t)json_object_get_string_len(s),
                                  sc ? (float)json_object_get_double(sc) : 0.0f, TOK_TYPE_NORMAL, path))
                goto fail;
        }
    } else {
        json_object_object_foreach(vocab, key, val) {
            if (set_piece_checked(t, json_object_get_int64(val), key, strlen(key), 0.0f, TOK_TYPE_NORMAL, path)) goto fail;
        }
    }
    for (size_t i = 0; i < n_added; i++) {
        json_object *a = json_object_array_get_idx(added, i);
        json_object *c = get(a, "content");
        int64_t id = json_object_get_int64(get(a, "id"));
        bool special = get_bool(a, "special", 0);
        const tok_piece *old = &t->pieces[id];
        float score = old->score;
        if (set_piece_checked(t, id, json_object_get_string(c), (size_t)json_object_get_string_len(c), score,
                              special ? TOK_TYPE_CONTROL : TOK_TYPE_USER_DEFINED, path))
            goto fail;
        tok_piece *p = &t->pieces[id];
        p->special = special ? TOK_MATCH_SPECIAL : TOK_MATCH_ALWAYS;
        p->lstrip = (uint8_t)get_bool(a, "lstrip", 0);
        p->rstrip = (uint8_t)get_bool(a, "rstrip", 0);
    }
    if (tok_build_map(t, path)) goto fail;

    /* model */
    const char *unk = get_str(model, "unk_token");
    if (unk) t->unk = tok_lookup(t, unk, strlen(unk));
    t->byte_fallback = get_bool(model, "byte_fallback", 0);
    if (t->byte_fallback) {
        for (uint32_t i = 0; i < t->n_vocab; i++) {
            tok_piece *p = &t->pieces[i];
            int b = p->type == TOK_TYPE_NORMAL ? tok_parse_byte_piece(p->text, p->len) : -1;
            if (b >= 0) {
                p->type = TOK_TYPE_BYTE;
                if (t->byte_ids[b] == TOK_NONE) t->byte_ids[b] = i;
            }
        }
    }
    if (alg == TOK_ALG_BPE) {
        const char *csp = get_str(model, "continuing_subword_prefix");
        const char *eow = get_str(model, "end_of_word_suffix");
        if ((csp && *csp) || (eow && *eow)) {
            lmm_error_set("%s: BPE with continuing_subword_prefix/end_of_word_suffix is not supported", path);
            goto fail;
        }
        t->fuse_unk = get_bool(model, "fuse_unk", 0);
        t->ignore_merges = get_bool(model, "ignore_merges", 0);
        json_object *merges = get(model, "merges");
        size_t nm = merges && json_object_is_type(merges, json_type_array) ? json_object_array_length(merges) : 0;
        if (tok_pairmap_init(&t->merges, nm)) goto fail;
        t->merges.last_wins = true;
        for (size_t i = 0; i < nm; i++) {
            json_object *m = json_object_array_get_idx(merges, i);
            int rc;
            if (is_str(m)) {
                rc = tok_add_merge(t, json_object_get_string(m), (size_t)json_object_get_string_len(m), (uint32_t)i);
            } else if (json_object_is_type(m, json_type_array) && json_object_array_length(m) == 2 &&
                       is_str(json_object_array_get_idx(m, 0)) && is_str(json_object_array_get_idx(m, 1))) {
                json_object *a = json_object_array_get_idx(m, 0), *b = json_object_array_get_idx(m, 1);
                rc = tok_add_merge2(t, json_object_get_string(a), (size_t)json_object_get_string_len(a),
                                    json_object_get_string(b), (size_t)json_object_get_string_len(b), (uint32_t)i);
            } else {
                rc = lmm_error_set("merge %zu is neither \"a b\" nor [a, b]", i);
            }
            if (rc) {
                lmm_error_prefix("%s", path);
                goto fail;
            }
        }
    } else if (alg == TOK_ALG_WPM) {
        const char *csp = get_str(model, "continuing_subword_prefix");
        if (csp && strcmp(csp, "##")) {
            lmm_error_set("%s: WordPiece continuing_subword_prefix '%s' is not supported", path, csp);
            goto fail;
        }
        json_object *mx = get(model, "max_input_chars_per_word");
        if (mx && json_object_is_type(mx, json_type_int) && json_object_get_int64(mx) > 0)
            t->max_word_chars = (uint32_t)json_object_get_int64(mx);
        if (t->unk == TOK_NONE) {
            lmm_error_set("%s: WordPiece without unk_token", path);
            goto fail;
        }
    } else {
        json_object *u = get(model, "unk_id");
        if (u && json_object_is_type(u, json_type_int)) {
            int64_t v = json_object_get_int64(u);
            if (v >= 0 && (uint64_t)v < t->n_vocab) t->unk = (uint32_t)v;
        }
        if (t->unk != TOK_NONE && t->pieces[t->unk].type == TOK_TYPE_NORMAL) t->pieces[t->unk].type = TOK_TYPE_UNKNOWN;
    }

    if (parse_normalizer(t, get(root, "normalizer"), path)) goto fail;
    if (parse_pretok(t, get(root, "pre_tokenizer"), path, 0)) goto fail;
    parse_decoder(t, get(root, "decoder"));
    if (t->bpe_bytes) {
        for (unsigned b = 0; b < 256; b++) {
            char c[4];
            int l = tok_bpe_byte_char(b, c);
            t->byte_ids[b] = tok_lookup(t, c, (size_t)l);
        }
    }
    if (parse_post(t, get(root, "post_processor"), path)) goto fail;
    read_config(t, path);
    if (tok_finish(t, path)) goto fail;
    if (alg == TOK_ALG_UGM && tok_ugm_prepare(t, path)) goto fail;
    *out = t;
    return 0;
fail:
    lmm_tokenizer_free(t);
    return -1;
}

int tok_load_hf_memory(lmm_tokenizer **out, const char *data, size_t size, const char *path) {
    *out = NULL;
    if (size > INT32_MAX) return lmm_error_set("%s: file too large for a tokenizer.json", path);
    json_tokener *tk = json_tokener_new_ex(64);
    if (!tk) return lmm_error_set("out of memory");
    json_object *root = json_tokener_parse_ex(tk, data, (int)size);
    enum json_tokener_error jerr = json_tokener_get_error(tk);
    int rc;
    if (!root || jerr != json_tokener_success) {
        rc = lmm_error_set("%s: JSON error at offset %zu: %s", path, (size_t)json_tokener_get_parse_end(tk),
                           json_tokener_error_desc(jerr));
    } else {
        rc = load_json(out, root, path);
    }
    json_object_put(root);
    json_tokener_free(tk);
    return rc;
}

int tok_load_hf(lmm_tokenizer **out, const char *path) {
    unsigned char *data;
    size_t size;
    *out = NULL;
    if (tok_read_whole_file(path, &data, &size)) return -1;
    int rc = tok_load_hf_memory(out, (const char *)data, size, path);
    free(data);
    return rc;
}
