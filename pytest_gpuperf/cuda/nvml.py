"""SM clock and driver version through NVML (nvidia-ml-py), when it is there."""

from __future__ import annotations

from typing import Any


class SmClock:
    def __init__(self, nvml: Any, handle: Any, driver: str | None) -> None:
        self._nvml = nvml
        self._handle = handle
        self.driver = driver

    @classmethod
    def open(cls, torch_device: int) -> SmClock | None:
        """None where NVML cannot be loaded (no nvidia-ml-py, no driver library)."""
        try:
            import pynvml
        except ImportError:
            return None
        try:
            pynvml.nvmlInit()
            handle = _handle(pynvml, torch_device)
            driver = pynvml.nvmlSystemGetDriverVersion()
        except pynvml.NVMLError:
            return None
        return cls(pynvml, handle, driver.decode() if isinstance(driver, bytes) else str(driver))

    def current_mhz(self) -> float:
        return float(self._nvml.nvmlDeviceGetClockInfo(self._handle, self._nvml.NVML_CLOCK_SM))

    def max_mhz(self) -> float:
        return float(self._nvml.nvmlDeviceGetMaxClockInfo(self._handle, self._nvml.NVML_CLOCK_SM))


def _handle(pynvml: Any, torch_device: int) -> Any:
    # NVML numbers all GPUs; torch numbers the visible ones: match by PCI bus id.
    import torch

    props = torch.cuda.get_device_properties(torch_device)
    bus = getattr(props, "pci_bus_id", None)
    domain = getattr(props, "pci_domain_id", 0)
    device = getattr(props, "pci_device_id", 0)
    if bus is not None:
        try:
            return pynvml.nvmlDeviceGetHandleByPciBusId(f"{domain:08x}:{bus:02x}:{device:02x}.0".encode())
        except pynvml.NVMLError:
            pass
    return pynvml.nvmlDeviceGetHandleByIndex(torch_device)
