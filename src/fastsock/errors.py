"""fastsock's own exceptions; OS failures raise the stdlib's OSError subclasses.

The classes live in fastsock._errors, which the compiled modules import
without this facade."""
from fastsock._errors import Error, FrameTooLargeError, IncompleteReadError, LimitOverrunError

__all__ = ["Error", "IncompleteReadError", "LimitOverrunError", "FrameTooLargeError"]
