"""A bill's document: the vendor's invoice FreshBooks keeps as the bill's `attachment`.

What a document is, told by its first bytes; the name it is sent under, made of its
content's hash and that type, never of anything a server says; and why a bill may go
without one. Pure: no network, no files.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

DEFAULT_MAX_BYTES = 25 * 1024 * 1024
SNIFF_BYTES = 8  # the longest signature below (PNG)


class Media(StrEnum):
    """The document types Stampli's capture reads; the value is the file extension."""

    PDF = "pdf"
    PNG = "png"
    JPEG = "jpg"
    TIFF = "tif"


_SIGNATURES: tuple[tuple[bytes, Media], ...] = (
    (b"%PDF-", Media.PDF),
    (b"\x89PNG\r\n\x1a\n", Media.PNG),
    (b"\xff\xd8\xff", Media.JPEG),
    (b"II*\x00", Media.TIFF),
    (b"MM\x00*", Media.TIFF),
)


def sniff(head: bytes) -> Media | None:
    """The type the first bytes show, or None for anything else (a name or a stated
    content type is never believed: a `.pdf` that is HTML is refused)."""
    for signature, media in _SIGNATURES:
        if head.startswith(signature):
            return media
    return None


class DocumentProblem(StrEnum):
    """Why a bill goes to Stampli without its document (the bill itself still goes)."""

    MISSING = "missing"
    TOO_LARGE = "too_large"
    REFUSED_TYPE = "refused_type"
    SCOPE_MISSING = "scope_missing"
    DOWNLOAD_FAILED = "download_failed"


REASONS: dict[DocumentProblem, str] = {
    DocumentProblem.MISSING: "FreshBooks no longer has the document the bill names",
    DocumentProblem.TOO_LARGE: "the document is larger than the size limit",
    DocumentProblem.REFUSED_TYPE: "the document is not a PDF, PNG, JPEG or TIFF",
    DocumentProblem.SCOPE_MISSING: "the FreshBooks login may not read uploaded documents",
    DocumentProblem.DOWNLOAD_FAILED: "the download kept failing",
}


@dataclass(frozen=True, slots=True)
class Document:
    """A document as downloaded: its bytes' SHA-256, size and type."""

    sha256: str
    size: int
    media: Media

    @property
    def file_name(self) -> str:
        """The name it is sent under: the same bytes always get the same name."""
        return f"fbstampli_document_{self.sha256}.{self.media.value}"


@dataclass(frozen=True, slots=True)
class DocumentOutcome:
    """What fetching one bill's document came to: a `document`, or a `problem`."""

    jwt: str
    document: Document | None = None
    problem: DocumentProblem | None = None
    detail: str = ""

    @property
    def status(self) -> str:
        """The bill's document status column: `ok`, or the problem's name."""
        return "ok" if self.problem is None else self.problem.value
