/* tests/tokenizer/test_tok_robust.c — bad input and big input, for every kind of
 * tokenizer: invalid UTF-8 is an error naming the offset, NUL bytes are text, ids
 * out of range are errors, malformed or truncated tokenizer files fail with a
 * message (never a crash), and a 100 MB text is encoded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lmm/error.h"
#include "lmm/tokenizer.h"
#include "test_util.h"

static const char *FILES[] = {
    "models/stories260K/tok512.bin",
    "models/stories260K/tok512.model",
    "tokenizers/hf/llama2/tokenizer.model",
    "tokenizers/hf/llama3/tokenizer.json",
    "tokenizers/hf/qwen3/tokenizer.json",
    "tokenizers/hf/mistral-7b-v0.1/tokenizer.json",
    "tokenizers/gguf-vocab/ggml-vocab-gpt-2.gguf",
    "tokenizers/gguf-vocab/ggml-vocab-bert-bge.gguf",
    "tokenizers/gguf-vocab/ggml-vocab-nomic-bert-moe.gguf",
};
#define N_FILES (sizeof FILES / sizeof FILES[0])

static lmm_tokenizer *load(const char *rel) {
    char path[1024];
    if (!test_shared_file(path, sizeof path, rel)) return NULL;
    lmm_tokenizer *t = NULL;
    if (lmm_tokenizer_load_file(&t, path)) fail_msg("%s: %s", rel, lmm_error_get());
    return t;
}

static void test_invalid_utf8(void **state) {
    (void)state;
    static const struct {
        const char *s;
        size_t len, off;
    } bad[] = {
        {"abc\xff", 4, 3},           /* never valid */
        {"\x80x", 2, 0},             /* stray continuation */
        {"ab\xc3", 3, 2},            /* truncated 2-byte */
        {"\xe2\x82", 2, 0},          /* truncated 3-byte */
        {"\xc0\xaf", 2, 0},          /* overlong */
        {"\xe0\x80\xaf", 3, 0},      /* overlong */
        {"\xed\xa0\x80", 3, 0},      /* surrogate */
        {"x\xf4\x90\x80\x80", 5, 1}, /* above U+10FFFF */
        {"ok \xf8\x88\x80\x80\x80", 8, 3},
    };
    int loaded = 0;
    for (size_t f = 0; f < N_FILES; f++) {
        lmm_tokenizer *t = load(FILES[f]);
        if (!t) continue;
        loaded++;
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            uint32_t ids[64];
            size_t n = 99;
            assert_int_equal(lmm_tokenizer_encode(t, bad[i].s, bad[i].len, 0, ids, 64, &n), -1);
            char want[64];
            snprintf(want, sizeof want, "offset %zu", bad[i].off);
            if (!strstr(lmm_error_get(), want)) fail_msg("%s: '%s' lacks '%s'", FILES[f], lmm_error_get(), want);
        }
        lmm_tokenizer_free(t);
    }
    if (!loaded) skip();
}

static void test_nul_and_empty(void **state) {
    (void)state;
    int loaded = 0;
    for (size_t f = 0; f < N_FILES; f++) {
        lmm_tokenizer *t = load(FILES[f]);
        if (!t) continue;
        loaded++;
        uint32_t ids[64];
        size_t n = 99;
        /* empty text: no ids, or just BOS/EOS */
        assert_int_equal(lmm_tokenizer_encode(t, NULL, 0, 0, ids, 64, &n), 0);
        assert_int_equal(n, 0);
        assert_int_equal(lmm_tokenizer_encode(t, "", 0, LMM_TOK_ADD_SPECIAL, ids, 64, &n), 0);
        assert_true(n <= 2);
        /* NUL bytes are text: encoding succeeds, ids are in range */
        static const char nul[] = "a\0b\0\0c";
        assert_int_equal(lmm_tokenizer_encode(t, nul, sizeof nul - 1, 0, ids, 64, &n), 0);
        assert_true(n <= 64);
        for (size_t i = 0; i < n; i++) assert_true(ids[i] < lmm_tokenizer_vocab_size(t));
        char buf[256];
        size_t len;
        assert_int_equal(lmm_tokenizer_decode(t, ids, n, buf, sizeof buf, &len), 0);
        assert_true(len < sizeof buf);
        lmm_tokenizer_free(t);
    }
    if (!loaded) skip();
}

