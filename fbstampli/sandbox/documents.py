"""The sandbox's uploads: bill documents FreshBooks would serve at `/uploads/attachments/<jwt>`.

Generated, realistic files: a one-page PDF invoice naming the bill (padded with a
compressed-looking stream to the size asked), a JPEG with a JFIF header (a phone photo of
a receipt), and, to be refused, a GIF and an HTML page. Test-only.
"""

from __future__ import annotations

import random
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

# Sizes a real account holds: scans of a page or two, a phone photo, a long statement.
SIZES = (18_000, 95_000, 240_000, 1_200_000, 3_500_000)


def make_pdf(title: str, size: int, seed: int = 0) -> bytes:
    """A one-page PDF of about `size` bytes whose text says `title`."""
    text = title.replace("\\", "").replace("(", "").replace(")", "")
    content = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode("latin-1", "replace")
    head = (
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
        b"1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
        b"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
        b"3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >> endobj\n"
        + f"4 0 obj << /Length {len(content)} >> stream\n".encode()
        + content
        + b"\nendstream endobj\n"
        b"5 0 obj << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> endobj\n"
    )
    tail = b"trailer << /Root 1 0 R >>\n%%EOF\n"
    padding = max(0, size - len(head) - len(tail) - 60)
    blob = random.Random(seed).randbytes(padding)  # noqa: S311 - filler, not a secret
    image = f"6 0 obj << /Length {padding} /Filter /FlateDecode >> stream\n".encode()
    return head + image + blob + b"\nendstream endobj\n" + tail


def make_jpeg(size: int, seed: int = 0) -> bytes:
    """A JPEG-signed file of `size` bytes: SOI, a JFIF APP0 segment, scan data, EOI."""
    app0 = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    body = random.Random(seed).randbytes(max(0, size - 2 - len(app0) - 4))  # noqa: S311
    return b"\xff\xd8" + app0 + b"\xff\xda" + body.replace(b"\xff", b"\xfe") + b"\xff\xd9"


def make_gif(size: int = 4_000) -> bytes:
    """A type Stampli's capture does not take."""
    return b"GIF89a" + bytes(max(0, size - 6))


@dataclass
class Upload:
    content: bytes
    media_type: str


@dataclass
class Uploads:
    """The uploaded files of the sandbox, by JWT; `refuse` plays a login without the scope,
    `state_length=False` a server that sends files chunked, their size unsaid."""

    files: dict[str, Upload] = field(default_factory=dict)
    refuse: bool = False
    state_length: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)
    _next_id: int = 1

    def add(self, content: bytes, media_type: str) -> dict[str, object]:
        """Store a file; the bill's `attachment` object that names it."""
        jwt = ".".join(secrets.token_urlsafe(24) for _ in range(3))
        with self.lock:
            upload_id = self._next_id
            self._next_id += 1
            self.files[jwt] = Upload(content, media_type)
        return {"id": upload_id, "jwt": jwt, "media_type": media_type, "expenseid": None}

    def get(self, jwt: str) -> Upload | None:
        with self.lock:
            return self.files.get(jwt)


class Attaching(Protocol):
    def attach_document(self, bill_id: int, content: bytes, media_type: str) -> str: ...


def attach_seeded(
    sandbox: Attaching, bills: Mapping[int, Mapping[str, Any]], *, max_bytes: int, seed: int
) -> dict[int, str]:
    """`FreshBooksSandbox.seed_documents`: realistic documents on the first live bills."""
    makers: list[tuple[str, str, Callable[[], bytes]]] = []
    for index, size in enumerate(SIZES):
        if index % 2 == 0:
            makers.append((f"pdf {size}", "application/pdf", _pdf(f"Invoice {index}", size, seed)))
        else:
            makers.append((f"jpeg {size}", "image/jpeg", _jpeg(size, seed + index)))
    makers.append(("pdf over the limit", "application/pdf", _pdf("Too big", max_bytes + 1, seed)))
    makers.append(("gif", "image/gif", make_gif))
    live = sorted(bill_id for bill_id, bill in bills.items() if bill.get("vis_state", 0) != 1)
    given: dict[int, str] = {}
    for bill_id, (what, media_type, make) in zip(live, makers, strict=False):
        sandbox.attach_document(bill_id, make(), media_type)
        given[bill_id] = what
    return given


def _pdf(title: str, size: int, seed: int) -> Callable[[], bytes]:
    return lambda: make_pdf(title, size, seed)


def _jpeg(size: int, seed: int) -> Callable[[], bytes]:
    return lambda: make_jpeg(size, seed)
