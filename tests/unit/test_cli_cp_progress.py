"""`cp`'s progress line and summary, as the docker CLI (v28) draws them."""
from __future__ import annotations

import io
import time

from app.cli.archive import FROM_HEADER, RESTORE, ERASE_LINE, SAVE, Counted, Progress, human_size


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_human_size_is_go_units_with_three_digits():
    assert [human_size(n) for n in (0, 512, 999, 1000, 2048, 10_500_000, 3 * 10**9)] == \
        ["0B", "512B", "999B", "1kB", "2.05kB", "10.5MB", "3GB"]


def test_progress_draws_on_a_terminal_and_erases_itself():
    out = Terminal()
    counted = Counted(io.BytesIO(b"x" * 5000))
    with Progress(out, FROM_HEADER, counted):
        counted.read(2048)
        time.sleep(0.2)                     # at least one redraw at 75 ms
        counted.read()
        time.sleep(0.2)
    text = out.getvalue()
    assert text.startswith(SAVE + "Preparing to copy...")
    assert FROM_HEADER + "0B" in text and "2.05kB" in text and "5kB" in text
    assert text.endswith(RESTORE + ERASE_LINE)
    assert counted.total == 5000


def test_no_progress_without_a_terminal():
    out = io.StringIO()
    with Progress(out, FROM_HEADER, Counted(io.BytesIO(b"abc"))) as p:
        p.counted.read()
    assert out.getvalue() == ""
