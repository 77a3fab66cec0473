/* tests/tokenizer/test_tok_llama2c.c — llama2.c tokenizer.bin: loading, SentencePiece
 * BPE encoding with byte fallback, decoding, and errors. Expected ids come from
 * SentencePiece itself (python3-sentencepiece on tok512.model and Llama 2's
 * tokenizer.model, the sources of these .bin files). */
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

static lmm_tokenizer *load(const char *rel, uint32_t vocab) {
    char path[1024];
    if (!test_shared_file(path, sizeof path, rel)) return NULL;
    lmm_tokenizer *t = NULL;
    int rc = lmm_tokenizer_load_llama2c(&t, path, vocab);
    if (rc) fprintf(stderr, "%s\n", lmm_error_get());
    assert_int_equal(rc, 0);
    return t;
}

static void expect_ids(const lmm_tokenizer *t, const char *text, unsigned flags,
                       const uint32_t *want, size_t n_want) {
    uint32_t ids[512];
    size_t n = 0;
    assert_int_equal(lmm_tokenizer_encode(t, text, strlen(text), flags, ids, 512, &n), 0);
    assert_int_equal(n, n_want);
    for (size_t i = 0; i < n; i++) {
        if (ids[i] != want[i]) fprintf(stderr, "text '%s': id %zu is %u, want %u\n", text, i, ids[i], want[i]);
        assert_int_equal(ids[i], want[i]);
    }
    /* lossless: decoding gives the text back */
    char buf[4096];
    size_t len = 0;
    assert_int_equal(lmm_tokenizer_decode(t, ids, n, buf, sizeof buf, &len), 0);
    assert_int_equal(len, strlen(text));
    assert_memory_equal(buf, text, len);
}

static const char *STORY =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
    "park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.";