static void test_decode_errors(void **state) {
    (void)state;
    int loaded = 0;
    for (size_t f = 0; f < N_FILES; f++) {
        lmm_tokenizer *t = load(FILES[f]);
        if (!t) continue;
        loaded++;
        uint32_t v = lmm_tokenizer_vocab_size(t);
        char buf[64];
        size_t len;
        uint32_t ids[] = {v - 1, v, UINT32_MAX};
        assert_int_equal(lmm_tokenizer_decode(t, ids, 3, buf, sizeof buf, &len), -1);
        assert_non_null(strstr(lmm_error_get(), "out of range"));
        assert_int_equal(lmm_tokenizer_decode_token(t, UINT32_MAX, UINT32_MAX, buf, sizeof buf, &len), -1);
        /* every id decodes without error into a big enough buffer; a zero-size
         * buffer reports the size needed */
        for (uint32_t id = 0; id < v; id += 1 + v / 4000) {
            char big[4096];
            if (lmm_tokenizer_decode_token(t, 0, id, big, sizeof big, &len)) fail_msg("%s id %u: %s", FILES[f], id, lmm_error_get());
            size_t need;
            int rc = lmm_tokenizer_decode_token(t, 0, id, NULL, 0, &need);
            assert_int_equal(need, len);
            assert_int_equal(rc, len ? -1 : 0);
        }
        /* whole-sequence decode into a short buffer: the full length is reported */
        uint32_t seq[8];
        size_t n;
        assert_int_equal(lmm_tokenizer_encode(t, "hello world again", 17, 0, seq, 8, &n), 0);
        if (n > 8) n = 8;
        size_t full;
        assert_int_equal(lmm_tokenizer_decode(t, seq, n, buf, sizeof buf, &full), 0);
        assert_int_equal(lmm_tokenizer_decode(t, seq, n, buf, 3, &len), 0);
        assert_int_equal(len, full);
        lmm_tokenizer_free(t);
    }
    if (!loaded) skip();
}

