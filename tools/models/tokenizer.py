"""Tokenizers as stored in .pgf files, and their reference.

A TokenizerSpec is what the .pgf Tokenizer message holds (kind, vocabulary,
merges, special tokens, pre-tokenizer name) plus the side tables the C
tokenizer (models/tokenizer.c) searches in place:
  tok.vocab_order  I32 [V]     token ids sorted by their bytes (memcmp order)
  tok.merges       I32 [M, 3]  (left id, right id, merged id), rank = row
  tok.merge_order  I32 [M]     ranks sorted by (left id, right id)

Two reference encoders, both independent of the C code:
  - `encode_ref`: plain Python over the `regex` module (Debian
    python3-regex) with the Hugging Face split patterns, merges by rank;
    used by the unit-test goldens (no PyPI package needed);
  - `hf()`: PyPI `tokenizers` (Hugging Face) built from the same vocabulary
    and merges with the family's pre-tokenizer; used when installed (the
    SmolLM2 checks) and to check `encode_ref` itself.
The BYTES kind (one token per byte, for tiny models) is encoded directly.

  python3 -m tools.models.tokenizer unicode-tables OUT.h   writes the Unicode class
      ranges (letters, numbers) the C pre-tokenizer uses
"""
import sys
import unicodedata

import numpy as np

from tools import pgf