static void test_tok512(void **state) {
    (void)state;
    lmm_tokenizer *t = load("models/stories260K/tok512.bin", 512);
    if (!t) skip();
    assert_int_equal(lmm_tokenizer_vocab_size(t), 512);
    assert_int_equal(lmm_tokenizer_bos(t), 1);
    assert_int_equal(lmm_tokenizer_eos(t), 2);
    static const uint32_t story[] = {
        403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338,
        401, 396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385,
        328, 432, 358, 394, 261, 370, 432, 352, 266, 268, 388, 426, 338, 391, 266, 267,
        337, 335, 312, 432, 398, 312, 286, 267, 414, 270, 333, 415, 426};
    expect_ids(t, STORY, 0, story, sizeof story / sizeof story[0]);
    /* newline and CJK through byte fallback, digits, punctuation (tok512.model normalises
     * whitespace runs, tok512.bin does not: texts here have none) */
    static const uint32_t mixed[] = {259, 424, 414, 262, 427, 412, 331, 419, 13, 416, 411, 424, 421,
                                     271, 411, 259, 412, 430, 410, 233, 154, 168, 233, 159, 175, 443,
                                     410, 475, 479, 472};
    expect_ids(t, "two spaces\nnewline tab 日本! 123", 0, mixed, sizeof mixed / sizeof mixed[0]);
    static const uint32_t punct[] = {317, 439, 419, 400, 428, 336, 467, 313, 440, 417, 443, 436,
                                     410, 479, 410, 496, 410, 479, 410, 64, 410, 484, 426};
    expect_ids(t, "Lily's dog said: \"Hi!\" 2 + 2 = 4.", 0, punct, sizeof punct / sizeof punct[0]);
    /* BOS with --add-special; nothing for empty text */
    uint32_t ids[8];
    size_t n = 9;
    assert_int_equal(lmm_tokenizer_encode(t, "", 0, LMM_TOK_ADD_SPECIAL, ids, 8, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 1);
    assert_int_equal(lmm_tokenizer_encode(t, "", 0, 0, ids, 8, &n), 0);
    assert_int_equal(n, 0);
    /* a short buffer still reports the full count */
    assert_int_equal(lmm_tokenizer_encode(t, STORY, strlen(STORY), 0, ids, 2, &n), 0);
    assert_int_equal(n, sizeof story / sizeof story[0]);
    assert_int_equal(ids[0], 403);
    assert_int_equal(ids[1], 407);
    lmm_tokenizer_free(t);
}

static void test_llama2_vocab(void **state) {
    (void)state;
    lmm_tokenizer *t = load("models/llama2c-tokenizer.bin", 32000);
    if (!t) skip();
    assert_int_equal(lmm_tokenizer_vocab_size(t), 32000);
    static const uint32_t a[] = {1, 306, 4658, 278, 6593, 310, 2834, 338};
    expect_ids(t, "I believe the meaning of life is", LMM_TOK_ADD_SPECIAL, a, 8);
    static const uint32_t b[] = {259, 1023, 29871, 8162, 13, 13, 1482, 1220, 12, 3891, 29871,
                                 30325, 30346, 29871, 243, 162, 169, 156, 921};
    expect_ids(t, "  two  spaces\n\nnewline\ttab 日本 🦙 x", 0, b, sizeof b / sizeof b[0]);
    lmm_tokenizer_free(t);
}

static void test_decode_rules(void **state) {
    (void)state;
    lmm_tokenizer *t = load("models/llama2c-tokenizer.bin", 0);
    if (!t) skip();
    char buf[64];
    size_t len;
    /* the leading space of a piece is dropped after BOS, kept otherwise */
    assert_int_equal(lmm_tokenizer_decode_token(t, 1, 15043, buf, sizeof buf, &len), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(buf, "Hello", 5);
    assert_int_equal(lmm_tokenizer_decode_token(t, 15043, 3186, buf, sizeof buf, &len), 0);
    assert_int_equal(len, 6);
    assert_memory_equal(buf, " world", 6);
    /* <0x0A> is a newline byte; BOS/EOS print nothing */
    assert_int_equal(lmm_tokenizer_decode_token(t, 3186, 13, buf, sizeof buf, &len), 0);
    assert_int_equal(len, 1);
    assert_int_equal(buf[0], '\n');
    assert_int_equal(lmm_tokenizer_decode_token(t, 3186, 2, buf, sizeof buf, &len), 0);
    assert_int_equal(len, 0);
    /* out of range id and too small a buffer are errors */
    assert_int_equal(lmm_tokenizer_decode_token(t, 1, 32000, buf, sizeof buf, &len), -1);
    assert_non_null(strstr(lmm_error_get(), "out of range"));
    assert_int_equal(lmm_tokenizer_decode_token(t, 1, 3186, buf, 2, &len), -1);
    uint32_t bad[] = {1, 15043, 99999};
    assert_int_equal(lmm_tokenizer_decode(t, bad, 3, buf, sizeof buf, &len), -1);
    lmm_tokenizer_free(t);
}

static void test_bad_input(void **state) {
    (void)state;
    lmm_tokenizer *t = load("models/stories260K/tok512.bin", 512);
    if (!t) skip();
    uint32_t ids[64];
    size_t n;
    /* invalid UTF-8: error naming the offset */
    assert_int_equal(lmm_tokenizer_encode(t, "ab\xff", 3, 0, ids, 64, &n), -1);
    assert_non_null(strstr(lmm_error_get(), "offset 2"));
    assert_int_equal(lmm_tokenizer_encode(t, "\xc0\xaf", 2, 0, ids, 64, &n), -1);  /* overlong */
    assert_int_equal(lmm_tokenizer_encode(t, "\xed\xa0\x80", 3, 0, ids, 64, &n), -1); /* surrogate */
    /* NUL bytes are text like any other: byte fallback <0x00> = id 3 */
    assert_int_equal(lmm_tokenizer_encode(t, "a\0b", 3, 0, ids, 64, &n), 0);
    int found = 0;
    for (size_t i = 0; i < n && i < 64; i++) found |= ids[i] == 3;
    assert_true(found);
    char buf[16];
    size_t len;
    assert_int_equal(lmm_tokenizer_decode(t, ids, n, buf, sizeof buf, &len), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(buf, "a\0b", 3);
    lmm_tokenizer_free(t);
}

static void test_malformed_files(void **state) {
    (void)state;
    char dir[512], path[600];
    assert_non_null(test_tmpdir(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/bad.bin", dir);
    lmm_tokenizer *t = NULL;
    /* truncated token, absurd length, too few tokens for the model */
    static const unsigned char trunc[] = {8, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 'a', 'b'};
    static const unsigned char huge[] = {8, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 'a'};
    static const unsigned char small[] = {8, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 'a'};
    const unsigned char *cases[] = {trunc, huge, small};
    size_t sizes[] = {sizeof trunc, sizeof huge, sizeof small};
    for (int i = 0; i < 3; i++) {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        fwrite(cases[i], 1, sizes[i], f);
        fclose(f);
        assert_int_equal(lmm_tokenizer_load_llama2c(&t, path, i == 2 ? 32000 : 0), -1);
        assert_null(t);
        assert_non_null(strstr(lmm_error_get(), "bad.bin"));
    }
    assert_int_equal(lmm_tokenizer_load_llama2c(&t, "/nonexistent/tok.bin", 0), -1);
    remove(path);
    rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tok512),
        cmocka_unit_test(test_llama2_vocab),
        cmocka_unit_test(test_decode_rules),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_malformed_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
