/* services/cache/kv_region.c — keys, checksums and the RUN/kvcache file of the KV block
 * region (kv_region.h, docs/kv-cache.md). */
#include "kv_region.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lmm/error.h"

/* ---- hashing: 64-bit words mixed with two odd constants (not cryptographic; keys
 * are compared by value, checksums catch torn or corrupted bytes) ---------------------- */

static inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t mix(uint64_t h, uint64_t w) {
    h ^= rotl(w * 0x9e3779b97f4a7c15ull, 31) * 0xc2b2ae3d27d4eb4full;
    return rotl(h, 27) * 5u + 0x52dce729u;
}

static inline uint64_t fin(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

static uint64_t mix_bytes(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, b, 8);
        h = mix(h, w);
        b += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, b, n);
    return mix(h, w ^ ((uint64_t)n << 56));
}

uint64_t kv_checksum(const void *data, size_t nbytes) {
    /* Four independent lanes so the loop is not one long dependency chain. */
    const uint8_t *b = data;
    uint64_t h[4] = {1, 2, 3, 4};
    size_t i = 0;
    for (; i + 32 <= nbytes; i += 32) {
        uint64_t w[4];
        memcpy(w, b + i, 32);
        for (int k = 0; k < 4; k++) h[k] = mix(h[k], w[k]);
    }
    uint64_t r = mix_bytes(nbytes, b + i, nbytes - i);
    for (int k = 0; k < 4; k++) r = mix(r, h[k]);
    return fin(r);
}

uint64_t kv_layer_bytes(const lmm_model_desc *d, uint32_t block_tokens) {
    return 2ull * block_tokens * d->hp.n_kv_heads * d->hp.head_dim * sizeof(float);
}

uint64_t kv_block_bytes(const lmm_model_desc *d, uint32_t block_tokens) {
    return (uint64_t)d->hp.n_layers * kv_layer_bytes(d, block_tokens);
}

uint64_t kv_model_id(const lmm_model_desc *d, uint32_t block_tokens) {
    const lmm_hparams *hp = &d->hp;
    uint64_t h = 0x4b5643414348454bull; /* "KVCACHEK" */
    uint64_t v[] = {KV_KERNEL_VERSION, block_tokens, 4 /* KV dtype FP32 */, hp->n_vocab, hp->dim, hp->hidden_dim,
                    hp->n_layers, hp->n_heads, hp->n_kv_heads, hp->head_dim, hp->max_seq_len};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) h = mix(h, v[i]);
    float f[] = {hp->norm_eps, hp->rope_theta, hp->rope_factor, hp->rope_low_freq_factor, hp->rope_high_freq_factor};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        uint32_t bits;
        memcpy(&bits, &f[i], 4);
        h = mix(h, bits);
    }
    uint64_t e[] = {(uint64_t)hp->rope_layout, (uint64_t)hp->rope_scaling, hp->rope_orig_max_pos, hp->tied_embeddings,
                    hp->qkv_bias};
    for (size_t i = 0; i < sizeof e / sizeof e[0]; i++) h = mix(h, e[i]);
    h = mix(h, d->n_tensors);
    for (uint32_t i = 0; i < d->n_tensors; i++) {
        const lmm_tensor_desc *t = &d->tensors[i];
        h = mix_bytes(h, t->name, strlen(t->name));
        h = mix(h, (uint64_t)t->dtype);
        h = mix(h, t->n_dims);
        for (uint32_t k = 0; k < t->n_dims; k++) h = mix(h, t->shape[k]);
        h = mix(h, t->offset);
        h = mix(h, t->nbytes);
    }
    return fin(h);
}

uint64_t kv_block_key(uint64_t model_id, uint64_t parent, const uint32_t *tokens, uint32_t block_tokens) {
    uint64_t h = mix(mix(0x424c4f434b4b4559ull, model_id), parent);
    for (uint32_t i = 0; i < block_tokens; i++) h = mix(h, tokens[i]);
    return fin(mix(h, block_tokens));
}

/* ---- RUN/kvcache ----------------------------------------------------------------------- */

int kv_region_info_write(const char *run_dir, const kv_region_info *info) {
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", run_dir, KV_REGION_FILE);
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return lmm_error_set("%s: %s", tmp, strerror(errno));
    fprintf(f, "%s %" PRIu32 " %" PRIu32 " %" PRIu64 " %" PRIu64 " %016" PRIx64 " %s\n", info->shm,
            info->block_tokens, info->n_slots, info->slot_size, info->block_bytes, info->model_id,
            info->disk[0] ? info->disk : "-");
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return lmm_error_set("%s: %s", path, strerror(e));
    }
    return 0;
}

int kv_region_info_read(const char *run_dir, kv_region_info *info) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", run_dir, KV_REGION_FILE);
    FILE *f = fopen(path, "r");
    if (!f) return errno == ENOENT ? 1 : lmm_error_set("%s: %s", path, strerror(errno));
    memset(info, 0, sizeof *info);
    int n = fscanf(f, "%63s %" SCNu32 " %" SCNu32 " %" SCNu64 " %" SCNu64 " %" SCNx64 " %4095[^\n]", info->shm,
                   &info->block_tokens, &info->n_slots, &info->slot_size, &info->block_bytes, &info->model_id,
                   info->disk);
    fclose(f);
    if (n == 7 && strcmp(info->disk, "-") == 0) info->disk[0] = '\0';
    if (n != 7 || info->shm[0] != '/' || info->block_tokens == 0 || info->n_slots == 0 ||
        info->slot_size < info->block_bytes)
        return lmm_error_set("%s: malformed", path);
    return 0;
}
