/* tools/lmsynth/lmsynth.c — lmsynth: writes deterministic random-weight models with
 * real shapes (for tests and benchmarks; speed does not depend on weight values).
 *
 *   lmsynth --shape tiny|stories15M|tinyllama-1.1b|llama2-7b [--dtype f32|f16|bf16]
 *           [--format gguf|safetensors|llama2c] [--seed S] --out PATH
 *           [--dim N --hidden N --layers N --heads N --kv-heads N --vocab N --seq N]
 *           [--tied|--untied] [--qkv-bias]
 *
 * Same arguments, same bytes. The parts: synth_weights.c (tensor list, generator),
 * synth_vocab.c (vocabulary), write_gguf.c, write_hf.c, write_llama2c.c. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lmm/error.h"
#include "synth.h"

typedef struct {
    const char *name;
    uint32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, n_vocab, max_seq_len;
    bool tied;   /* as the real model: TinyLlama and Llama-2 have a separate output matrix */
} shape_preset;

static const shape_preset k_shapes[] = {
    {"tiny", 64, 176, 2, 4, 2, 512, 256, true},
    {"stories15M", 288, 768, 6, 6, 6, 32000, 256, true},
    {"tinyllama-1.1b", 2048, 5632, 22, 32, 4, 32000, 2048, false},
    {"llama2-7b", 4096, 11008, 32, 32, 32, 32000, 4096, false},
};

/* Upper limits keep every size comfortably inside uint64_t and int32 (llama2.c header). */
#define MAX_DIM (1u << 16)
#define MAX_HIDDEN (1u << 18)
#define MAX_LAYERS 1024u
#define MAX_HEADS 1024u
#define MAX_VOCAB (1u << 22)
#define MAX_SEQ (1u << 20)

static void usage(FILE *out) {
    fprintf(out,
            "usage: lmsynth --out PATH [options]\n"
            "Writes a model with random weights (deterministic from --seed) and real shapes.\n"
            "  --shape NAME      tiny (default), stories15M, tinyllama-1.1b, llama2-7b\n"
            "  --dtype T         f32 (default), f16, bf16 (llama2c: f32 only)\n"
            "  --format F        gguf (default), safetensors (PATH is a directory), llama2c\n"
            "                    (llama2c also writes tokenizer.bin beside PATH)\n"
            "  --seed S          64-bit seed (default 0)\n"
            "  --dim N --hidden N --layers N --heads N --kv-heads N --vocab N --seq N\n"
            "                    override the shape's dimensions\n"
            "  --tied / --untied output matrix shared with the embedding or separate\n"
            "  --qkv-bias        q/k/v biases: arch qwen2 (gguf) / Qwen2ForCausalLM (safetensors)\n");
}

/* A whole-string decimal unsigned number in [lo, hi] (base 10 only: "010" is ten, not octal eight). */
static int parse_u64(const char *opt, const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
    const char *p = s;
    while (*p == ' ' || *p == '\t') p++;
    if (*p == '-' || *p == '+' || *p == 0)
        return lmm_error_set("--%s: '%s' is not a non-negative integer", opt, s);
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(p, &end, 10);
    if (errno == ERANGE) return lmm_error_set("--%s: '%s' is too large", opt, s);
    if (errno != 0 || end == p || *end != 0) return lmm_error_set("--%s: '%s' is not a non-negative integer", opt, s);
    if (v < lo || v > hi)
        return lmm_error_set("--%s: %llu is out of range [%" PRIu64 ", %" PRIu64 "]", opt, v, lo, hi);
    *out = (uint64_t)v;
    return 0;
}

static int parse_u32(const char *opt, const char *s, uint32_t lo, uint32_t hi, uint32_t *out) {
    uint64_t v;
    if (parse_u64(opt, s, lo, hi, &v)) return -1;
    *out = (uint32_t)v;
    return 0;
}

enum { OPT_DIM = 256, OPT_HIDDEN, OPT_LAYERS, OPT_HEADS, OPT_KV_HEADS, OPT_VOCAB, OPT_SEQ, OPT_TIED, OPT_UNTIED,
       OPT_QKV_BIAS };

