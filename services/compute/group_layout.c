/* services/compute/group_layout.c — the layout both lmm-scheduler and lmm-compute derive
 * from the same inputs (group_layout.h): activation offsets, the layer split, packing of
 * byte ranges into a slot, the distinct tokens of a step and the small tensors. */
#include "group_layout.h"

#include <string.h>

static uint64_t align_up(uint64_t v) { return (v + LMM_GROUP_ALIGN - 1) / LMM_GROUP_ALIGN * LMM_GROUP_ALIGN; }

uint64_t lmm_group_act_layout(uint32_t max_batch, uint32_t dim, uint32_t n_vocab, uint64_t *x_offset,
                              uint64_t *logits_offset) {
    /* Inputs are bounded (max_batch <= 4096, dim <= 2^16, n_vocab <= 2^22): no overflow. */
    uint64_t x_bytes = (uint64_t)max_batch * dim * sizeof(float);
    uint64_t l_bytes = (uint64_t)max_batch * n_vocab * sizeof(float);
    *x_offset = LMM_GROUP_HEADER_BYTES;
    *logits_offset = *x_offset + align_up(x_bytes);
    return *logits_offset + align_up(l_bytes);
}

void lmm_group_layers(uint32_t n_layers, uint32_t n_workers, uint32_t w, uint32_t *begin, uint32_t *end) {
    uint32_t base = n_layers / n_workers, extra = n_layers % n_workers;
    *begin = w * base + (w < extra ? w : extra);
    *end = *begin + base + (w < extra ? 1 : 0);
}

uint64_t lmm_group_pack(const uint64_t *offset, const uint64_t *length, uint32_t n, uint64_t *slot_offset) {
    uint64_t at = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (length[i] > UINT64_MAX / 2 || at > UINT64_MAX / 2) return UINT64_MAX;
        if (slot_offset) slot_offset[i] = at;
        at += lmm_group_span(offset[i], length[i]);
    }
    return at;
}

uint32_t lmm_group_hash_cap(uint32_t n) {
    uint32_t c = 2;
    while (c < 2 * n) c *= 2;
    return c;
}

uint32_t lmm_group_distinct(const uint32_t *tokens, uint32_t n, uint32_t *distinct, uint32_t *row_of,
                            uint32_t *hash, uint32_t hash_cap) {
    /* Open addressing over token ids; an entry holds index + 1 into distinct[] (0 = empty). */
    memset(hash, 0, (size_t)hash_cap * sizeof *hash);
    uint32_t n_distinct = 0, mask = hash_cap - 1;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t h = (tokens[i] * 2654435761u) & mask;
        for (;;) {
            if (hash[h] == 0) {
                distinct[n_distinct] = tokens[i];
                hash[h] = ++n_distinct;
                row_of[i] = n_distinct - 1;
                break;
            }
            if (distinct[hash[h] - 1] == tokens[i]) {
                row_of[i] = hash[h] - 1;
                break;
            }
            h = (h + 1) & mask;
        }
    }
    return n_distinct;
}
