"""pgf.py: write and read pgformer model files (.pgf) from Python.

The format (see proto/model.proto and docs/design.md):

    "PGFMODEL" | version u32 LE | header length u32 LE | ModelHeader protobuf |
    zero padding to 64 | data section (each tensor 64-byte aligned)

Exporters build a Writer, set the typed config on ``writer.header`` and add
tensors (numpy arrays or torch tensors); ``read`` returns the header and
numpy views of every tensor.  The C reader (proto/pgf.c) and this module
read each other's files; test/unit/test_pgf.c checks files this module
wrote (the fixtures of test/gen/make_test_fixtures.py).
"""
import os
import struct
import subprocess
import zlib

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
_PROTO = os.path.join(_HERE, "..", "proto", "model.proto")


def _load_pb2():
    """Imports model_pb2, generating it with protoc when missing or stale."""
    target = os.path.join(_HERE, "model_pb2.py")
    if (not os.path.exists(target)
            or os.path.getmtime(target) < os.path.getmtime(_PROTO)):
        subprocess.run(["protoc", "--python_out=" + _HERE,
                        "--proto_path=" + os.path.dirname(_PROTO), _PROTO],
                       check=True)
    from . import model_pb2
    return model_pb2


pb = _load_pb2()

MAGIC = b"PGFMODEL"
FORMAT_VERSION = 1
ALIGN = 64

F32, F16, BF16, Q8, I32, I64 = (pb.F32, pb.F16, pb.BF16, pb.Q8, pb.I32, pb.I64)
_ELEMENT = {F32: np.dtype("<f4"), F16: np.dtype("<f2"), BF16: np.dtype("<u2"),
            Q8: np.dtype("i1"), I32: np.dtype("<i4"), I64: np.dtype("<i8")}
_NAMES = {F32: "f32", F16: "f16", BF16: "bf16", Q8: "q8", I32: "i32", I64: "i64"}


def _align(n):
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _as_numpy(array):
    if hasattr(array, "detach"):  # a torch tensor
        array = array.detach().cpu().float().numpy() \
            if array.is_floating_point() else array.detach().cpu().numpy()
    return np.ascontiguousarray(array)


def to_bf16(values):
    """float32 array -> uint16 bf16 bit patterns, rounding to nearest even."""
    bits = np.ascontiguousarray(values, dtype="<f4").view("<u4").astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype("<u2")


def from_bf16(bits):
    return (bits.astype("<u4") << 16).view("<f4")


def quantize_q8(values, block):
    """Symmetric int8 with one f32 scale per `block` elements of a row."""
    values = np.ascontiguousarray(values, dtype="<f4")
    if values.shape[-1] % block:
        raise ValueError("block %d does not divide last dimension %d"
                         % (block, values.shape[-1]))
    blocks = values.reshape(-1, block)
    scales = np.abs(blocks).max(axis=1) / 127.0
    scales[scales == 0] = 1.0
    q = np.clip(np.rint(blocks / scales[:, None]), -127, 127).astype("i1")
    return q.reshape(values.shape), scales.astype("<f4")


