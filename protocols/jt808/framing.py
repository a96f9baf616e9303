"""JT/T 808 framing: a TCP byte stream in, checked frames out, and frames out for sending.

On the wire a frame is ``0x7E | escaped(header | body | checksum) | 0x7E`` where escaping
turns ``0x7E`` into ``0x7D 0x02`` and ``0x7D`` into ``0x7D 0x01``, and the checksum is the
XOR of every header and body byte. A frame handed on is unescaped, checked and stripped of
its checksum: ``header | body``.

``0x7E`` is treated purely as a delimiter: whatever lies between two of them is one frame
candidate, and an empty candidate (``7E 7E``, the close of one frame and the open of the
next) is skipped. That reads terminals that end a frame and open the next with separate
delimiters as well as those that share one, and a damaged frame costs only itself.
"""

from __future__ import annotations

from protocols.errors import DecodeError

FLAG = 0x7E
ESCAPE = 0x7D

MAX_HEADER_BYTES = 21  # 2019 header with sub-packet fields
MAX_BODY_BYTES = 0x3FF  # the 10-bit length field in the body attributes
# Escaping at most doubles every byte, so any well-formed frame fits between its flags.
MAX_FRAME_BYTES = 2 * (MAX_HEADER_BYTES + MAX_BODY_BYTES + 1)

_SAMPLE_BYTES = 64
_SHORT_FRAME = 64
_FOLD_MASKS = {8 << k: (1 << (8 << k)) - 1 for k in range(16)}


class FramingError(DecodeError):
    """A frame candidate that cannot be handed on, or bytes skipped to find one.

    ``raw`` is a bounded sample of the offending bytes, for the dead-letter log.
    ``content`` is the unescaped frame (checksum included) when only the checksum failed:
    its header may still be readable, enough to tell the terminal its message was bad.
    """

    def __init__(self, reason: str, message: str, raw: bytes = b"", content: bytes = b"") -> None:
        super().__init__(reason, message)
        self.raw = raw
        self.content = content

    def __reduce__(self):
        return (type(self), (self.reason, str(self), self.raw, self.content))


def checksum(data: bytes) -> int:
    """XOR of all bytes."""
    if len(data) <= _SHORT_FRAME:
        c = 0
        for b in data:
            c ^= b
        return c
    # Fold the bytes as one integer, halving its width each step: log2(n) big-int
    # operations instead of n interpreted ones, which pays off past a few dozen bytes.
    x = int.from_bytes(data, "little")
    width = 4 << len(data).bit_length()
    while width >= 8:
        x = (x >> width) ^ (x & _FOLD_MASKS[width])
        width >>= 1
    return x


def escape(data: bytes) -> bytes:
    # 0x7D first: escaping 0x7E introduces 0x7D bytes that must stay as they are.
    return data.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02")


def unescape(data: bytes) -> bytes:
    """Undo :func:`escape`; raises DecodeError("bad_escape") on a stray 0x7D."""
    n = data.count(b"\x7d")
    if not n:
        return data
    if n != data.count(b"\x7d\x01") + data.count(b"\x7d\x02"):
        raise DecodeError("bad_escape", "0x7D not followed by 0x01 or 0x02")
    # 0x7D 0x02 first: the 0x7E it yields can never pair up into a spurious 0x7D 0x01.
    return data.replace(b"\x7d\x02", b"\x7e").replace(b"\x7d\x01", b"\x7d")


def encode_frame(content: bytes) -> bytes:
    """``header | body`` to the bytes to send: checksum appended, escaped, delimited."""
    return b"\x7e" + escape(content + bytes((checksum(content),))) + b"\x7e"


