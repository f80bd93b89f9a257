#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target (Tests/Fuzz/corpus/<target>/).

The seeds are committed; run this again only to change them. Byte 0 of a frame, HTTP or
NATS seed selects the target's mode/limits (see the target's header comment); tag seeds
are plain template text.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while v >= 0x80:
        out.append(v & 0x7F | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def entry(source=b"stdout", t=1700000000123456789, line=b"", partial=False, meta=None):
    m = bytearray()
    if source:
        m += b"\x0a" + varint(len(source)) + source
    if t:
        m += b"\x10" + varint(t)
    if line:
        m += b"\x1a" + varint(len(line)) + line
    if partial:
        m += b"\x20\x01"
    if meta is not None:
        last, pid, ordinal = meta
        mm = bytearray()
        if last:
            mm += b"\x08\x01"
        if pid:
            mm += b"\x12" + varint(len(pid)) + pid
        if ordinal:
            mm += b"\x18" + varint(ordinal)
        m += b"\x2a" + varint(len(mm)) + mm
    return struct.pack(">I", len(m)) + bytes(m)


def frames():
    # Protocol doc §4.2, verified frames (byte for byte).
    hello = bytes.fromhex("00000019" "0a06" "7374646f7574" "10" "959a97ece39fe7cb17" "1a05" "68656c6c6f")
    assert hello == entry(line=b"hello")
    pid = b"0123456789abcdef" * 4
    partial = entry(b"stderr", line=b"abc", partial=True, meta=(True, pid, 2))
    assert partial[:4] == bytes.fromhex("00000061")
    RAW, RESYNC = b"\x06", b"\x0e"          # mode bytes: raw stream, 1 MiB limit (+ resync)
    SMALL = b"\x00"                          # raw stream, 16-byte frame limit
    write("frame", "hello", RAW + hello)
    write("frame", "partial-last", RAW + partial)
    write("frame", "two-frames", RAW + hello + partial)
    write("frame", "zero-length", RAW + b"\x00\x00\x00\x00" + hello)
    write("frame", "empty-line-stderr", RAW + entry(b"stderr", line=b""))
    write("frame", "negative-time", RAW + entry(t=-1, line=b"x"))
    # Unknown fields of every wire type (6: varint, 7: fixed64, 8: LEN, 9: fixed32, 10: group).
    body = (b"\x0a\x06stdout" b"\x30\x96\x01" b"\x39" + b"\x01" * 8 + b"\x42\x02hi" b"\x4d" + b"\x02" * 4
            + b"\x53\x08\x01\x54" b"\x1a\x01z")
    write("frame", "unknown-fields", RAW + struct.pack(">I", len(body)) + body)
    # Repeated field 5 merges; last scalar wins.
    body = b"\x0a\x06stderr\x1a\x01a\x1a\x01b\x2a\x02\x08\x01\x2a\x02\x18\x05"
    write("frame", "repeated-fields", RAW + struct.pack(">I", len(body)) + body)
    # Corruption: an oversized length prefix in the middle, then the stream resumes.
    write("frame", "corrupt-middle", RAW + hello + b"\xff\xff\xff\xff" + hello + partial)
    write("frame", "oversized-prefix", RAW + b"\x7f\xff\xff\xff" + b"junk" * 5 + hello)
    write("frame", "bad-protobuf", RAW + b"\x00\x00\x00\x03\x1a\x05a" + hello)
    write("frame", "resync-midframe", RESYNC + hello[7:] + hello + partial)
    write("frame", "small-limit", SMALL + hello + entry(line=b"") + hello)
    write("frame", "truncated", RAW + hello + partial[:30])
    # Structured mode (odd byte 0): flags, length, line bytes per entry.
    write("frame", "structured", b"\x01" + b"\x00\x05hello" + b"\x07\x03abc" + b"\x80\x02hi" + b"\x3c\x00")
    write("frame", "structured-resync", b"\x03" + b"\x01\x04oops" + b"\x81\x06second")


def http():
    LIMITS = b"\x0f"   # 16 KiB head, 4 MiB body (the product's defaults)
    TINY = b"\x04"     # 48-byte head, 8-byte body
    start_body = (b'{"File":"/run/docker/logging/' + b"c" * 64 + b'","Info":{"Config":{"tag":"{{.Name}}"},'
                  b'"ContainerID":"' + b"a" * 64 + b'","ContainerName":"/web","ContainerEntrypoint":"sh",'
                  b'"ContainerArgs":["-c","echo hi"],"ContainerImageID":"sha256:' + b"b" * 64 + b'",'
                  b'"ContainerImageName":"busybox","ContainerCreated":"2026-11-23T08:00:09.215590730Z",'
                  b'"ContainerEnv":["PATH=/bin"],"ContainerLabels":{},"LogPath":"","DaemonName":"docker"}}\n')

    def req(path, body=b"", host=b""):
        return (b"POST " + path + b" HTTP/1.1\r\nHost: " + host + b"\r\nUser-Agent: Go-http-client/1.1\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n"
                b"Accept: application/vnd.docker.plugins.v1.2+json\r\n\r\n" + body)

    # Protocol doc §1.2: the request captured from a 20.10.24 daemon (go1.19.8).
    write("http", "docker-start-logging", LIMITS + req(b"/LogDriver.StartLogging", start_body))
    write("http", "docker-capabilities", LIMITS + req(b"/LogDriver.Capabilities", host=b"plugin.moby.localhost"))
    stop = b'{"File":"/run/docker/logging/' + b"c" * 64 + b'"}\n'
    write("http", "keepalive-sequence", LIMITS + req(b"/LogDriver.Capabilities") + req(b"/LogDriver.StartLogging", start_body)
          + req(b"/LogDriver.StopLogging", stop))
    write("http", "retry-empty-body", LIMITS + req(b"/LogDriver.StartLogging"))
    write("http", "metrics-get", LIMITS + b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    write("http", "http10-keepalive", LIMITS + b"GET /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n")
    write("http", "bare-lf", LIMITS + b"POST /LogDriver.StopLogging HTTP/1.1\nContent-Length: 2\n\n{}")
    write("http", "chunked", LIMITS + b"POST /LogDriver.StopLogging HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
          b"2;ext=1\r\n{}\r\n0\r\nX-Trailer: t\r\n\r\n")
    write("http", "chunked-tiny", TINY + b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n123456789\r\n0\r\n\r\n")
    write("http", "smuggling", LIMITS + b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    write("http", "bad-version", LIMITS + b"GET / HTTP/2.0\r\n\r\n")
    write("http", "bad-request-line", LIMITS + b"GET  / HTTP/1.1\r\n\r\n")
    write("http", "obs-fold", LIMITS + b"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n")
    write("http", "huge-length", LIMITS + b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n")
    write("http", "oversized-head", TINY + b"GET / HTTP/1.1\r\nX-Long: " + b"a" * 64 + b"\r\n\r\n")
    write("http", "garbage", LIMITS + bytes(range(256)))


def nats():
    D = b"\x02"  # 1 MiB line limit (the product's default)
    info = (b'INFO {"server_id":"NB5PGQNKNPOJ6DGLSZDIS4YFFD646EYUEV2THQNFB6VIDD2PIX4WQF2F","server_name":'
            b'"NB5PGQNKNPOJ6DGLSZDIS4YFFD646EYUEV2THQNFB6VIDD2PIX4WQF2F","version":"2.9.10","proto":1,'
            b'"go":"go1.19.8","host":"127.0.0.1","port":24901,"headers":true,"max_payload":1048576,'
            b'"client_id":4,"client_ip":"127.0.0.1"} \r\n')
    # Captured from nats-server 2.9.10 (Debian 12): handshake, PONG, a delivered MSG, -ERR.
    write("nats", "server-2.9.10-session", D + info + b"+OK\r\nPONG\r\n+OK\r\n+OK\r\nMSG a 1 5\r\nhello\r\n"
          b"-ERR 'Unknown Protocol Operation'\r\n")
    write("nats", "server-2.9.10-auth-required", D + info.replace(b'"headers":true,', b'"headers":true,"auth_required":true,')
          + b"-ERR 'Authorization Violation'\r\n")
    write("nats", "cluster-info", D + b'INFO {"server_id":"A","version":"2.9.10","proto":1,"max_payload":65536,'
          b'"connect_urls":["127.0.0.1:4223","[::1]:4224"],"ldm":false,"tls_required":false,"tls_available":true} \r\n'
          b'INFO {"connect_urls":["10.0.0.1:4222"],"ldm":true}\r\nPING\r\n')
    write("nats", "hmsg", D + b"HMSG a.b 1 _INBOX.x 12 17\r\nNATS/1.0\r\n\r\nhello\r\nPING\r\n")
    write("nats", "lowercase-lf", D + b"ping\npong\n+ok\n-err\t'x'\ninfo\t{}\n")
    write("nats", "err-storm", D + b"-ERR 'Slow Consumer'\r\n" * 20)
    write("nats", "info-not-json", D + b"INFO this is not json\r\n")
    write("nats", "info-wrong-types", D + b'INFO {"max_payload":"big","proto":-1,"headers":1}\r\n')
    write("nats", "msg-bad-size", D + b"MSG a 1 -5\r\n")
    write("nats", "small-limit", b"\x00" + b"INFO " + b"{" * 40 + b"\r\n")
    write("nats", "garbage", D + bytes(range(256)))
    # Regression (found by this target): a MSG size of Int.max overflowed `n + 2` and trapped.
    write("nats", "regression-msg-size-overflow", D + b"MSG a 1 9223372036854775807\r\nPING\r\n")


def tag():
    for name, t in [
        ("default", "{{.ID}}"), ("name", "{{.Name}}"), ("docker-doc", "{{.ImageName}}/{{.Name}}/{{.ID}}"),
        ("full", "{{.FullID}} {{.ImageID}} {{.ImageFullID}} {{.DaemonName}} {{.Command}} {{.Hostname}}"),
        ("index-label", '{{index .ContainerLabels "com.example.x"}}'), ("config-key", "{{.Config.tag}}"),
        ("functions", '{{upper .Name}}.{{lower "ABC"}}.{{title "a b"}}.{{json .ContainerArgs}}'),
        ("split-join", '{{join (split .Name "-") "_"}}'), ("pad-truncate", "{{pad .Name 2 3}}{{truncate .FullID 5}}"),
        ("pipeline", "{{.Name | upper | json}}"), ("trim-comment", "a {{- /* c */ -}} b {{- .ID -}} c"),
        ("literal", "docker.logs.web"), ("escapes", '{{"\\x41\\u00e9\\101\\t"}}{{`raw`}}'),
        ("numbers", "{{index .ContainerArgs 0x1}}{{truncate .Name -1}}{{pad .Name 1_0 0b1}}"),
        ("unsupported", "{{if .Name}}x{{end}}{{$x}}{{.}}{{printf \"%s\" .Name}}"),
        ("unclosed", "{{.Name"),
        # Regressions (found by this target): a 21 GB pad crashed the plugin; a raw newline
        # after a backslash put a line break into the error message.
        ("regression-pad-oom", "{{pad .Name 21000000000 3}}{{truncate .FullID 5}}"),
        ("regression-json-chain", "{{.Name" + " | json" * 40 + "}}"),
        ("regression-escape-newline", ' {{".n\xe1\\\n'), ("deep-parens", "{{" + "(" * 40 + ".Name" + ")" * 40 + "}}"),
    ]:
        write("tag", name, t)


if __name__ == "__main__":
    frames()
    http()
    nats()
    tag()
