"""One training run at a time per device, across every browser session of the process;
the others wait in a visible first-come, first-served queue. The run-time estimate takes a
device through the same queue, but only when it is free (:meth:`DeviceQueue.try_acquire`)."""
from __future__ import annotations

import threading
from collections import deque


class DeviceQueue:
    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._waiting: dict[str, deque] = {}
        self._busy: dict[str, object] = {}

    def position(self, device: str, run: object) -> int:
        """0 while ``run`` trains, n ≥ 1 while n − 1 runs are ahead of it, -1 if absent."""
        with self._lock:
            if self._busy.get(device) is run:
                return 0
            waiting = self._waiting.get(device, deque())
            return waiting.index(run) + 1 if run in waiting else -1

    def acquire(self, device: str, run: object, cancelled: threading.Event) -> bool:
        """Wait for the device; False if ``cancelled`` is set while waiting."""
        with self._lock:
            waiting = self._waiting.setdefault(device, deque())
            waiting.append(run)
            while self._busy.get(device) is not None or waiting[0] is not run:
                if cancelled.is_set():
                    waiting.remove(run)
                    self._lock.notify_all()
                    return False
                self._lock.wait(timeout=0.1)
            waiting.popleft()
            self._busy[device] = run
            return True

    def try_acquire(self, device: str, owner: object) -> bool:
        """Take the device only if nothing trains on it and nothing waits for it (the run-time
        estimate: timing steps beside a run would slow the run and time the wrong thing)."""
        with self._lock:
            if self._busy.get(device) is not None or self._waiting.get(device):
                return False
            self._busy[device] = owner
            return True

    def waiting(self, device: str | None = None) -> int:
        """How many runs wait (for ``device``, or for any device)."""
        with self._lock:
            queues = [self._waiting.get(device, ())] if device else self._waiting.values()
            return sum(len(q) for q in queues)

    def busy(self, device: str) -> bool:
        with self._lock:
            return self._busy.get(device) is not None

    def release(self, device: str, run: object) -> None:
        with self._lock:
            if self._busy.get(device) is run:
                del self._busy[device]
            self._lock.notify_all()


DEVICES = DeviceQueue()
