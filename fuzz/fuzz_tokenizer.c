/* fuzz/fuzz_tokenizer.c — libFuzzer target for the tokenizers: encoding arbitrary
 * bytes (valid or not as UTF-8) with every algorithm, decoding arbitrary ids, and
 * loading arbitrary bytes as llama2.c, SentencePiece, tokenizer.json and GGUF
 * tokenizers. Build: CC=clang cmake -DLMM_FUZZ=ON; run build/bin/fuzz_tokenizer.
 *
 * Small built-in tokenizers (a byte-level BPE, a WordPiece and a Unigram
 * tokenizer.json) are always fuzzed; the real ones under $LMM_SHARED_DIR (default
 * ../shared) are added when present. First input byte: what to do; the rest:
 * the data. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../model/tokenizer/tok_internal.h"
#include "lmm/error.h"
#include "lmm/gguf.h"
#include "lmm/tokenizer.h"

static const char BPE_JSON[] =
    "{\"added_tokens\":[{\"id\":12,\"content\":\"<|end|>\",\"special\":true},"
    "{\"id\":13,\"content\":\"<x>\",\"special\":false,\"lstrip\":true,\"rstrip\":true}],"
    "\"normalizer\":{\"type\":\"NFC\"},"
    "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
    "\"(?i:'s|'t)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s+(?!\\\\S)|\\\\s+\"},"
    "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"use_regex\":false}]},"
    "\"decoder\":{\"type\":\"ByteLevel\"},"
    "\"model\":{\"type\":\"BPE\",\"ignore_merges\":true,\"vocab\":{\"a\":0,\"b\":1,\"c\":2,\"\\u0120\":3,\"ab\":4,\"abc\":5,"
    "\"\\u0120a\":6,\"1\":7,\"2\":8,\"12\":9,\"\\u010a\":10,\"\\u0120ab\":11},"
    "\"merges\":[\"a b\",\"ab c\",\"\\u0120 a\",\"1 2\",\"\\u0120a b\"]}}";

static const char WPM_JSON[] =
    "{\"added_tokens\":[{\"id\":0,\"content\":\"[UNK]\",\"special\":true},{\"id\":1,\"content\":\"[CLS]\",\"special\":true},"
    "{\"id\":2,\"content\":\"[SEP]\",\"special\":true}],"
    "\"normalizer\":{\"type\":\"BertNormalizer\",\"lowercase\":true},\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"},"
    "\"post_processor\":{\"type\":\"BertProcessing\",\"sep\":[\"[SEP]\",2],\"cls\":[\"[CLS]\",1]},"
    "\"model\":{\"type\":\"WordPiece\",\"unk_token\":\"[UNK]\",\"max_input_chars_per_word\":20,"
    "\"vocab\":{\"[UNK]\":0,\"[CLS]\":1,\"[SEP]\":2,\"he\":3,\"##llo\":4,\"hello\":5,\"!\":6,\"##l\":7,\"w\":8,\"##o\":9}}}";

static const char UGM_JSON[] =
    "{\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFKC\"},{\"type\":\"Replace\","
    "\"pattern\":{\"Regex\":\" {2,}\"},\"content\":\" \"},{\"type\":\"Lowercase\"}]},"
    "\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\",\"prepend_scheme\":\"always\",\"split\":true},"
    "\"decoder\":{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\",\"prepend_scheme\":\"always\"},"
    "\"model\":{\"type\":\"Unigram\",\"unk_id\":0,\"byte_fallback\":false,\"vocab\":[[\"<unk>\",0],[\"\\u2581\",-2],"
    "[\"a\",-3],[\"b\",-3],[\"ab\",-4],[\"\\u2581ab\",-4.5],[\"c\",-5],[\"abc\",-6]]}}";

#define MAX_TOK 16
static lmm_tokenizer *toks[MAX_TOK];
static int n_toks;

static void add_file(const char *dir, const char *rel) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    FILE *f = fopen(path, "rb");
    if (!f) return;
    fclose(f);
    if (n_toks < MAX_TOK && lmm_tokenizer_load_file(&toks[n_toks], path) == 0) n_toks++;
}

static void init(void) {
    const char *embedded[] = {BPE_JSON, WPM_JSON, UGM_JSON};
    for (int i = 0; i < 3; i++) {
        if (tok_load_hf_memory(&toks[n_toks], embedded[i], strlen(embedded[i]), "builtin/tokenizer.json")) {
            fprintf(stderr, "fuzz_tokenizer: builtin %d: %s\n", i, lmm_error_get());
            abort();
        }
        n_toks++;
    }
    const char *dir = getenv("LMM_SHARED_DIR");
    if (!dir || !*dir) dir = "../shared";
    add_file(dir, "models/stories260K/tok512.bin");
    add_file(dir, "models/stories260K/tok512.model");
    add_file(dir, "tokenizers/hf/llama3/tokenizer.json");
    add_file(dir, "tokenizers/hf/qwen3/tokenizer.json");
    add_file(dir, "tokenizers/hf/mistral-7b-v0.1/tokenizer.json");
    add_file(dir, "tokenizers/gguf-vocab/ggml-vocab-bert-bge.gguf");
    add_file(dir, "tokenizers/gguf-vocab/ggml-vocab-nomic-bert-moe.gguf");
    add_file(dir, "tokenizers/gguf-vocab/ggml-vocab-gpt-2.gguf");
}

static void roundtrip(const lmm_tokenizer *t, const char *s, size_t n, unsigned flags) {
    size_t cap = n + 4, cnt = 0;
    uint32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) return;
    int rc = lmm_tokenizer_encode(t, s, n, flags, ids, cap, &cnt);
    if (rc == 0 && cnt > cap) { /* normalisation can lengthen the text: ask again */
        free(ids);
        cap = cnt;
        ids = malloc(cap * sizeof *ids);
        if (!ids) return;
        size_t again = 0;
        rc = lmm_tokenizer_encode(t, s, n, flags, ids, cap, &again);
        if (rc == 0 && again != cnt) abort(); /* deterministic */
    }
    if (rc == 0) {
        for (size_t i = 0; i < cnt; i++) {
            if (ids[i] >= lmm_tokenizer_vocab_size(t)) abort();
        }
        size_t len = 0;
        if (lmm_tokenizer_decode(t, ids, cnt, NULL, 0, &len) != 0) abort();
        char *buf = malloc(len + 1);
        size_t len2 = 0;
        if (buf && (lmm_tokenizer_decode(t, ids, cnt, buf, len + 1, &len2) != 0 || len2 != len)) abort();
        free(buf);
    }
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!n_toks) init();
    if (size < 1) return 0;
    unsigned op = data[0];
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    lmm_tokenizer *t = NULL;
    switch (op & 7) {
    case 0: case 1: case 2: case 3: /* encode with a tokenizer, flags from the op */
        roundtrip(toks[(op >> 3) % n_toks], s, n, (op & 3));
        break;
    case 4: { /* decode arbitrary ids */
        const lmm_tokenizer *tk = toks[(op >> 3) % n_toks];
        size_t cnt = n / 4;
        uint32_t *ids = malloc(cnt ? cnt * sizeof *ids : 1);
        if (!ids) return 0;
        memcpy(ids, s, cnt * 4);
        size_t len;
        char buf[256];
        (void)lmm_tokenizer_decode(tk, ids, cnt, buf, sizeof buf, &len);
        for (size_t i = 0; i < cnt; i++) (void)lmm_tokenizer_decode_token(tk, i ? ids[i - 1] : UINT32_MAX, ids[i], buf, sizeof buf, &len);
        free(ids);
        break;
    }
    case 5: /* llama2.c tokenizer.bin */
        if (tok_load_llama2c_memory(&t, data + 1, n, (op >> 3) & 1 ? 0 : 8, "fuzz.bin") == 0) roundtrip(t, "hi there", 8, 1);
        break;
    case 6: /* SentencePiece .model or tokenizer.json */
        if ((op >> 3) & 1) {
            if (tok_load_spm_memory(&t, data + 1, n, "fuzz.model") == 0) roundtrip(t, "hi there", 8, 1);
        } else {
            if (tok_load_hf_memory(&t, s, n, "fuzz/tokenizer.json") == 0) roundtrip(t, "hi there <|end|>", 16, 3);
        }
        break;
    case 7: { /* GGUF metadata */
        lmm_gguf *g;
        if (lmm_gguf_open_memory(&g, data + 1, n, "fuzz.gguf") == 0) {
            if (tok_load_gguf(&t, g, "fuzz.gguf") == 0) roundtrip(t, "hi there", 8, 3);
            lmm_gguf_free(g);
        }
        break;
    }
    }
    lmm_tokenizer_free(t);
    return 0;
}
