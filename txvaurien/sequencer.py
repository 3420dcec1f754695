"""
Keeping messages in order at the end of a Pipe.

Under request scope each request (and its response) goes through its own
chain of faults, so a request delayed by one fault must not be overtaken by
the next request, and a response made up by a fault (an error reply) must
take the place of the response the backend would have sent.  A
L{Sequencer} holds a slot per expected message, in the order the protocol
requires, writes the head slot's frames as they come and buffers the
others' until their turn.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

from txvaurien.frames import Frame


class _Slot:
    __slots__ = ("key", "held", "started", "complete")

    def __init__(self, key: Any) -> None:
        self.key = key
        self.held: list[tuple[Frame, bool]] = []
        self.started = False
        self.complete = False


class Sequencer:
    """
    Writes frames in slot order.

    @ivar buffered: bytes held for slots that are not at the head.
    """

    def __init__(
        self,
        write: Callable[[Frame], None],
        overLimit: Callable[[bool], None],
        limit: int = 1024 * 1024,
        idleChanged: Callable[[bool], None] | None = None,
    ) -> None:
        """
        @param write: called with each frame to write, in order.
        @param overLimit: called with C{True} when more than C{limit} bytes
            are held, and with C{False} when they fall back under it.
        @param idleChanged: called with C{False} when the sequencer stops
            being L{idle} and with C{True} when it is again.
        """
        self._write = write
        self._idleChanged = idleChanged
        self._overLimit = overLimit
        self._limit = limit
        self._slots: deque[_Slot] = deque()
        self._byKey: dict[Any, _Slot] = {}
        self._waiting: list[Frame] = []
        self.buffered = 0
        self._over = False

    @property
    def idle(self) -> bool:
        """
        No slot is open and nothing is held.
        """
        return not self._slots and not self._waiting

    def open(self, key: Any) -> None:
        """
        Reserve the next place in the output for the message C{key}.
        """
        slot = _Slot(key)
        notify = self._idleChanged is not None and not self._slots and not self._waiting
        self._slots.append(slot)
        self._byKey[key] = slot
        if notify:
            self._idleChanged(False)  # type: ignore[misc]

    def deliver(self, key: Any, frame: Frame, write: bool) -> None:
        """
        A frame reached the end of the Pipe.

        @param key: the slot it belongs to, or L{None} for a frame that
            belongs to no slot (a push, a greeting): it is written at the
            next message boundary.
        @param write: C{False} for a frame a fault dropped: it only counts
            towards completing its slot.
        """
        slot = self._byKey.get(key) if key is not None else None
        if slot is None:
            if write:
                head = self._slots[0] if self._slots else None
                if head is not None and head.started:
                    self._waiting.append(frame)
                    self._hold(len(frame.data))
                else:
                    self._write(frame)
            return
        if slot is self._slots[0]:
            slot.started = True
            if write:
                self._write(frame)
            if frame.last:
                self._advance()
        else:
            slot.held.append((frame, write))
            self._hold(len(frame.data))
            if frame.last:
                slot.complete = True

    def _hold(self, size: int) -> None:
        self.buffered += size
        if not self._over and self.buffered > self._limit:
            self._over = True
            self._overLimit(True)

    def _release(self, size: int) -> None:
        self.buffered -= size
        if self._over and self.buffered <= self._limit:
            self._over = False
            self._overLimit(False)

    def _advance(self) -> None:
        """
        The head slot is complete: retire it, write what waited for the
        boundary, then what the following slots hold.
        """
        while True:
            head = self._slots.popleft()
            del self._byKey[head.key]
            waiting, self._waiting = self._waiting, []
            for frame in waiting:
                self._release(len(frame.data))
                self._write(frame)
            if not self._slots:
                if self._idleChanged is not None:
                    self._idleChanged(True)
                return
            head = self._slots[0]
            held, head.held = head.held, []
            for frame, write in held:
                self._release(len(frame.data))
                head.started = True
                if write:
                    self._write(frame)
            if not head.complete:
                return

    def discardAll(self) -> None:
        """
        Forget every slot and held frame (the connection is closing).
        """
        wasIdle = self.idle
        self._slots.clear()
        self._byKey.clear()
        self._waiting = []
        self.buffered = 0
        if not wasIdle and self._idleChanged is not None:
            self._idleChanged(True)
