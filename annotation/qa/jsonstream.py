"""Read a JSON array one element at a time, refusing what a database cannot store.

`json.load` builds a whole file in memory before the first check; a 300 MB
upload then costs gigabytes. `ArrayReader` reads the top-level array element
by element with the standard library's C decoder (`raw_decode` over a sliding
window of text), so memory holds one element and about a megabyte of text,
and errors read exactly as `json.loads` words them, with the file's line and
column.

Why not ijson: its fast C backend turns a lone `\\ud800` escape into "?"
without a word (data silently changed), fails on a lone `\\udc00` with a
UnicodeDecodeError, names no line or column, and a file of 100,000 nested
brackets got the process killed; the pure-Python backend is several times
slower than this.

Beyond the grammar, each element is refused (as a `JsonProblem` naming the
element and the path inside it) when it holds:

- the same key twice in one object (json keeps the last value silently);
- a NUL character or a lone UTF-16 surrogate, in a key or a string (neither
  can be stored: PostgreSQL refuses NUL in text, and a lone surrogate is not
  a character, so it cannot be encoded as UTF-8);
- nesting deeper than the decoder can follow (`MAX_DEPTH` names the limit).

Pure: no Django.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import IO, Any

WINDOW = 1 << 20  # characters read at a time
MAX_DEPTH = 64  # nesting reported as too deep; the format itself needs 5 levels
# A decode error this close to the end of the window may only mean the element goes on past it.
_NEAR_END = 16
_WHITESPACE = re.compile(r"[ \t\n\r]*")
# Escapes that may decode to something the database refuses; seen in raw text, checked on the value.
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
_BAD_CHARACTER = re.compile("[\x00\ud800-\udfff]")
_SCALAR_NAMES = {str: "a string", bool: "a boolean", type(None): "null"}


class JsonProblem(ValueError):
    """What is wrong, and where: `index` of the element (None: the file as a whole), `path` inside it."""

    def __init__(self, message: str, *, index: int | None = None, path: str | None = None):
        self.message = message
        self.index = index
        self.path = path or None
        super().__init__(message)


class NotAList(JsonProblem):
    """The file holds valid JSON, but not a list; `kind` names what it holds ("an object")."""

    def __init__(self, kind: str):
        self.kind = kind
        super().__init__(f"the file holds {kind}, not a list")


class _Duplicated(dict):
    """An object that gave a key twice; only built when that happens."""

    duplicate: str


def _marked(pairs: list[tuple[str, Any]]) -> _Duplicated:
    seen: set[str] = set()
    marked = _Duplicated(pairs)
    marked.duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))
    return marked


def _join(path: str, step: str | int) -> str:
    if isinstance(step, int):
        return f"{path}[{step}]"
    step = short_key(step)
    return f"{path}.{step}" if path else step


def short_key(key: str, limit: int = 60) -> str:
    """A key as a path names it, cut short: a megabyte-long key must not make a megabyte-long message."""
    return key if len(key) <= limit else f"{key[: limit - 1]}…"


def _walk(value: Any, path: str = "") -> Iterator[tuple[str, Any, str | None]]:
    """(path, value, key) for every value and every key (with its object's path) inside `value`."""
    yield path, value, None
    if isinstance(value, dict):
        for key, item in value.items():
            yield path, key, key
            yield from _walk(item, _join(path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, _join(path, i))


def describe_character(text: str) -> str:
    """Why `text` cannot be stored, for the first NUL or lone surrogate in it."""
    found = _BAD_CHARACTER.search(text)
    assert found is not None
    char = found.group()
    if char == "\x00":
        return "holds a NUL character (\\u0000), which cannot be stored"
    return (
        f"holds \\u{ord(char):04x} at character {found.start()}, half of a UTF-16 surrogate pair "
        "without its other half; that is not a character and cannot be stored"
    )


def element_problem(value: Any) -> tuple[str | None, str] | None:
    """(path, message) for the first duplicate key, NUL or lone surrogate inside a decoded element, or None."""
    for path, item, key in _walk(value):
        if isinstance(item, _Duplicated) and not _BAD_CHARACTER.search(item.duplicate):
            message = f"key {short_key(item.duplicate)!r} appears twice in one object; only one value could be kept"
            return _join(path, item.duplicate), message
        if isinstance(item, str) and _BAD_CHARACTER.search(item):
            if key is None:
                return path or None, describe_character(item)
            return path or None, f"a key {describe_character(item)}"
    return None


def _deep_path(text: str, start: int) -> str:
    """The path, inside the element at `start`, at which nesting passes MAX_DEPTH (first levels only)."""
    try:
        steps = _deep_steps(text, start)
    except (IndexError, ValueError):  # the text breaks off or is not JSON after all: name no path
        return ""
    path = ""
    for step in steps[:4]:
        path = _join(path, step)
    return path + ("..." if len(steps) > 4 else "")


def _deep_steps(text: str, start: int) -> list[str | int]:
    steps: list[str | int] = []
    stack: list[str] = []  # "[" or "{"
    i = start
    expecting_key = False
    while i < len(text):
        char = text[i]
        if char == '"':
            end = i + 1
            while text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            if stack and stack[-1] == "{" and expecting_key:
                steps[-1] = json.loads(text[i : end + 1])
                expecting_key = False
            i = end + 1
            continue
        if char in "[{":
            if len(stack) >= MAX_DEPTH:
                break
            stack.append(char)
            steps.append(0 if char == "[" else "")
            expecting_key = char == "{"
        elif char in "]}":
            stack.pop()
            steps.pop()
        elif char == ",":
            if stack[-1] == "[":
                steps[-1] = int(steps[-1]) + 1
            else:
                expecting_key = True
        i += 1
    return steps


class ArrayReader:
    """The elements of a JSON array in a text or binary stream (UTF-8, an optional BOM), one at a time.

    Iterate to get the elements; `index` is the 0-based index of the last
    element given, `bytes_read` how much of the stream has been consumed.
    Raises JsonProblem (NotAList for valid JSON that is not a list).
    """

    def __init__(self, stream: IO[bytes] | IO[str]):
        self.stream = stream
        self.index = -1
        self.bytes_read = 0
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self._json = json.JSONDecoder(object_pairs_hook=self._object)
        self._duplicates = 0
        self._started = False
        self._buf = ""
        self._pos = 0
        self._eof = False
        # Where the window starts in the file: lines before it, and characters before it on its line.
        self._line = 0
        self._column = 0

    def _object(self, pairs: list[tuple[str, Any]]) -> dict:
        obj = dict(pairs)
        if len(obj) == len(pairs):
            return obj
        self._duplicates += 1
        return _marked(pairs)

    # --- reading ----------------------------------------------------------------------------------

    def _read(self, size: int) -> str:
        chunk = self.stream.read(size)
        if isinstance(chunk, str):
            self.bytes_read += len(chunk.encode("utf-8", "surrogatepass"))
            if not self._started and chunk.startswith("\ufeff"):
                chunk = chunk[1:]
            self._started = True
            if not chunk:
                self._eof = True
            return chunk
        before = self.bytes_read
        self.bytes_read += len(chunk)
        try:
            text = self._decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            pending = len(self._decoder.getstate()[0])
            raise JsonProblem(f"the file is not UTF-8 text (byte {before - pending + exc.start})") from None
        if not chunk:
            self._eof = True
        return text

    def _fill(self, at_least: int = WINDOW) -> bool:
        """Read more text, dropping what is already used; False (and nothing moved) at the end of the stream."""
        more = ""
        while not more and not self._eof:
            more = self._read(max(at_least, WINDOW))
        if not more:
            return False
        used = self._pos
        newlines = self._buf.count("\n", 0, used)
        if newlines:
            self._line += newlines
            self._column = used - self._buf.rfind("\n", 0, used) - 1
        else:
            self._column += used
        self._buf = self._buf[used:] + more
        self._pos = 0
        return True

    def _skip_whitespace(self) -> str:
        """The next character that is not whitespace ("" at the end of the stream)."""
        while True:
            self._pos = _WHITESPACE.match(self._buf, self._pos).end()
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if not self._fill():
                return ""

    def _syntax_error(self, message: str, pos: int) -> JsonProblem:
        newlines = self._buf.count("\n", 0, pos)
        line = self._line + newlines + 1
        column = pos - self._buf.rfind("\n", 0, pos) if newlines else self._column + pos + 1
        return JsonProblem(f"the file is not valid JSON: {message} (line {line}, column {column})")

    def _decode(self) -> tuple[Any, int, int]:
        """The value at the current position, and where it starts and ends, reading more text as needed."""
        while True:
            start = self._pos
            try:
                value, end = self._json.raw_decode(self._buf, start)
            except json.JSONDecodeError as exc:
                maybe_cut = exc.pos >= len(self._buf) - _NEAR_END or exc.msg.startswith("Unterminated string")
                if maybe_cut and self._fill(len(self._buf) - start):
                    continue
                raise self._syntax_error(exc.msg, exc.pos) from None
            except RecursionError:
                path = _deep_path(self._buf, start)
                raise JsonProblem(f"nested more than {MAX_DEPTH} levels deep", index=self.index + 1, path=path) from None
            if end == len(self._buf) and self._fill(len(self._buf) - start):
                continue  # a number at the window's end may go on
            return value, start, end

    # --- the array --------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Any]:
        first = self._skip_whitespace()
        if first != "[":
            self._refuse_top_level(first)
        self._pos += 1
        if self._skip_whitespace() == "]":
            self._pos += 1
        else:
            while True:
                duplicates = self._duplicates
                value, start, end = self._decode()
                self.index += 1
                if self._duplicates != duplicates or _SUSPECT_ESCAPE.search(self._buf, start, end):
                    problem = element_problem(value)
                    if problem is not None:
                        raise JsonProblem(problem[1], index=self.index, path=problem[0])
                self._pos = end
                yield value
                following = self._skip_whitespace()
                if following == "]":
                    self._pos += 1
                    break
                if following != ",":
                    raise self._syntax_error("Expecting ',' delimiter", self._pos)
                self._pos += 1
                self._skip_whitespace()
        if self._skip_whitespace():
            raise self._syntax_error("Extra data", self._pos)

    def _refuse_top_level(self, first: str) -> None:
        if first == "{":
            raise NotAList("an object")  # not decoded: it could be the whole file
        value, _, end = self._decode()  # a scalar, or the JSON error json.loads would give
        self._pos = end
        if self._skip_whitespace():
            raise self._syntax_error("Extra data", self._pos)
        raise NotAList(_SCALAR_NAMES.get(type(value), "a number"))
