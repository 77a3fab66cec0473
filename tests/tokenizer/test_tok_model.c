/* tests/tokenizer/test_tok_model.c — lmm_tokenizer_load_for_model: an explicit
 * path first, else the GGUF metadata, else the file found beside the model; a
 * tokenizer larger than the model's vocabulary is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "lmm/error.h"
#include "lmm/gguf.h"
#include "lmm/model.h"
#include "lmm/tokenizer.h"
#include "test_util.h"

static void test_sources(void **state) {
    (void)state;
    char tok[1024], gguf[1024];
    if (!test_shared_file(tok, sizeof tok, "models/stories260K/tok512.bin")) skip();
    lmm_model_desc d;
    lmm_model_desc_init(&d);
    d.format = LMM_FORMAT_LLAMA2C;
    d.hp.n_vocab = 512;
    lmm_tokenizer *t = NULL;
    /* nothing to go on */
    assert_int_equal(lmm_tokenizer_load_for_model(&t, &d, NULL), -1);
    assert_null(t);
    assert_non_null(strstr(lmm_error_get(), "tokenizer"));
    /* the file beside the model */
    d.tokenizer_path = strdup(tok);
    assert_int_equal(lmm_tokenizer_load_for_model(&t, &d, NULL), 0);
    assert_int_equal(lmm_tokenizer_vocab_size(t), 512);
    assert_int_equal(lmm_tokenizer_bos(t), 1);
    lmm_tokenizer_free(t);
    /* an explicit path wins; a tokenizer with more ids than the model is refused */
    if (test_shared_file(gguf, sizeof gguf, "tokenizers/gguf-vocab/ggml-vocab-llama-spm.gguf")) {
        assert_int_equal(lmm_tokenizer_load_for_model(&t, &d, gguf), -1);
        assert_non_null(strstr(lmm_error_get(), "32000"));
        d.hp.n_vocab = 32000;
        assert_int_equal(lmm_tokenizer_load_for_model(&t, &d, gguf), 0);
        assert_int_equal(lmm_tokenizer_vocab_size(t), 32000);
        lmm_tokenizer_free(t);
        /* GGUF metadata of the model */
        lmm_gguf *g;
        assert_int_equal(lmm_gguf_open(&g, gguf), 0);
        lmm_model_desc e;
        lmm_model_desc_init(&e);
        e.format = LMM_FORMAT_GGUF;
        e.gguf = g;
        e.hp.n_vocab = 32000;
        assert_int_equal(lmm_tokenizer_load_for_model(&t, &e, NULL), 0);
        assert_string_equal(lmm_tokenizer_kind(t), "spm-bpe");
        uint32_t ids[8];
        size_t n;
        assert_int_equal(lmm_tokenizer_encode(t, "Hello world", 11, LMM_TOK_ADD_SPECIAL, ids, 8, &n), 0);
        assert_int_equal(n, 3);
        assert_int_equal(ids[0], 1);
        assert_int_equal(ids[1], 15043);
        assert_int_equal(ids[2], 3186);
        lmm_tokenizer_free(t);
        lmm_model_desc_free(&e); /* frees the gguf */
    }
    lmm_model_desc_free(&d);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_sources)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
