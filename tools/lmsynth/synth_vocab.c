/* tools/lmsynth/synth_vocab.c — the synthetic SentencePiece-style vocabulary that
 * lmsynth embeds in GGUF files and writes as llama2.c tokenizer.bin.
 *
 * Order: <unk> <s> </s>, the 256 byte tokens <0x00>..<0xFF>, then "▁", the printable
 * ASCII characters, "▁" + letter/digit, common English words with every "▁"-prefixed
 * prefix of them (so BPE merges can reach them), then all lowercase strings of length
 * 2, 3, ... each as "▁s" and "s". Duplicates are skipped, so every piece is unique. */
#include <stdlib.h>
#include <string.h>

#include "lmm/error.h"
#include "synth.h"

#define SPACE_MARK "\xe2\x96\x81" /* U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's space */

static const char *const k_words[] = {
    "the", "and", "to", "a", "of", "was", "he", "she", "it", "in", "they", "her", "his", "that", "with",
    "said", "day", "on", "for", "you", "had", "is", "Once", "upon", "time", "there", "little", "big",
    "play", "one", "I", "be", "very", "happy", "not", "we", "at", "so", "all", "but", "up", "girl", "boy",
    "named", "Lily", "Tim", "Ben", "mom", "dog", "cat", "ball", "tree", "park", "friend", "friends",
    "saw", "wanted", "loved", "went", "go", "can", "do", "help", "what", "are", "have", "from", "this",
    "look", "see", "fun", "sun", "red", "blue", "toy", "home", "run", "jump", "bird", "fish", "car",
    "The", "He", "She", "They", "It", "One", "When", "Then", "This", "after", "before", "out", "down",
    "good", "new", "old", "sad", "nice", "water", "house", "eat", "food", "make", "made", "come", "came",
};

typedef struct {
    synth_vocab *v;
    uint32_t cap;           /* target size */
    const char **table;     /* [mask+1] open-addressed set of pieces */
    uint32_t mask;
} vocab_builder;

static uint32_t str_hash(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* Appends piece if new and there is room. Returns -1 on allocation failure. */
static int add_piece(vocab_builder *b, const char *piece) {
    synth_vocab *v = b->v;
    if (v->n >= b->cap) return 0;
    uint32_t i = str_hash(piece) & b->mask;
    while (b->table[i]) {
        if (strcmp(b->table[i], piece) == 0) return 0;
        i = (i + 1) & b->mask;
    }
    char *copy = strdup(piece);
    if (!copy) return lmm_error_set("out of memory");
    b->table[i] = copy;
    uint32_t id = v->n++;
    v->pieces[id] = copy;
    v->scores[id] = id < SYNTH_VOCAB_FIXED ? 0.0f : (float)SYNTH_VOCAB_FIXED - (float)id;
    v->types[id] = id == 0 ? 2 : id < 3 ? 3 : id < SYNTH_VOCAB_FIXED ? 6 : 1;
    return 0;
}

static int add_marked(vocab_builder *b, const char *s) {
    char buf[64];
    snprintf(buf, sizeof buf, SPACE_MARK "%s", s);
    return add_piece(b, buf);
}

int synth_vocab_build(synth_vocab *v, uint32_t n) {
    memset(v, 0, sizeof *v);
    if (n < SYNTH_VOCAB_FIXED)
        return lmm_error_set("vocabulary of %u tokens is too small (at least %u: 3 special and 256 byte tokens)", n,
                             SYNTH_VOCAB_FIXED);
    vocab_builder b = {.v = v, .cap = n};
    uint32_t tsize = 1024;
    while (tsize < 2u * n) tsize *= 2;
    b.mask = tsize - 1;
    b.table = calloc(tsize, sizeof *b.table);
    v->pieces = calloc(n, sizeof *v->pieces);
    v->scores = calloc(n, sizeof *v->scores);
    v->types = calloc(n, sizeof *v->types);
    int rc = -1;
    if (!b.table || !v->pieces || !v->scores || !v->types) {
        lmm_error_set("out of memory");
        goto done;
    }
    char buf[64];
    if (add_piece(&b, "<unk>") || add_piece(&b, "<s>") || add_piece(&b, "</s>")) goto done;
    for (unsigned i = 0; i < 256; i++) {
        snprintf(buf, sizeof buf, "<0x%02X>", i);
        if (add_piece(&b, buf)) goto done;
    }
    if (add_piece(&b, SPACE_MARK)) goto done;
    for (int ch = 0x21; ch < 0x7f; ch++) {
        buf[0] = (char)ch;
        buf[1] = 0;
        if (add_piece(&b, buf)) goto done;
    }
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    for (const char *p = alnum; *p; p++) {
        buf[0] = *p;
        buf[1] = 0;
        if (add_marked(&b, buf)) goto done;
    }
    for (size_t w = 0; w < sizeof k_words / sizeof k_words[0]; w++) {
        size_t len = strlen(k_words[w]);
        for (size_t k = 2; k <= len; k++) {
            memcpy(buf, k_words[w], k);
            buf[k] = 0;
            if (add_marked(&b, buf)) goto done;
        }
    }
    /* All lowercase strings of length 2, 3, ...: a base-26 counter. 26^2+26^3+... pieces
     * each twice, so any vocabulary size up to the tool's limit fills. */
    for (size_t len = 2; v->n < n && len < 16; len++) {
        char s[16];
        memset(s, 'a', len);
        s[len] = 0;
        for (;;) {
            if (add_marked(&b, s) || add_piece(&b, s)) goto done;
            if (v->n >= n) break;
            size_t k = len;
            while (k > 0 && s[k - 1] == 'z') s[--k] = 'a';
            if (k == 0) break;
            s[k - 1]++;
        }
    }
    rc = 0;
done:
    free(b.table); /* the pieces themselves are owned by v */
    if (rc) synth_vocab_free(v);
    return rc;
}

void synth_vocab_free(synth_vocab *v) {
    if (v->pieces)
        for (uint32_t i = 0; i < v->n; i++) free(v->pieces[i]);
    free(v->pieces);
    free(v->scores);
    free(v->types);
    memset(v, 0, sizeof *v);
}
