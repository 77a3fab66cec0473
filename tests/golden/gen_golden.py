#!/usr/bin/python3
"""tests/golden/gen_golden.py — golden logits for the engine from an independent PyTorch
reference of the Llama-family forward pass, and the small random models they belong to.

Run with Debian's Python, which has torch and numpy:

    /usr/bin/python3 tests/golden/gen_golden.py            # rewrites tests/golden/data/
    /usr/bin/python3 tests/golden/gen_golden.py --check    # regenerates in memory, compares

CI has no torch: the outputs are committed under tests/golden/data/ and test_golden.c
reads them. Everything here (the reference and the three file writers) is written from
the formats' public descriptions; nothing is shared with the C code.

Reference (float32 torch, one thread, deterministic): RMSNorm, RoPE in NeoX layout
(rotate_half, as Hugging Face) on the HF weights, grouped-query attention, SiLU-gated
FFN, optional q/k/v bias, tied or untied output, Llama-3 rope scaling as HF's
_compute_llama3_parameters. cos/sin are computed in float64 from float64 angles and
rounded once to float32 (the most accurate float32 table). The same forward pass in
float64 on the same weights must agree to 1e-6 relative, and an interleaved-RoPE pass on
the permuted weights (what GGUF llama / llama2.c hold) must agree too: both are checked
for every model before anything is written.

Files (data/, paths in the manifest are relative to it):
  <model>/config.json + model.safetensors   Hugging Face (NeoX q/k rows)
  <model>.gguf       GGUF v3; arch llama: q/k rows permuted to the interleaved layout
                     as llama.cpp's converter does; arch qwen2 keeps NeoX; Llama-3
                     scaling stored as rope_freqs.weight (F32 frequency divisors)
  <model>.bin        llama2.c version 0 (F32, interleaved; no bias, no scaling)
  <model>.tokens     the 64 greedy token ids, little-endian uint32 [64]
  <model>.logits     little-endian float32 [65][n_vocab]: row 0 = logits at the last
                     prompt position, row k = logits after feeding tokens[k-1]
  manifest.json      one entry per (model, file): path, format, dtype, prompt, files,
                     hyper-parameters; see the "doc" field.
Also the real stories260K from ../shared (not copied here: its entry has "shared_model",
a path under ../shared): the reference must first reproduce llama2.c's published greedy
text from BOS; its tokens 0..7 are the prompt and 8..71 the golden steps.
Weights: embeddings uniform [-0.5, 0.5]; matrices uniform [-3/sqrt(in), 3/sqrt(in)] (gain 3,
so the layers rather than the tied embedding choose the next token); norms 1 + k/128,
|k| <= 12; biases uniform [-0.2, 0.2]; F16/BF16 models round them and the reference uses
the exactly widened values. A seed is accepted only if the greedy run visits >= 16
distinct tokens, every row's top-2 logit margin is >= 1e-3 * max|logit| (so greedy is
unambiguous) and the float64 pass picks the same tokens; otherwise the next seed is tried.
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch

N_STEPS = 64
PROMPT_LEN = 8
MARGIN_REL = 1e-3
F64_AGREE_REL = 2e-6
MIN_DISTINCT = 16   # greedy tokens: a run stuck on one token would test little
MATRIX_GAIN = 2.0   # matrices uniform in [-2/sqrt(in), 2/sqrt(in)]

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")

# ---- the models -----------------------------------------------------------------
# dim 32 / 4 heads (head_dim 8) keeps the committed data under 3 MB while exercising every
# feature; 4 query heads on 2 KV heads catch a wrong head -> KV-head mapping.
BASE = dict(dim=32, hidden=96, n_layers=2, n_heads=4, n_kv_heads=2, vocab=272, seq=256,
            eps=1e-5, theta=10000.0, tied=True, bias=False, rope_scaling=None, dtype="f32")
MODELS = [
    dict(name="llama_gqa", seed=1000, formats=["hf", "gguf", "llama2c"]),
    dict(name="llama_mqa_untied", seed=2000, n_layers=3, n_kv_heads=1, hidden=80, tied=False,
         formats=["hf", "gguf", "llama2c"]),
    dict(name="qwen2_bias", seed=3000, bias=True, theta=1000000.0, eps=1e-6, tied=False,
         formats=["hf", "gguf"]),
    dict(name="llama3_rope", seed=4000, theta=10000.0,
         rope_scaling=dict(rope_type="llama3", factor=4.0, low_freq_factor=1.0, high_freq_factor=4.0,
                           original_max_position_embeddings=160),
         formats=["hf", "gguf"]),
    dict(name="llama_f16", seed=5000, dtype="f16", formats=["hf", "gguf"]),
    dict(name="qwen2_bf16", seed=6000, dtype="bf16", bias=True, tied=False, formats=["hf", "gguf"]),
]


def model_config(m):
    c = dict(BASE)
    c.update(m)
    c["head_dim"] = c["dim"] // c["n_heads"]
    return c


# ---- weights ----------------------------------------------------------------------

def round_to(t, dtype):
    """Weights as the file will hold them, widened back exactly to float32."""
    if dtype == "f16":
        return t.to(torch.float16).to(torch.float32)
    if dtype == "bf16":
        return t.to(torch.bfloat16).to(torch.float32)
    return t


def make_weights(c, seed):
    """HF-layout (NeoX) float32 tensors under canonical names."""
    rng = np.random.default_rng(seed)
    d, hd, hid = c["dim"], c["head_dim"], c["hidden"]
    qr, kr = c["n_heads"] * hd, c["n_kv_heads"] * hd

    def unif(shape, scale):
        return torch.from_numpy((rng.uniform(-1.0, 1.0, size=shape) * scale).astype(np.float32))

    def mat(rows, cols):  # gain 3: the layers, not the (tied) embedding, pick the next token,
        return unif((rows, cols), MATRIX_GAIN / math.sqrt(cols))  # so greedy runs visit many tokens

    def norm(n):  # 1 + k/128: exact in F16 and BF16, so GGUF's F32 norms equal HF's F16/BF16 ones
        return torch.from_numpy((1.0 + rng.integers(-12, 13, size=n) / 128.0).astype(np.float32))

    w = {"token_embd.weight": unif((c["vocab"], d), 0.5)}
    for l in range(c["n_layers"]):
        p = "blk.%d." % l
        w[p + "attn_norm.weight"] = norm(d)
        w[p + "attn_q.weight"] = mat(qr, d)
        w[p + "attn_k.weight"] = mat(kr, d)
        w[p + "attn_v.weight"] = mat(kr, d)
        if c["bias"]:
            w[p + "attn_q.bias"] = unif((qr,), 0.2)
            w[p + "attn_k.bias"] = unif((kr,), 0.2)
            w[p + "attn_v.bias"] = unif((kr,), 0.2)
        w[p + "attn_output.weight"] = mat(d, qr)
        w[p + "ffn_norm.weight"] = norm(d)
        w[p + "ffn_gate.weight"] = mat(hid, d)
        w[p + "ffn_up.weight"] = mat(hid, d)
        w[p + "ffn_down.weight"] = mat(d, hid)
    w["output_norm.weight"] = norm(d)
    if not c["tied"]:
        w["output.weight"] = mat(c["vocab"], d)
    return {k: round_to(v, c["dtype"]) for k, v in w.items()}


def permute_to_interleaved(w, n_heads):
    """HF (NeoX) q/k rows -> the interleaved layout, as llama.cpp's converter and llama2.c's
    export permute: row h*hd + 2i + j of the result is row h*hd + j*hd/2 + i of the input."""
    rows = w.shape[0]
    return (w.reshape(n_heads, 2, rows // n_heads // 2, *w.shape[1:])
            .transpose(1, 2).reshape(w.shape).contiguous())


def interleaved_weights(c, w):
    out = dict(w)
    for l in range(c["n_layers"]):
        p = "blk.%d." % l
        out[p + "attn_q.weight"] = permute_to_interleaved(w[p + "attn_q.weight"], c["n_heads"])
        out[p + "attn_k.weight"] = permute_to_interleaved(w[p + "attn_k.weight"], c["n_kv_heads"])
        assert not c["bias"]
    return out


# ---- the reference forward pass ---------------------------------------------------------

def inv_freqs(c):
    """float64 inverse frequencies, with Llama-3 scaling as HF's _compute_llama3_parameters."""
    hd = c["head_dim"]
    inv = 1.0 / (c["theta"] ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
    rs = c["rope_scaling"]
    if rs:
        factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        scaled = np.where(wavelen > old / lo, inv / factor, inv)
        smooth = (old / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < old / hi) & ~(wavelen > old / lo)
        inv = np.where(medium, smoothed, scaled)
    return inv


def rope_divisors(c):
    """GGUF rope_freqs.weight as llama.cpp's converter computes it for Llama 3: 1, factor,
    or 1 / ((1 - smooth) / factor + smooth); the engine divides the frequencies by them."""
    rs = c["rope_scaling"]
    hd = c["head_dim"]
    base = 1.0 / (c["theta"] ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
    factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    old = rs["original_max_position_embeddings"]
    out = []
    for f in base:
        wavelen = 2 * math.pi / f
        if wavelen < old / hi:
            out.append(1.0)
        elif wavelen > old / lo:
            out.append(factor)
        else:
            smooth = (old / wavelen - lo) / (hi - lo)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


class Reference:
    """Token-at-a-time forward pass with a KV cache, in `dtype` (float32 or float64)."""

    def __init__(self, c, w, neox=True, dtype=torch.float32):
        self.c, self.neox, self.dt = c, neox, dtype
        self.w = {k: v.to(dtype) for k, v in w.items()}
        ang = np.outer(np.arange(c["seq"], dtype=np.float64), inv_freqs(c))  # [seq][hd/2]
        self.cos = torch.from_numpy(np.cos(ang).astype(np.float32)).to(dtype)
        self.sin = torch.from_numpy(np.sin(ang).astype(np.float32)).to(dtype)
        self.k = [[] for _ in range(c["n_layers"])]
        self.v = [[] for _ in range(c["n_layers"])]

    def rms(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.c["eps"]) * w

    def rope(self, x, pos):  # x: [heads][hd]
        cos, sin = self.cos[pos], self.sin[pos]
        h = x.shape[-1] // 2
        if self.neox:
            a, b = x[..., :h], x[..., h:]
            return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)
        a, b = x[..., 0::2], x[..., 1::2]
        return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).reshape(x.shape)

    def step(self, token, pos):
        c, w = self.c, self.w
        hd, nh, nkv = c["head_dim"], c["n_heads"], c["n_kv_heads"]
        x = w["token_embd.weight"][token].clone()
        for l in range(c["n_layers"]):
            p = "blk.%d." % l
            h = self.rms(x, w[p + "attn_norm.weight"])
            q = w[p + "attn_q.weight"] @ h
            k = w[p + "attn_k.weight"] @ h
            v = w[p + "attn_v.weight"] @ h
            if c["bias"]:
                q = q + w[p + "attn_q.bias"]
                k = k + w[p + "attn_k.bias"]
                v = v + w[p + "attn_v.bias"]
            q = self.rope(q.view(nh, hd), pos)
            k = self.rope(k.view(nkv, hd), pos)
            self.k[l].append(k)
            self.v[l].append(v.view(nkv, hd))
            K = torch.stack(self.k[l])  # [t][nkv][hd]
            V = torch.stack(self.v[l])
            group = nh // nkv
            out = []
            for hh in range(nh):
                kv = hh // group
                s = (K[:, kv, :] @ q[hh]) / math.sqrt(hd)
                out.append(torch.softmax(s, dim=0) @ V[:, kv, :])
            x = x + w[p + "attn_output.weight"] @ torch.cat(out)
            h = self.rms(x, w[p + "ffn_norm.weight"])
            g = w[p + "ffn_gate.weight"] @ h
            u = w[p + "ffn_up.weight"] @ h
            x = x + w[p + "ffn_down.weight"] @ (torch.nn.functional.silu(g) * u)
        x = self.rms(x, w["output_norm.weight"])
        out_w = w["token_embd.weight"] if c["tied"] else w["output.weight"]
        return out_w @ x


