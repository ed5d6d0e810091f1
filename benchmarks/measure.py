"""What the benchmark measures per stage: wall time, time the models keep the device busy, and
peak memory (GPU memory on CUDA, the process's peak resident memory on the CPU)."""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path
from typing import Any


def sync(cuda: bool) -> None:
    if cuda:
        import torch

        torch.cuda.synchronize()


class Timer:
    """Wall time of a block, synchronising CUDA so GPU work is counted."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.s = 0.0

    def __enter__(self) -> Timer:
        sync(self.cuda)
        self._t = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        sync(self.cuda)
        self.s = time.perf_counter() - self._t


class Busy:
    """Time spent inside the forward passes of ``modules`` (top-level modules that never call
    each other). On CUDA: GPU time between events recorded on the stream at each entry and
    exit, so time the GPU waits for the host is not counted inside a call but gaps between
    calls are not busy; on the CPU: wall time inside the calls."""

    def __init__(self, modules: list[Any], cuda: bool) -> None:
        self.cuda = cuda
        self._pairs: list[list[Any]] = []
        self._handles = []
        for module in modules:
            self._handles.append(module.register_forward_pre_hook(self._enter))
            self._handles.append(module.register_forward_hook(self._exit))

    def _stamp(self) -> Any:
        if self.cuda:
            import torch

            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def _enter(self, *_: Any) -> None:
        self._pairs.append([self._stamp(), None])

    def _exit(self, *_: Any) -> None:
        self._pairs[-1][1] = self._stamp()

    def reset(self) -> None:
        self._pairs.clear()

    def seconds(self) -> float:
        sync(self.cuda)
        done = [(a, b) for a, b in self._pairs if b is not None]
        if self.cuda:
            return sum(a.elapsed_time(b) for a, b in done) / 1e3
        return sum(b - a for a, b in done)

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


def peak_rss_kib() -> int:
    """This process's peak resident memory so far. On Linux ``VmHWM``: unlike ``ru_maxrss`` it does
    not carry the parent's peak over a fork and exec, so a benchmark's child reports its own."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # macOS reports bytes, others KiB
        return peak // 1024 if sys.platform == "darwin" else peak
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))


def peak_rss_gib() -> float:
    return round(peak_rss_kib() / 2**20, 3)


class Memory:
    """Peak memory per stage in GiB: GPU memory allocated on CUDA (reset per stage); on the CPU
    the process's peak resident memory when the stage ends (it never resets)."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.peaks: dict[str, float] = {}

    @property
    def kind(self) -> str:
        return "gpu_allocated" if self.cuda else "cpu_peak_rss"

    def start(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()

    def stop(self, stage: str) -> float:
        if self.cuda:
            import torch

            value = round(torch.cuda.max_memory_allocated() / 2**30, 3)
        else:
            value = peak_rss_gib()
        self.peaks[stage] = max(value, self.peaks.get(stage, 0.0))
        return value
