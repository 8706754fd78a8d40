"""examples/uploads/atomic.py: a reader sees the old file or the whole new one, never a part."""

from __future__ import annotations

import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from examples.uploads.atomic import atomic_write

ROOT = Path(__file__).resolve().parents[2]

# Writes part of a new file under atomic_write, says so, and waits to be killed.
HALF_WRITER = """
import sys, time
from pathlib import Path
from examples.uploads.atomic import atomic_write

with atomic_write(Path(sys.argv[1])) as out:
    out.write(b"new" * 1_000_000)
    out.flush()
    print("written", flush=True)
    time.sleep(600)
"""


def test_the_new_file_replaces_the_old_one_whole(tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.csv"
    with atomic_write(target, "w", newline="") as out:
        out.write("a,b\r\n")
    with atomic_write(target, "w", newline="") as out:
        out.write("c,d\r\n")
    assert target.read_bytes() == b"c,d\r\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert list(target.parent.iterdir()) == [target]


def test_an_error_mid_write_leaves_the_old_file_and_no_temporary_one(tmp_path: Path) -> None:
    target = tmp_path / "artefact.gz"
    target.write_bytes(b"old")

    def write_then_fail() -> None:
        with atomic_write(target) as out:
            out.write(b"new" * 1000)
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        write_then_fail()
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]


def test_a_writer_killed_mid_write_leaves_the_old_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "artefact.gz"
    target.write_bytes(b"old")
    writer = subprocess.Popen(
        [sys.executable, "-c", HALF_WRITER, str(target)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline() == "written\n"  # 3 MB are in the file system
        writer.send_signal(signal.SIGKILL)
        assert writer.wait(30) == -signal.SIGKILL
    finally:
        writer.kill()
        writer.wait(30)
        if writer.stdout is not None:
            writer.stdout.close()
    assert target.read_bytes() == b"old"
    [leftover] = [p for p in tmp_path.iterdir() if p != target]
    assert leftover.name.startswith(".artefact.gz.")
    assert leftover.name.endswith(".part")
    assert leftover.stat().st_size == 3_000_000