def run(c, w, prompt, tokens=None, **kw):
    """Feeds the prompt, then N_STEPS tokens (greedy when tokens is None). Returns
    (logits [N_STEPS+1][vocab] float64 numpy, tokens)."""
    ref = Reference(c, w, **kw)
    logits = None
    for pos, t in enumerate(prompt):
        logits = ref.step(t, pos)
    rows, out = [logits], []
    for s in range(N_STEPS):
        t = int(torch.argmax(rows[-1])) if tokens is None else tokens[s]
        out.append(t)
        rows.append(ref.step(t, len(prompt) + s))
    return torch.stack(rows).to(torch.float64).numpy(), out


def min_margin(logits):
    srt = np.sort(logits, axis=1)
    return float(np.min((srt[:, -1] - srt[:, -2]) / np.max(np.abs(logits), axis=1)))


def golden(m):
    """Finds the first seed from m['seed'] whose greedy run is unambiguous; returns everything."""
    c = model_config(m)
    for seed in range(c["seed"], c["seed"] + 100):
        w = make_weights(c, seed)
        prng = np.random.default_rng(seed + 7)
        prompt = [1] + [int(t) for t in prng.integers(3, c["vocab"], size=PROMPT_LEN - 1)]
        logits, toks = run(c, w, prompt)
        if len(set(toks)) < MIN_DISTINCT:
            print("  %s: seed %d: only %d distinct tokens, next seed" % (c["name"], seed, len(set(toks))))
            continue
        if min_margin(logits) < MARGIN_REL:
            print("  %s: seed %d: top-2 margin %.2e too small, next seed" % (c["name"], seed, min_margin(logits)))
            continue
        l64, t64 = run(c, w, prompt, dtype=torch.float64)
        dev = float(np.max(np.abs(l64 - logits)) / np.max(np.abs(l64)))
        if t64 != toks or dev > F64_AGREE_REL:
            print("  %s: seed %d: float64 disagrees (%.2e), next seed" % (c["name"], seed, dev))
            continue
        if not c["bias"]:  # the interleaved layout on permuted weights is the same model
            li, _ = run(c, interleaved_weights(c, w), prompt, tokens=toks, neox=False)
            dev_i = float(np.max(np.abs(li - logits)) / np.max(np.abs(logits)))
            assert dev_i < F64_AGREE_REL, (c["name"], dev_i)
        if c["rope_scaling"]:  # and GGUF's divisors give the same frequencies
            base = 1.0 / (c["theta"] ** (np.arange(0, c["head_dim"], 2) / c["head_dim"]))
            assert np.allclose(base / rope_divisors(c).astype(np.float64), inv_freqs(c), rtol=1e-6)
        c["seed_used"] = seed
        print("  %s: seed %d, min margin %.3f, float64 deviation %.1e, tokens %s..."
              % (c["name"], seed, min_margin(logits), dev, toks[:10]))
        return c, w, prompt, logits.astype(np.float32), toks
    raise SystemExit("%s: no seed in 100 gives an unambiguous greedy run" % m["name"])


