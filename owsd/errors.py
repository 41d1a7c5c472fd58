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
