/* fuzz/fuzz_proto.c — libFuzzer target for the message decoder (proto/, lmm/proto.h).
 * Decodes arbitrary bytes; whatever decodes must pass lmm_proto_msg_check, re-encode,
 * and decode again to an equal message whose re-encoding is byte-identical (the
 * encoding is canonical). Nothing may crash, leak or read outside the input. Every
 * message type of proto/messages.c is reached through the same table (KV_GET and KV_DATA
 * included); seeds: any encoded message, e.g. from tests/proto. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lmm/proto.h"

static lmm_proto_decoder *dec, *dec2;
static char enc1[LMM_PROTO_MAX_MSG_BYTES], enc2[LMM_PROTO_MAX_MSG_BYTES];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!dec && (lmm_proto_decoder_create(&dec) != 0 || lmm_proto_decoder_create(&dec2) != 0)) __builtin_trap();
    lmm_msg m, m2, reply;
    if (lmm_proto_decode(dec, data, size, &m) != 0) {
        /* The error reply to garbage must itself be a valid message. */
        size_t n;
        lmm_proto_decoder_error_reply(dec, &reply);
        if (lmm_proto_encode(&reply, enc1, sizeof enc1, &n) != 0) __builtin_trap();
        return 0;
    }
    if (lmm_proto_msg_check(&m) != 0) __builtin_trap();
    size_t n1, n2;
    if (lmm_proto_encode(&m, enc1, sizeof enc1, &n1) != 0) __builtin_trap();
    if (lmm_proto_decode(dec2, enc1, n1, &m2) != 0) __builtin_trap();
    if (!lmm_proto_msg_equal(&m, &m2)) __builtin_trap();
    if (lmm_proto_encode(&m2, enc2, sizeof enc2, &n2) != 0) __builtin_trap();
    if (n1 != n2 || memcmp(enc1, enc2, n1) != 0) __builtin_trap();
    return 0;
}
