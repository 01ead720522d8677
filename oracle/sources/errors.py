"""The one error type of the price sources."""

from __future__ import annotations


class SourceError(ValueError):
    """A source as a whole cannot be read: the file or response is not what the parser
    expects (not JSON, wrong top-level keys, missing CSV columns, HTTP errors after the
    retries). A single bad row never raises this; it is skipped and counted instead.
    The message names the file or URL, what is wrong and what to do about it."""
