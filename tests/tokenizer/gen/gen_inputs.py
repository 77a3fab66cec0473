#!/usr/bin/python3
"""tests/tokenizer/gen/gen_inputs.py — assembles tests/tokenizer/data/extra.inp, the
test texts added to ../shared's gguf-vocab .inp texts: code, emoji, CJK, Arabic and
other scripts, combining marks, long whitespace runs, numbers, special-token
look-alikes, control characters. Deterministic (no randomness); the output is
committed. Texts are separated by "\\n__ggml_vocab_test__\\n" as in llama.cpp's .inp."""
import os

SEP = "\n__ggml_vocab_test__\n"
T = []

# --- code ---------------------------------------------------------------
T += [
    'int main(void) {\n    printf("hello, world\\n");\n    return 0;\n}',
    'def f(x):\n\treturn [i ** 2 for i in range(x) if i % 3 == 0]',
    'const add = (a, b) => a + b; // arrow function',
    'for (size_t i = 0; i < n; ++i) { sum += a[i] * b[i]; }',
    '#include <stdio.h>\n#define MAX(a, b) ((a) > (b) ? (a) : (b))',
    'SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;',
    '<div class="main"><p>Hello &amp; welcome</p></div>',
    '{"key": "value", "list": [1, 2, 3], "nested": {"a": null}}',
    'fn main() { let v: Vec<u32> = (0..10).collect(); println!("{:?}", v); }',
    'if [ -f "$HOME/.bashrc" ]; then source ~/.bashrc; fi',
    'x = y if y is not None else z  # ternary',
    'public static void main(String[] args) throws IOException {',
    '    \t  indented_with_mixed_whitespace = True',
    'git commit -m "Fix: handle edge-case in parser (#1234)"',
    'https://example.com/path/to/page?query=1&lang=en#section-2',
    'user.name+tag@example.co.uk',
    'a=1;b=2;c=a+b;print(c)',
    '    def __init__(self, *args, **kwargs):\n        super().__init__(*args, **kwargs)',
    '$ ./configure --prefix=/usr/local && make -j4 && sudo make install',
    'λx.λy.x y',
    'std::vector<std::pair<int, std::string>> v{{1, "a"}, {2, "b"}};',
    'while(1){if(x--<=0)break;}',
    '/* comment */ // another\n# hash comment\n-- sql comment',
    'camelCaseIdentifier snake_case_identifier SCREAMING_CASE kebab-case',
    '0x1F 0b1010 0o777 1e-10 3.14159f 42u 7ULL',
]
# --- emoji ---------------------------------------------------------------
T += [
    '😀', '😀😀😀', '👍🏽', '👨‍👩‍👧‍👦', '🏳️‍🌈', '🇫🇷🇩🇪🇯🇵', '❤️', '☺️ smile',
    'I love 🍕 and 🍣!', '🦙🦙🦙 llamas', '🚀 launch at 10:00 🕙', '🧑🏿‍💻 coding',
    '🙂🙃', 'emoji at end 🎉', '🎉 emoji at start', '1️⃣2️⃣3️⃣', '✅❌⚠️', '👩🏻‍🔬🧪',
    '🫠🫡🫥', 'mixed😀text😀without😀spaces',
]
# --- CJK ------------------------------------------------------------------
T += [
    '你好，世界！', '我爱自然语言处理。', '今天天气很好，我们去公园散步吧。', '北京是中国的首都',
    'こんにちは世界', '日本語のテキストを分割します。', 'カタカナとひらがなと漢字', 'ｶﾀｶﾅ半角',
    '안녕하세요 세계', '한국어 토크나이저 테스트', '中文English混合text', '价格：１２３元',
    '「引用」『二重引用』', '東京タワー🗼', '龘靐齉爩', '𠀀𠀁𪚥 (CJK extension B)',
    '全角スペース\u3000の後', '繁體中文與简体中文', '一二三四五六七八九十', '你好\n世界\n',
]
# --- Arabic, Hebrew, other scripts -----------------------------------------
T += [
    'مرحبا بالعالم', 'اللغة العربية جميلة جداً', 'السلام عليكم ورحمة الله',
    'عدد ١٢٣٤٥ بالأرقام العربية', 'שלום עולם', 'עברית מימין לשמאל',
    'Привет, мир!', 'Съешь же ещё этих мягких французских булок', 'Γειά σου Κόσμε',
    'नमस्ते दुनिया', 'हिन्दी भाषा', 'สวัสดีชาวโลก', 'ภาษาไทยไม่มีช่องว่าง',
    'გამარჯობა', 'Բարեւ աշխարհ', 'ሰላም ልዑል', 'வணக்கம் உலகம்', 'ಕನ್ನಡ',
    'Tiếng Việt có dấu', 'Zażółć gęślą jaźń', 'Ærøskøbing Ångström', 'İstanbul ığdır ŞŞ',
    'straße STRASSE Straße', 'ÀÉÎÕÜ àéîõü', 'mixed: English, Русский, 中文, العربية',
    'ⲀⲂⲄ Coptic', 'ᚠᚢᚦᚨᚱᚲ runes', 'ꦲꦏ꧀ꦱꦫ javanese',
]
# --- combining marks / normalisation ------------------------------------------
T += [
    'e\u0301', 'cafe\u0301 vs caf\u00e9', 'n\u0303 vs \u00f1', 'a\u0308o\u0308u\u0308',
    'Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319a\u0327lgo\u0336',
    '\u1e9b\u0323', 'ﬁ ligature ﬂ', '\u2126 ohm \u212b angstrom', '\u00bd \u2153 \u00bc fractions',
    'x\u00b2 + y\u00b3 = z\u2074', 'H\u2082O', '\u2460\u2461\u2462 circled', '\uff21\uff22\uff23 fullwidth',
    '\u0915\u094d\u0937 conjunct', '\u05e9\u05c1\u05b8\u05dc\u05d5\u05b9\u05dd pointed hebrew',
    'a\u200bb zero width space', 'a\u200db zwj', 'a\u00adb soft hyphen', '\ufeffBOM at start',
    'dotless \u0131 and dotted \u0130', '\u01c5 titlecase dz', '\u1f80 greek ypogegrammeni',
    'ǅungla', 'K\u212a kelvin', 'Å\u212b',
]
# --- whitespace runs -----------------------------------------------------------
T += [
    ' ' * 2, ' ' * 5, ' ' * 16, ' ' * 33, '\t' * 4, '\n' * 6, ' \n \n ', '\r\n\r\n', '\r',
    'a' + ' ' * 10 + 'b', 'word\t\t\tword', 'line1\n\n\n\nline2', '   leading spaces',
    'trailing spaces   ', '  both  ', ' \t \t mixed', '\u00a0non-breaking\u00a0space',
    '\u2003em space\u2002en space', '\u3000ideographic', 'a \n b', ' ' * 200 + 'x',
    'x' + '\n' * 40, '\t\n\r \x0b\x0c', 'end with newline\n', '\n\nstart with newlines',
    'tab\tseparated\tvalues\t1\t2', '    four\n        eight\n            twelve',
]
# --- numbers -----------------------------------------------------------------
T += [
    '0', '7', '42', '123', '1234', '12345', '123456789', '3.14159265358979',
    '1,000,000', '1.000.000,50', '2024-01-15', '12:34:56', '+1 (555) 123-4567',
    '-42', '1e10', '6.022e23', '0.000001', '100%', '$1,234.56', '€99,99', '¥1000',
    '٠١٢٣٤٥٦٧٨٩', '۰۱۲۳۴۵۶۷۸۹', '०१२३४५६७८९', '１２３４５', '①②③', 'Ⅻ Roman numerals',
    '3/4 cup', '1st 2nd 3rd 4th', 'v1.2.3-beta+build.5', '192.168.0.1', '0xDEADBEEF',
    '3333333333333333333333333333333333', 'a1b2c3d4', '99 bottles', '2^64 = 18446744073709551616',
]
# --- special-token look-alikes -------------------------------------------------
T += [
    '<|endoftext|>', '<|endoftext|> after', 'before<|endoftext|>after', '<|endoftext',
    '<|im_start|>user\nhello<|im_end|>', '<|im_start', 'im_start|>', '< |im_start| >',
    '<s>', '</s>', '<s> text </s>', '<unk>', '< s >', '<<s>>', '<s><s>', 's>',
    '[CLS] [SEP] [MASK] [PAD] [UNK]', '[CLS]x[SEP]', '<|begin_of_text|>', '<|eot_id|>',
    '<|start_header_id|>user<|end_header_id|>', '<|reserved_special_token_0|>',
    '<think>reasoning</think>', '<tool_call>{}</tool_call>', '<|fim_prefix|>code<|fim_suffix|>',
    '<0x41>', '<0xFF>', '▁', '▁▁hello', 'Ġhello', '##ing', '<pad>', '<mask>', '</s><s>',
    '<|', '|>', '<||>', '<|im_end|><|im_end|>', '<|endoftext|><|endoftext|>',
]
# --- contractions, punctuation, case ---------------------------------------------
T += [
    "I'm", "you're", "it's", "we've", "they'll", "I'd", "don't", "CAN'T", "Y'ALL'RE",
    "'s 't 're 've 'm 'll 'd", "rock 'n' roll", "o'clock", "the dogs' bones",
    "Hello!!!", "What?!", "...", "—em dash—", "–en dash–", "«quotes» „quotes“ ‘single’",
    "a.b.c", "end.", "(parenthesised)", "[bracketed]", "{braced}", "a/b\\c", "@mention #hashtag",
    "UPPER lower MiXeD", "HTTPServerError", "iPhone eBay", "O'Neil McDonald",
    "!@#$%^&*()_+-=[]{}|;':\",./<>?`~", "~~~~", "____", "----", "====", "****", "!!!!??",
    "¡Hola! ¿Qué tal?", "naïve coöperate résumé", "Ω≈ç√∫˜µ≤≥÷", "∀x∈ℝ: x²≥0", "→ ← ↑ ↓ ⇒",
    "©®™", "°C °F", "§ ¶ † ‡", "♠♣♥♦", "☃☂☀", "•·…",
]
# --- control characters and odd bytes (valid UTF-8) ---------------------------------
T += [
    'bell\x07char', 'escape\x1b[31mred\x1b[0m', 'delete\x7fchar', 'nul\x00byte', '\x00',
    'a\x01b\x02c', 'form\x0cfeed', 'vertical\x0btab', 'C1\x85next line', '\u2028line sep\u2029para sep',
    '\ufffd replacement', '\uffff noncharacter', '\U0010ffff max', '\ue000 private use',
    '\U000e0041 tag', '\u202eRTL override\u202c', '\u061c arabic mark',
]
# --- longer prose ------------------------------------------------------------------
T += [
    'Once upon a time, there was a little girl named Lily. She loved to play outside in the park.',
    'The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG.',
    'In 1492, Columbus sailed the ocean blue; in 1969, humans walked on the Moon.',
    'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt.',
    'Machine learning models tokenize text into subword units before processing it.',
    'She said, "It\'s 5 o\'clock somewhere!" and laughed.',
    'The model has 7B parameters, a context of 4096 tokens, and runs at 20 tok/s.',
    'Dear Sir/Madam,\n\nI am writing to inquire about the position.\n\nSincerely,\nJohn',
    '- item one\n- item two\n  - nested item\n* star item\n1. numbered',
    '| a | b |\n|---|---|\n| 1 | 2 |',
    '# Heading\n\n**bold** _italic_ `code` [link](http://x.y)',
    'Q: What is 2+2?\nA: 4.',
    'Mr. Smith bought cheapsite.com for 1.5 million dollars, i.e. he paid a lot for it.',
    'The café served crème brûlée, jalapeño poppers and piña coladas.',
    'Zürich, Genève, København, Kraków, São Paulo, Reykjavík.',
    'ok' * 60,
    'abc ' * 50,
    'supercalifragilisticexpialidocious antidisestablishmentarianism',
    'pneumonoultramicroscopicsilicovolcanoconiosis',
    'a' * 120,
    '🦙' * 30,
    '中' * 80,
    'x' * 300 + ' y',
    'The end.',
]
# --- generated combinations: every script joined to every separator ---------------
words = ['hello', 'Hello', 'HELLO', 'naïve', 'Привет', '你好', 'مرحبا', '😀', '123', "it's", '<s>', 'a\u0301']
seps = [' ', '  ', '\n', '\t', '', ', ', '. ', ' - ', '\u3000', '!?']
for i, w in enumerate(words):
    for j, s in enumerate(seps):
        if (i + j) % 2 == 0:
            T.append(w + s + words[(i + j) % len(words)])

assert len(T) >= 300, len(T)
for t in T:
    assert SEP not in t
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'data', 'extra.inp')
with open(out, 'w', encoding='utf-8', newline='') as f:
    for t in T:
        f.write(t + SEP)
print('%d texts -> %s' % (len(T), out))
