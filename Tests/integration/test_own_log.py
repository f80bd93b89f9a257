"""The plugin's own log is logfmt: every line of its stdout and stderr, after a run with container
names, option values and server errors full of quotes, backslashes and newlines, parses with a
strict logfmt parser, and messages about a container carry it in a container= field."""

import socket
import threading

from helpers import Entry, free_port, next_time_ns, wait_until

KEY_CHARS = set("abcdefghijklmnopqrstuvwxyz_")
ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t"}


def parse_logfmt(line: str) -> dict[str, str]:
    """key=value pairs separated by one space; a value is bare (no space, quote, = or control
    character) or double-quoted with the escapes \\" \\\\ \\n \\r \\t \\uXXXX. Raises on anything else."""
    out, i, n = {}, 0, len(line)
    while True:
        j = i
        while j < n and line[j] in KEY_CHARS:
            j += 1
        if j == i or j >= n or line[j] != "=":
            raise ValueError(f"bad key at {i} in {line!r}")
        key = line[i:j]
        if key in out:
            raise ValueError(f"key {key} twice in {line!r}")
        i = j + 1
        if i < n and line[i] == '"':
            i += 1
            value = []
            while True:
                if i >= n:
                    raise ValueError(f"unterminated value of {key} in {line!r}")
                c = line[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\":
                    e = line[i + 1] if i + 1 < n else ""
                    if e in ESCAPES:
                        value.append(ESCAPES[e])
                        i += 2
                    elif e == "u" and all(h in "0123456789abcdef" for h in line[i + 2:i + 6]) and len(line[i + 2:i + 6]) == 4:
                        value.append(chr(int(line[i + 2:i + 6], 16)))
                        i += 6
                    else:
                        raise ValueError(f"bad escape at {i} in {line!r}")
                    continue
                if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029":
                    raise ValueError(f"raw control character in {line!r}")
                value.append(c)
                i += 1
            out[key] = "".join(value)
        else:
            j = i
            while j < n and line[j] != " ":
                if line[j] in '"=' or ord(line[j]) < 0x20:
                    raise ValueError(f"bad bare value of {key} in {line!r}")
                j += 1
            if j == i:
                raise ValueError(f"empty value of {key} in {line!r}")
            out[key] = line[i:j]
            i = j
        if i == n:
            return out
        if line[i] != " ":
            raise ValueError(f"expected a space at {i} in {line!r}")
        i += 1


def test_the_parser_is_strict():
    assert parse_logfmt('level=info msg="a \\"b\\" \\\\ \\n \\u0007" container="x"') == \
        {"level": "info", "msg": 'a "b" \\ \n \x07', "container": "x"}
    for bad in ['level=info msg="unterminated', 'level=info msg="a"b"', 'level=info  msg="x"',
                'level=info msg="\\x41"', 'level=info msg="raw\ttab"', "msg", 'level=info level=warn',
                'level=info msg="x" ']:
        try:
            parse_logfmt(bad)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad!r}")


class ErrServer:
    """A fake NATS server on loopback: sends INFO, then answers CONNECT with an -ERR full of
    quotes and backslashes, then closes; again for every connection."""

    ERROR = "-ERR 'Authorization \"Vio\\\\lation\" level=error msg=\"injected\"'\r\n"

    def __init__(self):
        self.port = free_port()
        self.sock = socket.create_server(("127.0.0.1", self.port))
        self.sock.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            try:
                conn.settimeout(2)
                conn.sendall(b'INFO {"server_id":"fake","version":"2.10.0","proto":1,"max_payload":1048576}\r\n')
                conn.recv(4096)
                conn.sendall(self.ERROR.encode())
            except OSError:
                pass
            finally:
                conn.close()

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()


HOSTILE_NAMES = [
    '/quote"name',
    "/back\\slash",
    "/new\nline level=error msg=\"forged\"",
    "/tab\tand\rcr",
    "/unicode-\u00e9\u65e5\U0001F680\u2028",
]


def test_every_line_of_a_hostile_run_is_logfmt(daemon, plugin, nats_server, subscriber_factory):
    err = ErrServer()
    try:
        started = []
        for name in HOSTILE_NAMES:
            c = daemon.container({"nats-servers": nats_server.url}, name=name)
            sub = subscriber_factory(nats_server.url, c.short_id)
            c.start_ok()
            c.send_entries([Entry("stdout", b"hello", next_time_ns())])
            assert sub.wait_for(1)
            started.append(c)
        # Refused containers: option keys and values that the error message quotes.
        refused = daemon.container({'nats-servers': nats_server.url, 'bad"key\nx': 'v"\\'}, name='/refused"1')
        assert refused.start().failed
        bad_tag = daemon.container({"nats-servers": nats_server.url, "tag": '{{.Nope "x\n"}}'}, name="/refused\n2")
        assert bad_tag.start().failed
        # A server whose error text has quotes, backslashes and a forged field.
        failing = daemon.container({"nats-servers": f"nats://127.0.0.1:{err.port}"}, name='/err"srv')
        failing.start_ok()
        failing.send_entries([Entry("stdout", b"never", next_time_ns())])
        assert wait_until(lambda: "Vio" in plugin.stderr(), 15), plugin.stderr()[-2000:]
        for c in started:
            c.stop()
        failing.stop()
    finally:
        err.stop()

    # split on "\n" only: splitlines() would also cut at U+2028, which the log escapes anyway
    lines = (plugin.stdout() + plugin.stderr()).split("\n")
    assert lines[-1] == ""
    lines = lines[:-1]
    assert len(lines) > 10
    parsed = []
    for line in lines:
        try:
            fields = parse_logfmt(line)
        except ValueError as e:
            raise AssertionError(f"not logfmt: {e}") from None
        assert list(fields)[:2] == ["level", "msg"], line
        assert fields["level"] in ("error", "warn", "info", "debug"), line
        parsed.append(fields)
    # No field was forged by a value, and every container's messages name it exactly.
    assert not any(f["msg"] == "forged" or f["msg"] == "injected" for f in parsed)
    for name in HOSTILE_NAMES:
        mine = [f for f in parsed if f.get("container") == name]
        assert any(f["msg"].startswith("started logging to NATS subject") for f in mine), (name, mine)
        assert any(f["msg"] == "stopped logging" for f in mine), (name, mine)
    for name in ('/refused"1', "/refused\n2"):
        assert any(f.get("container") == name and f["level"] == "warn" and f["msg"].startswith("refused StartLogging")
                   for f in parsed), name
    assert any("Vio\\\\lation" in f["msg"] or 'Vio\\lation' in f["msg"] for f in parsed)
