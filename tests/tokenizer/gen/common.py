"""tests/tokenizer/gen/common.py — helpers shared by the golden generators: the test
texts, a GGUF metadata reader, and protobuf wire-format encoding for SentencePiece
ModelProto files (enough to write one from GGUF metadata)."""
import os
import struct

SEP = "\n__ggml_vocab_test__\n"
HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.normpath(os.path.join(HERE, '..', 'data'))
SHARED = os.environ.get('LMM_SHARED_DIR') or os.path.normpath(os.path.join(HERE, '..', '..', '..', '..', 'shared'))


def split_texts(raw):
    parts = raw.split(SEP)
    return parts[:-1]  # every text is followed by the separator


def texts():
    """The shared gguf-vocab .inp texts, then data/extra.inp (what the tests read)."""
    with open(os.path.join(SHARED, 'tokenizers', 'gguf-vocab', 'ggml-vocab-llama-spm.gguf.inp'), encoding='utf-8', newline='') as f:
        base = split_texts(f.read())
    with open(os.path.join(DATA, 'extra.inp'), encoding='utf-8', newline='') as f:
        extra = split_texts(f.read())
    return base + extra


def write_out(name, rows):
    path = os.path.join(DATA, name + '.out')
    with open(path, 'w', encoding='ascii', newline='\n') as f:
        for ids in rows:
            f.write(' '.join(str(i) for i in ids) + '\n')
    print('%-28s %d lines' % (name + '.out', len(rows)))


# ---------------------------------------------------------------- GGUF metadata
_SC = {0: 'B', 1: 'b', 2: 'H', 3: 'h', 4: 'I', 5: 'i', 6: 'f', 7: '?', 10: 'Q', 11: 'q', 12: 'd'}


def read_gguf_kv(path):
    with open(path, 'rb') as f:
        data = f.read()
    off = 0

    def rd(fmt):
        nonlocal off
        v = struct.unpack_from('<' + fmt, data, off)
        off += struct.calcsize(fmt)
        return v

    def rstr():
        nonlocal off
        (n,) = rd('Q')
        s = data[off:off + n]
        off += n
        return s

    def val(t):
        if t == 8:
            return rstr()
        if t == 9:
            (et,) = rd('I')
            (n,) = rd('Q')
            if et in _SC:
                fmt = _SC[et]
                sz = struct.calcsize(fmt)
                nonlocal off
                arr = list(struct.unpack_from('<%d%s' % (n, fmt), data, off))
                off += n * sz
                return arr
            return [val(et) for _ in range(n)]
        return rd(_SC[t])[0]

    assert data[:4] == b'GGUF'
    off = 8
    _, nkv = rd('QQ')
    kv = {}
    for _ in range(nkv):
        k = rstr().decode()
        (t,) = rd('I')
        kv[k] = val(t)
    return kv


# --------------------------------------------------- protobuf wire encoding
def _varint(v):
    if v < 0:
        v += 1 << 64
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_varint(field, v):
    return _varint(field << 3) + _varint(int(v))


def pb_bytes(field, b):
    return _varint((field << 3) | 2) + _varint(len(b)) + b


def pb_float(field, x):
    return _varint((field << 3) | 5) + struct.pack('<f', x)


def pb_fields(buf):
    """Top-level fields of a message: list of (field, wiretype, raw bytes of the value)."""
    out = []
    i = 0
    while i < len(buf):
        key = 0
        shift = 0
        while True:
            b = buf[i]
            i += 1
            key |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        field, wt = key >> 3, key & 7
        start = i
        if wt == 0:
            while buf[i] & 0x80:
                i += 1
            i += 1
            out.append((field, wt, buf[start:i]))
        elif wt == 1:
            i += 8
            out.append((field, wt, buf[start:i]))
        elif wt == 5:
            i += 4
            out.append((field, wt, buf[start:i]))
        elif wt == 2:
            n = 0
            shift = 0
            while True:
                b = buf[i]
                i += 1
                n |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    break
            out.append((field, wt, buf[i:i + n]))
            i += n
        else:
            raise ValueError('wire type %d' % wt)
    return out


def pb_join(fields):
    out = bytearray()
    for field, wt, raw in fields:
        out += _varint((field << 3) | wt)
        if wt == 2:
            out += _varint(len(raw))
        out += raw
    return bytes(out)
