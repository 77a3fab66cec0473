/* tests/tokenizer/test_tok_golden.c — every tokenizer file in ../shared against ids
 * from the reference implementations (tests/tokenizer/gen: Hugging Face tokenizers
 * through transformers.js, SentencePiece through python3-sentencepiece), on the
 * gguf-vocab .inp texts plus data/extra.inp; exact match required. Where the
 * tokenizer is lossless, decoding the ids must give the text back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <utf8proc.h>

#include "lmm/error.h"
#include "lmm/tokenizer.h"
#include "test_util.h"
#include "tok_vectors.h"

enum {
    LOSSY = 0,
    LOSSLESS = 1,
    LOSSLESS_NFC = 2,  /* lossless on NFC text */
    LOSSLESS_SPM = 3   /* lossless on text without U+2581, which means ' ' to SentencePiece */
};

typedef struct {
    const char *golden;   /* data/<golden>.out */
    const char *file;     /* tokenizer, relative to ../shared */
    unsigned flags;
    int lossless;
} golden_case;

static const golden_case CASES[] = {
    {"hf-llama3", "tokenizers/hf/llama3/tokenizer.json", LMM_TOK_PARSE_SPECIAL, LOSSLESS},
    {"hf-llama3", "tokenizers/gguf-vocab/ggml-vocab-llama-bpe.gguf", LMM_TOK_PARSE_SPECIAL, LOSSLESS},
    {"hf-qwen3", "tokenizers/hf/qwen3/tokenizer.json", LMM_TOK_PARSE_SPECIAL, LOSSLESS_NFC},
    {"hf-mistral-7b-v0.1", "tokenizers/hf/mistral-7b-v0.1/tokenizer.json", LMM_TOK_PARSE_SPECIAL, LOSSLESS_SPM},
    {"gguf-gpt-2", "tokenizers/gguf-vocab/ggml-vocab-gpt-2.gguf", LMM_TOK_PARSE_SPECIAL, LOSSLESS},
    {"gguf-qwen2", "tokenizers/gguf-vocab/ggml-vocab-qwen2.gguf", LMM_TOK_PARSE_SPECIAL, LOSSLESS_NFC},
    {"gguf-bert-bge", "tokenizers/gguf-vocab/ggml-vocab-bert-bge.gguf", LMM_TOK_PARSE_SPECIAL, LOSSY},
    {"spm-llama2", "tokenizers/hf/llama2/tokenizer.model", 0, LOSSLESS_SPM},
    {"spm-llama2", "tokenizers/gguf-vocab/ggml-vocab-llama-spm.gguf", 0, LOSSLESS_SPM},
    {"spm-llama2", "models/llama2c-tokenizer.bin", 0, LOSSLESS},
    {"spm-tok512", "models/stories260K/tok512.model", 0, LOSSY},
    {"llama2c-tok512", "models/stories260K/tok512.bin", 0, LOSSLESS},
    {"gguf-nomic-bert-moe", "tokenizers/gguf-vocab/ggml-vocab-nomic-bert-moe.gguf", 0, LOSSY},
    /* "@": small tokenizer.json files of this repository (data/mini, gen_mini.py) */
    {"mini-wordpiece", "@mini/wordpiece/tokenizer.json", LMM_TOK_PARSE_SPECIAL, LOSSY},
    {"mini-unigram", "@mini/unigram/tokenizer.json", LMM_TOK_PARSE_SPECIAL, LOSSY},
    {"mini-bpe-chars", "@mini/bpe-chars/tokenizer.json", LMM_TOK_PARSE_SPECIAL, LOSSY},
};

/* Texts where the reference is not what we compare against, and why. */
typedef struct {
    const char *file;     /* tokenizer file (suffix) */
    const char *contains; /* texts containing this */
    const char *why;
} deviation;

