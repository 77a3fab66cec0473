/* model/tokenizer/pretok.c — pre-tokenizers: the regular expressions (PCRE2, with
 * Unicode classes) that split text into words before BPE, for every pre-tokenizer
 * GGUF names in tokenizer.ggml.pre and for the Split patterns of tokenizer.json.
 *
 * A pre-tokenizer is a sequence of patterns. Each pattern splits every piece left by
 * the previous one into its matches and the text between them ("Isolated" in
 * Hugging Face's terms); the pieces left after the last pattern are the words.
 * The patterns are the ones the models' own tokenizer.json files declare. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tok_internal.h"

#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "lmm/error.h"

#define MAX_REGEX (sizeof ((lmm_tokenizer *)0)->pre_regex / sizeof(void *))

/* GPT-2's pattern (also the ByteLevel pre-tokenizer's use_regex pattern) */
#define RE_GPT2 TOK_RE_GPT2
/* Llama 3 (tiktoken cl100k-style); Qwen2 is the same with single digits */
#define RE_LLAMA3 "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2 "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* DeepSeek LLM: line breaks, cased-letter runs, ASCII/full-width punctuation runs,
 * trailing whitespace, CJK runs, digits */
#define RE_DS_LETTERS "\\s?[A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-\u02af\u0370-\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5\u03f7-\u0481\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba\u1cbd-\u1cbf\u1d00-\u1d2b\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45\u1f48-\u1f4d\u1f50-\u1f57\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4\u1ff6-\u1ffc\u2102\u2107\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3\ua640-\ua66d\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e\uab70-\uabbf\ufb00-\ufb06\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a\U00010400-\U0001044f\U000104b0-\U000104d3\U000104d8-\U000104fb\U00010c80-\U00010cb2\U00010cc0-\U00010cf2\U000118a0-\U000118df\U0001e900-\U0001e943]+"
#define RE_DS_PUNCT "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+"
#define RE_DS_CJK "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+"

typedef struct {
    const char *names;          /* '|'-separated tokenizer.ggml.pre values */
    tok_pre pre;
    const char *re[MAX_REGEX];
} pre_preset;

