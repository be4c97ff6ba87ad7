"""Session fixture: the MobRecon / H2ONet mesh-hierarchy cache of a test session lives in a temporary folder
(``UNIHOPE_CACHE_DIR``), never in the user's ~/.cache, for every test that builds those models."""
import pytest


@pytest.fixture(scope="session", autouse=True)
def mesh_asset_cache_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mesh_asset_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("UNIHOPE_CACHE_DIR", str(folder))
        yield folder
