"""A Go channel for asyncio: capacity 0 is a rendezvous (the sender waits for a receiver), N is a buffer.

The claim listener hands events to the /reinit handler through one: V1's is unbuffered, V2's has one
slot (PROTOCOL.md §3), and P1's sender drops instead of blocking when the slot is full.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class GoChannel(Generic[T]):
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._buffer: deque[T] = deque()
        self._getters: deque[asyncio.Future[T]] = deque()
        self._putters: deque[tuple[T, asyncio.Future[None]]] = deque()

    def _hand_to_getter(self, item: T) -> bool:
        while self._getters:
            getter = self._getters.popleft()
            if not getter.done():
                getter.set_result(item)
                return True
        return False

    def try_put(self, item: T) -> bool:
        """``select { case ch <- item: default: }`` — False when it would block."""
        if self._hand_to_getter(item):
            return True
        if len(self._buffer) < self.capacity:
            self._buffer.append(item)
            return True
        return False

    async def put(self, item: T) -> None:
        """``ch <- item``: returns once a receiver took it or it sits in the buffer."""
        if self.try_put(item):
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (item, done)
        self._putters.append(entry)
        try:
            await done
        except asyncio.CancelledError:
            if entry in self._putters:
                self._putters.remove(entry)
            raise

    async def get(self) -> T:
        """``<-ch``"""
        if self._buffer:
            item = self._buffer.popleft()
            self._admit_putter()
            return item
        while self._putters:
            item, done = self._putters.popleft()
            if not done.done():
                done.set_result(None)
                return item
        getter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._getters.append(getter)
        try:
            return await getter
        except asyncio.CancelledError:
            if getter.done() and not getter.cancelled():  # an item arrived as we were cancelled: keep it
                self._buffer.appendleft(getter.result())
            elif getter in self._getters:
                self._getters.remove(getter)
            raise

    def _admit_putter(self) -> None:
        while self._putters and len(self._buffer) < self.capacity:
            item, done = self._putters.popleft()
            if not done.done():
                self._buffer.append(item)
                done.set_result(None)
