/* tests/model/test_lmlaunch.c — `lmlaunch run` as users run it: the stories260K
 * greedy story, seeded sampling reproducible, --dump-logits identical across thread
 * counts, the --json line, and exit codes/messages for bad input. */
#include <fcntl.h>
#include <json-c/json.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_util.h"

static const char *k_story =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw "
    "a big, red ball. She wanted to play with it, but it was too high.";

static char g_tmp[512];
static char g_model[2048], g_tok[2048];
static int g_have_stories;

typedef struct {
    int status;       /* exit code, or -1 if killed */
    char *out, *err;  /* NUL-terminated, malloc'ed */
    size_t out_len;
} result;

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    p[n] = '\0';
    fclose(f);
    if (len) *len = (size_t)n;
    return p;
}

/* Runs lmlaunch with args (NULL-terminated), capturing stdout and stderr. */
static result run(const char *const *args) {
    char bin[1024], outp[1024], errp[1024];
    test_bin(bin, sizeof bin, "lmlaunch");
    snprintf(outp, sizeof outp, "%s/stdout", g_tmp);
    snprintf(errp, sizeof errp, "%s/stderr", g_tmp);
    char *argv[64];
    int n = 0;
    argv[n++] = bin;
    while (args[n - 1] && n < 63) {
        argv[n] = (char *)args[n - 1];
        n++;
    }
    argv[n] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int o = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0644), e = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0) _exit(126);
        dup2(o, 1);
        dup2(e, 2);
        execv(bin, argv);
        _exit(127);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    result r;
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r.out = slurp(outp, &r.out_len);
    r.err = slurp(errp, NULL);
    assert_int_not_equal(r.status, 127);
    return r;
}

static void result_free(result *r) {
    free(r->out);
    free(r->err);
}

