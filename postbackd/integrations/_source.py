"""Line numbers of keys in a TOML file, for error messages.

``tomllib`` returns values without positions, so this module scans the text
once more and records where each key and table header starts. The scan
understands comments, the four string forms and bracket nesting, which is
enough to find keys in the files this package reads. Keys inside inline
tables and multi-line arrays are not recorded, so an error there names the
line of the enclosing key.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from typing import NamedTuple

KeyPath = tuple[str | int, ...]

_BARE_OR_QUOTED = r"""(?:[A-Za-z0-9_\-]+|"[^"\n]*"|'[^'\n]*')"""
_KEY = re.compile(rf"({_BARE_OR_QUOTED}(?:[ \t]*\.[ \t]*{_BARE_OR_QUOTED})*)[ \t]*=")
_HEADER = re.compile(rf"(\[\[?)[ \t]*({_BARE_OR_QUOTED}(?:[ \t]*\.[ \t]*{_BARE_OR_QUOTED})*)[ \t]*\]\]?")
_KEY_PART = re.compile(_BARE_OR_QUOTED)


class _Entry(NamedTuple):
    path: KeyPath
    offset: int


def _split_key(text: str) -> tuple[str, ...]:
    return tuple(part.strip("\"'") for part in _KEY_PART.findall(text))


class SourceMap:
    """Start offsets of the keys and table headers in one TOML text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._newlines = [index for index, char in enumerate(text) if char == "\n"]
        self._keys: list[_Entry] = []
        self._tables: list[_Entry] = []
        self._scan()
        self._starts = sorted(entry.offset for entry in self._keys + self._tables)

    def line_at(self, offset: int) -> int:
        """Return the 1-based line number of a character offset."""
        return bisect.bisect_left(self._newlines, offset) + 1

    def line_of(self, path: Sequence[str | int], needle: str | None = None) -> int:
        """Return the line of the key at ``path``, or of the closest enclosing key or table.

        With ``needle``, return the line where that text first appears in the
        key's value, which for a multi-line string is not the key's own line.
        """
        entry = self._closest(tuple(path))
        if entry is None:
            return 1
        if needle:
            end_index = bisect.bisect_right(self._starts, entry.offset)
            end = self._starts[end_index] if end_index < len(self._starts) else len(self.text)
            found = self.text.find(needle, entry.offset, end)
            if found != -1:
                return self.line_at(found)
        return self.line_at(entry.offset)

    def value_line(self, path: Sequence[str | int]) -> int | None:
        """Return the line of the first character of a string value, or None if the key is not found.

        TOML drops a newline right after the opening quotes of a multi-line
        string, so that value's first line is the next line.
        """
        entry = self._closest(tuple(path))
        if entry is None or entry.path != tuple(path):
            return None
        match = re.compile(r"[ \t]*=[ \t]*").match(self.text, self.text.find("=", entry.offset))
        start = match.end() if match else entry.offset
        for quotes in ('"""', "'''"):
            if self.text.startswith(quotes, start):
                start += 3
                if self.text.startswith("\r\n", start):
                    start += 2
                elif self.text.startswith("\n", start):
                    start += 1
                break
        return self.line_at(start)

    def _closest(self, path: KeyPath) -> _Entry | None:
        best: _Entry | None = None
        for entry in self._keys + self._tables:
            if path[: len(entry.path)] == entry.path and (best is None or len(entry.path) > len(best.path)):
                best = entry
        return best

    def _scan(self) -> None:
        text = self.text
        table: KeyPath = ()
        array_counts: dict[tuple[str, ...], int] = {}
        depth = 0
        line_start = True
        i = 0
        while i < len(text):
            char = text[i]
            if char == "\n":
                line_start = True
                i += 1
            elif char in " \t\r":
                i += 1
            elif char == "#":
                newline = text.find("\n", i)
                i = len(text) if newline == -1 else newline
            elif line_start and depth == 0 and (header := _HEADER.match(text, i)):
                line_start = False
                parts = _split_key(header.group(2))
                if header.group(1) == "[[":
                    array_counts[parts] = array_counts.get(parts, -1) + 1
                    table = parts + (array_counts[parts],)
                else:
                    table = self._with_array_indexes(parts, array_counts)
                self._tables.append(_Entry(table, i))
                i = header.end()
            elif line_start and depth == 0 and (key := _KEY.match(text, i)):
                line_start = False
                self._keys.append(_Entry(table + _split_key(key.group(1)), i))
                i = key.end()
            elif char in "\"'":
                line_start = False
                i = self._string_end(i)
            else:
                line_start = False
                if char in "[{":
                    depth += 1
                elif char in "]}":
                    depth = max(0, depth - 1)
                i += 1

    @staticmethod
    def _with_array_indexes(parts: tuple[str, ...], array_counts: dict[tuple[str, ...], int]) -> KeyPath:
        """Return a table path with the current index after each array-of-tables prefix."""
        path: list[str | int] = []
        for length in range(1, len(parts) + 1):
            path.append(parts[length - 1])
            if parts[:length] in array_counts and length < len(parts):
                path.append(array_counts[parts[:length]])
        return tuple(path)

    def _string_end(self, start: int) -> int:
        """Return the offset just past the string that starts at ``start``."""
        text = self.text
        quote = text[start]
        if text.startswith(quote * 3, start):
            i = start + 3
            while i < len(text):
                if quote == '"' and text[i] == "\\":
                    i += 2
                elif text.startswith(quote * 3, i):
                    i += 3
                    # Up to two quotes of the content may stand right before the closing three.
                    extra = 0
                    while extra < 2 and i < len(text) and text[i] == quote:
                        i += 1
                        extra += 1
                    return i
                else:
                    i += 1
            return len(text)
        i = start + 1
        while i < len(text) and text[i] != "\n":
            if quote == '"' and text[i] == "\\":
                i += 2
                continue
            if text[i] == quote:
                return i + 1
            i += 1
        return i
