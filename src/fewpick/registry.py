"""A named table that code outside a module can add to: the pickers (:mod:`fewpick.pickers.registry`) and the
picks file formats (:mod:`fewpick.io.picks.formats`) are each one."""

from __future__ import annotations

from typing import Callable, Generic, Hashable, Iterable, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries by name, in the order they were registered. ``keys(entry)`` gives what no two entries may share
    (the name and, e.g., a file suffix); ``built_in`` entries are registered at once and cannot be removed."""

    def __init__(self, what: str, name: Callable[[T], str], keys: Callable[[T], Iterable[Hashable]],
                 built_in: Iterable[T] = ()):
        self.what, self._name, self._keys = what, name, keys
        self._entries: dict[str, T] = {}
        for entry in built_in:
            self.register(entry)
        self._built_in = frozenset(self._entries)

    def register(self, entry: T) -> T:
        """Add ``entry``; one whose name or keys another entry has already is refused (ValueError)."""
        taken = {k for e in self._entries.values() for k in self._keys(e)}
        clash = taken & set(self._keys(entry))
        if self._name(entry) in self._entries or clash:
            raise ValueError(f"{self.what} {self._name(entry)!r}: {sorted(map(str, clash)) or 'its name'} "
                             "already registered")
        self._entries[self._name(entry)] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Forget a registered entry (the built-in ones stay: ValueError)."""
        if name in self._built_in:
            raise ValueError(f"{name!r} is a built-in {self.what}")
        self._entries.pop(name, None)

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def entries(self) -> list[T]:
        return list(self._entries.values())