static int setup(void **state) {
    (void)state;
    if (!test_tmpdir(g_tmp, sizeof g_tmp)) return -1;
    g_have_stories = test_shared_file(g_model, sizeof g_model, "models/stories260K/stories260K.bin") &&
                     test_shared_file(g_tok, sizeof g_tok, "models/stories260K/tok512.bin");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_stories_greedy(void **state) {
    (void)state;
    if (!g_have_stories) skip();
    const char *a[] = {"run", "--model", g_model, "--tokenizer", g_tok, "--temperature", "0", "--max-tokens", "200", NULL};
    result r = run(a);
    if (r.status != 0) fail_msg("exit %d: %s", r.status, r.err);
    if (strncmp(r.out, k_story, strlen(k_story)) != 0) fail_msg("got: %s", r.out);
    result_free(&r);
}

static void test_seeded_runs_repeat(void **state) {
    (void)state;
    if (!g_have_stories) skip();
    const char *a[] = {"run", "--model", g_model, "--tokenizer", g_tok, "--prompt", "Once upon a time", "--seed", "1234",
                       "--temperature", "1.0", "--max-tokens", "100", NULL};
    result r1 = run(a), r2 = run(a);
    assert_int_equal(r1.status, 0);
    assert_int_equal(r2.status, 0);
    assert_string_equal(r1.out, r2.out);
    const char *b[] = {"run", "--model", g_model, "--tokenizer", g_tok, "--prompt", "Once upon a time", "--seed", "99",
                       "--temperature", "1.0", "--max-tokens", "100", NULL};
    result r3 = run(b);
    assert_int_equal(r3.status, 0);
    assert_string_not_equal(r1.out, r3.out);
    result_free(&r1);
    result_free(&r2);
    result_free(&r3);
}

static void test_dump_logits_threads(void **state) {
    (void)state;
    if (!g_have_stories) skip();
    char d1[1024], d2[1024];
    snprintf(d1, sizeof d1, "%s/logits1.bin", g_tmp);
    snprintf(d2, sizeof d2, "%s/logits2.bin", g_tmp);
    const char *a1[] = {"run", "--model", g_model, "--tokenizer", g_tok, "--prompt", "Lily saw a cat", "--seed", "7",
                        "--max-tokens", "60", "--threads", "1", "--dump-logits", d1, NULL};
    const char *a2[] = {"run", "--model", g_model, "--tokenizer", g_tok, "--prompt", "Lily saw a cat", "--seed", "7",
                        "--max-tokens", "60", "--threads", "2", "--dump-logits", d2, NULL};
    result r1 = run(a1), r2 = run(a2);
    assert_int_equal(r1.status, 0);
    assert_int_equal(r2.status, 0);
    assert_string_equal(r1.out, r2.out);
    size_t n1, n2;
    char *l1 = slurp(d1, &n1), *l2 = slurp(d2, &n2);
    assert_true(n1 > 0);
    assert_int_equal(n1 % (512 * sizeof(float)), 0); /* whole steps of the 512-token vocabulary */
    assert_int_equal(n1, n2);
    assert_memory_equal(l1, l2, n1);
    free(l1);
    free(l2);
    result_free(&r1);
    result_free(&r2);
}

static void test_json(void **state) {
    (void)state;
    if (!g_have_stories) skip();
    const char *a[] = {"run", "--model", g_model, "--tokenizer", g_tok, "--temperature", "0", "--max-tokens", "30",
                       "--threads", "2", "--json", NULL};
    result r = run(a);
    assert_int_equal(r.status, 0);
    /* the last line is the JSON object */
    assert_true(r.out_len > 2 && r.out[r.out_len - 1] == '\n');
    r.out[r.out_len - 1] = '\0';
    char *line = strrchr(r.out, '\n');
    line = line ? line + 1 : r.out;
    json_object *o = json_tokener_parse(line);
    if (!o) fail_msg("not JSON: %s", line);
    json_object *v;
    assert_true(json_object_object_get_ex(o, "text", &v));
    const char *text = json_object_get_string(v);
    assert_int_equal(strncmp(text, k_story, strlen(text) < 40 ? strlen(text) : 40), 0);
    assert_int_equal(strncmp(r.out, text, strlen(text)), 0); /* what was streamed */
    assert_true(json_object_object_get_ex(o, "tokens", &v));
    size_t n_tokens = json_object_array_length(v);
    assert_true(json_object_object_get_ex(o, "n_generated", &v));
    assert_int_equal(json_object_get_int(v), (int)n_tokens);
    assert_int_equal(n_tokens, 30);
    assert_true(json_object_object_get_ex(o, "n_prompt", &v));
    assert_int_equal(json_object_get_int(v), 1);
    const char *keys[] = {"prefill_tokens_per_s", "decode_tokens_per_s", "peak_rss_bytes"};
    for (int i = 0; i < 3; i++) {
        assert_true(json_object_object_get_ex(o, keys[i], &v));
        assert_true(json_object_get_double(v) > 0);
    }
    assert_true(json_object_object_get_ex(o, "isa", &v));
    assert_true(json_object_object_get_ex(o, "threads", &v));
    assert_int_equal(json_object_get_int(v), 2);
    assert_true(json_object_object_get_ex(o, "seed", &v));
    json_object_put(o);
    result_free(&r);
}

/* Exit 2 with one "lmlaunch: ..." line. */
static void expect_usage_error(const char *const *a, const char *needle) {
    result r = run(a);
    if (r.status != 2) fail_msg("exit %d for '%s ...': %s", r.status, a[0], r.err);
    assert_int_equal(strncmp(r.err, "lmlaunch: ", 10), 0);
    if (needle && !strstr(r.err, needle)) fail_msg("message '%s' lacks '%s'", r.err, needle);
    char *nl = strchr(r.err, '\n');
    assert_non_null(nl);
    assert_int_equal(nl[1], '\0');
    result_free(&r);
}

static void test_bad_flags(void **state) {
    (void)state;
    const char *m = g_have_stories ? g_model : "model.bin";
    const char *a1[] = {"run", "--model", m, "--bogus", NULL};
    expect_usage_error(a1, "--bogus");
    const char *a2[] = {"run", "--model", NULL};
    expect_usage_error(a2, "--model");
    const char *a3[] = {"run", "--prompt", "hi", NULL};
    expect_usage_error(a3, "--model");
    const char *a4[] = {"run", "--model", m, "--top-p", "0", NULL};
    expect_usage_error(a4, "--top-p");
    const char *a5[] = {"run", "--model", m, "--temperature", "-1", NULL};
    expect_usage_error(a5, "--temperature");
    const char *a6[] = {"run", "--model", m, "--threads", "0", NULL};
    expect_usage_error(a6, "--threads");
    const char *a7[] = {"run", "--model", m, "--max-tokens", "12x", NULL};
    expect_usage_error(a7, "--max-tokens");
    const char *a8[] = {"run", "--model", m, "--isa", "sse9", NULL};
    expect_usage_error(a8, "--isa");
    const char *a9[] = {"run", "--model", m, "--seed", "-5", NULL};
    expect_usage_error(a9, "--seed");
    const char *a10[] = {"run", "--model", m, "--top-k", "nan", NULL};
    expect_usage_error(a10, "--top-k");
    const char *a11[] = {"up", NULL}; /* issue 4: up needs --model and --endpoint */
    expect_usage_error(a11, "--model");
    const char *a11b[] = {"frob", NULL};
    expect_usage_error(a11b, "unknown command 'frob'");
    const char *a12[] = {"--frobnicate", NULL};
    expect_usage_error(a12, "--frobnicate");
    const char *a13[] = {"run", "--model", m, "--json=1", NULL};
    expect_usage_error(a13, "--json");
    const char *a14[] = {NULL};
    result r = run(a14);
    assert_int_equal(r.status, 2);
    result_free(&r);
    const char *h[] = {"--help", NULL};
    r = run(h);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "usage: lmlaunch run"));
    result_free(&r);
}

static void test_missing_files(void **state) {
    (void)state;
    char missing[1024];
    snprintf(missing, sizeof missing, "%s/no-such-model.gguf", g_tmp);
    const char *a[] = {"run", "--model", missing, NULL};
    result r = run(a);
    assert_int_equal(r.status, 1);
    if (!strstr(r.err, missing)) fail_msg("message does not name the file: %s", r.err);
    assert_int_equal(strncmp(r.err, "lmlaunch: ", 10), 0);
    result_free(&r);
    if (!g_have_stories) return;
    char tok[1024];
    snprintf(tok, sizeof tok, "%s/no-such-tokenizer.bin", g_tmp);
    const char *b[] = {"run", "--model", g_model, "--tokenizer", tok, NULL};
    r = run(b);
    assert_int_equal(r.status, 1);
    if (!strstr(r.err, tok)) fail_msg("message does not name the file: %s", r.err);
    result_free(&r);
    /* a file that is no model */
    const char *c[] = {"run", "--model", g_tok, NULL};
    r = run(c);
    assert_int_equal(r.status, 1);
    assert_int_equal(strncmp(r.err, "lmlaunch: ", 10), 0);
    result_free(&r);
    /* a prompt longer than the context */
    const char *d[] = {"run", "--model", g_model, "--tokenizer", g_tok, "--prompt", "Once upon a time there was", "--ctx",
                       "3", NULL};
    r = run(d);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "context"));
    result_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories_greedy),
        cmocka_unit_test(test_seeded_runs_repeat),
        cmocka_unit_test(test_dump_logits_threads),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_bad_flags),
        cmocka_unit_test(test_missing_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
