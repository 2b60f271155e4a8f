"""A reading of one redis.conf line that follows Redis' own splitter (sds.c, sdssplitargs).

Used by the tests to decode what `redis_conf_quote` writes, byte for byte, the way the
server will: whitespace separates arguments; inside "..." the escapes \\xHH, \\n, \\r, \\t,
\\b, \\a and \\<any> work; inside '...' only \\'; a closing quote must be followed by
whitespace or the end of the line (else the line is invalid: None).
"""

from __future__ import annotations

_SPACE = b" \n\r\t\v\f"
_HEX = b"0123456789abcdefABCDEF"
_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("a"): b"\a"}


def split_args(line: bytes) -> list[bytes] | None:
    args: list[bytes] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in _SPACE:
            i += 1
        if i >= n:
            return args
        current = bytearray()
        in_double = in_single = False
        while True:
            if in_double:
                if i >= n:
                    return None  # unterminated quotes
                c = line[i]
                if c == ord("\\") and i + 3 < n and line[i + 1] == ord("x") \
                        and line[i + 2] in _HEX and line[i + 3] in _HEX:
                    current.append(int(line[i + 2:i + 4], 16))
                    i += 3
                elif c == ord("\\") and i + 1 < n:
                    i += 1
                    current += _ESCAPES.get(line[i], bytes([line[i]]))
                elif c == ord('"'):
                    if i + 1 < n and line[i + 1] not in _SPACE:
                        return None  # closing quote must be followed by a space
                    i += 1
                    break
                else:
                    current.append(c)
            elif in_single:
                if i >= n:
                    return None
                c = line[i]
                if c == ord("\\") and i + 1 < n and line[i + 1] == ord("'"):
                    i += 1
                    current.append(ord("'"))
                elif c == ord("'"):
                    if i + 1 < n and line[i + 1] not in _SPACE:
                        return None
                    i += 1
                    break
                else:
                    current.append(c)
            else:
                if i >= n:
                    break
                c = line[i]
                if c in b" \n\r\t\0":
                    break
                if c == ord('"'):
                    in_double = True
                elif c == ord("'"):
                    in_single = True
                else:
                    current.append(c)
            i += 1
        args.append(bytes(current))
