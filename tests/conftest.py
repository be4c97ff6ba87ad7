"""Shared pytest fixtures. Fixtures are generated on the fly into temporary folders; no test reaches the network.

Fixture modules owned by individual parts of the project are listed in ``pytest_plugins``.
"""
import pytest

pytest_plugins = ["fixtures_models", "fixtures_mano", "fixtures_data", "fixtures_deocclusion", "fixtures_mesh_assets"]


@pytest.fixture(scope="session")
def standin_mano_root(tmp_path_factory):
    """Folder holding a stand-in ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` in the official file format."""
    from data_creation.standin_mano.make_standin_mano import write_standin_mano

    root = tmp_path_factory.mktemp("mano")
    write_standin_mano(root, seed=0)
    return root
