"""Provenance of released things: only this package can make them, and anyone can check.

Every value that leaves a provider's scope is a `ReleasedTable` or a `StatisticsTable`, built
of `ReleasedValue`s and `Statistic`s. Their constructors demand a stamp that only this package
holds, and they cannot be subclassed, so code elsewhere cannot dress up its own numbers as
released ones; reports and renderers check `is_released` before showing anything. (Python
cannot stop code that deliberately reaches into private names; this stops accidents and
shortcuts, which is what leaks come from.)
"""

from __future__ import annotations

# Module-private: the one object the constructors accept as proof that this package made them.
_STAMP = object()

# The types that count as a released output (tables); registered by the modules defining them.
_OUTPUT_TYPES: list[type] = []


def require_stamp(stamp: object, what: str, made_by: str) -> None:
    """Refuse to construct `what` unless this package is the one constructing it."""
    if stamp is not _STAMP:
        raise TypeError(
            f"{what} can only be made by cldx.disclosure ({made_by}); "
            "a number leaves a provider's scope only through disclosure control"
        )


class Sealed:
    """Base of the released types: they cannot be subclassed (a subclass could skip the stamp)."""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        sealed = [base.__name__ for base in cls.__bases__ if base is not Sealed and issubclass(base, Sealed)]
        if sealed:
            raise TypeError(
                f"{', '.join(sealed)} cannot be subclassed: only cldx.disclosure makes released values"
            )


def released_output(cls: type) -> type:
    """Class decorator: instances of `cls` count as released outputs for `is_released`."""
    _OUTPUT_TYPES.append(cls)
    return cls


def is_released(obj: object) -> bool:
    """Is `obj` a table made by cldx.disclosure (a ReleasedTable or StatisticsTable)?"""
    return type(obj) in _OUTPUT_TYPES