# Pre-tokenizer split patterns (Hugging Face / tiktoken forms).
GPT2_PATTERN = (r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+"
                r"|\s+(?!\S)|\s+")
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                  r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
PRETOKENIZERS = ("gpt2", "smollm2", "llama3", "qwen2")


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable character map."""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1))
          + list(range(ord("\xae"), ord("\xff") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE_TO_CHAR = bytes_to_unicode()
CHAR_TO_BYTE = {c: b for b, c in BYTE_TO_CHAR.items()}


def token_bytes(token):
    """The raw bytes of a byte-level token string."""
    return bytes(CHAR_TO_BYTE[c] for c in token)


class TokenizerSpec:
    """kind: "bytes" or "bpe"."""

    def __init__(self, kind, vocab=(), merges=(), specials=(), pretokenizer="gpt2",
                 byte_offset=0, ignore_merges=False):
        self.kind = kind
        self.vocab = list(vocab)
        self.merges = list(merges)
        self.specials = list(specials)          # [(text, id)]
        self.pretokenizer = pretokenizer
        self.byte_offset = byte_offset
        self.ignore_merges = ignore_merges
        self._hf = None
        if kind == "bpe" and pretokenizer not in PRETOKENIZERS:
            raise ValueError("unknown pre-tokenizer %r" % pretokenizer)

    # -- side tables ------------------------------------------------------
    def tables(self):
        index = {t: i for i, t in enumerate(self.vocab)}
        order = sorted(range(len(self.vocab)),
                       key=lambda i: self.vocab[i].encode("utf-8"))
        triples = []
        for rank, m in enumerate(self.merges):
            a, b = m.split(" ")
            triples.append((index[a], index[b], index[a + b]))
        triples = np.array(triples, dtype="<i4").reshape(-1, 3)
        morder = sorted(range(len(triples)), key=lambda r: (triples[r, 0], triples[r, 1]))
        return (np.array(order, dtype="<i4"), triples, np.array(morder, dtype="<i4"))

    def write(self, writer):
        t = writer.header.tokenizer
        t.kind = pgf.pb.Tokenizer.BYTE_BPE if self.kind == "bpe" else pgf.pb.Tokenizer.BYTES
        t.byte_offset = self.byte_offset
        t.pretokenizer = self.pretokenizer if self.kind == "bpe" else ""
        t.ignore_merges = self.ignore_merges
        for text, i in self.specials:
            t.special.add(text=text, id=i)
        if self.kind == "bpe":
            t.vocab.extend(self.vocab)
            t.merges.extend(self.merges)
            order, triples, morder = self.tables()
            writer.add("tok.vocab_order", order, pgf.I32)
            writer.add("tok.merges", triples, pgf.I32)
            writer.add("tok.merge_order", morder, pgf.I32)

    @classmethod
    def from_header(cls, t):
        kind = "bpe" if t.kind == pgf.pb.Tokenizer.BYTE_BPE else "bytes"
        return cls(kind, list(t.vocab), list(t.merges),
                   [(s.text, s.id) for s in t.special], t.pretokenizer or "gpt2",
                   t.byte_offset, t.ignore_merges)

    # -- reference encoder -------------------------------------------------
    def hf(self):
        """The equivalent Hugging Face `tokenizers` Tokenizer (BPE kind)."""
        if self._hf is None:
            from tokenizers import Tokenizer, AddedToken, Regex, decoders, models, \
                pre_tokenizers
            vocab = {t: i for i, t in enumerate(self.vocab)}
            merges = [tuple(m.split(" ")) for m in self.merges]
            tok = Tokenizer(models.BPE(vocab=vocab, merges=merges,
                                       ignore_merges=self.ignore_merges))
            bl = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
            if self.pretokenizer == "gpt2":
                tok.pre_tokenizer = bl
            elif self.pretokenizer == "smollm2":
                tok.pre_tokenizer = pre_tokenizers.Sequence(
                    [pre_tokenizers.Digits(individual_digits=True), bl])
            else:
                pat = LLAMA3_PATTERN if self.pretokenizer == "llama3" else QWEN2_PATTERN
                tok.pre_tokenizer = pre_tokenizers.Sequence([
                    pre_tokenizers.Split(Regex(pat), behavior="isolated", invert=False),
                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
            tok.decoder = decoders.ByteLevel()
            extra = sorted((i, s) for s, i in self.specials if i >= len(self.vocab))
            for k, (i, _) in enumerate(extra):
                if i != len(self.vocab) + k:
                    raise ValueError("special ids beyond the vocabulary must be consecutive")
            tok.add_special_tokens([AddedToken(s, special=True, normalized=False)
                                    for s, i in sorted(self.specials, key=lambda x: x[1])])
            for s, i in self.specials:
                if tok.token_to_id(s) != i:
                    raise ValueError("special %r got id %r, expected %d"
                                     % (s, tok.token_to_id(s), i))
            self._hf = tok
        return self._hf

    def encode(self, text, specials=True):
        """Token ids of text; special-token texts are recognised when specials."""
        if self.kind == "bpe":
            tok = self.hf()
            tok.encode_special_tokens = not specials
            return tok.encode(text, add_special_tokens=False).ids
        out = []
        pieces = [(text, False)]
        if specials and self.specials:
            pieces = self._split_specials(text)
        for piece, is_special in pieces:
            if is_special:
                out.append(piece)
            else:
                out += [b + self.byte_offset for b in piece.encode("utf-8")]
        return out

    # -- plain-Python reference (regex module) ------------------------------
    def pieces(self, text):
        """The pre-tokenizer's pieces of text (no special tokens)."""
        import regex
        if self.pretokenizer == "smollm2":
            out = []
            for chunk in regex.findall(r"\p{N}|[^\p{N}]+", text):
                if regex.fullmatch(r"\p{N}", chunk):
                    out.append(chunk)
                else:
                    out += regex.findall(GPT2_PATTERN, chunk)
            return out
        pat = {"gpt2": GPT2_PATTERN, "llama3": LLAMA3_PATTERN,
               "qwen2": QWEN2_PATTERN}[self.pretokenizer]
        return regex.findall(pat, text)

    def encode_ref(self, text, specials=True):
        """As encode(), by the plain-Python BPE (no `tokenizers` needed)."""
        if self.kind != "bpe":
            return self.encode(text, specials)
        if not hasattr(self, "_index"):
            self._index = {t: i for i, t in enumerate(self.vocab)}
            self._ranks = {tuple(m.split(" ")): r for r, m in enumerate(self.merges)}
        parts = self._split_specials(text) if specials and self.specials else [(text, False)]
        out = []
        for part, is_special in parts:
            if is_special:
                out.append(part)
                continue
            for piece in self.pieces(part):
                word = "".join(BYTE_TO_CHAR[b] for b in piece.encode("utf-8"))
                if self.ignore_merges and word in self._index:
                    out.append(self._index[word])
                    continue
                syms = [c for c in word if c in self._index]
                while len(syms) > 1:
                    ranked = [(self._ranks.get((a, b), 1 << 60), i)
                              for i, (a, b) in enumerate(zip(syms, syms[1:]))]
                    rank, i = min(ranked)
                    if rank == 1 << 60:
                        break
                    syms[i:i + 2] = [syms[i] + syms[i + 1]]
                out += [self._index[t] for t in syms]
        return out

    def _split_specials(self, text):
        out, i, start = [], 0, 0
        while i < len(text):
            best = None
            for s, sid in self.specials:
                if s and text.startswith(s, i) and (best is None or len(s) > len(best[0])):
                    best = (s, sid)
            if best:
                if start < i:
                    out.append((text[start:i], False))
                out.append((best[1], True))
                i += len(best[0])
                start = i
            else:
                i += 1
        if start < len(text):
            out.append((text[start:], False))
        return out

    def decode(self, ids, skip_special=True):
        special_ids = {i for _, i in self.specials}
        raw = bytearray()
        for i in ids:
            if i in special_ids:
                if not skip_special:
                    raw += dict((sid, s) for s, sid in self.specials)[i].encode("utf-8")
                continue
            if self.kind == "bpe":
                raw += token_bytes(self.vocab[i])
            elif 0 <= i - self.byte_offset < 256:
                raw.append(i - self.byte_offset)
        return raw.decode("utf-8", errors="replace")


