"""One way to let code register the things it provides: intake handlers, credential hooks,
credential providers. A registry keeps them by name in registration order; a lookup of a name
nobody registered is a LookupError naming the ones that are."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
X = TypeVar("X")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> T:
        """Register `item` as `name` (a later registration of the name replaces it)."""
        self._items[name] = item
        return item

    def register(self, name: str, make: Callable[[X], T]) -> Callable[[X], X]:
        """A decorator: registers `make(decorated)` as `name` and returns the decorated object
        unchanged."""

        def decorate(obj: X) -> X:
            self.add(name, make(obj))
            return obj

        return decorate

    def remove(self, name: str) -> None:
        self._items.pop(name, None)

    def find(self, name: str) -> T | None:
        return self._items.get(name)

    def get(self, name: str) -> T:
        found = self._items.get(name)
        if found is None:
            raise LookupError(f"no {self.kind} named {name!r} is registered "
                              f"(registered: {', '.join(self.names()) or 'none'})")
        return found

    def first(self, accepts: Callable[[T], bool]) -> T | None:
        """The first item, in registration order, that `accepts` takes."""
        return next((item for item in self._items.values() if accepts(item)), None)

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(list(self._items.items()))

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __len__(self) -> int:
        return len(self._items)