/* Writes the first N bytes of SRC (or BYTES) to DST. */
static void write_file(const char *dst, const void *data, size_t n) {
    FILE *f = fopen(dst, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

static char *slurp(const char *path, size_t *n) {
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)sz + 1);
    assert_int_equal(fread(b, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    *n = (size_t)sz;
    return b;
}

static void test_truncated_files(void **state) {
    (void)state;
    char dir[512];
    assert_non_null(test_tmpdir(dir, sizeof dir));
    int tried = 0;
    for (size_t f = 0; f < N_FILES; f++) {
        char src[1024];
        if (!test_shared_file(src, sizeof src, FILES[f])) continue;
        size_t n = 0;
        char *data = slurp(src, &n);
        assert_non_null(data);
        const char *base = strrchr(FILES[f], '/') + 1;
        char dst[1200];
        snprintf(dst, sizeof dst, "%s/%s", dir, base);
        /* cut at a spread of lengths, and flip bytes in the header region */
        size_t cuts[] = {0, 1, 3, 7, 16, 100, n / 3, n / 2, n - 1};
        for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
            if (cuts[k] >= n) continue;
            write_file(dst, data, cuts[k]);
            lmm_tokenizer *t = NULL;
            int rc = lmm_tokenizer_load_file(&t, dst);
            if (rc == 0) { /* a cut that is still a valid file (protobuf, llama2.c): must work */
                uint32_t ids[16];
                size_t m;
                (void)lmm_tokenizer_encode(t, "hello", 5, 0, ids, 16, &m);
                lmm_tokenizer_free(t);
            } else {
                assert_null(t);
                assert_true(strlen(lmm_error_get()) > 0);
            }
            tried++;
        }
        /* byte flips: small files only (each load of a big one takes a while) */
        for (size_t k = 0; k < 64 && k < n && n < (1u << 20); k++) {
            char *mut = malloc(n);
            memcpy(mut, data, n);
            mut[(k * 7919) % (n < 4096 ? n : 4096)] ^= (char)(1 + k);
            write_file(dst, mut, n);
            free(mut);
            lmm_tokenizer *t = NULL;
            if (lmm_tokenizer_load_file(&t, dst) == 0) {
                uint32_t ids[64];
                size_t m;
                (void)lmm_tokenizer_encode(t, "Hello, world! 123", 17, LMM_TOK_PARSE_SPECIAL, ids, 64, &m);
                lmm_tokenizer_free(t);
            }
            tried++;
        }
        remove(dst);
        free(data);
    }
    rmdir(dir);
    if (!tried) skip();
}

static void test_malformed_json(void **state) {
    (void)state;
    static const char *cases[] = {
        "",
        "{",
        "[]",
        "{\"model\": 1}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": []}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 2000000000}}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": \"x\"}}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a\", 3, [\"a\"]]}}",
        "{\"model\": {\"type\": \"Unigram\", \"vocab\": [[1, 2]]}}",
        "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}",
        "{\"model\": {\"type\": \"WordLevel\", \"vocab\": {\"a\": 0}}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"added_tokens\": [{\"id\": 5}]}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"pre_tokenizer\": {\"type\": \"Split\", "
        "\"pattern\": {\"Regex\": \"(unclosed\"}, \"behavior\": \"Isolated\"}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"normalizer\": {\"type\": \"Nope\"}}",
        "{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", 0.5]]}, \"normalizer\": {\"type\": "
        "\"Precompiled\", \"precompiled_charsmap\": \"!!!!\"}}",
    };
    char dir[512], path[600];
    assert_non_null(test_tmpdir(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_file(path, cases[i], strlen(cases[i]));
        lmm_tokenizer *t = NULL;
        int rc = lmm_tokenizer_load_file(&t, path);
        if (rc == 0) fail_msg("case %zu loaded: %s", i, cases[i]);
        assert_null(t);
        assert_non_null(strstr(lmm_error_get(), "tokenizer.json"));
    }
    /* a minimal valid one works */
    static const char ok[] = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, "
                             "\"merges\": [\"a b\"]}}";
    write_file(path, ok, sizeof ok - 1);
    lmm_tokenizer *t = NULL;
    assert_int_equal(lmm_tokenizer_load_file(&t, path), 0);
    uint32_t ids[8];
    size_t n;
    assert_int_equal(lmm_tokenizer_encode(t, "abab", 4, 0, ids, 8, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 2);
    assert_int_equal(ids[1], 2);
    lmm_tokenizer_free(t);
    /* garbage that is neither protobuf nor llama2.c */
    snprintf(path, sizeof path, "%s/tokenizer.model", dir);
    static const char junk[] = "\x0a\xff\xff\xff\xff\x0f junk";
    write_file(path, junk, sizeof junk - 1);
    assert_int_equal(lmm_tokenizer_load_file(&t, path), -1);
    remove(path);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    remove(path);
    rmdir(dir);
    assert_int_equal(lmm_tokenizer_load_file(&t, "/nonexistent/tokenizer.json"), -1);
}

/* 100 MB of mixed text is encoded; a run with no possible token boundary longer
 * than the limit is a clear error, not an exhausted machine. */
static void test_big_input(void **state) {
    (void)state;
    lmm_tokenizer *t = load("models/stories260K/tok512.bin");
    if (!t) skip();
    const size_t len = 100u << 20;
    char *text = malloc(len);
    assert_non_null(text);
    static const char chunk[] = "Once upon a time, there was a little girl named Lily. 日本語 🦙\n\t  42 ";
    for (size_t i = 0; i < len; i++) text[i] = chunk[i % (sizeof chunk - 1)];
    size_t cut = len;
    while (cut > 0 && ((unsigned char)text[cut - 1] & 0xC0) == 0x80) cut--;      /* no split character */
    if (cut > 0 && (unsigned char)text[cut - 1] >= 0xC0) cut--;
    size_t n = 0;
    assert_int_equal(lmm_tokenizer_encode(t, text, cut, 0, NULL, 0, &n), 0);
    assert_true(n > cut / 8);
    lmm_tokenizer_free(t);

    t = load("tokenizers/gguf-vocab/ggml-vocab-gpt-2.gguf");
    if (t) {
        /* 8 MB through byte-level BPE */
        assert_int_equal(lmm_tokenizer_encode(t, text, 8u << 20, 0, NULL, 0, &n), 0);
        assert_true(n > 0);
        /* 100 MB of one letter: one "word" that no cut can split */
        memset(text, 'a', len);
        assert_int_equal(lmm_tokenizer_encode(t, text, len, 0, NULL, 0, &n), -1);
        assert_non_null(strstr(lmm_error_get(), "boundary"));
        lmm_tokenizer_free(t);
    }
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_utf8),     cmocka_unit_test(test_nul_and_empty),
        cmocka_unit_test(test_decode_errors),    cmocka_unit_test(test_truncated_files),
        cmocka_unit_test(test_malformed_json),   cmocka_unit_test(test_big_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