def train_bpe(text, n_merges, pretokenizer="gpt2"):
    """A small byte-level BPE vocabulary and merge list learnt from text
    (most frequent pair first, ties by the pair's spelling): for tests."""
    import collections
    alphabet = [BYTE_TO_CHAR[b] for b in range(256)]
    spec = TokenizerSpec("bpe", alphabet, [], [], pretokenizer)
    words = collections.Counter(
        tuple(BYTE_TO_CHAR[b] for b in p.encode("utf-8")) for p in spec.pieces(text))
    vocab, merges = list(alphabet), []
    known = set(vocab)
    for _ in range(n_merges):
        pairs = collections.Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        merges.append(best[0] + " " + best[1])
        if best[0] + best[1] not in known:
            vocab.append(best[0] + best[1])
            known.add(best[0] + best[1])
        new_words = collections.Counter()
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new_words[tuple(out)] += c
        words = new_words
    return vocab, merges


def from_gguf(reader, extra_specials=()):
    """TokenizerSpec of a GGUF file's gpt2-style tokenizer.  Control tokens
    (type 3) become special tokens; extra_specials are appended after the
    vocabulary (ids V, V+1, ...)."""
    f = reader.fields
    if f["tokenizer.ggml.model"].contents() != "gpt2":
        raise ValueError("only gpt2-style (byte-level BPE) GGUF tokenizers are supported")
    tokens = f["tokenizer.ggml.tokens"].contents()
    types = f["tokenizer.ggml.token_type"].contents()
    merges = f["tokenizer.ggml.merges"].contents()
    pre = f["tokenizer.ggml.pre"].contents() if "tokenizer.ggml.pre" in f else "gpt2"
    pretok = {"smollm": "smollm2", "gpt-2": "gpt2", "gpt2": "gpt2", "llama-bpe": "llama3",
              "qwen2": "qwen2"}.get(pre)
    if pretok is None:
        raise ValueError("GGUF pre-tokenizer %r is not supported" % pre)
    specials = [(t, i) for i, (t, ty) in enumerate(zip(tokens, types)) if ty == 3]
    for k, s in enumerate(extra_specials):
        specials.append((s, len(tokens) + k))
    return TokenizerSpec("bpe", tokens, merges, specials, pretok,
                         ignore_merges=(pretok == "llama3"))


# ---- Unicode tables for the C pre-tokenizer ------------------------------

def _ranges(pred):
    out, start = [], None
    for cp in range(0x110000):
        ok = pred(cp)
        if ok and start is None:
            start = cp
        elif not ok and start is not None:
            out.append((start, cp - 1))
            start = None
    if start is not None:
        out.append((start, 0x10FFFF))
    return out


def write_unicode_tables(path):
    letters = _ranges(lambda cp: unicodedata.category(chr(cp)).startswith("L"))
    numbers = _ranges(lambda cp: unicodedata.category(chr(cp)).startswith("N"))
    with open(path, "w") as f:
        f.write("/*\n * tokenizer_unicode.h: Unicode %s letter (L*) and number (N*)\n"
                " * code point ranges for the byte-level BPE pre-tokenizer.\n"
                " * Generated by tools/models/tokenizer.py unicode-tables; do not edit.\n */\n"
                % unicodedata.unidata_version)
        f.write("#ifndef PGF_TOKENIZER_UNICODE_H\n#define PGF_TOKENIZER_UNICODE_H\n\n")
        for name, ranges in (("letter", letters), ("number", numbers)):
            f.write("static const uint32_t pgf_unicode_%s_ranges[%d][2] = {\n"
                    % (name, len(ranges)))
            for i in range(0, len(ranges), 4):
                f.write("\t" + " ".join("{0x%x, 0x%x}," % r for r in ranges[i:i + 4]) + "\n")
            f.write("};\n\n")
        f.write("#endif\t\t\t\t\t\t\t/* PGF_TOKENIZER_UNICODE_H */\n")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "unicode-tables":
        write_unicode_tables(sys.argv[2])
    else:
        print(__doc__)
        sys.exit(2)
