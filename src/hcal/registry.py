"""One registry mechanism for every plug-in family.

Methods, backbones, datasets and loss weightings are all registered the same way::

    BACKBONES = Registry("backbone")

    @BACKBONES.register("small-cnn", description="...", reference="...")
    def small_cnn(...): ...

    BACKBONES.create("small-cnn", ...)   # build one by name
    BACKBONES.names()                    # list them

An unknown name raises :class:`~hcal.errors.ConfigError` listing the valid names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypeVar

from .errors import ConfigError

__all__ = ["Registry", "Entry"]

T = TypeVar("T", bound=Callable[..., Any])


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered plug-in: its name, the callable that builds it and what to tell users."""

    name: str
    obj: T
    description: str
    reference: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """A named collection of factories of one plug-in family."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._entries: dict[str, Entry[T]] = {}

    def register(
        self, name: str, *, description: str, reference: str | None = None, **extra: Any
    ) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``; ``extra`` is free metadata."""
        if not name or name != name.strip():
            raise ValueError(f"{self.family} name {name!r} must be non-empty without spaces around it")

        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.family} {name!r} is already registered")
            self._entries[name] = Entry(name, obj, description, reference, dict(extra))
            return obj

        return decorator

    def get(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.family} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self.get(name).obj(*args, **kwargs)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
