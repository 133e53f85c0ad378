"""The package imports lightly and exposes its public names."""

import subprocess
import sys


def test_allocation_importable_without_geopandas():
    code = (
        "import sys; import studentflow.allocation; "
        "assert 'geopandas' not in sys.modules, 'allocation pulled in geopandas'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_data_error_is_value_error():
    from studentflow import DataError

    assert issubclass(DataError, ValueError)
