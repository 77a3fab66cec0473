/* tests/tokenizer/test_lmtok.c — the lmtok command line: --encode TEXT / - (stdin,
 * byte-exact), --decode, --add-special, --parse-special, --model, and its errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lmm/tokenizer.h"
#include "test_util.h"

static char tmp[512];

static int setup(void **state) {
    (void)state;
    return test_tmpdir(tmp, sizeof tmp) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

/* Runs lmtok ARGS with stdin from IN (len bytes, or /dev/null when NULL); returns
 * the exit status and the output in *out (malloc'd, NUL-terminated). */
static int lmtok(const char *args, const char *in, size_t in_len, char **out, size_t *out_len) {
    char bin[1024], inp[700], outp[700], cmd[8192];
    test_bin(bin, sizeof bin, "lmtok");
    snprintf(inp, sizeof inp, "%s/stdin", tmp);
    snprintf(outp, sizeof outp, "%s/stdout", tmp);
    FILE *f = fopen(inp, "wb");
    assert_non_null(f);
    if (in) assert_int_equal(fwrite(in, 1, in_len, f), in_len);
    fclose(f);
    snprintf(cmd, sizeof cmd, "'%s' %s < '%s' > '%s' 2>'%s/stderr'", bin, args, inp, outp, tmp);
    int st = system(cmd);
    f = fopen(outp, "rb");
    assert_non_null(f);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    n = fread(buf, 1, cap, f);
    fclose(f);
    buf[n] = 0;
    *out = buf;
    if (out_len) *out_len = n;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_encode_decode(void **state) {
    (void)state;
    char tok[1024], args[4096];
    if (!test_shared_file(tok, sizeof tok, "models/stories260K/tok512.bin")) skip();
    char *out;
    snprintf(args, sizeof args, "--tokenizer '%s' --encode 'Once upon a time'", tok);
    assert_int_equal(lmtok(args, NULL, 0, &out, NULL), 0);
    assert_string_equal(out, "403 407 261 378\n");
    free(out);
    snprintf(args, sizeof args, "--tokenizer '%s' --encode 'Once upon a time' --add-special", tok);
    assert_int_equal(lmtok(args, NULL, 0, &out, NULL), 0);
    assert_string_equal(out, "1 403 407 261 378\n");
    free(out);
    snprintf(args, sizeof args, "--tokenizer '%s' --decode '403 407 261 378'", tok);
    size_t n;
    assert_int_equal(lmtok(args, NULL, 0, &out, &n), 0);
    assert_int_equal(n, 16);
    assert_memory_equal(out, "Once upon a time", 16);
    free(out);
    /* empty text: an empty line */
    snprintf(args, sizeof args, "--tokenizer '%s' --encode ''", tok);
    assert_int_equal(lmtok(args, NULL, 0, &out, NULL), 0);
    assert_string_equal(out, "\n");
    free(out);
}

static void test_stdin_exact(void **state) {
    (void)state;
    char tok[1024], args[4096];
    if (!test_shared_file(tok, sizeof tok, "tokenizers/hf/llama3/tokenizer.json")) skip();
    lmm_tokenizer *t;
    assert_int_equal(lmm_tokenizer_load_file(&t, tok), 0);
    /* trailing newlines, leading spaces and a NUL byte all reach the tokenizer */
    static const char text[] = "  hello\n\tworld\0x\n\n";
    uint32_t ids[64];
    size_t n;
    assert_int_equal(lmm_tokenizer_encode(t, text, sizeof text - 1, 0, ids, 64, &n), 0);
    char want[1024] = "";
    for (size_t i = 0; i < n; i++) snprintf(want + strlen(want), sizeof want - strlen(want), i ? " %u" : "%u", ids[i]);
    strcat(want, "\n");
    char *out;
    snprintf(args, sizeof args, "--tokenizer '%s' --encode -", tok);
    assert_int_equal(lmtok(args, text, sizeof text - 1, &out, NULL), 0);
    assert_string_equal(out, want);
    free(out);
    /* and --decode gives the bytes back */
    char list[1024] = "";
    for (size_t i = 0; i < n; i++) snprintf(list + strlen(list), sizeof list - strlen(list), " %u", ids[i]);
    snprintf(args, sizeof args, "--tokenizer '%s' --decode '%s'", tok, list);
    size_t len;
    assert_int_equal(lmtok(args, NULL, 0, &out, &len), 0);
    assert_int_equal(len, sizeof text - 1);
    assert_memory_equal(out, text, len);
    free(out);
    lmm_tokenizer_free(t);
}

static void test_special(void **state) {
    (void)state;
    char tok[1024], args[4096];
    if (!test_shared_file(tok, sizeof tok, "tokenizers/hf/qwen3/tokenizer.json")) skip();
    char *out;
    snprintf(args, sizeof args, "--tokenizer '%s' --encode '<|im_start|>user' --parse-special", tok);
    assert_int_equal(lmtok(args, NULL, 0, &out, NULL), 0);
    assert_string_equal(out, "151644 872\n");
    free(out);
    /* without --parse-special the text is plain text */
    snprintf(args, sizeof args, "--tokenizer '%s' --encode '<|im_start|>user'", tok);
    assert_int_equal(lmtok(args, NULL, 0, &out, NULL), 0);
    assert_null(strstr(out, "151644"));
    assert_true(strlen(out) > 8);
    free(out);
}

static void test_model(void **state) {
    (void)state;
    char model[1024], args[2048];
    if (!test_shared_file(model, sizeof model, "models/stories260K/stories260K.bin")) skip();
    char *out;
    /* the tokenizer that sits beside the model */
    snprintf(args, sizeof args, "--model '%s' --encode 'Once upon a time' --add-special", model);
    int rc = lmtok(args, NULL, 0, &out, NULL);
    if (rc == 0) assert_string_equal(out, "1 403 407 261 378\n");
    free(out);
    assert_int_equal(rc, 0);
    /* a vocabulary-only GGUF given as --model */
    if (!test_shared_file(model, sizeof model, "tokenizers/gguf-vocab/ggml-vocab-gpt-2.gguf")) return;
    snprintf(args, sizeof args, "--model '%s' --encode 'Hello world'", model);
    assert_int_equal(lmtok(args, NULL, 0, &out, NULL), 0);
    assert_string_equal(out, "15496 995\n");
    free(out);
}

static void test_errors(void **state) {
    (void)state;
    char tok[1024], args[4096];
    if (!test_shared_file(tok, sizeof tok, "models/stories260K/tok512.bin")) skip();
    char *out;
    snprintf(args, sizeof args, "--tokenizer '%s' --decode '1 2 99999'", tok);
    assert_int_equal(lmtok(args, NULL, 0, &out, NULL), 1);
    free(out);
    snprintf(args, sizeof args, "--tokenizer '%s' --decode '1 x'", tok);
    assert_int_equal(lmtok(args, NULL, 0, &out, NULL), 1);
    free(out);
    snprintf(args, sizeof args, "--tokenizer '%s' --encode -", tok);
    assert_int_equal(lmtok(args, "bad \xff utf-8", 12, &out, NULL), 1);
    free(out);
    assert_int_equal(lmtok("--tokenizer /nonexistent --encode hi", NULL, 0, &out, NULL), 1);
    free(out);
    assert_int_equal(lmtok("--encode hi", NULL, 0, &out, NULL), 2);
    free(out);
    snprintf(args, sizeof args, "--tokenizer '%s' --bogus", tok);
    assert_int_equal(lmtok(args, NULL, 0, &out, NULL), 2);
    free(out);
    /* the message names the problem */
    char errp[700];
    snprintf(errp, sizeof errp, "%s/stderr", tmp);
    snprintf(args, sizeof args, "--tokenizer '%s' --decode 70000", tok);
    assert_int_equal(lmtok(args, NULL, 0, &out, NULL), 1);
    free(out);
    FILE *f = fopen(errp, "r");
    char line[512] = "";
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    assert_non_null(strstr(line, "out of range"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_decode), cmocka_unit_test(test_stdin_exact),
        cmocka_unit_test(test_special),       cmocka_unit_test(test_model),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
