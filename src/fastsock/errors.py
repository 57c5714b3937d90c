"""fastsock's own exceptions; OS failures raise the stdlib's OSError subclasses."""


class Error(Exception):
    """Base class of fastsock's protocol errors."""


class IncompleteReadError(Error, EOFError):
    """EOF came before the expected bytes: ``partial`` holds what arrived."""

    def __init__(self, partial: bytes, expected: int) -> None:
        super().__init__(
            f"{len(partial)} bytes read on a total of {expected} expected bytes")
        self.partial = partial
        self.expected = expected

    def __reduce__(self):
        return type(self), (self.partial, self.expected)


class LimitOverrunError(Error, ValueError):
    """No separator within the limit; ``consumed`` bytes are buffered and unread."""

    def __init__(self, message: str, consumed: int) -> None:
        super().__init__(message)
        self.consumed = consumed

    def __reduce__(self):
        return type(self), (self.args[0], self.consumed)


class FrameTooLargeError(Error, ValueError):
    """A frame's length is above ``max_frame``."""


__all__ = ["Error", "IncompleteReadError", "LimitOverrunError", "FrameTooLargeError"]
