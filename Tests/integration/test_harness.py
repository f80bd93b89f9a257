"""The harness itself: frames are encoded byte for byte like dockerd's (protocol doc §4.2)."""

from helpers import CHUNK, Entry, PartialMeta, go_json, rfc3339_nano, split_like_dockerd


def test_frame_encoder_matches_dockerd_bytes():
    f = Entry("stdout", b"hello", 1700000000123456789).encode()
    assert f.hex() == "00000019" "0a06" "7374646f7574" "10" "959a97ece39fe7cb17" "1a05" "68656c6c6f"
    pid = "ab" * 32
    f = Entry("stderr", b"abc", 1700000000123456789, True, PartialMeta(pid, 2, last=True)).encode()
    assert f.hex() == ("00000061" "0a06" "737464657272" "10" "959a97ece39fe7cb17" "1a03" "616263" "2001"
                       "2a46" "0801" "1240" + pid.encode().hex() + "1802")


def test_empty_line_has_no_line_field():
    f = Entry("stdout", b"", 1700000000123456789).encode()
    assert b"\x1a" not in f[4 + 8:]
    assert len(f) == 4 + 8 + 10


def test_split_like_dockerd():
    assert [len(e.line) for e in split_like_dockerd("stdout", b"x" * 40000)] == [16384, 16384, 7232]
    es = split_like_dockerd("stdout", b"x" * CHUNK)
    assert [(len(e.line), e.meta.ordinal, e.meta.last) for e in es] == [(16384, 1, False), (0, 2, True)]
    assert len({e.time_nano for e in es}) == 1
    assert split_like_dockerd("stdout", b"x" * (CHUNK - 1))[0].partial is False
    es = split_like_dockerd("stdout", b"x" * 20000, terminated=False)
    assert [(len(e.line), e.meta.last) for e in es] == [(16384, False), (3616, False)]


def test_go_json_and_time_format():
    assert go_json({"b": "<&>", "a": "\u2028é"}) == b'{"a":"\\u2028\xc3\xa9","b":"\\u003c\\u0026\\u003e"}\n'
    assert rfc3339_nano(1700000000_000000000) == "2023-11-14T22:13:20.000000000Z"
    assert rfc3339_nano(1700000000_123456789) == "2023-11-14T22:13:20.123456789Z"