class Writer:
    """Collects tensors and writes one .pgf file."""

    def __init__(self, architecture, name):
        self.header = pb.ModelHeader(architecture=architecture, name=name)
        self._chunks = []       # (offset, bytes)
        self._size = 0
        self._entries = {}

    def _place(self, raw):
        offset = _align(self._size)
        self._chunks.append((offset, raw))
        self._size = offset + len(raw)
        return offset

    def add(self, name, array, dtype=F32):
        """Adds a tensor; float data is converted to dtype (f32, f16, bf16)."""
        if name in self._entries:
            raise ValueError("tensor %r added twice" % name)
        if dtype == Q8:
            raise ValueError("use add_q8 for quantised tensors")
        array = _as_numpy(array)
        if dtype == BF16:
            raw = to_bf16(array)
        else:
            raw = np.ascontiguousarray(array, dtype=_ELEMENT[dtype])
        entry = self.header.tensors.add(name=name, shape=list(array.shape),
                                        dtype=dtype, nbytes=raw.nbytes)
        entry.offset = self._place(raw.tobytes())
        self._entries[name] = entry
        return entry

    def add_q8(self, name, array, block=32):
        """Adds a weight as int8 with per-block f32 scales."""
        array = _as_numpy(array)
        q, scales = quantize_q8(array, block)
        entry = self.header.tensors.add(name=name, shape=list(array.shape),
                                        dtype=Q8, nbytes=q.nbytes,
                                        quant_block=block,
                                        scale_nbytes=scales.nbytes)
        entry.offset = self._place(q.tobytes())
        entry.scale_offset = self._place(scales.tobytes())
        self._entries[name] = entry
        return entry

    def share(self, name, source):
        """Makes `name` a view of the bytes of tensor `source` (layer sharing)."""
        src = self._entries[source]
        entry = self.header.tensors.add()
        entry.CopyFrom(src)
        entry.name = name
        self._entries[name] = entry
        return entry

    def set_items(self, ids, first_row, tensor="items.ids"):
        """Stores sorted external item ids; ids[i] is item-table row first_row+i."""
        ids = np.asarray(ids, dtype="<i8")
        if ids.size and np.any(np.diff(ids) <= 0):
            raise ValueError("item ids must be sorted and unique")
        self.add(tensor, ids, dtype=I64)
        self.header.items.ids_tensor = tensor
        self.header.items.count = int(ids.size)
        self.header.items.first_row = int(first_row)

    def data(self):
        buf = bytearray(self._size)
        for offset, raw in self._chunks:
            buf[offset:offset + len(raw)] = raw
        return bytes(buf)

    def to_bytes(self):
        data = self.data()
        self.header.data_size = len(data)
        self.header.data_crc32 = zlib.crc32(data) & 0xFFFFFFFF
        head = self.header.SerializeToString()
        preamble = MAGIC + struct.pack("<II", FORMAT_VERSION, len(head))
        body = preamble + head
        return body + b"\0" * (_align(len(body)) - len(body)) + data

    def write(self, path):
        blob = self.to_bytes()
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(blob)
        os.replace(tmp, path)
        return len(blob)


class Model:
    """A read .pgf file: `header` (ModelHeader) and `tensors` (name -> array)."""

    def __init__(self, header, tensors, data_offset):
        self.header = header
        self.tensors = tensors
        self.data_offset = data_offset

    def __getitem__(self, name):
        return self.tensors[name]

    def config(self):
        which = self.header.WhichOneof("config")
        return getattr(self.header, which) if which else None


def parse(blob, verify=True):
    """Validates and decodes a whole file held in bytes."""
    if len(blob) < 16:
        raise ValueError("file is %d bytes, shorter than the preamble" % len(blob))
    if blob[:8] != MAGIC:
        raise ValueError("not a pgformer model file")
    version, hlen = struct.unpack_from("<II", blob, 8)
    if version != FORMAT_VERSION:
        raise ValueError("format version %d, expected %d" % (version, FORMAT_VERSION))
    doff = _align(16 + hlen)
    if doff > len(blob):
        raise ValueError("file is truncated")
    header = pb.ModelHeader()
    header.ParseFromString(bytes(blob[16:16 + hlen]))
    data = memoryview(blob)[doff:]
    if header.data_size != len(data):
        raise ValueError("data section is %d bytes, header declares %d"
                         % (len(data), header.data_size))
    if verify and (zlib.crc32(data) & 0xFFFFFFFF) != header.data_crc32:
        raise ValueError("data section checksum mismatch")
    tensors = {}
    for t in header.tensors:
        shape = tuple(t.shape)
        count = int(np.prod(shape)) if shape else 1
        element = _ELEMENT[t.dtype]
        if t.offset % ALIGN or t.offset + t.nbytes > len(data) \
                or t.nbytes != count * element.itemsize:
            raise ValueError("tensor %r is out of bounds or mis-sized" % t.name)
        values = np.frombuffer(data, dtype=element, count=count,
                               offset=t.offset).reshape(shape)
        if t.dtype == BF16:
            values = from_bf16(values)
        elif t.dtype == Q8:
            scales = np.frombuffer(data, dtype="<f4", count=count // t.quant_block,
                                   offset=t.scale_offset)
            values = (values.reshape(-1, t.quant_block).astype("<f4")
                      * scales[:, None]).reshape(shape)
        tensors[t.name] = values
    return Model(header, tensors, doff)


def read(path, verify=True):
    with open(path, "rb") as f:
        return parse(f.read(), verify)


def dtype_name(dtype):
    return _NAMES.get(dtype, "unknown")
