"""A bill's document (issue 26), both ways: fetched from FreshBooks and delivered to Stampli.

Fetch: bytes per second through the client's streamed download against a plain `requests`
download of the same bytes in the same run, and the peak Python memory while a 50 MB
document is fetched. Deliver: bytes per second through the transport's streamed `.part`
upload, size check and rename (`write_part_file` + `rename_part`) against a plain paramiko
`put` of the same file over the same SFTP session (the in-process SFTP server on 127.0.0.1),
and the peak Python memory while a 50 MB document is delivered.

Both downloads hit the same FreshBooks sandbox on 127.0.0.1 with the same token and chunk
size; the plain one writes the body to a file and nothing else, so the ratio is what the
client adds (magic bytes, SHA-256, size limit, 0600 file). Memory is `tracemalloc`'s peak
during the 50 MB download (the sandbox's copy of the file is allocated before tracing
starts): flat means streamed, never read whole. Prints figures, asserts nothing.
ZIP layout (`documents = "zip"`): bytes per second of a document built into a ZIP beside a
bills file (in a private temporary file, as `sync.zips.upload_zip` does) and delivered
through `.part` + rename, against a plain paramiko `put` of the document alone, and the
peak Python memory for a 50 MB document (over the default 8 MB ZIP, to show it is flat).
Run: python bench/bench_documents.py [--runs N] [--only fetch|deliver|zip]
"""

import argparse
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fbstampli.atomic import create_exclusive  # noqa: E402
from fbstampli.config import FreshBooksSettings  # noqa: E402
from fbstampli.freshbooks.client import FreshBooksClient  # noqa: E402
from fbstampli.freshbooks.client.uploads import CHUNK  # noqa: E402
from fbstampli.freshbooks.oauth import (  # noqa: E402
    TokenManager,
    authorize_url,
    exchange_code,
    parse_redirect,
)
from fbstampli.models.token import Token  # noqa: E402
from fbstampli.sandbox.documents import make_pdf  # noqa: E402
from fbstampli.sandbox.freshbooks import FreshBooksSandbox  # noqa: E402
from fbstampli.sandbox.sftp_server import SftpServer  # noqa: E402
from fbstampli.sftp.transport import SftpTransport  # noqa: E402
from fbstampli.store.documents import DocumentFile, DocumentState  # noqa: E402
from fbstampli.sync.zips import build_zip  # noqa: E402

