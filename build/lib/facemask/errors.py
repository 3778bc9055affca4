"""The one exception type users see: a message, never a traceback."""

from collections.abc import Iterator
from contextlib import contextmanager


class FacemaskError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class DatasetError(FacemaskError):
    """A dataset folder that does not have the expected layout."""


@contextmanager
def exit_on_user_error() -> Iterator[None]:
    """Turn a FacemaskError, also one wrapped by Hydra's instantiate, into ``error: ...`` and exit 1."""
    try:
        yield
    except Exception as err:
        cause: BaseException | None = err
        while cause is not None and not isinstance(cause, FacemaskError):
            cause = cause.__cause__
        if cause is None:
            raise
        raise SystemExit(f"error: {cause}") from None
