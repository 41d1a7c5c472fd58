"""Errors a user can act on: each names the file, setting or server at fault.

The CLI turns any `OWSDError` into one line on stderr and a non-zero exit, so raising one of these
(instead of a bare ValueError deep in a stack trace) is how a module reports bad input.
"""


class OWSDError(Exception):
    """Base class for every error caused by input, configuration or an outside service."""


class ConfigError(OWSDError):
    """A setting is missing, unknown or inconsistent with the data."""


class KeyFileError(OWSDError):
    """A key file is missing, of the wrong size, or readable by others."""


class DataError(OWSDError):
    """An image or dataset cannot be read, or holds fewer images than asked for."""


class CloudResponseError(OWSDError):
    """The cloud answered with something that is not a batch of probability vectors."""


class KeyBudgetError(OWSDError):
    """Sending would take a key beyond its budget of exposed images, or the key is retired."""


class CloudUnavailableError(OWSDError):
    """A remote cloud did not answer, or kept failing, after every retry."""


def first_line(error: BaseException) -> str:
    """An error's first line (its type where it says nothing), for a one-line message naming a cause."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def user_error(error: BaseException) -> OWSDError | None:
    """The `OWSDError` behind `error`, if any: libraries (jsonargparse, Lightning) wrap the errors our classes
    raise while they build them, and the user should see ours, not the wrapper's traceback."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OWSDError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None