def decode_frame(candidate: bytes) -> bytes:
    """The escaped bytes between two flags to ``header | body``; raises FramingError."""
    try:
        content = unescape(candidate)
    except DecodeError as exc:
        raise FramingError(exc.reason, str(exc), bytes(candidate[:_SAMPLE_BYTES])) from None
    if len(content) < 2:
        raise FramingError("too_short", f"frame of {len(content)} bytes", bytes(candidate[:_SAMPLE_BYTES]))
    body_end = len(content) - 1
    if checksum(content[:body_end]) != content[body_end]:
        raise FramingError(
            "bad_checksum", "checksum does not match", bytes(candidate[:_SAMPLE_BYTES]), bytes(content)
        )
    return content[:body_end]


class FrameReader:
    """Cut an arbitrarily chunked byte stream into checked frames.

    ``feed`` takes whatever the socket gave (half a frame, several frames, junk) and
    returns, in stream order, each complete frame (``header | body`` bytes) or a
    :class:`FramingError`. Memory is bounded by ``max_frame_bytes``: a candidate that grows
    past it is reported as ``too_long`` and the rest of it is skipped up to the next flag,
    and skipped junk is reported once per ``max_frame_bytes`` bytes and not kept.
    """

    __slots__ = ("max_frame_bytes", "_buf", "_in_frame", "_junk", "_junk_sample")

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        if max_frame_bytes < 2:
            raise ValueError("max_frame_bytes must be at least 2")
        self.max_frame_bytes = max_frame_bytes
        self._buf = bytearray()
        self._in_frame = False
        self._junk = 0
        self._junk_sample = b""

    @property
    def pending_bytes(self) -> int:
        """Bytes of an unfinished frame held until its closing flag arrives."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray) -> list[bytes | FramingError]:
        if type(data) is not bytes:
            data = bytes(data)
        out: list[bytes | FramingError] = []
        pos = 0
        end = len(data)
        cap = self.max_frame_bytes
        while pos < end:
            if not self._in_frame:
                flag = data.find(FLAG, pos)
                stop = end if flag < 0 else flag
                self._skip(data, pos, stop, out)
                if flag < 0:
                    break
                if self._junk:
                    out.append(self._junk_error())
                self._in_frame = True
                pos = flag + 1
                continue
            flag = data.find(FLAG, pos)
            if flag < 0:
                if len(self._buf) + end - pos > cap:
                    self._overflow(data, pos, end, out)
                else:
                    self._buf += data[pos:end]
                break
            if len(self._buf) + flag - pos > cap:
                self._overflow(data, pos, flag, out)
                pos = flag  # out of frame now: this flag opens the next candidate
                continue
            if self._buf:
                self._buf += data[pos:flag]
                candidate = bytes(self._buf)
                self._buf.clear()
            else:
                candidate = data[pos:flag]
            pos = flag + 1
            if candidate:
                try:
                    out.append(decode_frame(candidate))
                except FramingError as exc:
                    out.append(exc)
        return out

    def _overflow(self, data: bytes, pos: int, stop: int, out: list) -> None:
        sample = bytes(self._buf[:_SAMPLE_BYTES]) or bytes(data[pos:pos + _SAMPLE_BYTES])
        out.append(FramingError("too_long", f"frame longer than {self.max_frame_bytes} bytes", sample))
        self._junk = len(self._buf) + stop - pos - self.max_frame_bytes
        self._junk_sample = b""
        self._buf.clear()
        self._in_frame = False
        self._skip(data, stop, stop, out)

    def _skip(self, data: bytes, pos: int, stop: int, out: list) -> None:
        if pos < stop and not self._junk_sample:
            self._junk_sample = bytes(data[pos:min(stop, pos + _SAMPLE_BYTES)])
        self._junk += stop - pos
        while self._junk >= self.max_frame_bytes:
            self._junk -= self.max_frame_bytes
            out.append(FramingError(
                "junk", f"{self.max_frame_bytes} bytes without a frame flag", self._junk_sample
            ))
            self._junk_sample = b""

    def _junk_error(self) -> FramingError:
        err = FramingError("junk", f"{self._junk} bytes before a frame flag", self._junk_sample)
        self._junk = 0
        self._junk_sample = b""
        return err
