"""Errors studentflow raises for bad input."""

from __future__ import annotations


class DataError(ValueError):
    """Bad input data: the message names the file and, where it applies, row and column.

    Messages never contain learner reference numbers (LRNs) or learner names.
    """
