"""Is the state file whole? Looked at before the key is tried, so a file that is empty, cut
short or overwritten is called damaged, never taken for a new state or for a wrong key.

An SQLCipher file is whole pages of random-looking bytes: no plain header, a
size that is a multiple of the page size. Leaf helpers of `Store`; no SQL.
"""

from __future__ import annotations

from pathlib import Path

from fbstampli.errors import StateDamagedError

PAGE_SIZE = 4096  # SQLCipher 4's default, which fbstampli never changes
PLAIN_SQLITE = b"SQLite format 3\x00"
# Encrypted bytes take nearly all 256 values in a page; zeros or text take few.
FEWEST_BYTE_VALUES = 128


def damage_of(path: Path) -> str | None:
    """Why `path` cannot be a whole fbstampli state, or None if it may be one."""
    try:
        size = path.stat().st_size
        with path.open("rb") as reader:
            first = reader.read(PAGE_SIZE)
    except OSError:
        return None  # unreadable: opening it says why (access, a failing disk)
    if size == 0:
        return "it is empty (0 bytes)"
    if size < PAGE_SIZE:
        return f"it is {size} bytes, shorter than one {PAGE_SIZE}-byte page: cut short"
    if size % PAGE_SIZE:
        return f"it is {size} bytes, not a whole number of {PAGE_SIZE}-byte pages: cut short"
    if first.startswith(PLAIN_SQLITE):
        return "it is a plain, unencrypted SQLite file, not an fbstampli state"
    if len(set(first)) < FEWEST_BYTE_VALUES:
        return "its first page is not encrypted data (zeros or text): it was overwritten"
    return None


def damaged(path: Path, why: str) -> StateDamagedError:
    """The one message for a damaged state: which file, why, and the way back."""
    return StateDamagedError(
        f"{path} is damaged: {why}; it was left unchanged and the key is not at fault: "
        "restore the last good backup with `fbstampli state restore FILE` "
        "(`fbstampli doctor` says more)"
    )


def key_fits_first_page(path: Path, key_hex: str) -> bool:
    """Whether the key decrypts the file's first page, tried on a copy of that page alone.

    A file the key cannot open may be the wrong key, or a state cut short at a
    page boundary or damaged further in: with the right key the lone page opens
    (or reads as malformed), with a wrong one it is "not a database".
    """
    import tempfile

    import sqlcipher3

    try:
        with path.open("rb") as reader:
            first = reader.read(PAGE_SIZE)
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=".first-page-") as folder:
            copy = Path(folder) / "page.db"
            copy.write_bytes(first)
            connection = sqlcipher3.connect(str(copy))
            try:
                connection.execute("PRAGMA cipher_log_level = NONE")
                connection.execute(f"PRAGMA key = \"x'{key_hex}'\"")
                connection.execute("PRAGMA user_version").fetchone()
            except sqlcipher3.DatabaseError as error:
                return "not a database" not in str(error)
            finally:
                connection.close()
    except OSError:
        return False  # cannot look: the key's message stands
    return True
