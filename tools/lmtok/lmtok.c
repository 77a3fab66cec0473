/* tools/lmtok/lmtok.c — command-line front end of the tokenizer (lmm/tokenizer.h).
 *
 *   lmtok --model PATH | --tokenizer PATH  --encode TEXT | --encode - | --decode "ID ID ..."
 *         [--add-special] [--parse-special]
 *
 * --encode prints the ids space-separated on one line; "-" reads standard input
 * byte-exactly (nothing stripped). --decode prints the text, nothing added. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmm/error.h"
#include "lmm/model.h"
#include "lmm/tokenizer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: lmtok (--model PATH | --tokenizer PATH) (--encode TEXT | --encode - | "
            "--decode \"ID ID ...\")\n"
            "             [--add-special] [--parse-special]\n"
            "  --model PATH      tokenizer of a model (GGUF metadata, or the file beside it)\n"
            "  --tokenizer PATH  tokenizer.json, tokenizer.model, tokenizer.bin or a GGUF file\n"
            "  --encode TEXT     print the ids of TEXT space-separated; '-' reads stdin as is\n"
            "  --decode IDS      print the text of the ids\n"
            "  --add-special     add BOS/EOS as the tokenizer's configuration says\n"
            "  --parse-special   match special-token text (e.g. <|endoftext|>) in the input\n");
}

static char *read_stdin(size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    for (;;) {
        if (n == cap) {
            char *b = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                return NULL;
            }
            buf = b;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0) break;
    }
    if (ferror(stdin)) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static int do_encode(const lmm_tokenizer *t, const char *text, size_t len, unsigned flags) {
    size_t cap = len + 16, n = 0;
    uint32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) return lmm_error_set("out of memory");
    if (lmm_tokenizer_encode(t, text, len, flags, ids, cap, &n)) {
        free(ids);
        return -1;
    }
    if (n > cap) { /* more ids than bytes: cannot happen for these algorithms, but be safe */
        free(ids);
        cap = n;
        ids = malloc(cap * sizeof *ids);
        if (!ids || lmm_tokenizer_encode(t, text, len, flags, ids, cap, &n)) {
            free(ids);
            return ids ? -1 : lmm_error_set("out of memory");
        }
    }
    for (size_t i = 0; i < n; i++) printf(i ? " %u" : "%u", ids[i]);
    printf("\n");
    free(ids);
    return 0;
}

static int do_decode(const lmm_tokenizer *t, const char *list) {
    size_t cap = 16, n = 0;
    uint32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) return lmm_error_set("out of memory");
    const char *p = list;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == ',') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p || errno || v > UINT32_MAX || *p == '-') {
            free(ids);
            return lmm_error_set("--decode: '%.20s' is not a token id", p);
        }
        if (n == cap) {
            uint32_t *b = realloc(ids, cap * 2 * sizeof *ids);
            if (!b) {
                free(ids);
                return lmm_error_set("out of memory");
            }
            ids = b;
            cap *= 2;
        }
        ids[n++] = (uint32_t)v;
        p = end;
    }
    size_t len = 0;
    if (lmm_tokenizer_decode(t, ids, n, NULL, 0, &len)) {
        free(ids);
        return -1;
    }
    char *buf = malloc(len + 1);
    if (!buf || lmm_tokenizer_decode(t, ids, n, buf, len + 1, &len)) {
        free(ids);
        free(buf);
        return buf ? -1 : lmm_error_set("out of memory");
    }
    fwrite(buf, 1, len, stdout);
    free(buf);
    free(ids);
    return 0;
}

int main(int argc, char **argv) {
    const char *model = NULL, *tokfile = NULL, *encode = NULL, *decode = NULL;
    unsigned flags = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "--model") || !strcmp(a, "--tokenizer") || !strcmp(a, "--encode") ||
             !strcmp(a, "--decode")) && i + 1 >= argc) {
            fprintf(stderr, "lmtok: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--model")) model = argv[++i];
        else if (!strcmp(a, "--tokenizer")) tokfile = argv[++i];
        else if (!strcmp(a, "--encode")) encode = argv[++i];
        else if (!strcmp(a, "--decode")) decode = argv[++i];
        else if (!strcmp(a, "--add-special")) flags |= LMM_TOK_ADD_SPECIAL;
        else if (!strcmp(a, "--parse-special")) flags |= LMM_TOK_PARSE_SPECIAL;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "lmtok: unknown argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if ((!model && !tokfile) || (!encode && !decode) || (encode && decode)) {
        usage(stderr);
        return 2;
    }
    lmm_tokenizer *t = NULL;
    lmm_model_desc d;
    bool have_desc = false;
    if (tokfile) {
        if (lmm_tokenizer_load_file(&t, tokfile)) goto fail;
    } else if (lmm_model_desc_open(&d, model) == 0) {
        have_desc = true;
        if (lmm_tokenizer_load_for_model(&t, &d, NULL)) goto fail;
    } else {
        /* not a model we can run (e.g. a vocabulary-only GGUF): still a tokenizer? */
        char why[LMM_ERROR_MAX];
        snprintf(why, sizeof why, "%s", lmm_error_get());
        if (lmm_tokenizer_load_file(&t, model)) {
            lmm_error_set("%s", why);
            goto fail;
        }
    }
    int rc;
    if (encode) {
        if (!strcmp(encode, "-")) {
            size_t len = 0;
            char *text = read_stdin(&len);
            if (!text) {
                lmm_error_set("cannot read standard input");
                goto fail;
            }
            rc = do_encode(t, text, len, flags);
            free(text);
        } else {
            rc = do_encode(t, encode, strlen(encode), flags);
        }
    } else {
        rc = do_decode(t, decode);
    }
    if (rc) goto fail;
    lmm_tokenizer_free(t);
    if (have_desc) lmm_model_desc_free(&d);
    return fflush(stdout) == 0 ? 0 : 1;
fail:
    fprintf(stderr, "lmtok: %s\n", lmm_error_get());
    lmm_tokenizer_free(t);
    if (have_desc) lmm_model_desc_free(&d);
    return 1;
}
