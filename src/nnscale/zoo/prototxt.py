"""A small parser for the protobuf text format, enough to read Caffe's `.prototxt` files.

Why not `google.protobuf.text_format`: its `Parse(text, message)` fills a message of a compiled
type, so it needs caffe.proto compiled into Python (protoc, or a hand-built descriptor pool of
Caffe's ~70 messages). Caffe itself cannot be installed any more and nnscale does not ship a copy
of caffe.proto; a schema-less parse into nested messages is all the importer needs, and takes
~150 lines. (protobuf's own tokenizer, `text_format.Tokenizer`, is not public API.)

The grammar (protobuf's text format as written by `TextFormat::Print`, and as Caffe's
`ReadProtoFromTextFile` accepts it, caffe/src/caffe/util/io.cpp):

    message := field*
    field   := NAME ':'? '{' message '}'      (or '<' message '>')
             | NAME ':' value                 value := scalar | '[' scalar (',' scalar)* ']'
    scalar  := NUMBER | STRING+ | IDENTIFIER  (adjacent strings are concatenated)

Fields may be separated by ',' or ';'; '#' starts a comment. Without a schema every field may
repeat, so a `Message` keeps a list per name; `get` returns the last one (protobuf's rule for a
singular field given twice). A text that does not parse raises `PrototxtError` (a `UserError`)
with the line and column of the offending token.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from nnscale.errors import UserError

_TOKEN = re.compile(
    r"""
    (?P<space>[ \t\r\f\v]+|\n)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>[-+]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?[fF]?)(?![\w.]))
  | (?P<ident>-?[A-Za-z_][\w.]*)
  | (?P<punct>[{}<>\[\]:,;])
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "a": "\a", "b": "\b",
            "f": "\f", "v": "\v", "?": "?"}
_SPECIAL = {"true": True, "True": True, "false": False, "False": False, "inf": float("inf"),
            "-inf": float("-inf"), "infinity": float("inf"), "-infinity": float("-inf"),
            "nan": float("nan")}


# protobuf's own parsers stop at 100 nested messages (io::CodedInputStream's default recursion
# limit, google/protobuf/io/coded_stream.h); Caffe's deepest is 3 (layer { param { filler {} } }).
# Without a limit a hostile file ends in Python's RecursionError.
MAX_DEPTH = 100


class PrototxtError(UserError):
    """A text that is not valid protobuf text format; the message names file, line and column."""


@dataclass
class Message:
    """One parsed message: every field name maps to the list of its values, in file order."""

    fields: dict[str, list[Any]] = field(default_factory=dict)
    line: int = 1
    column: int = 1

    def get(self, name: str, default: Any = None) -> Any:
        values = self.fields.get(name)
        return values[-1] if values else default

    def getall(self, name: str) -> list[Any]:
        return list(self.fields.get(name, ()))

    def __contains__(self, name: str) -> bool:
        return name in self.fields

    def add(self, name: str, value: Any) -> None:
        self.fields.setdefault(name, []).append(value)


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str
    text: str
    line: int
    column: int


def _unescape(body: str) -> str:
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt in "xX":
            digits = re.match(r"[0-9a-fA-F]{1,2}", body[i + 2:])
            out.append(chr(int(digits.group(), 16)) if digits else nxt)
            i += 2 + (len(digits.group()) if digits else 0)
        else:  # octal \ooo
            digits = re.match(r"[0-7]{1,3}", body[i + 1:])
            out.append(chr(int(digits.group(), 8)) if digits else nxt)
            i += 1 + (len(digits.group()) if digits else 1)
    return "".join(out)


