# Types of the native scanner (_scan.c); see native.py.
from collections.abc import Callable

from pytest_gpuperf.analysis.trace import Trace

class Declined(Exception): ...

class Scanner:
    device_properties: bytes | None
    distributed_info: bytes | None
    step_names: set[str]
    flop_candidates: list[tuple[str, bytes | None, bytes | None, bytes | None, bytes | None]]
    def __init__(
        self,
        trace: Trace,
        scale: float,
        device_op: type,
        api_call: type,
        kinds: tuple[str, str, str],
        api_kind: Callable[[str], int],
        flop_names: frozenset[str],
    ) -> None: ...
    def feed(self, buffer: bytes | bytearray | memoryview, /) -> int: ...
    def finish(self) -> None: ...