# ---- writers ------------------------------------------------------------------------------

ST_DTYPE = {"f32": "F32", "f16": "F16", "bf16": "BF16"}
GGML_TYPE = {"f32": 0, "f16": 1, "bf16": 30}


def tensor_bytes(t, dtype):
    """Little-endian bytes of an exactly representable float32 tensor."""
    a = t.contiguous().numpy().astype("<f4")
    if dtype == "f32":
        return a.tobytes()
    if dtype == "f16":
        h = a.astype("<f2")
        assert np.array_equal(h.astype(np.float32), a)
        return h.tobytes()
    u = a.view("<u4")
    assert np.all(u & 0xFFFF == 0)  # bf16 values: the upper half is exact
    return (u >> 16).astype("<u2").tobytes()


HF_BLOCK = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight", "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight", "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.bias": "self_attn.k_proj.bias", "attn_v.bias": "self_attn.v_proj.bias",
    "attn_output.weight": "self_attn.o_proj.weight", "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight", "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}


def hf_name(canon):
    if canon == "token_embd.weight":
        return "model.embed_tokens.weight"
    if canon == "output_norm.weight":
        return "model.norm.weight"
    if canon == "output.weight":
        return "lm_head.weight"
    _, layer, rest = canon.split(".", 2)
    return "model.layers.%s.%s" % (layer, HF_BLOCK[rest])