static const deviation DEVIATIONS[] = {
    /* llama2.c's .bin stores spaces as ' ', so a literal U+2581 in the text is no
     * space to llama2.c (byte fallback), while SentencePiece, which made the golden
     * ids, reads U+2581 as a space */
    {"llama2c-tokenizer.bin", "\xe2\x96\x81", "U+2581 is not a space to llama2.c"},
    {"tok512.bin", "\xe2\x96\x81", "U+2581 is not a space to llama2.c"},
    /* transformers.js's BertNormalizer works on UTF-16 units: it does not see CJK
     * Extension B (U+20000..) as CJK and keeps unassigned code points; Hugging Face's
     * Rust BertNormalizer and BERT's BasicTokenizer split the former and drop the
     * latter (category Cn), as we do */
    {"ggml-vocab-bert-bge.gguf", "\xf0\xa0\x80\x80", "CJK Extension B (transformers.js)"},
    {"ggml-vocab-bert-bge.gguf", "\xef\xbf\xbf", "unassigned U+FFFF (transformers.js)"},
    {"ggml-vocab-bert-bge.gguf", "\xf4\x8f\xbf\xbf", "unassigned U+10FFFF (transformers.js)"},
    /* JavaScript's \s has U+FEFF and lacks U+0085; Unicode White_Space (Hugging Face's
     * Rust regex, PCRE2) is the other way round */
    {"mini/bpe-chars/tokenizer.json", "\xef\xbb\xbf", "U+FEFF is no whitespace (transformers.js \\s)"},
    {"mini/bpe-chars/tokenizer.json", "\xc2\x85", "U+0085 is whitespace (transformers.js \\s)"},
    {"mini/wordpiece/tokenizer.json", "\xf0\xa0\x80\x80", "CJK Extension B (transformers.js)"},
    {"mini/wordpiece/tokenizer.json", "\xef\xbf\xbf", "unassigned U+FFFF (transformers.js)"},
    {"mini/wordpiece/tokenizer.json", "\xf4\x8f\xbf\xbf", "unassigned U+10FFFF (transformers.js)"},
};

static const char *deviates(const golden_case *c, const char *text, size_t len) {
    size_t fl = strlen(c->file);
    for (size_t i = 0; i < sizeof DEVIATIONS / sizeof DEVIATIONS[0]; i++) {
        const deviation *d = &DEVIATIONS[i];
        size_t dl = strlen(d->file);
        if (fl < dl || strcmp(c->file + fl - dl, d->file) != 0) continue;
        if (memmem(text, len, d->contains, strlen(d->contains))) return d->why;
    }
    return NULL;
}

/* The test texts: ../shared's .inp texts, then data/extra.inp. */
static int load_texts(tv_set *s, const char *golden, char *err, size_t errcap) {
    memset(s, 0, sizeof *s);
    char inp[1024], extra[1200], out[1200], dir[1024];
    if (!test_shared_file(inp, sizeof inp, "tokenizers/gguf-vocab/ggml-vocab-llama-spm.gguf.inp")) {
        snprintf(err, errcap, "no .inp texts in ../shared");
        return -1;
    }
    const char *src = getenv("LMM_SOURCE_DIR");
    snprintf(dir, sizeof dir, "%s/tests/tokenizer/data", src && *src ? src : ".");
    snprintf(extra, sizeof extra, "%s/extra.inp", dir);
    snprintf(out, sizeof out, "%s/%s.out", dir, golden);
    /* concatenate the two text files into one set, ids from the golden file */
    size_t a_len, b_len;
    char *a = tv_read(inp, &a_len), *b = tv_read(extra, &b_len);
    if (!a || !b) {
        free(a);
        free(b);
        snprintf(err, errcap, "cannot read %s", extra);
        return -1;
    }
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s/lmm-golden-%d.inp", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(a);
        free(b);
        snprintf(err, errcap, "cannot write %s", tmp);
        return -1;
    }
    fwrite(a, 1, a_len, f);
    fwrite(b, 1, b_len, f);
    fclose(f);
    free(a);
    free(b);
    int rc = tv_load(s, tmp, out);
    remove(tmp);
    if (rc) snprintf(err, errcap, "cannot load %s with its texts", out);
    return rc;
}

static int is_nfc(const char *s, size_t n) {
    utf8proc_uint8_t *d = NULL;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &d,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    int same = r >= 0 && (size_t)r == n && memcmp(d, s, n) == 0;
    free(d);
    return same;
}

