"""Process an uploaded file: its SHA-256, and a gzip-compressed copy written atomically.

    UPLOADS_DIR=/srv/uploads UPLOADS_OUTPUT_DIR=/srv/processed \\
    TASKFLOW_TASKS=examples.uploads.tasks:tasks taskflow dev

    taskflow submit uploads.process --wait --payload '{"path": "2026/invoice-17.pdf"}'

Your web application stores the upload under ``UPLOADS_DIR`` and submits its path; the task
answers with the checksum and writes ``UPLOADS_OUTPUT_DIR/<path>.gz``. Running it twice (a
retry, or a re-run after a worker died) does the same work again and writes the same bytes:
the artefact is replaced in one step (``atomic.py``), so nobody ever reads half of one.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import msgspec

from examples.uploads.atomic import atomic_write
from taskflow import Fail, Registry, TaskContext

tasks = Registry()

BLOCK = 1 << 20  # read 1 MiB at a time: any file size in constant memory


class Upload(msgspec.Struct, forbid_unknown_fields=True):
    path: str  # relative to UPLOADS_DIR


# concurrency=4: hashing and compressing use a core and the disk each, so at most four run at
# once across every worker, however many workers there are.
@tasks.task("uploads.process", max_retries=3, timeout_seconds=600, concurrency=4)
def process(payload: Upload, ctx: TaskContext) -> dict[str, object]:
    # A plain `def`: hashing and compressing block, so taskflow runs this in its thread pool.
    inbox = Path(os.environ.get("UPLOADS_DIR", "uploads")).resolve()
    outbox = Path(os.environ.get("UPLOADS_OUTPUT_DIR", inbox / "processed")).resolve()
    source = (inbox / payload.path).resolve()
    # The payload comes from outside: never let it name a file beyond the uploads.
    if not source.is_relative_to(inbox) or source.is_relative_to(outbox):
        raise Fail(f"{payload.path!r} is not an upload")
    if not source.is_file():
        raise Fail(f"no upload at {payload.path!r}")  # retrying will not make it appear
    artefact = outbox / source.relative_to(inbox).with_name(source.name + ".gz")

    digest = hashlib.sha256()
    size = 0
    # mtime=0 and no file name in the gzip header: every run writes the same bytes.
    with (
        source.open("rb") as original,
        atomic_write(artefact) as out,
        gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as compressed,
    ):
        while block := original.read(BLOCK):
            if ctx.cancelled:  # raising leaves the artefact as it was
                raise Fail("cancelled")
            digest.update(block)
            compressed.write(block)
            size += len(block)
    return {
        "sha256": digest.hexdigest(),
        "bytes": size,
        "artefact": str(artefact),
        "artefact_bytes": artefact.stat().st_size,
    }
