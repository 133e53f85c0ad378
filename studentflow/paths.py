"""Where the bundled sample lives, installed or in a source checkout."""

from __future__ import annotations

from pathlib import Path

from studentflow.errors import DataError


def sample_dir() -> Path:
    """Folder of the bundled synthetic sample (raw files, ``manifest.toml``, ``truth/``).

    Looks first for the installed copy (package ``studentflow.sample_data``, mapped from
    ``data/sample/`` by pyproject.toml), then for ``data/sample/`` in a source checkout.
    """
    installed = Path(__file__).resolve().parent / "sample_data"
    if (installed / "manifest.toml").exists():
        return installed
    checkout = Path(__file__).resolve().parents[1] / "data" / "sample"
    if (checkout / "manifest.toml").exists():
        return checkout
    raise DataError(
        "the bundled sample was not found (neither the installed studentflow.sample_data "
        f"nor {checkout}); regenerate it with `studentflow make-sample data/sample`"
    )


def sample_manifest() -> Path:
    """Path of the bundled sample's ``manifest.toml``."""
    return sample_dir() / "manifest.toml"
