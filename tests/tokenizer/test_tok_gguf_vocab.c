/* tests/tokenizer/test_tok_gguf_vocab.c — every .inp/.out pair under
 * ../shared/tokenizers/gguf-vocab: the tokenizer read from the GGUF metadata must
 * give exactly the expected ids (encoded without special tokens), and decoding
 * must give the input back where the tokenizer is lossless. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>

#include "lmm/error.h"
#include "lmm/tokenizer.h"
#include "test_util.h"
#include "tok_vectors.h"

/* Checks one vocabulary; returns the number of failures. */
static int check_vocab(const char *dir, const char *name, int lossless) {
    char gguf[1400], inp[1500], out[1500];
    snprintf(gguf, sizeof gguf, "%s/%s", dir, name);
    snprintf(inp, sizeof inp, "%s.inp", gguf);
    snprintf(out, sizeof out, "%s.out", gguf);
    tv_set s = {0};
    if (tv_load(&s, inp, out)) return 0; /* no vectors for this vocabulary */
    lmm_tokenizer *t = NULL;
    if (lmm_tokenizer_load_file(&t, gguf)) {
        fprintf(stderr, "%s: %s\n", name, lmm_error_get());
        tv_free(&s);
        return 1;
    }
    int fails = 0, rt_fails = 0;
    for (size_t i = 0; i < s.n; i++) {
        size_t cap = s.len[i] + 8, n = 0;
        uint32_t *ids = malloc(cap * sizeof *ids);
        int rc = lmm_tokenizer_encode(t, s.text[i], s.len[i], 0, ids, cap, &n);
        int ok = rc == 0 && n == s.n_ids[i] && (n == 0 || memcmp(ids, s.ids[i], n * sizeof *ids) == 0);
        if (!ok) {
            fails++;
            fprintf(stderr, "%s: input %zu '%.*s'\n  want:", name, i, (int)s.len[i], s.text[i]);
            for (size_t k = 0; k < s.n_ids[i]; k++) fprintf(stderr, " %u", s.ids[i][k]);
            fprintf(stderr, "\n  got: ");
            if (rc) fprintf(stderr, " error: %s", lmm_error_get());
            for (size_t k = 0; rc == 0 && k < n && k < cap; k++) fprintf(stderr, " %u", ids[k]);
            fprintf(stderr, "\n");
        } else if (lossless) {
            size_t len = 0, bcap = s.len[i] * 4 + 16;
            char *buf = malloc(bcap);
            if (lmm_tokenizer_decode(t, ids, n, buf, bcap, &len) || len != s.len[i] ||
                memcmp(buf, s.text[i], len) != 0) {
                rt_fails++;
                fprintf(stderr, "%s: input %zu '%.*s' decodes to '%.*s'\n", name, i, (int)s.len[i],
                        s.text[i], (int)(len < bcap ? len : bcap), buf);
            }
            free(buf);
        }
        free(ids);
    }
    fprintf(stderr, "%s: %zu/%zu inputs match%s", name, s.n - (size_t)fails, s.n,
            lossless ? "" : "\n");
    if (lossless) fprintf(stderr, ", %zu/%zu round-trip\n", s.n - (size_t)rt_fails, s.n);
    lmm_tokenizer_free(t);
    tv_free(&s);
    return fails + rt_fails;
}

static void test_gguf_vocab(void **state) {
    (void)state;
    char dir[1024];
    if (!test_shared_file(dir, sizeof dir, "tokenizers/gguf-vocab")) skip();
    DIR *d = opendir(dir);
    assert_non_null(d);
    int fails = 0, files = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".gguf") != 0) continue;
        /* WordPiece lower-cases and drops accents: not lossless */
        int lossless = strstr(e->d_name, "bert") == NULL;
        fails += check_vocab(dir, e->d_name, lossless);
        files++;
    }
    closedir(d);
    assert_true(files > 0);
    assert_int_equal(fails, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gguf_vocab),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
