/* model/tokenizer/load_llama2c.c — reads llama2.c's tokenizer.bin:
 *   i32 max_token_length, then per token { f32 score, i32 len, len bytes }.
 * The file has no token count: the caller gives it (the model's vocab_size), or 0
 * reads tokens up to the end of the file. Spaces are stored as ' ' (not U+2581);
 * id 0 is <unk>, 1 BOS, 2 EOS and "<0xXX>" pieces are byte-fallback tokens (older
 * exports, like Llama 2's tokenizer.bin, store ids 3..258 as the code points
 * U+0000..U+00FF in UTF-8 instead). */
#include "tok_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmm/error.h"

static int read_file(const char *path, unsigned char **data, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return lmm_error_set("%s: cannot open: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return lmm_error_set("%s: cannot seek", path);
    }
    long sz = ftell(f);
    if (sz < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return lmm_error_set("%s: cannot determine the size", path);
    }
    unsigned char *buf = malloc((size_t)sz + 1);
    if (!buf) {
        fclose(f);
        return lmm_error_set("%s: out of memory for %ld bytes", path, sz);
    }
    if (fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
        free(buf);
        fclose(f);
        return lmm_error_set("%s: read error", path);
    }
    fclose(f);
    buf[sz] = 0;
    *data = buf;
    *size = (size_t)sz;
    return 0;
}

int tok_read_whole_file(const char *path, unsigned char **data, size_t *size) {
    return read_file(path, data, size);
}

static uint32_t rd_u32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static int parse_byte_piece(const char *s, uint32_t len) {
    static const char hex[] = "0123456789ABCDEF";
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    const char *a = strchr(hex, s[3]), *b = strchr(hex, s[4]);
    if (!a || !b || !s[3] || !s[4]) return -1;
    return (int)((a - hex) * 16 + (b - hex));
}

int tok_parse_byte_piece(const char *s, uint32_t len) { return parse_byte_piece(s, len); }

int tok_load_llama2c_memory(lmm_tokenizer **out, const unsigned char *d, size_t size,
                            uint32_t vocab_size, const char *path) {
    *out = NULL;
    if (size < 4) return lmm_error_set("%s: too short for a llama2.c tokenizer", path);
    uint32_t max_len = rd_u32(d);
    if (max_len == 0 || max_len > (1u << 20)) {
        return lmm_error_set("%s: max_token_length %u is not plausible for a llama2.c tokenizer",
                             path, max_len);
    }
    /* first pass: count and validate */
    size_t off = 4;
    uint32_t n = 0;
    while (off < size && (vocab_size == 0 || n < vocab_size)) {
        if (size - off < 8) {
            return lmm_error_set("%s: token %u: header truncated at offset %zu", path, n, off);
        }
        uint32_t len = rd_u32(d + off + 4);
        if (len > max_len || len > size - off - 8) {
            return lmm_error_set("%s: token %u: length %u at offset %zu exceeds max_token_length "
                                 "or the file", path, n, len, off);
        }
        off += 8 + len;
        n++;
    }
    if (vocab_size && n < vocab_size) {
        return lmm_error_set("%s: holds %u tokens, the model needs %u", path, n, vocab_size);
    }
    if (n < 3) return lmm_error_set("%s: only %u tokens", path, n);
    lmm_tokenizer *t;
    if (tok_alloc(&t, n, size)) return lmm_error_prefix("%s", path);
    snprintf(t->name, sizeof t->name, "llama2c");
    off = 4;
    for (uint32_t i = 0; i < n; i++) {
        float score;
        memcpy(&score, d + off, 4);
        uint32_t len = rd_u32(d + off + 4);
        const char *s = (const char *)d + off + 8;
        uint8_t type = TOK_TYPE_NORMAL;
        int b = parse_byte_piece(s, len);
        /* older exports (Llama 2's tokenizer.bin) store byte token 3+b as the
         * character U+00bb in UTF-8 instead of "<0xbb>"; it still means byte b */
        if (b < 0 && i >= 3 && i < 259) {
            char u[4];
            size_t ul = tok_utf8_encode(i - 3, u);
            if (ul == len && memcmp(u, s, len) == 0) b = (int)i - 3;
        }
        if (b >= 0) {
            type = TOK_TYPE_BYTE;
            if (t->byte_ids[b] == TOK_NONE) t->byte_ids[b] = i;
        } else if (i == 0) {
            type = TOK_TYPE_UNKNOWN;
        } else if (i <= 2) {
            type = TOK_TYPE_CONTROL;
        }
        if (tok_set_piece(t, i, s, len, score, type)) {
            lmm_tokenizer_free(t);
            return lmm_error_prefix("%s", path);
        }
        off += 8 + len;
    }
    t->alg = TOK_ALG_SPM;
    t->unk = 0;
    t->bos = 1;
    t->eos = 2;
    t->add_bos = true;
    t->add_space_prefix = true;
    t->byte_fallback = true;
    t->strip_bos_space = true;
    if (tok_finish(t, path)) {
        lmm_tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

int lmm_tokenizer_load_llama2c(lmm_tokenizer **out, const char *path, uint32_t vocab_size) {
    unsigned char *d;
    size_t size;
    *out = NULL;
    if (read_file(path, &d, &size)) return -1;
    int rc = tok_load_llama2c_memory(out, d, size, vocab_size, path);
    free(d);
    return rc;
}
