/* tests/tokenizer/tok_vectors.h — reading test-vector files: inputs separated by
 * "\n__ggml_vocab_test__\n" (llama.cpp's .inp format, also used by our golden
 * files) and one line of space-separated ids per input. */
#ifndef LMM_TOK_VECTORS_H
#define LMM_TOK_VECTORS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TV_SEP "\n__ggml_vocab_test__\n"

typedef struct {
    char *data;          /* whole .inp file; texts point into it (not NUL-terminated) */
    size_t n;
    const char **text;   /* [n] */
    size_t *len;         /* [n] */
    uint32_t **ids;      /* [n] expected ids */
    size_t *n_ids;       /* [n] */
} tv_set;

static inline char *tv_read(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)sz + 1);
    if (buf && fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[sz] = 0;
    if (size) *size = (size_t)sz;
    return buf;
}

static inline void tv_free(tv_set *s) {
    for (size_t i = 0; i < s->n; i++) free(s->ids[i]);
    free(s->ids);
    free(s->n_ids);
    free(s->text);
    free(s->len);
    free(s->data);
    memset(s, 0, sizeof *s);
}

/* Loads INP (texts) and OUT (ids); returns 0, or -1 when a file is missing or the
 * counts disagree. */
static inline int tv_load(tv_set *s, const char *inp, const char *out) {
    memset(s, 0, sizeof *s);
    size_t size;
    s->data = tv_read(inp, &size);
    char *ids = tv_read(out, NULL);
    if (!s->data || !ids) {
        free(s->data);
        free(ids);
        return -1;
    }
    size_t seplen = strlen(TV_SEP), cap = 64;
    s->text = malloc(cap * sizeof *s->text);
    s->len = malloc(cap * sizeof *s->len);
    const char *p = s->data, *end = s->data + size;
    while (p < end) {
        const char *q = memmem(p, (size_t)(end - p), TV_SEP, seplen);
        if (!q) break;
        if (s->n == cap) {
            cap *= 2;
            s->text = realloc(s->text, cap * sizeof *s->text);
            s->len = realloc(s->len, cap * sizeof *s->len);
        }
        s->text[s->n] = p;
        s->len[s->n] = (size_t)(q - p);
        s->n++;
        p = q + seplen;
    }
    s->ids = calloc(s->n, sizeof *s->ids);
    s->n_ids = calloc(s->n, sizeof *s->n_ids);
    char *line = ids;
    size_t k = 0;
    while (k < s->n && line && *line) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        size_t c = 0, capi = 16;
        uint32_t *v = malloc(capi * sizeof *v);
        for (char *tok = strtok(line, " "); tok; tok = strtok(NULL, " ")) {
            if (c == capi) v = realloc(v, (capi *= 2) * sizeof *v);
            v[c++] = (uint32_t)strtoul(tok, NULL, 10);
        }
        s->ids[k] = v;
        s->n_ids[k] = c;
        k++;
        line = nl ? nl + 1 : NULL;
    }
    free(ids);
    if (k != s->n) {
        fprintf(stderr, "%s: %zu inputs but %zu lines of ids in %s\n", inp, s->n, k, out);
        tv_free(s);
        return -1;
    }
    return 0;
}

#endif