class _Parser:
    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.tokens = self._tokenize(text)
        self.pos = 0

    def _error(self, tok: _Tok, what: str) -> PrototxtError:
        found = "end of file" if tok.kind == "eof" else repr(tok.text)
        return PrototxtError(f"{self.source}:{tok.line}:{tok.column}: {what}, found {found}")

    def _tokenize(self, text: str) -> list[_Tok]:
        tokens, pos, line, line_start = [], 0, 1, 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                raise PrototxtError(f"{self.source}:{line}:{pos - line_start + 1}: unexpected "
                                    f"character {text[pos]!r}")
            kind = m.lastgroup or ""
            if kind == "space" and m.group() == "\n":
                line, line_start = line + 1, m.end()
            elif kind not in ("space", "comment"):
                tokens.append(_Tok(kind, m.group(), line, pos - line_start + 1))
            pos = m.end()
        tokens.append(_Tok("eof", "", line, pos - line_start + 1))
        return tokens

    def _peek(self) -> _Tok:
        return self.tokens[self.pos]

    def _next(self) -> _Tok:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def _accept(self, text: str) -> bool:
        if self._peek().kind == "punct" and self._peek().text == text:
            self.pos += 1
            return True
        return False

    def message(self, close: str | None, start: _Tok | None = None, depth: int = 0) -> Message:
        if depth > MAX_DEPTH:
            raise self._error(start or self._peek(), f"messages nested deeper than {MAX_DEPTH} "
                              "levels (Caffe nets nest a few)")
        msg = Message(line=start.line if start else 1, column=start.column if start else 1)
        while True:
            tok = self._peek()
            if close is None and tok.kind == "eof":
                return msg
            if close is not None and tok.kind == "punct" and tok.text == close:
                self.pos += 1
                return msg
            if tok.kind != "ident" or tok.text.startswith("-"):
                expected = f"a field name or {close!r}" if close else "a field name"
                raise self._error(tok, f"expected {expected}")
            self.pos += 1
            colon = self._accept(":")
            opener = self._peek()
            if opener.kind == "punct" and opener.text in "{<":
                self.pos += 1
                msg.add(tok.text, self.message("}" if opener.text == "{" else ">", tok, depth + 1))
            elif not colon:
                raise self._error(opener, f"expected ':' or '{{' after field {tok.text!r}")
            elif self._accept("["):
                while not self._accept("]"):
                    msg.add(tok.text, self.scalar())
                    if not self._accept(",") and self._peek().text != "]":
                        raise self._error(self._peek(), "expected ',' or ']' in a list")
            else:
                msg.add(tok.text, self.scalar())
            if not self._accept(","):
                self._accept(";")

    def scalar(self) -> Any:
        tok = self._next()
        if tok.kind == "string":
            parts = [_unescape(tok.text[1:-1])]
            while self._peek().kind == "string":
                parts.append(_unescape(self._next().text[1:-1]))
            return "".join(parts)
        if tok.kind == "number":
            text = tok.text
            if re.fullmatch(r"[-+]?0[xX][0-9a-fA-F]+", text):
                return int(text, 16)
            text = text.rstrip("fF")  # C-style float suffix, 0.5f
            if re.fullmatch(r"[-+]?\d+", text):
                return int(text)
            return float(text)
        if tok.kind == "ident":
            if tok.text in _SPECIAL or tok.text.lower() in ("inf", "-inf", "nan"):
                return _SPECIAL.get(tok.text, _SPECIAL.get(tok.text.lower()))
            if tok.text.startswith("-"):
                raise self._error(tok, "expected a value")
            return tok.text  # an enum value such as MAX, or an identifier
        raise self._error(tok, "expected a value")


def parse(text: str, source: str = "<prototxt>") -> Message:
    """Parse protobuf text format into nested `Message`s; errors name `source`, line and column."""
    return _Parser(text, source).message(None)


def parse_file(path: str, what: str = "prototxt") -> Message:
    """`parse` of a file: one-line errors for a path that is no regular file or cannot be read."""
    if not os.path.isfile(path):  # a FIFO would block reading, a directory cannot be read
        raise PrototxtError(f"{what} {path!r} is not a regular file (a directory, FIFO or "
                            "device); expected a readable text file")
    # Bytes that are not UTF-8 become U+FFFD, which the tokenizer then names with line and column.
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as e:  # permissions, a write-only sysfs file, an I/O error
        raise PrototxtError(f"cannot read {what} {path}: {e.strerror or type(e).__name__}; "
                            "expected a readable text file") from None
    return parse(text, path)