MB = 1024 * 1024
SIZES = (1 * MB, 10 * MB, 50 * MB)
ZIP_SIZES = (1 * MB, 7 * MB + MB // 2, 50 * MB)  # 7.5 MB: the largest in an 8 MB ZIP
REDIRECT = "https://localhost:8765/callback"


class Tokens:
    def __init__(self, token: Token) -> None:
        self.token: Token | None = token

    def load(self) -> Token | None:
        return self.token

    def save(self, token: Token) -> None:
        self.token = token


def login(fb: FreshBooksSandbox, session: requests.Session) -> tuple[FreshBooksSettings, Token]:
    settings = FreshBooksSettings(
        api_url=fb.url,
        auth_url=fb.url,
        client_id=fb.client_id,
        client_secret=fb.client_secret,
        redirect_uri=REDIRECT,
        timeout_seconds=30,
    )
    answer = session.get(authorize_url(settings, "s"), allow_redirects=False, timeout=5)
    code = parse_redirect(answer.headers["Location"], state="s")
    return settings, exchange_code(session, settings, code)


def plain(session: requests.Session, url: str, access: str, dest: Path) -> None:
    with session.get(url, headers={"Authorization": f"Bearer {access}"}, stream=True) as got:
        got.raise_for_status()
        with dest.open("wb") as out:
            for chunk in got.iter_content(CHUNK):
                out.write(chunk)


def timed(action, runs: int) -> float:  # type: ignore[no-untyped-def]
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def deliver(runs: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "sftp"
        (root / "inbound").mkdir(parents=True)
        local = Path(folder) / "document.pdf"
        with SftpServer(root) as server:
            transport = SftpTransport.connect(server.target(), timeout=30)
            sftp = transport._sftp
            print(f"\n{'size':>6}  {'ours MB/s':>9}  {'paramiko MB/s':>13}  {'ratio':>5}")
            count = 0
            for size in SIZES:
                local.write_bytes(make_pdf("bench", size))

                def ours() -> None:
                    nonlocal count
                    count += 1
                    transport.write_part_file("inbound", f"doc{count}.pdf", local)
                    transport.rename_part("inbound", f"doc{count}.pdf")

                def plain_put() -> None:
                    nonlocal count
                    count += 1
                    sftp.put(str(local), f"inbound/plain{count}.pdf")

                ours_s, plain_s = timed(ours, runs), timed(plain_put, runs)
                print(
                    f"{size // MB:>4}MB  {size / MB / ours_s:>9.0f}  {size / MB / plain_s:>13.0f}"
                    f"  {plain_s / ours_s:>5.0%}"
                )
                for path in (root / "inbound").iterdir():
                    path.unlink()
            tracemalloc.start()
            ours()
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(f"peak Python memory while delivering a 50 MB document: {peak / MB:.1f} MB")
            transport.close()


def zipped(runs: int) -> None:
    """The ZIP layout: a bills file and one document built into a ZIP in a private temporary
    file (`sync.zips.build_zip`, as `upload_zip` does) then sent `.part` -> rename, against a
    plain paramiko `put` of the document alone: document bytes per second, both ways."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "sftp"
        (root / "inbound").mkdir(parents=True)
        local = Path(folder) / "fbstampli_document_x.pdf"
        bills = b"FreshBooks Bill ID,Document File\r\n" + b"1,fbstampli_document_x.pdf\r\n" * 50
        with SftpServer(root) as server:
            transport = SftpTransport.connect(server.target(), timeout=30)
            sftp = transport._sftp
            print(
                f"\nzip layout\n{'size':>6}  {'zip MB/s':>8}  {'paramiko MB/s':>13}  {'ratio':>5}"
            )
            count = 0
            for size in ZIP_SIZES:
                local.write_bytes(make_pdf("bench", size))
                document = DocumentFile("x", local.name, size, str(local), DocumentState.FETCHED)

                def ours() -> None:
                    nonlocal count
                    count += 1
                    built = Path(folder) / f".zip-{count}.part"
                    with create_exclusive(built) as out:
                        build_zip(out, f"bills{count}.csv", bills, [document])
                    transport.write_part_file("inbound", f"bills{count}.zip", built)
                    transport.rename_part("inbound", f"bills{count}.zip")
                    built.unlink()

                def plain_put() -> None:
                    nonlocal count
                    count += 1
                    sftp.put(str(local), f"inbound/plain{count}.pdf")

                ours_s, plain_s = timed(ours, runs), timed(plain_put, runs)
                print(
                    f"{size / MB:>5.1f}M  {size / MB / ours_s:>8.0f}  {size / MB / plain_s:>13.0f}"
                    f"  {plain_s / ours_s:>5.0%}"
                )
                for path in (root / "inbound").iterdir():
                    path.unlink()
            tracemalloc.start()
            ours()
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(
                f"peak Python memory while zipping and delivering a 50 MB document: {peak / MB:.1f} MB"
            )
            transport.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", choices=("fetch", "deliver", "zip"), default=None)
    arguments = parser.parse_args()
    runs, only = arguments.runs, arguments.only
    if only in (None, "fetch"):
        fetch(runs)
    if only in (None, "deliver"):
        deliver(runs)
    if only in (None, "zip"):
        zipped(runs)


def fetch(runs: int) -> None:
    with FreshBooksSandbox() as fb, tempfile.TemporaryDirectory() as folder:
        fb.seed(vendors=1, bills=1, payments=0)
        session = requests.Session()
        settings, token = login(fb, session)
        manager = TokenManager(
            settings, Tokens(token), session=session, now=lambda: datetime.now(UTC)
        )
        client = FreshBooksClient(settings, manager, "ABC123", session=session)
        bill_id = min(fb.data.bills)
        print(f"fetch\n{'size':>6}  {'client MB/s':>11}  {'plain MB/s':>10}  {'ratio':>5}")
        for size in SIZES:
            jwt = fb.attach_document(bill_id, make_pdf("bench", size), "application/pdf")
            target = Path(folder) / "doc"

            def ours() -> None:
                target.unlink(missing_ok=True)
                outcome = client.download_document(jwt, target, max_bytes=100 * MB)
                assert outcome.document is not None

            def baseline() -> None:
                plain(session, f"{fb.url}/uploads/attachments/{jwt}", token.access_token, target)

            ours_s, plain_s = timed(ours, runs), timed(baseline, runs)
            print(
                f"{size // MB:>4}MB  {size / MB / ours_s:>11.0f}  {size / MB / plain_s:>10.0f}"
                f"  {plain_s / ours_s:>5.0%}"
            )
        target.unlink(missing_ok=True)
        tracemalloc.start()
        ours()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"peak Python memory while fetching a 50 MB document: {peak / MB:.1f} MB")
        client.close()


if __name__ == "__main__":
    main()
