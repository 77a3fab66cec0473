/* model/format/model_open.c — lmm_model_desc_open: picks the reader for a path.
 *
 *   a directory, config.json, *.safetensors, *.index.json  -> Hugging Face (hf.c)
 *   a file starting with the bytes "GGUF"                  -> GGUF (gguf_model.c)
 *   anything else                                          -> llama2.c checkpoint (llama2c.c)
 * Each reader initialises the description, validates it, and frees it on failure. */
#include "lmm/model.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "lmm/error.h"

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static bool is_hf_file(const char *path) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    return strcmp(base, "config.json") == 0 || ends_with(base, ".safetensors") || ends_with(base, ".index.json");
}

int lmm_model_desc_open(lmm_model_desc *d, const char *path) {
    lmm_model_desc_init(d);
    struct stat st;
    if (stat(path, &st) != 0) return lmm_error_set("%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode) || is_hf_file(path)) return lmm_model_desc_open_hf(d, path);
    FILE *f = fopen(path, "rb");
    if (!f) return lmm_error_set("%s: %s", path, strerror(errno));
    unsigned char magic[4];
    size_t n = fread(magic, 1, sizeof magic, f);
    fclose(f);
    if (n == sizeof magic && memcmp(magic, "GGUF", 4) == 0) return lmm_model_desc_open_gguf(d, path);
    return lmm_model_desc_open_llama2c(d, path);
}