static int parse_args(int argc, char **argv, synth_config *c) {
    static const struct option k_opts[] = {
        {"shape", required_argument, NULL, 's'},   {"dtype", required_argument, NULL, 't'},
        {"format", required_argument, NULL, 'f'},  {"seed", required_argument, NULL, 'S'},
        {"out", required_argument, NULL, 'o'},     {"help", no_argument, NULL, 'h'},
        {"dim", required_argument, NULL, OPT_DIM}, {"hidden", required_argument, NULL, OPT_HIDDEN},
        {"layers", required_argument, NULL, OPT_LAYERS}, {"heads", required_argument, NULL, OPT_HEADS},
        {"kv-heads", required_argument, NULL, OPT_KV_HEADS}, {"vocab", required_argument, NULL, OPT_VOCAB},
        {"seq", required_argument, NULL, OPT_SEQ}, {"tied", no_argument, NULL, OPT_TIED},
        {"untied", no_argument, NULL, OPT_UNTIED}, {"qkv-bias", no_argument, NULL, OPT_QKV_BIAS},
        {NULL, 0, NULL, 0},
    };
    const char *shape = "tiny";
    /* Overrides are applied after the shape, whatever the order on the command line. */
    uint32_t dim = 0, hidden = 0, layers = 0, heads = 0, kv_heads = 0, vocab = 0, seq = 0;
    int tied = -1;
    memset(c, 0, sizeof *c);
    c->dtype = LMM_DTYPE_F32;
    c->format = SYNTH_FMT_GGUF;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":", k_opts, NULL)) != -1) {
        switch (ch) {
        case 's': shape = optarg; break;
        case 't':
            if (lmm_dtype_parse(optarg, &c->dtype)) return -1;
            break;
        case 'f':
            if (strcasecmp(optarg, "gguf") == 0) c->format = SYNTH_FMT_GGUF;
            else if (strcasecmp(optarg, "safetensors") == 0 || strcasecmp(optarg, "hf") == 0) c->format = SYNTH_FMT_HF;
            else if (strcasecmp(optarg, "llama2c") == 0) c->format = SYNTH_FMT_LLAMA2C;
            else return lmm_error_set("unknown format '%s' (expected gguf, safetensors or llama2c)", optarg);
            break;
        case 'S':
            if (parse_u64("seed", optarg, 0, UINT64_MAX, &c->seed)) return -1;
            break;
        case 'o': c->out = optarg; break;
        case 'h': usage(stdout); exit(0);
        case OPT_DIM: if (parse_u32("dim", optarg, 2, MAX_DIM, &dim)) return -1; break;
        case OPT_HIDDEN: if (parse_u32("hidden", optarg, 1, MAX_HIDDEN, &hidden)) return -1; break;
        case OPT_LAYERS: if (parse_u32("layers", optarg, 1, MAX_LAYERS, &layers)) return -1; break;
        case OPT_HEADS: if (parse_u32("heads", optarg, 1, MAX_HEADS, &heads)) return -1; break;
        case OPT_KV_HEADS: if (parse_u32("kv-heads", optarg, 1, MAX_HEADS, &kv_heads)) return -1; break;
        case OPT_VOCAB: if (parse_u32("vocab", optarg, SYNTH_VOCAB_FIXED, MAX_VOCAB, &vocab)) return -1; break;
        case OPT_SEQ: if (parse_u32("seq", optarg, 1, MAX_SEQ, &seq)) return -1; break;
        case OPT_TIED: tied = 1; break;
        case OPT_UNTIED: tied = 0; break;
        case OPT_QKV_BIAS: c->qkv_bias = true; break;
        case ':': return lmm_error_set("option '%s' needs a value", argv[optind - 1]);
        default: return lmm_error_set("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return lmm_error_set("unexpected argument '%s'", argv[optind]);
    if (!c->out || !*c->out) return lmm_error_set("--out PATH is required");

    const shape_preset *sp = NULL;
    for (size_t i = 0; i < sizeof k_shapes / sizeof k_shapes[0]; i++)
        if (strcasecmp(shape, k_shapes[i].name) == 0) sp = &k_shapes[i];
    if (!sp)
        return lmm_error_set("unknown shape '%s' (expected tiny, stories15M, tinyllama-1.1b or llama2-7b)", shape);
    c->dim = dim ? dim : sp->dim;
    c->hidden_dim = hidden ? hidden : sp->hidden_dim;
    c->n_layers = layers ? layers : sp->n_layers;
    c->n_heads = heads ? heads : sp->n_heads;
    c->n_kv_heads = kv_heads ? kv_heads : sp->n_kv_heads;
    c->n_vocab = vocab ? vocab : sp->n_vocab;
    c->max_seq_len = seq ? seq : sp->max_seq_len;
    c->tied = tied < 0 ? sp->tied : tied == 1;
    c->norm_eps = 1e-5f;
    c->rope_theta = 10000.0f;

    if (c->dim % c->n_heads != 0)
        return lmm_error_set("dim %u is not a multiple of heads %u", c->dim, c->n_heads);
    c->head_dim = c->dim / c->n_heads;
    if (c->head_dim % 2 != 0) return lmm_error_set("head dimension %u (dim / heads) must be even for RoPE", c->head_dim);
    if (c->n_kv_heads > c->n_heads || c->n_heads % c->n_kv_heads != 0)
        return lmm_error_set("heads %u is not a multiple of kv-heads %u", c->n_heads, c->n_kv_heads);
    if (c->format == SYNTH_FMT_LLAMA2C && c->dtype != LMM_DTYPE_F32)
        return lmm_error_set("the llama2c format holds F32 weights only (asked for %s): use --dtype f32, or "
                             "--format gguf/safetensors for F16/BF16", lmm_dtype_name(c->dtype));
    if (c->format == SYNTH_FMT_LLAMA2C && c->qkv_bias)
        return lmm_error_set("the llama2c format has no q/k/v biases: --qkv-bias needs --format gguf or safetensors");
    return 0;
}

int main(int argc, char **argv) {
    synth_config c;
    if (parse_args(argc, argv, &c)) {
        fprintf(stderr, "lmsynth: %s\n(lmsynth --help for usage)\n", lmm_error_get());
        return 1;
    }
    int rc;
    switch (c.format) {
    case SYNTH_FMT_HF: rc = synth_write_hf(&c); break;
    case SYNTH_FMT_LLAMA2C: rc = synth_write_llama2c(&c); break;
    default: rc = synth_write_gguf(&c); break;
    }
    if (rc) {
        fprintf(stderr, "lmsynth: %s\n", lmm_error_get());
        return 1;
    }
    return 0;
}
