"""fastsock's own exceptions, raised by the compiled modules and the facade
alike; users name them as ``fastsock.X`` or ``fastsock.errors.X``."""

# Their home for users (repr, pickling) is fastsock.errors, which exports
# them: this module only lets the compiled core raise them without
# importing the facade.
_MODULE = "fastsock.errors"


class Error(Exception):
    """Base class of fastsock's protocol errors."""

    __module__ = _MODULE


class IncompleteReadError(Error, EOFError):
    """EOF came before the expected bytes: ``partial`` holds what arrived."""

    __module__ = _MODULE

    def __init__(self, partial: bytes, expected: int) -> None:
        super().__init__(
            f"{len(partial)} bytes read on a total of {expected} expected bytes")
        self.partial = partial
        self.expected = expected

    def __reduce__(self):
        return type(self), (self.partial, self.expected)


class LimitOverrunError(Error, ValueError):
    """No separator within the limit; ``consumed`` bytes are buffered and unread."""

    __module__ = _MODULE

    def __init__(self, message: str, consumed: int) -> None:
        super().__init__(message)
        self.consumed = consumed

    def __reduce__(self):
        return type(self), (self.args[0], self.consumed)


class FrameTooLargeError(Error, ValueError):
    """A frame's length is above ``max_frame``."""

    __module__ = _MODULE


__all__ = ["Error", "IncompleteReadError", "LimitOverrunError", "FrameTooLargeError"]
