/* lmm/model.h — the one description of a model, whatever file format it came from.
 *
 * A reader (GGUF, Hugging Face safetensors directory, llama2.c checkpoint) fills an
 * lmm_model_desc: architecture, hyper-parameters and a tensor table that says, for
 * every tensor, its canonical name, dtype, row-major shape, file, absolute byte
 * offset and byte length. Nothing else in the engine knows about file formats.
 *
 * Canonical tensor names (row-major shapes; the last dimension is contiguous):
 *   token_embd.weight            [n_vocab, dim]
 *   output_norm.weight           [dim]
 *   output.weight                [n_vocab, dim]        absent when embeddings are tied
 *   rope_freqs.weight            [head_dim/2]          optional (GGUF Llama-3 frequency factors)
 *   blk.L.attn_norm.weight       [dim]
 *   blk.L.attn_q.weight          [n_heads*head_dim, dim]
 *   blk.L.attn_k.weight          [n_kv_heads*head_dim, dim]
 *   blk.L.attn_v.weight          [n_kv_heads*head_dim, dim]
 *   blk.L.attn_q.bias / attn_k.bias / attn_v.bias      [rows]  when hp.qkv_bias
 *   blk.L.attn_output.weight     [dim, n_heads*head_dim]
 *   blk.L.ffn_norm.weight        [dim]
 *   blk.L.ffn_gate.weight        [hidden_dim, dim]     (w1)
 *   blk.L.ffn_up.weight          [hidden_dim, dim]     (w3)
 *   blk.L.ffn_down.weight        [dim, hidden_dim]     (w2)
 * Weights are F32, F16 or BF16, each tensor its own dtype. Offsets are uint64_t. */
#ifndef LMM_MODEL_H
#define LMM_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lmm/dtype.h"
#include "lmm/gguf.h"

#define LMM_TENSOR_NAME_MAX 96
#define LMM_MAX_DIMS 4

typedef enum {
    LMM_FORMAT_GGUF = 0,
    LMM_FORMAT_HF,          /* config.json + *.safetensors */
    LMM_FORMAT_LLAMA2C      /* llama2.c .bin checkpoint */
} lmm_format;

typedef enum {
    LMM_ARCH_LLAMA = 0,     /* Llama 2/3, TinyLlama, Mistral: the same graph */
    LMM_ARCH_QWEN2          /* Llama graph with q/k/v bias */
} lmm_arch;

typedef enum {
    LMM_ROPE_INTERLEAVED = 0, /* rotates pairs (2i, 2i+1): Meta / GGUF llama / llama2.c */
    LMM_ROPE_NEOX             /* rotates pairs (i, i+head_dim/2): Hugging Face, GGUF qwen2 */
} lmm_rope_layout;

typedef enum {
    LMM_ROPE_SCALING_NONE = 0,
    LMM_ROPE_SCALING_LINEAR,  /* positions divided by factor */
    LMM_ROPE_SCALING_LLAMA3   /* Llama-3.1 frequency-dependent scaling */
} lmm_rope_scaling;

typedef struct {
    uint32_t n_vocab;
    uint32_t dim;           /* embedding width */
    uint32_t hidden_dim;    /* FFN width */
    uint32_t n_layers;
    uint32_t n_heads;
    uint32_t n_kv_heads;    /* < n_heads: grouped-query attention */
    uint32_t head_dim;      /* usually dim / n_heads */
    uint32_t max_seq_len;   /* context length the model was trained for */
    float norm_eps;         /* RMSNorm epsilon */
    float rope_theta;
    lmm_rope_layout rope_layout;
    lmm_rope_scaling rope_scaling;
    float rope_factor;            /* LINEAR and LLAMA3 */
    float rope_low_freq_factor;   /* LLAMA3 */
    float rope_high_freq_factor;  /* LLAMA3 */
    uint32_t rope_orig_max_pos;   /* LLAMA3: original_max_position_embeddings */
    bool tied_embeddings;   /* output.weight absent, token_embd.weight reused */
    bool qkv_bias;
} lmm_hparams;

typedef struct {
    char name[LMM_TENSOR_NAME_MAX];   /* canonical name (see above) */
    lmm_dtype dtype;
    uint32_t n_dims;
    uint64_t shape[LMM_MAX_DIMS];     /* row-major */
    uint32_t file;                    /* index into lmm_model_desc.files */
    uint64_t offset;                  /* absolute byte offset in that file */
    uint64_t nbytes;                  /* = product(shape) * dtype size */
} lmm_tensor_desc;

typedef struct {
    lmm_format format;
    lmm_arch arch;
    char arch_name[32];            /* as the file says: "llama", "qwen2", "LlamaForCausalLM", ... */
    lmm_hparams hp;
    uint32_t n_files;
    char **files;                  /* [n_files] paths of the files holding tensor data */
    uint64_t *file_sizes;          /* [n_files] */
    uint32_t n_tensors;
    lmm_tensor_desc *tensors;      /* [n_tensors] */
    char *tokenizer_path;          /* tokenizer file found beside the model, or NULL */
    lmm_gguf *gguf;                /* GGUF: the parsed metadata (tokenizer lives here), else NULL */
    uint32_t bos_id, eos_id;       /* special tokens when the format says (else 1 and 2) */
    /* private: open-addressing hash of tensor names -> index+1 (0 = empty), so that
     * adding and finding tensors stays O(1) even for hostile files with 65536 tensors */
    uint32_t *name_index;          /* [name_index_cap] */
    uint32_t name_index_cap;       /* power of two, >= 2 * n_tensors */
    uint32_t tensors_cap;          /* private: allocated entries of tensors (grows x2) */
} lmm_model_desc;

/* Opens PATH, detecting the format: a directory (or config.json / *.safetensors
 * file) is Hugging Face, "GGUF" magic is GGUF, anything else is tried as llama2.c.
 * Validates the result (lmm_model_desc_validate). */
int lmm_model_desc_open(lmm_model_desc *d, const char *path);
/* Format-specific readers (each validates before returning). */
int lmm_model_desc_open_gguf(lmm_model_desc *d, const char *path);
int lmm_model_desc_open_hf(lmm_model_desc *d, const char *path);
int lmm_model_desc_open_llama2c(lmm_model_desc *d, const char *path);
void lmm_model_desc_free(lmm_model_desc *d);

/* Building blocks for readers. */
void lmm_model_desc_init(lmm_model_desc *d);
int lmm_model_desc_add_file(lmm_model_desc *d, const char *path, uint64_t size, uint32_t *index);
/* Appends a tensor; checks name length, dims, overflow of nbytes and that
 * [offset, offset+nbytes) lies inside the file. */
int lmm_model_desc_add_tensor(lmm_model_desc *d, const char *name, lmm_dtype dtype,
                              uint32_t n_dims, const uint64_t *shape,
                              uint32_t file, uint64_t offset, uint64_t nbytes);
const lmm_tensor_desc *lmm_model_desc_find(const lmm_model_desc *d, const char *name);
/* Checks hyper-parameters for absurd values and that every tensor the architecture
 * needs is present with the expected shape. Errors name the file and the tensor. */
int lmm_model_desc_validate(const lmm_model_desc *d);

uint64_t lmm_model_desc_weight_bytes(const lmm_model_desc *d);
/* FP32 K and V cache bytes for n_ctx positions. */
uint64_t lmm_model_desc_kv_bytes(const lmm_model_desc *d, uint32_t n_ctx);
const char *lmm_format_name(lmm_format f);
const char *lmm_rope_layout_name(lmm_rope_layout r);

#endif
