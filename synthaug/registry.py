"""One registry per plugin kind (datasets, classifiers, generators, filters, feature extractors)."""

from __future__ import annotations

from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> factory map. `register` refuses duplicates; `create` builds by name.

    A name may be a family prefix (e.g. ``timm:`` or ``folder:``) registered with ``prefix=True``:
    ``create("timm:resnet50")`` calls the ``timm:`` factory with ``spec="resnet50"``.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}
        self._prefixes: set[str] = set()
        self._help: dict[str, str] = {}

    def register(self, name: str, *, prefix: bool = False, help: str = "") -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            key = f"{name}:" if prefix else name
            if key in self._factories:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            self._factories[key] = factory
            if prefix:
                self._prefixes.add(key)
            doc = (factory.__doc__ or "").strip().splitlines()
            self._help[key] = help or (doc[0] if doc else "")
            return factory

        return decorator

    def resolve(self, name: str) -> tuple[Callable[..., T], dict[str, Any]]:
        if name in self._factories and name not in self._prefixes:
            return self._factories[name], {}
        head, sep, spec = name.partition(":")
        if sep and f"{head}:" in self._prefixes:
            if not spec:
                raise ValueError(f"{self.kind} {name!r} needs a value after ':', e.g. {head}:<name>")
            return self._factories[f"{head}:"], {"spec": spec}
        raise KeyError(f"unknown {self.kind} {name!r}; available: {', '.join(self.available())}")

    def create(self, name: str, **cfg: Any) -> T:
        factory, extra = self.resolve(name)
        return factory(**extra, **cfg)

    def available(self) -> list[str]:
        return sorted(self._factories)

    def describe(self, name: str) -> str:
        return self._help.get(name, "")

    def __contains__(self, name: str) -> bool:
        try:
            self.resolve(name)
        except (KeyError, ValueError):
            return False
        return True
