"""Tolerant readers for the small text files of /proc and /sys/fs/cgroup.

Every reader returns None (or an empty mapping) when the file or the key is missing, unreadable or
malformed: a kernel without a controller, a container without a limit and a newer kernel with a
changed format must all degrade to "this value is absent", never to an exception at scrape time.
A refused read is the one failure worth telling apart: the collector reports it as a reason.
"""

from __future__ import annotations

import os

__all__ = ["FileAccess", "join"]

_CHUNK = 65536


class FileAccess:
    """Reads files, remembering whether any read was refused (``denied``)."""

    __slots__ = ("denied",)

    def __init__(self) -> None:
        self.denied = False

    def text(self, path: str) -> str | None:
        """The file's content, or None when it is absent or unreadable."""
        try:
            # Unbuffered binary reads: cheaper than a text wrapper for these small files. procfs
            # and cgroupfs fill the buffer while there is more, so a short read is the end.
            with open(path, "rb", buffering=0) as handle:
                data = chunk = handle.read(_CHUNK)
                while len(chunk) == _CHUNK:
                    chunk = handle.read(_CHUNK)
                    data += chunk
                return data.decode("ascii", "replace")
        except PermissionError:
            self.denied = True
            return None
        except OSError:
            return None

    def first_int(self, path: str) -> int | None:
        """The file's first whitespace-separated integer (``memory.current``, ``cpuacct.usage``)."""
        text = self.text(path)
        first = text.split(None, 1)[0] if text and text.strip() else ""
        return int(first) if first.lstrip("-").isdigit() else None

    def keyed(self, path: str) -> dict[str, int]:
        """A ``key value`` per line file (``cpu.stat``, ``memory.events``) as integers by key."""
        values: dict[str, int] = {}
        for line in (self.text(path) or "").splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[1].lstrip("-").isdigit():
                values[parts[0]] = int(parts[1])
        return values


def join(root: str, relative: str) -> str:
    """``root`` joined with a cgroup path that starts with '/' (os.path.join would drop root)."""
    return os.path.normpath(root + "/" + relative.lstrip("/"))
