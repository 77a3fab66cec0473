#!/usr/bin/python3
"""bench/tokenize_ref_spm.py — the reference side of `bench/run tokenize` for
SentencePiece: encodes a file with Google's SentencePiece (Debian's
python3-sentencepiece; run with /usr/bin/python3) and prints the same lines as
bench_tokenize (bench/tokenize_main.c):

  tokenize_ref_spm.py --model tokenizer.model --input FILE [--reps N] [--lines] [--dump IDS]

Whole text by default (one sp.encode call on the whole file), --lines: one call per
line including its '\\n', as bench_tokenize does. No BOS/EOS. Only the encode calls
are timed (wall: perf_counter, CPU: process_time = user + system); reading the file
and loading the model are not. Checksum: FNV-1a over the ids as 32-bit words."""
import argparse
import statistics
import sys
import time

try:
    import sentencepiece as spm
except ImportError:
    sys.exit("tokenize_ref_spm.py: no sentencepiece module; install it with "
             "apt-get install python3-sentencepiece (and run with /usr/bin/python3)")


def checksum(ids):
    h = 2166136261
    for i in ids:
        h = ((h ^ i) * 16777619) & 0xFFFFFFFF
    return h


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', required=True)
    ap.add_argument('--input', required=True)
    ap.add_argument('--reps', type=int, default=1)
    ap.add_argument('--lines', action='store_true')
    ap.add_argument('--dump')
    a = ap.parse_args()

    with open(a.input, 'rb') as f:
        data = f.read()
    text = data.decode('utf-8')
    if a.lines:
        parts = text.split('\n')
        lines = [p + '\n' for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    t0 = time.perf_counter()
    sp = spm.SentencePieceProcessor(model_file=a.model)
    print('loaded %s (sentencepiece %s, %d tokens) in %.3f s; %d bytes, %s' %
          (a.model, spm.__version__, sp.get_piece_size(), time.perf_counter() - t0, len(data),
           'line by line' if a.lines else 'whole text'))
    walls, cpus = [], []
    ids = []
    for r in range(a.reps):
        w0, c0 = time.perf_counter(), time.process_time()
        if a.lines:
            ids = []
            enc = sp.encode
            for line in lines:
                ids.extend(enc(line))
        else:
            ids = sp.encode(text)
        w, c = time.perf_counter() - w0, time.process_time() - c0
        walls.append(w)
        cpus.append(c)
        h = checksum(ids)
        print('rep %d: %d tokens, checksum %08x, wall %.3f s (%.2f MB/s), cpu %.3f s (%.2f MB/s)' %
              (r + 1, len(ids), h, w, len(data) / 1e6 / w, c, len(data) / 1e6 / c), flush=True)
    if a.dump:
        with open(a.dump, 'w') as f:
            f.write(''.join('%d\n' % i for i in ids))
    mw, mc = statistics.median(walls), statistics.median(cpus)
    print('RESULT impl=sentencepiece bytes=%d tokens=%d checksum=%08x wall_s=%.4f cpu_s=%.4f '
          'mbps_wall=%.3f mbps_cpu=%.3f' % (len(data), len(ids), checksum(ids), mw, mc,
                                             len(data) / 1e6 / mw, len(data) / 1e6 / mc))


if __name__ == '__main__':
    main()