def write_hf(path, c, w):
    """config.json + model.safetensors: u64 header length, JSON header, data; one dtype."""
    os.makedirs(path, exist_ok=True)
    qwen = c["bias"]
    cfg = {
        "architectures": ["Qwen2ForCausalLM" if qwen else "LlamaForCausalLM"],
        "model_type": "qwen2" if qwen else "llama",
        "hidden_size": c["dim"], "intermediate_size": c["hidden"],
        "num_hidden_layers": c["n_layers"], "num_attention_heads": c["n_heads"],
        "num_key_value_heads": c["n_kv_heads"], "vocab_size": c["vocab"],
        "max_position_embeddings": c["seq"], "rms_norm_eps": c["eps"], "rope_theta": c["theta"],
        "rope_scaling": c["rope_scaling"], "tie_word_embeddings": c["tied"], "hidden_act": "silu",
        "bos_token_id": 1, "eos_token_id": 2,
        "torch_dtype": {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}[c["dtype"]],
    }
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(w, key=hf_name):  # sorted, as the safetensors library writes them
        b = tensor_bytes(w[name], c["dtype"])
        header[hf_name(name)] = {"dtype": ST_DTYPE[c["dtype"]], "shape": list(w[name].shape),
                                 "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(os.path.join(path, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def synthetic_vocab(n):
    """<unk> <s> </s>, byte tokens, then single-character pieces: a small SentencePiece vocab."""
    toks = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % i for i in range(256)]
    chars = "\u2581" + "etaoinshrdlucmfwypvbgkjqxz" + "ETAOINSHRDLUCMFWYPVBGKJQXZ" + "0123456789.,!?"
    pieces = [ch for ch in chars] + ["\u2581" + ch for ch in chars[1:]]
    toks += pieces[: n - len(toks)]
    assert len(toks) == n and len(set(toks)) == n
    scores = [0.0] * 259 + [-float(i) for i in range(n - 259)]
    types = [2, 3, 3] + [6] * 256 + [1] * (n - 259)
    return toks, scores, types


