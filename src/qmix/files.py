"""Writing files so that a reader, a kill or a second writer never sees or leaves half of one; and reading
the JSON-lines logs that a kill may have cut short."""

from __future__ import annotations

import contextlib
import functools
import gzip
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file. The temporary
    name is unique, so two processes writing the same file never touch each other's (the last rename wins)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, 0o666 & ~_umask())  # mkstemp makes 0600; a plain open() would honour the umask
        with os.fdopen(handle, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@functools.cache  # read once: setting it for a moment is not safe while other threads create files
def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


@dataclass
class JsonLines:
    """The readable lines of a JSON-lines file, each a JSON object: its text and its record; and how many
    lines were not (cut short by a kill or a writer still writing, damaged, or not UTF-8)."""

    lines: list[str] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    unreadable: int = 0


def parse_jsonl(text: str) -> JsonLines:
    parsed = JsonLines()
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            parsed.lines.append(line)
            parsed.records.append(record)
        elif line.strip():
            parsed.unreadable += 1
    return parsed


COMPRESSED_SUFFIX = ".gz"  # a kept copy of a log, gzip-compressed (a fifth of the text's size)


def compressed(path: Path) -> Path:
    """Where the compressed copy of the log at `path` lies (metrics.jsonl -> metrics.jsonl.gz)."""
    return path.with_name(path.name + COMPRESSED_SUFFIX)


def write_compressed(path: Path, text: str) -> None:
    """`text` gzip-compressed to compressed(path), the same bytes for the same text (no time in the header)."""
    write_atomic(compressed(path), gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0))


def read_jsonl(path: Path) -> JsonLines:
    """The one reader of the run folder's logs (metrics.jsonl, or where only that lies, its compressed kept
    copy); a missing file reads as empty."""
    path = Path(path)
    if path.is_file():
        return parse_jsonl(path.read_text(encoding="utf-8", errors="replace"))
    if compressed(path).is_file():
        return parse_jsonl(gzip.decompress(compressed(path).read_bytes()).decode("utf-8", errors="replace"))
    return JsonLines()
