"""A strict reader of the Prometheus text exposition format (version 0.0.4), for the tests of
logrelay's /metrics: it raises on anything a Prometheus server would reject, and on what our
own conventions forbid (a family without # HELP and # TYPE, a counter not named *_total,
samples of one family split up, a repeated label set)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


@dataclass
class Family:
    name: str
    type: str = ""
    help: str = ""
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def value(self, **labels) -> float | None:
        """The value of the one sample whose labels include `labels`; None if there is none."""
        found = [v for lb, v in self.samples if all(lb.get(k) == want for k, want in labels.items())]
        assert len(found) <= 1, f"{self.name}: {len(found)} samples match {labels}"
        return found[0] if found else None


class ParseError(AssertionError):
    pass


def _labels(text: str, lineno: int) -> tuple[dict[str, str], int]:
    """Parses `{a="x",b="y"}` at the start of text; returns the labels and the length used."""
    assert text[0] == "{"
    i, out = 1, {}
    while True:
        if text[i] == "}":
            return out, i + 1
        m = LABEL.match(text, i)
        if not m:
            raise ParseError(f"line {lineno}: bad label name at {text[i:i + 20]!r}")
        name = m.group()
        i = m.end()
        if text[i:i + 2] != '="':
            raise ParseError(f"line {lineno}: expected =\" after label {name}")
        i += 2
        value = []
        while True:
            c = text[i]
            if c == "\\":
                esc = text[i + 1]
                if esc not in '\\"n':
                    raise ParseError(f"line {lineno}: bad escape \\{esc} in label {name}")
                value.append({"\\": "\\", '"': '"', "n": "\n"}[esc])
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == "\n":
                raise ParseError(f"line {lineno}: newline in label {name}")
            else:
                value.append(c)
                i += 1
        if name in out:
            raise ParseError(f"line {lineno}: label {name} twice")
        out[name] = "".join(value)
        if text[i] == ",":
            i += 1
        elif text[i] != "}":
            raise ParseError(f"line {lineno}: expected , or }} after label {name}")


def parse(text: str) -> dict[str, Family]:
    if text and not text.endswith("\n"):
        raise ParseError("the exposition does not end with a newline")
    families: dict[str, Family] = {}
    finished: set[str] = set()
    current = None
    for lineno, line in enumerate(text.split("\n")[:-1], 1):
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            kind, rest = line[2:6], line[7:]
            name, _, arg = rest.partition(" ")
            if not NAME.fullmatch(name):
                raise ParseError(f"line {lineno}: bad metric name {name!r}")
            if name in finished:
                raise ParseError(f"line {lineno}: {name} appears again after other families")
            if current is not None and current != name:
                finished.add(current)
            current = name
            f = families.setdefault(name, Family(name))
            if kind == "TYPE":
                if f.type or arg not in TYPES:
                    raise ParseError(f"line {lineno}: TYPE of {name} repeated or unknown ({arg!r})")
                if f.samples:
                    raise ParseError(f"line {lineno}: TYPE of {name} after its samples")
                f.type = arg
            else:
                if f.help:
                    raise ParseError(f"line {lineno}: HELP of {name} repeated")
                f.help = arg
            continue
        if line.startswith("#") or not line:
            raise ParseError(f"line {lineno}: unexpected line {line!r}")
        m = NAME.match(line)
        if not m:
            raise ParseError(f"line {lineno}: bad sample {line!r}")
        name, rest = m.group(), line[m.end():]
        labels: dict[str, str] = {}
        if rest.startswith("{"):
            labels, used = _labels(rest, lineno)
            rest = rest[used:]
        if not rest.startswith(" "):
            raise ParseError(f"line {lineno}: expected a space before the value: {line!r}")
        parts = rest[1:].split(" ")
        if len(parts) not in (1, 2):
            raise ParseError(f"line {lineno}: bad value part {rest!r}")
        try:
            value = float(parts[0])
        except ValueError:
            raise ParseError(f"line {lineno}: bad value {parts[0]!r}") from None
        if math.isnan(value):
            raise ParseError(f"line {lineno}: NaN value")
        if name != current or name in finished:
            raise ParseError(f"line {lineno}: sample of {name} outside its family's block")
        f = families[name]
        if not f.help or not f.type:
            raise ParseError(f"line {lineno}: {name} has no HELP or TYPE before its samples")
        if any(lb == labels for lb, _ in f.samples):
            raise ParseError(f"line {lineno}: {name}{labels} repeated")
        f.samples.append((labels, value))
    for f in families.values():
        if not f.type or not f.help:
            raise ParseError(f"{f.name}: missing HELP or TYPE")
        if f.type == "counter" and not f.name.endswith("_total"):
            raise ParseError(f"{f.name}: a counter not named *_total")
        if f.type == "counter" and any(v < 0 for _, v in f.samples):
            raise ParseError(f"{f.name}: a negative counter")
    return families