def gguf_str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def write_gguf(path, c, w):
    """GGUF v3 as llama.cpp's converter writes it (see the module docstring)."""
    arch = "qwen2" if c["bias"] else "llama"
    tensors = dict(w) if c["bias"] else interleaved_weights(c, w)
    if c["rope_scaling"]:
        tensors["rope_freqs.weight"] = torch.from_numpy(rope_divisors(c))
    kv = []

    def add(key, vtype, payload):
        kv.append(gguf_str(key) + struct.pack("<I", vtype) + payload)

    u32 = lambda k, v: add(k, 4, struct.pack("<I", v))
    f32 = lambda k, v: add(k, 6, struct.pack("<f", v))
    string = lambda k, v: add(k, 8, gguf_str(v))
    string("general.architecture", arch)
    string("general.name", c["name"])
    u32("general.alignment", 32)
    u32("general.file_type", {"f32": 0, "f16": 1, "bf16": 32}[c["dtype"]])
    u32(arch + ".context_length", c["seq"])
    u32(arch + ".embedding_length", c["dim"])
    u32(arch + ".block_count", c["n_layers"])
    u32(arch + ".feed_forward_length", c["hidden"])
    u32(arch + ".attention.head_count", c["n_heads"])
    u32(arch + ".attention.head_count_kv", c["n_kv_heads"])
    f32(arch + ".attention.layer_norm_rms_epsilon", c["eps"])
    f32(arch + ".rope.freq_base", c["theta"])
    u32(arch + ".rope.dimension_count", c["head_dim"])
    u32(arch + ".vocab_size", c["vocab"])
    toks, scores, types = synthetic_vocab(c["vocab"])
    string("tokenizer.ggml.model", "llama")
    add("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, len(toks)) + b"".join(gguf_str(t) for t in toks))
    add("tokenizer.ggml.scores", 9, struct.pack("<IQ", 6, len(toks)) + struct.pack("<%df" % len(toks), *scores))
    add("tokenizer.ggml.token_type", 9, struct.pack("<IQ", 5, len(toks)) + struct.pack("<%di" % len(toks), *types))
    u32("tokenizer.ggml.bos_token_id", 1)
    u32("tokenizer.ggml.eos_token_id", 2)
    u32("tokenizer.ggml.unknown_token_id", 0)

    infos, blobs, off = [], [], 0
    for name, t in tensors.items():
        dt = "f32" if t.dim() == 1 else c["dtype"]  # 1-D tensors stay F32, as llama.cpp keeps them
        b = tensor_bytes(t, dt)
        ne = list(reversed(t.shape))
        infos.append(gguf_str(name) + struct.pack("<I", len(ne)) + struct.pack("<%dQ" % len(ne), *ne)
                     + struct.pack("<IQ", GGML_TYPE[dt], off))
        b += b"\0" * (-len(b) % 32)
        blobs.append(b)
        off += len(b)
    head = b"GGUF" + struct.pack("<IQQ", 3, len(infos), len(kv)) + b"".join(kv) + b"".join(infos)
    head += b"\0" * (-len(head) % 32)
    with open(path, "wb") as f:
        f.write(head + b"".join(blobs))


def write_llama2c(path, c, w):
    """llama2.c version 0: 7 int32 (vocab < 0: unshared classifier), F32 weights grouped by
    kind over the layers, w1 = gate, w2 = down, w3 = up, the legacy freq_cis tables."""
    assert c["dtype"] == "f32" and not c["bias"] and not c["rope_scaling"]
    iw = interleaved_weights(c, w)
    L = c["n_layers"]
    vocab = c["vocab"] if c["tied"] else -c["vocab"]
    parts = [struct.pack("<7i", c["dim"], c["hidden"], L, c["n_heads"], c["n_kv_heads"], vocab, c["seq"]),
             tensor_bytes(iw["token_embd.weight"], "f32")]
    for kind in ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_down", "ffn_up"]:
        parts += [tensor_bytes(iw["blk.%d.%s.weight" % (l, kind)], "f32") for l in range(L)]
    parts.append(tensor_bytes(iw["output_norm.weight"], "f32"))
    ang = np.outer(np.arange(c["seq"], dtype=np.float64), inv_freqs(c))
    parts += [np.cos(ang).astype("<f4").tobytes(), np.sin(ang).astype("<f4").tobytes()]
    if not c["tied"]:
        parts.append(tensor_bytes(iw["output.weight"], "f32"))
    with open(path, "wb") as f:
        f.write(b"".join(parts))


# ---- a real model: stories260K from ../shared ---------------------------------------------

STORIES_TEXT = ("Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
                "One day, she saw a big, red ball. She wanted to play with it, but it was too high.")


def shared_dir():
    return os.environ.get("LMM_SHARED_DIR") or os.path.join(HERE, "..", "..", "..", "shared")


def read_llama2c(path):
    """A llama2.c version-0 checkpoint -> (config, canonical float32 tensors, interleaved layout)."""
    data = open(path, "rb").read()
    dim, hid, L, nh, nkv, vocab, seq = struct.unpack_from("<7i", data, 0)
    c = dict(BASE, name="stories260K", dim=dim, hidden=hid, n_layers=L, n_heads=nh, n_kv_heads=nkv,
             vocab=abs(vocab), seq=seq, tied=vocab > 0, head_dim=dim // nh)
    a = np.frombuffer(data, "<f4", offset=28)
    off = 0

    def take(*shape):
        nonlocal off
        n = int(np.prod(shape))
        t = torch.from_numpy(a[off:off + n].reshape(shape).copy())
        off += n
        return t
    hd, V = c["head_dim"], c["vocab"]
    w = {"token_embd.weight": take(V, dim)}
    for kind, shape in [("attn_norm", (dim,)), ("attn_q", (nh * hd, dim)), ("attn_k", (nkv * hd, dim)),
                        ("attn_v", (nkv * hd, dim)), ("attn_output", (dim, nh * hd)), ("ffn_norm", (dim,)),
                        ("ffn_gate", (hid, dim)), ("ffn_down", (dim, hid)), ("ffn_up", (hid, dim))]:
        for l in range(L):
            w["blk.%d.%s.weight" % (l, kind)] = take(*shape)
    w["output_norm.weight"] = take(dim)
    off += seq * hd  # freq_cis_real and freq_cis_imag, [seq][hd/2] each
    if not c["tied"]:
        w["output.weight"] = take(V, dim)
    return c, w


def read_llama2c_vocab(path, n):
    data = open(path, "rb").read()
    off, pieces = 4, []
    for _ in range(n):
        _, ln = struct.unpack_from("<fi", data, off)
        pieces.append(data[off + 8:off + 8 + ln])
        off += 8 + ln
    return pieces


def stories_golden():
    """Greedy from BOS on the real stories260K: the reference must write llama2.c's published
    text (checks the reference on trained weights); then the first 8 tokens are the prompt and
    the next 64 the golden steps. Returns None when ../shared is absent."""
    base = os.path.join(shared_dir(), "models", "stories260K")
    path = os.path.join(base, "stories260K.bin")
    if not os.path.exists(path):
        print("  stories260K: %s not found, skipped" % path)
        return None
    c, w = read_llama2c(path)
    prompt = [1]
    ref = Reference(c, w, neox=False)
    rows = []
    seq = [1]
    for pos in range(PROMPT_LEN + N_STEPS):
        logits = ref.step(seq[pos], pos)
        if pos >= PROMPT_LEN - 1:
            rows.append(logits)
        seq.append(int(torch.argmax(logits)))
    pieces = read_llama2c_vocab(os.path.join(base, "tok512.bin"), c["vocab"])
    text = b"".join(pieces[t] for t in seq[1:]).decode("utf-8", "replace").lstrip(" ")
    n = min(len(text), len(STORIES_TEXT))
    assert n > 100 and text[:n - 12] == STORIES_TEXT[:n - 12], "reference disagrees with llama2.c: %r" % text
    logits = torch.stack(rows).to(torch.float64).numpy()
    prompt, toks = seq[:PROMPT_LEN], seq[PROMPT_LEN:PROMPT_LEN + N_STEPS]
    assert [int(np.argmax(r)) for r in logits[:N_STEPS]] == toks
    print("  stories260K: llama2.c's text reproduced (%r...), min margin %.3f" % (text[:40], min_margin(logits)))
    assert min_margin(logits) >= MARGIN_REL
    return c, prompt, logits.astype(np.float32), toks


# ---- main -----------------------------------------------------------------------------------

MANIFEST_DOC = (
    "Golden logits from tests/golden/gen_golden.py (PyTorch float32 reference). For each entry: "
    "open 'model' (relative to this file), or 'shared_model' (relative to ../shared; skip when "
    "absent), in 'format'; feed 'prompt' at positions 0..7, then "
    "tokens[0..63] one at a time. 'tokens' file: little-endian uint32 [n_steps] greedy ids; "
    "'logits' file: little-endian float32 [n_steps+1][n_vocab], row 0 at the last prompt "
    "position, row k after feeding tokens[k-1]. argmax(row k) == tokens[k] for k < n_steps. "
    "Tolerance: max|engine - golden| <= 1e-5 * max|golden| per row.")


def generate(out_dir):
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(out_dir, exist_ok=True)
    entries = []
    for m in MODELS:
        c, w, prompt, logits, toks = golden(m)
        name = c["name"]
        with open(os.path.join(out_dir, name + ".logits"), "wb") as f:
            f.write(logits.astype("<f4").tobytes())
        with open(os.path.join(out_dir, name + ".tokens"), "wb") as f:
            f.write(np.array(toks, dtype="<u4").tobytes())
        for fmt in c["formats"]:
            if fmt == "hf":
                rel = name
                write_hf(os.path.join(out_dir, rel), c, w)
            elif fmt == "gguf":
                rel = name + ".gguf"
                write_gguf(os.path.join(out_dir, rel), c, w)
            else:
                rel = name + ".bin"
                write_llama2c(os.path.join(out_dir, rel), c, w)
            entries.append({
                "name": "%s/%s" % (name, fmt), "model": rel,
                "format": {"hf": "safetensors", "gguf": "gguf", "llama2c": "llama2c"}[fmt],
                "dtype": c["dtype"], "seed": c["seed_used"], "prompt": prompt,
                "tokens": name + ".tokens", "logits": name + ".logits",
                "n_steps": N_STEPS, "n_vocab": c["vocab"],
                "hparams": {k: c[k] for k in ("dim", "hidden", "n_layers", "n_heads", "n_kv_heads", "head_dim",
                                              "vocab", "seq", "eps", "theta", "tied", "bias", "rope_scaling")},
            })
    st = stories_golden()
    if st:
        c, prompt, logits, toks = st
        with open(os.path.join(out_dir, "stories260K.logits"), "wb") as f:
            f.write(logits.astype("<f4").tobytes())
        with open(os.path.join(out_dir, "stories260K.tokens"), "wb") as f:
            f.write(np.array(toks, dtype="<u4").tobytes())
        entries.append({
            "name": "stories260K/llama2c", "shared_model": "models/stories260K/stories260K.bin",
            "format": "llama2c", "dtype": "f32", "prompt": prompt,
            "tokens": "stories260K.tokens", "logits": "stories260K.logits",
            "n_steps": N_STEPS, "n_vocab": c["vocab"],
        })
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump({"doc": MANIFEST_DOC, "tolerance_rel": 1e-5, "entries": entries}, f, indent=1)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DATA, help="output directory (default: tests/golden/data)")
    ap.add_argument("--check", action="store_true",
                    help="regenerate into a temporary directory and compare with --out byte for byte")
    a = ap.parse_args()
    if not a.check:
        generate(a.out)
        return
    import filecmp
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp)
        cmp = filecmp.dircmp(tmp, a.out)
        bad = []

        def walk(d, rel=""):
            bad.extend(rel + x for x in d.left_only + d.right_only + d.diff_files)
            for sub, sd in d.subdirs.items():
                walk(sd, rel + sub + "/")
        walk(cmp)
        # dircmp compares shallowly by stat; compare the contents too
        for root, _, files in os.walk(tmp):
            for fn in files:
                p = os.path.join(root, fn)
                q = os.path.join(a.out, os.path.relpath(p, tmp))
                if os.path.exists(q) and not filecmp.cmp(p, q, shallow=False):
                    bad.append(os.path.relpath(p, tmp))
        if bad:
            raise SystemExit("differs from %s: %s" % (a.out, sorted(set(bad))))
        print("identical to", a.out)


if __name__ == "__main__":
    main()
