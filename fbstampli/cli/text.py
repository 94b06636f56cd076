"""Text that came from outside (FreshBooks, Stampli, the SFTP server, a file), made safe to
print: one cleaner for every printer, so a bill number cannot rewrite the screen or forge a line.
"""

import re
from typing import Any

# C0 and C1 controls, DEL, and the Unicode ones that reorder or split lines (bidi overrides,
# isolates, line/paragraph separators): none belongs in a line of ours, all can mislead.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def clean(value: Any) -> str:
    """`value` as text fit for a terminal: every control character shown as `\\xNN`/`\\uNNNN`."""
    text = "" if value is None else str(value)
    return _CONTROLS.sub(lambda m: ascii(m.group())[1:-1], text)


def shown(value: object) -> str:
    """One piece of outside data inside a line of ours (`clean` under the name the status view
    reads best with)."""
    return clean(value)
