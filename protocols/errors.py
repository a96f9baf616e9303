"""The one family of errors a decoder may raise.

Ingest catches ``DecodeError`` (and only it), counts it by ``reason`` and moves on; any
other exception escaping a decoder is a bug and must surface.
"""

from __future__ import annotations


class DecodeError(ValueError):
    """A payload or frame that cannot be turned into records.

    ``reason`` is a short, stable, metric-friendly label (``bad_value``, ``lat_range``...);
    ``field`` names the member or field at fault when one is (``acc``, ``alt``...), so a
    refusal says which value was out of range without turning field names into labels;
    the message says what exactly was wrong, for the log and the dead-letter sample.
    """

    def __init__(self, reason: str, message: str | None = None, field: str | None = None) -> None:
        super().__init__(message or reason)
        self.reason = reason
        self.field = field

    def __reduce__(self):  # keep reason and field across pickling (hypothesis, multiprocessing)
        return (type(self), (self.reason, str(self), self.field))
