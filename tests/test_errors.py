"""fastsock's own exceptions: where they sit among the stdlib's, what they
carry, that they pickle, and that users reach the same classes by every
documented name (fastsock.X, fastsock.errors.X) as the compiled core
raises."""
import copy
import pickle

import pytest

import fastsock
import fastsock._errors
import fastsock.errors
from fastsock import (Error, FrameTooLargeError, IncompleteReadError,
                      LimitOverrunError)

NAMES = ["Error", "IncompleteReadError", "LimitOverrunError",
         "FrameTooLargeError"]


@pytest.mark.parametrize("name", NAMES)
def test_one_class_by_every_name(name):
    cls = getattr(fastsock, name)
    assert getattr(fastsock.errors, name) is cls
    assert getattr(fastsock._errors, name) is cls
    # Shown (and pickled) under the module users import.
    assert cls.__module__ == "fastsock.errors"
    assert name in fastsock.errors.__all__ and name in fastsock.__all__


def test_hierarchy():
    assert issubclass(Error, Exception) and not issubclass(Error, OSError)
    assert IncompleteReadError.__mro__[1:3] == (Error, EOFError)
    assert LimitOverrunError.__mro__[1:3] == (Error, ValueError)
    assert FrameTooLargeError.__mro__[1:3] == (Error, ValueError)


def test_incomplete_read_carries_partial_and_expected():
    e = IncompleteReadError(b"abc", 10)
    assert (e.partial, e.expected) == (b"abc", 10)
    assert str(e) == "3 bytes read on a total of 10 expected bytes"
    # readuntil() at EOF has no expected length.
    assert IncompleteReadError(b"", None).expected is None


def test_limit_overrun_carries_consumed():
    e = LimitOverrunError("too long", 7)
    assert (str(e), e.consumed) == ("too long", 7)


@pytest.mark.parametrize("exc", [
    Error("broken"),
    IncompleteReadError(b"part", 9),
    LimitOverrunError("no separator", 65537),
    FrameTooLargeError("frame of 99 bytes"),
])
def test_pickle_and_copy_keep_type_and_fields(exc):
    for twin in (pickle.loads(pickle.dumps(exc)), copy.copy(exc)):
        assert type(twin) is type(exc)
        assert twin.args == exc.args
        assert vars(twin) == vars(exc)


def test_the_stream_raises_the_same_classes():
    a, b = fastsock.socketpair()
    with a, b:
        b.settimeout(5)
        a.write(b"xy")
        a.write_eof()
        with pytest.raises(fastsock.errors.IncompleteReadError) as info:
            b.readexactly(5)
        assert (info.value.partial, info.value.expected) == (b"xy", 5)
    a, b = fastsock.socketpair(max_frame=4)
    with a, b:
        with pytest.raises(fastsock.errors.FrameTooLargeError):
            a.send_frame(b"12345")