static const pre_preset PRESETS[] = {
    {"llama3|llama-v3|llama-bpe|falcon3|pixtral|dbrx|smaug-bpe|jais|tekken", TOK_PRE_LLAMA3, {RE_LLAMA3}},
    {"qwen2|deepseek-r1-qwen|megrez|hunyuan", TOK_PRE_QWEN2, {RE_QWEN2}},
    {"gpt-2|gpt2|default|phi-2|jina-es|jina-de|jina-v2-es|jina-v2-de|jina-v2-code|roberta-bpe|"
     "mpt|olmo|gpt-neox|stablelm2|poro-chat|viking|bloom|gpt3-finnish|chameleon|qwen",
     TOK_PRE_GPT2, {RE_GPT2}},
    {"starcoder|refact|command-r|smollm|codeshell|exaone|minerva-7b|granite", TOK_PRE_STARCODER,
     {"\\p{N}", RE_GPT2}},
    {"falcon", TOK_PRE_FALCON,
     {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}},
    {"deepseek-llm", TOK_PRE_DEEPSEEK_LLM,
     {"[\\r\\n]", RE_DS_LETTERS, RE_DS_PUNCT, "\\s+$", RE_DS_CJK, "\\p{N}+"}},
    {"deepseek-coder", TOK_PRE_DEEPSEEK_CODER,
     {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RE_DS_CJK, "\\p{N}"}},
    {"deepseek-v3", TOK_PRE_DEEPSEEK3_LLM,
     {"\\p{N}{1,3}", "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
};

void tok_pre_free(lmm_tokenizer *t) {
    for (uint32_t i = 0; i < t->n_pre_regex; i++) pcre2_code_free(t->pre_regex[i]);
    t->n_pre_regex = 0;
}

void *tok_regex_compile(const char *pattern, size_t len, const char *file) {
    int err;
    PCRE2_SIZE erroff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, len, PCRE2_UTF | PCRE2_UCP, &err, &erroff, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        lmm_error_set("%s: pattern '%.60s': %s at offset %zu", file, pattern, (const char *)msg, (size_t)erroff);
        return NULL;
    }
    /* JIT is an optimisation only: the interpreter gives the same matches */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    return re;
}

int tok_pre_add_mode(lmm_tokenizer *t, const char *pattern, size_t len, bool literal,
                     tok_split_mode mode, const char *file) {
    if (t->n_pre_regex >= MAX_REGEX) {
        return lmm_error_set("%s: more than %zu pre-tokenizer patterns", file, MAX_REGEX);
    }
    pcre2_code *re;
    if (literal) {
        int err;
        PCRE2_SIZE erroff;
        re = pcre2_compile((PCRE2_SPTR)pattern, len, PCRE2_UTF | PCRE2_LITERAL, &err, &erroff, NULL);
        if (!re) return lmm_error_set("%s: cannot compile split string '%.40s'", file, pattern);
    } else if (!(re = tok_regex_compile(pattern, len, file))) {
        return -1;
    }
    t->pre_mode[t->n_pre_regex] = (uint8_t)mode;
    t->pre_regex[t->n_pre_regex++] = re;
    return 0;
}

int tok_pre_add(lmm_tokenizer *t, const char *pattern, size_t len, bool literal, bool isolated,
                const char *file) {
    return tok_pre_add_mode(t, pattern, len, literal, isolated ? TOK_SPLIT_ISOLATED : TOK_SPLIT_REMOVED, file);
}

int tok_pre_add_regex(lmm_tokenizer *t, const char *pattern, size_t len, const char *file) {
    return tok_pre_add_mode(t, pattern, len, false, TOK_SPLIT_ISOLATED, file);
}

static int name_in(const char *names, const char *name) {
    size_t n = strlen(name);
    for (const char *p = names; *p;) {
        const char *e = strchr(p, '|');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && memcmp(p, name, n) == 0) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

int tok_pre_preset(lmm_tokenizer *t, const char *name, const char *file) {
    for (size_t i = 0; i < sizeof PRESETS / sizeof PRESETS[0]; i++) {
        if (!name_in(PRESETS[i].names, name)) continue;
        tok_pre_free(t);
        t->pre = PRESETS[i].pre;
        for (size_t k = 0; k < MAX_REGEX && PRESETS[i].re[k]; k++) {
            if (tok_pre_add_regex(t, PRESETS[i].re[k], strlen(PRESETS[i].re[k]), file)) return -1;
        }
        return 0;
    }
    return lmm_error_set("%s: unknown pre-tokenizer '%s'", file, name);
}

typedef struct {
    const lmm_tokenizer *t;
    pcre2_match_data *md[MAX_REGEX];
    tok_word_fn fn;
    void *ctx;
} split_state;

static int split_level(split_state *st, uint32_t level, const char *s, size_t n) {
    if (n == 0) return 0;
    if (level == st->t->n_pre_regex) return st->fn(st->ctx, s, n);
    const pcre2_code *re = st->t->pre_regex[level];
    pcre2_match_data *md = st->md[level];
    size_t last = 0, off = 0;
    while (off < n) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, n, off, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return lmm_error_set("%s tokenizer: pre-tokenizer match failed: %s", st->t->name,
                                 (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me == ms) { /* empty match: move on by one character */
            off = ms + tok_utf8_len_lead((const unsigned char *)s + ms, n - ms);
            continue;
        }
        uint8_t mode = st->t->pre_mode[level];
        if (mode != TOK_SPLIT_MATCHES_ONLY && ms > last && split_level(st, level + 1, s + last, ms - last))
            return -1;
        if (mode != TOK_SPLIT_REMOVED && split_level(st, level + 1, s + ms, me - ms)) return -1;
        last = off = me;
    }
    if (n > last && st->t->pre_mode[level] != TOK_SPLIT_MATCHES_ONLY) {
        return split_level(st, level + 1, s + last, n - last);
    }
    return 0;
}

int tok_pre_split(const lmm_tokenizer *t, const char *s, size_t n, tok_word_fn fn, void *ctx) {
    split_state st = {t, {0}, fn, ctx};
    int rc = 0;
    for (uint32_t i = 0; i < t->n_pre_regex; i++) {
        st.md[i] = pcre2_match_data_create_from_pattern(t->pre_regex[i], NULL);
        if (!st.md[i]) rc = lmm_error_set("out of memory");
    }
    if (rc == 0) rc = split_level(&st, 0, s, n);
    for (uint32_t i = 0; i < t->n_pre_regex; i++) pcre2_match_data_free(st.md[i]);
    return rc;
}
