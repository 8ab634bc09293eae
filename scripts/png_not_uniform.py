#!/usr/bin/env python3
"""Fails (exit 1) unless the PNG given exists, decodes, and is not a single colour.

Standard library only: a small PNG decoder for 8-bit RGB/RGBA/grey, non-interlaced, which is what
Bevy's screenshot writer produces.
"""
import struct
import sys
import zlib


def decode(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None:
        raise ValueError("no IHDR chunk")
    width, height, depth, colour, _, _, interlace = header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace != 0:
        raise ValueError(f"unsupported PNG (depth {depth}, colour type {colour}, interlace {interlace})")
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, prev = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, channels, rows


def main():
    if len(sys.argv) != 2:
        print("usage: png_not_uniform.py FILE.png", file=sys.stderr)
        return 2
    try:
        width, height, channels, rows = decode(sys.argv[1])
    except (OSError, ValueError, zlib.error, struct.error) as e:
        print(f"FAIL: {sys.argv[1]}: {e}", file=sys.stderr)
        return 1
    colours = set()
    for row in rows[::4]:
        for x in range(0, width * channels, channels * 4):
            colours.add(row[x:x + channels])
            if len(colours) > 64:
                break
    if len(colours) <= 1:
        print(f"FAIL: {sys.argv[1]} ({width}x{height}) is a single colour", file=sys.stderr)
        return 1
    print(f"ok: {sys.argv[1]} ({width}x{height}) has {'more than 64' if len(colours) > 64 else len(colours)} distinct colours (sampled)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