static void run_case(const golden_case *c) {
    char path[1024], err[2048];
    if (c->file[0] == '@') {
        const char *src = getenv("LMM_SOURCE_DIR");
        snprintf(path, sizeof path, "%s/tests/tokenizer/data/%s", src && *src ? src : ".", c->file + 1);
    } else if (!test_shared_file(path, sizeof path, c->file)) {
        skip();
    }
    tv_set s = {0};
    if (load_texts(&s, c->golden, err, sizeof err)) {
        fprintf(stderr, "SKIP: %s\n", err);
        skip();
    }
    lmm_tokenizer *t = NULL;
    if (lmm_tokenizer_load_file(&t, path)) fail_msg("%s: %s", c->file, lmm_error_get());
    int fails = 0, rt = 0, rt_fails = 0, skipped = 0;
    for (size_t i = 0; i < s.n; i++) {
        const char *why = deviates(c, s.text[i], s.len[i]);
        if (why) {
            skipped++;
            fprintf(stderr, "%s: text %zu not compared: %s\n", c->file, i, why);
            continue;
        }
        size_t cap = s.len[i] + 8, n = 0;
        uint32_t *ids = malloc(cap * sizeof *ids);
        int rc = lmm_tokenizer_encode(t, s.text[i], s.len[i], c->flags, ids, cap, &n);
        int ok = rc == 0 && n == s.n_ids[i] && (n == 0 || memcmp(ids, s.ids[i], n * sizeof *ids) == 0);
        if (!ok) {
            if (fails++ < 5) {
                fprintf(stderr, "%s: text %zu '%.*s'\n  want:", c->file, i, (int)s.len[i], s.text[i]);
                for (size_t k = 0; k < s.n_ids[i]; k++) fprintf(stderr, " %u", s.ids[i][k]);
                fprintf(stderr, "\n  got: ");
                if (rc) fprintf(stderr, " error: %s", lmm_error_get());
                for (size_t k = 0; rc == 0 && k < n && k < cap; k++) fprintf(stderr, " %u", ids[k]);
                fprintf(stderr, "\n");
            }
            free(ids);
            continue;
        }
        /* round trip: lossless tokenizers, texts without control tokens */
        int ctl = 0;
        for (size_t k = 0; k < n; k++) ctl |= lmm_tokenizer_is_control(t, ids[k]);
        int lossless = c->lossless == LOSSLESS || (c->lossless == LOSSLESS_NFC && is_nfc(s.text[i], s.len[i])) ||
                       (c->lossless == LOSSLESS_SPM && !memmem(s.text[i], s.len[i], "\xe2\x96\x81", 3));
        if (lossless && !ctl) {
            size_t len = 0, bcap = s.len[i] * 4 + 16;
            char *buf = malloc(bcap);
            rt++;
            if (lmm_tokenizer_decode(t, ids, n, buf, bcap, &len) || len != s.len[i] ||
                memcmp(buf, s.text[i], len) != 0) {
                if (rt_fails++ < 5)
                    fprintf(stderr, "%s: text %zu '%.*s' decodes to '%.*s'\n", c->file, i, (int)s.len[i],
                            s.text[i], (int)(len < bcap ? len : bcap), buf);
            }
            free(buf);
        }
        free(ids);
    }
    fprintf(stderr, "%-52s %-20s %3zu/%zu match, %d/%d round-trip\n", c->file, c->golden,
            s.n - (size_t)(fails + skipped), s.n - (size_t)skipped, rt - rt_fails, rt);
    lmm_tokenizer_free(t);
    tv_free(&s);
    assert_int_equal(fails, 0);
    assert_int_equal(rt_fails, 0);
}

#define CASE_FN(i) static void test_case_##i(void **state) { (void)state; run_case(&CASES[i]); }
CASE_FN(0) CASE_FN(1) CASE_FN(2) CASE_FN(3) CASE_FN(4) CASE_FN(5) CASE_FN(6)
CASE_FN(7) CASE_FN(8) CASE_FN(9) CASE_FN(10) CASE_FN(11) CASE_FN(12) CASE_FN(13)
CASE_FN(14) CASE_FN(15)

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_case_0), cmocka_unit_test(test_case_1), cmocka_unit_test(test_case_2),
        cmocka_unit_test(test_case_3), cmocka_unit_test(test_case_4), cmocka_unit_test(test_case_5),
        cmocka_unit_test(test_case_6), cmocka_unit_test(test_case_7), cmocka_unit_test(test_case_8),
        cmocka_unit_test(test_case_9), cmocka_unit_test(test_case_10), cmocka_unit_test(test_case_11),
        cmocka_unit_test(test_case_12), cmocka_unit_test(test_case_13), cmocka_unit_test(test_case_14),
        cmocka_unit_test(test_case_15),
    };
    _Static_assert(sizeof CASES / sizeof CASES[0] == 16, "one test per case");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
