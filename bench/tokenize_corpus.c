/* bench/tokenize_corpus.c — writes the mixed-text corpus of `bench/run tokenize`.
 *
 *   bench_tokenize_corpus OUT [--bytes N] [--seed S]     (defaults: 10000000 bytes, seed 1)
 *
 * Deterministic: the same seed gives the same bytes on every machine (own PRNG,
 * splitmix64, no libc rand). The text is a sequence of paragraphs of these kinds:
 * English prose-like sentences from a fixed word list (capitals, commas,
 * contractions, quotes), source code (C and Python, indented), numbers (integers,
 * decimals, dates, versions, hex, money), Chinese / Japanese / Korean, emoji (also
 * ZWJ sequences, skin tones, flags), Arabic, and whitespace runs (spaces, tabs,
 * blank lines, trailing blanks). It is valid UTF-8, has no NUL and no control
 * characters but tab/newline, and contains no special-token text ("<s>", "<|...|>"),
 * so every tokenizer encodes it as plain text. The output is cut at a character
 * boundary at or just below N bytes. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --------------------------------------------------------------- PRNG */

static uint64_t rng_state;

static uint64_t rnd64(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* uniform in [0, n) (n small: the modulo bias is irrelevant here) */
static uint32_t rnd(uint32_t n) { return (uint32_t)(rnd64() % n); }

#define PICK(arr) (arr[rnd((uint32_t)(sizeof(arr) / sizeof(arr[0])))])

/* --------------------------------------------------------------- output */

static char *buf;      /* [cap] the corpus */
static size_t len, cap;

static void put(const char *s, size_t n) {
    if (len + n > cap) {
        while (len + n > cap) cap = cap ? cap * 2 : 1 << 20;
        buf = realloc(buf, cap);
        if (!buf) {
            fprintf(stderr, "bench_tokenize_corpus: out of memory\n");
            exit(1);
        }
    }
    memcpy(buf + len, s, n);
    len += n;
}

static void puts_(const char *s) { put(s, strlen(s)); }

static void putf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void putf(const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) put(tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* --------------------------------------------------------------- content */

static const char *const WORDS[] = {
    "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be",
    "by", "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have",
    "an", "had", "they", "you", "were", "their", "one", "all", "we", "can", "her", "has",
    "there", "been", "if", "more", "when", "will", "would", "who", "so", "no", "she", "other",
    "its", "may", "these", "what", "them", "than", "some", "him", "time", "into", "only", "do",
    "our", "about", "could", "any", "then", "first", "new", "two", "also", "made", "like",
    "between", "such", "people", "over", "after", "where", "most", "through", "years", "many",
    "must", "before", "under", "water", "should", "well", "system", "model", "memory", "layer",
    "token", "weights", "kernel", "runtime", "language", "inference", "matrix", "vector",
    "attention", "context", "window", "cache", "quantized", "precision", "gradient", "process",
    "machine", "learning", "network", "computer", "program", "library", "function", "structure",
    "however", "therefore", "although", "because", "during", "without", "against", "within",
    "government", "university", "history", "children", "morning", "evening", "mountain",
    "river", "village", "kingdom", "journey", "question", "answer", "problem", "solution",
    "beautiful", "important", "different", "possible", "available", "necessary", "particular",
    "quickly", "slowly", "carefully", "suddenly", "finally", "usually", "perhaps", "certainly",
    "house", "garden", "window", "letter", "number", "market", "country", "century", "result",
    "running", "walked", "thought", "believed", "understood", "remembered", "discovered",
    "unbelievable", "internationalization", "misunderstanding", "responsibility",
    "café", "naïve", "résumé", "façade", "über", "jalapeño", "coöperate", "Zürich",
};
static const char *const NAMES[] = {"Alice", "Bob", "London", "Paris", "Tokyo", "Mary", "John",
                                    "Europe", "Monday", "October", "Python", "Linux", "Amazon",
                                    "García", "Müller", "Dvořák", "Ørsted", "Łódź"};
static const char *const CONTRACTIONS[] = {"don't", "it's", "I'm", "we've", "they're", "can't",
                                           "won't", "she'll", "he'd", "you're", "isn't",
                                           "DON'T", "It'S", "o'clock", "rock'n'roll"};
static const char *const PUNCT_END[] = {".", ".", ".", ".", "!", "?", "...", "?!", ";", ":"};

static void prose(void) {
    int sentences = 2 + (int)rnd(6);
    for (int s = 0; s < sentences; s++) {
        int words = 4 + (int)rnd(18);
        int quote = rnd(10) == 0;
        if (quote) puts_(rnd(2) ? "\"" : "\xe2\x80\x9c");
        for (int w = 0; w < words; w++) {
            const char *word;
            uint32_t r = rnd(100);
            if (r < 6) word = PICK(NAMES);
            else if (r < 10) word = PICK(CONTRACTIONS);
            else word = PICK(WORDS);
            if (w == 0 && word[0] >= 'a' && word[0] <= 'z') {
                char c = (char)(word[0] - 'a' + 'A');
                put(&c, 1);
                puts_(word + 1);
            } else if (rnd(200) == 0) { /* SHOUTING */
                for (const char *p = word; *p; p++) {
                    char c = *p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p;
                    put(&c, 1);
                }
            } else {
                puts_(word);
            }
            if (w + 1 < words) {
                uint32_t q = rnd(100);
                if (q < 7) puts_(",");
                else if (q < 8) puts_(" -");
                else if (q < 9) puts_(" \xe2\x80\x94"); /* em dash */
                else if (q < 10) { putf(" (%u)", rnd(100)); }
                puts_(" ");
            }
        }
        puts_(PICK(PUNCT_END));
        if (quote) puts_(rnd(2) ? "\"" : "\xe2\x80\x9d");
        if (s + 1 < sentences) puts_(rnd(8) ? " " : "  ");
    }
    puts_("\n");
}

static const char *const C_LINES[] = {
    "#include <stdio.h>",
    "static int count_tokens(const char *s, size_t n) {",
    "for (size_t i = 0; i < n; i++) {",
    "if (s[i] == '\\n' && i + 1 < n) return -1;",
    "uint32_t h = 2166136261u ^ (uint32_t)x;",
    "memcpy(dst + off, src, len * sizeof *src);",
    "} else if (rc != 0) {",
    "fprintf(stderr, \"error: %s (%d)\\n\", msg, rc);",
    "return (a << 16) | (b & 0xFFFF);",
    "x = y->next ? y->next->value : NULL;",
    "// TODO: handle the empty case",
    "/* the heap never holds more than 2n entries */",
    "while (--k >= 0 && v[k] > pivot) v[k + 1] = v[k];",
    "}",
    "int main(int argc, char **argv) {",
    "#define MAX(a, b) ((a) > (b) ? (a) : (b))",
};
static const char *const PY_LINES[] = {
    "def encode(self, text: str) -> list[int]:",
    "ids = [self.vocab[w] for w in text.split() if w in self.vocab]",
    "return {k: v for k, v in sorted(d.items(), key=lambda kv: -kv[1])}",
    "if __name__ == \"__main__\":",
    "print(f\"{name!r}: {value:>10.3f} ({pct:.1%})\")",
    "with open(path, 'rb') as f:",
    "raise ValueError('bad input at %d' % offset)",
    "x = np.zeros((batch, 4096), dtype=np.float32)",
    "for i, (a, b) in enumerate(zip(xs, ys)):",
    "# normalise, then split on whitespace",
    "class Tokenizer(object):",
    "assert len(ids) <= max_len, \"too long\"",
    "yield from self._walk(node.left)",
    "return None",
};

static void code(void) {
    int py = rnd(2);
    int lines = 3 + (int)rnd(12);
    int depth = 0;
    for (int l = 0; l < lines; l++) {
        int indent = depth * (py ? 4 : (rnd(4) ? 4 : 8));
        if (!py && rnd(6) == 0) puts_("\t");
        else
            for (int k = 0; k < indent; k++) puts_(" ");
        puts_(py ? PICK(PY_LINES) : PICK(C_LINES));
        if (rnd(15) == 0) puts_("   "); /* trailing blanks */
        puts_("\n");
        uint32_t r = rnd(4);
        if (r == 0 && depth < 4) depth++;
        else if (r == 1 && depth > 0) depth--;
    }
    puts_("\n");
}

static void numbers(void) {
    int items = 5 + (int)rnd(20);
    for (int i = 0; i < items; i++) {
        switch (rnd(9)) {
        case 0: putf("%u", rnd(10)); break;
        case 1: putf("%u", (unsigned)(rnd64() % 100000000u)); break;
        case 2: putf("%u.%02u", rnd(10000), rnd(100)); break;
        case 3: putf("%04u-%02u-%02u", 1900 + rnd(130), 1 + rnd(12), 1 + rnd(28)); break;
        case 4: putf("v%u.%u.%u", rnd(10), rnd(30), rnd(200)); break;
        case 5: putf("0x%08X", (unsigned)rnd64()); break;
        case 6: putf("$%u,%03u.%02u", rnd(1000), rnd(1000), rnd(100)); break;
        case 7: putf("%d%%", (int)rnd(201) - 100); break;
        default: putf("+1 (%03u) %03u-%04u", rnd(1000), rnd(1000), rnd(10000)); break;
        }
        puts_(rnd(5) ? " " : (rnd(2) ? ", " : "\t"));
    }
    puts_("\n");
}

static const char *const ZH[] = {"我们", "的", "是", "在", "一个", "中国", "语言", "模型", "计算机",
                                 "人工智能", "学习", "数据", "时间", "问题", "今天", "天气", "很好",
                                 "，", "。", "、", "！", "？", "「", "」", "北京", "上海", "经济",
                                 "发展", "研究", "𠀀", "𪚥"};
static const char *const JA[] = {"これは", "日本語", "の", "テキスト", "です", "。", "東京",
                                 "ありがとう", "ございます", "カタカナ", "ひらがな", "漢字", "、",
                                 "コンピューター", "は", "を", "に", "が"};
static const char *const KO[] = {"안녕하세요", "한국어", "문장", "입니다", ".", "서울", "컴퓨터",
                                 "언어", "모델", "은", "는", "이", "가", "을", "를", "감사합니다"};

static void cjk(void) {
    uint32_t lang = rnd(3);
    int items = 8 + (int)rnd(40);
    for (int i = 0; i < items; i++) {
        if (lang == 0) puts_(PICK(ZH));
        else if (lang == 1) puts_(PICK(JA));
        else {
            puts_(PICK(KO));
            if (rnd(2)) puts_(" ");
        }
        if (rnd(25) == 0) puts_(PICK(WORDS)); /* mixed-in Latin */
    }
    puts_("\n");
}

static const char *const EMOJI[] = {
    "😀", "😂", "🥲", "😍", "🤔", "👍", "👍🏽", "👋🏿", "🙏", "🎉", "🔥", "❤️", "✨", "🚀",
    "👨‍👩‍👧‍👦", "🧑‍💻", "🏳️‍🌈", "🇫🇷", "🇯🇵", "🇺🇸", "☕", "🌍", "⭐", "✅", "❌", "💡",
    "🐍", "🦀", "📈", "🤖",
};

static void emoji(void) {
    int items = 3 + (int)rnd(15);
    for (int i = 0; i < items; i++) {
        if (rnd(3) == 0) {
            puts_(PICK(WORDS));
            puts_(" ");
        }
        puts_(PICK(EMOJI));
        if (rnd(4) == 0) puts_(PICK(EMOJI));
        if (rnd(2)) puts_(" ");
    }
    puts_("\n");
}

static const char *const AR[] = {"السلام", "عليكم", "مرحبا", "بالعالم", "اللغة", "العربية",
                                 "جميلة", "في", "من", "على", "إلى", "هذا", "كتاب", "الذكاء",
                                 "الاصطناعي", "نموذج", "شكرا", "جزيلا", "١٢٣", "٢٠٢٤", "،", "؟"};

static void arabic(void) {
    int items = 5 + (int)rnd(25);
    for (int i = 0; i < items; i++) {
        puts_(PICK(AR));
        puts_(rnd(10) ? " " : ". ");
    }
    puts_("\n");
}

static void whitespace(void) {
    int items = 2 + (int)rnd(8);
    for (int i = 0; i < items; i++) {
        switch (rnd(6)) {
        case 0: for (uint32_t k = 1 + rnd(16); k; k--) puts_(" "); break;
        case 1: for (uint32_t k = 1 + rnd(4); k; k--) puts_("\t"); break;
        case 2: for (uint32_t k = 1 + rnd(4); k; k--) puts_("\n"); break;
        case 3: puts_(" \t \n"); break;
        case 4: puts_("\xc2\xa0\xe3\x80\x80"); break; /* no-break space, ideographic space */
        default: puts_(PICK(WORDS)); break;
        }
    }
    puts_("\n");
}

int main(int argc, char **argv) {
    const char *out = NULL;
    size_t target = 10000000;
    uint64_t seed = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--bytes") == 0 && i + 1 < argc) target = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else if (argv[i][0] != '-' && !out) out = argv[i];
        else {
            fprintf(stderr, "usage: bench_tokenize_corpus OUT [--bytes N] [--seed S]\n");
            return 2;
        }
    }
    if (!out || target == 0) {
        fprintf(stderr, "usage: bench_tokenize_corpus OUT [--bytes N] [--seed S]\n");
        return 2;
    }
    rng_state = seed;
    /* paragraph kinds, weights out of 100 */
    while (len < target) {
        uint32_t r = rnd(100);
        if (r < 50) prose();
        else if (r < 65) code();
        else if (r < 73) numbers();
        else if (r < 83) cjk();
        else if (r < 89) emoji();
        else if (r < 95) arabic();
        else whitespace();
        if (rnd(4) == 0) puts_("\n"); /* blank line between some paragraphs */
    }
    /* cut at a character boundary at or below target */
    size_t n = target < len ? target : len;
    while (n > 0 && n < len && ((unsigned char)buf[n] & 0xC0) == 0x80) n--;
    FILE *f = fopen(out, "wb");
    if (!f || fwrite(buf, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "bench_tokenize_corpus: cannot write %s\n", out);
        return 1;
    }
    free(buf);
    return 0;
}
