"""The package imports lightly and exposes its public names."""

import subprocess
import sys


def test_allocation_importable_without_pandas_or_geopandas():
    code = (
        "import sys; import studentflow.allocation, studentflow.allocation.calibrate; "
        "heavy = {'pandas', 'geopandas', 'statsmodels'} & set(sys.modules); "
        "assert not heavy, f'allocation pulled in {heavy}'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_data_error_is_value_error():
    from studentflow import DataError

    assert issubclass(DataError, ValueError)


def test_every_public_name_resolves():
    import studentflow as sf

    missing = [n for n in sf.__all__ if getattr(sf, n, None) is None]
    assert not missing
    assert callable(sf.allocate) and callable(sf.load_bundle) and callable(sf.run_scenarios)
