"""Small helpers for what users hand in and what the plugin prints: numbers from markers,
fixture arguments and baseline files; counts; untrusted names."""

from __future__ import annotations

import math
import re

# C0 and C1 control characters (ESC starts terminal escape codes), DEL; tab and newline are not in it.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def finite(value: object) -> float | None:
    """``value`` as a float if it is a real, finite number (not a bool, not NaN or inf, not an
    int too large for a float, such as 10**400), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def count(n: int, singular: str, plural: str | None = None) -> str:
    """``count(1, "entry", "entries")`` -> ``1 entry``; ``count(3, "call")`` -> ``3 calls``."""
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


def printable(text: str) -> str:
    """``text`` with control characters shown as escapes: a kernel or test name printed
    raw could carry terminal escape codes (colours, cursor moves, a cleared screen)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def brief(value: object, limit: int = 60) -> str:
    """A value's repr, cut to ``limit`` characters: a message never prints a whole document."""
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


WRITE_FAILED = "could not be written"  # a file the end of a run failed to write (the run then fails)
