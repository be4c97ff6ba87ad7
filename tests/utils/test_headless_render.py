"""utils.render.use_headless_gl: every process renders headless (EGL, pyglet without X) with nothing set by hand."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Imports the renderer module the way an entry point does, then renders a unit cube centred 3 m ahead.
RENDER_IN_A_FRESH_PROCESS = """
import json, os, sys
import trimesh
import utils.render as render
before = {"pyrender": "pyrender" in sys.modules, "platform": os.environ.get("PYOPENGL_PLATFORM")}
cube = trimesh.creation.box()
with render.MeshRenderer(32, 32) as renderer:
    rgb, depth = renderer.render([render.MeshSpec(cube.vertices + [0.0, 0.0, 3.0], cube.faces)],
                                 render.look_at_intrinsics(32, 32, focal=30.0))
import pyglet
print(json.dumps({"before": before, "platform": os.environ.get("PYOPENGL_PLATFORM"),
                  "headless": pyglet.options["headless"], "headless_window": "pyglet.window.headless" in sys.modules,
                  "x11_window": "pyglet.window.xlib" in sys.modules, "hit": int((depth > 0).sum()),
                  "depth_min": float(depth[depth > 0].min())}))
"""


def test_renders_headless_without_display_or_variables():
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "PYOPENGL_PLATFORM", "PYGLET_HEADLESS")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-c", RENDER_IN_A_FRESH_PROCESS], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    # importing the module changed nothing; the renderer chose the mode before pyrender's first import
    assert report["before"] == {"pyrender": False, "platform": None}
    assert report["platform"] == "egl" and report["headless"] is True
    assert report["headless_window"] and not report["x11_window"]
    # the unit cube's front face (1 m wide, at 2.5 m) covers f * 1 / 2.5 = 12 x 12 px
    assert 11 * 11 <= report["hit"] <= 13 * 13
    assert report["depth_min"] == pytest.approx(2.5, abs=1e-3)


def test_user_choices_are_kept(monkeypatch):
    import pyglet

    from utils.render import use_headless_gl

    monkeypatch.delitem(sys.modules, "pyrender", raising=False)
    monkeypatch.setitem(pyglet.options.__dict__, "headless", False)
    monkeypatch.setenv("PYOPENGL_PLATFORM", "osmesa")
    monkeypatch.setenv("PYGLET_HEADLESS", "0")
    use_headless_gl()
    assert os.environ["PYOPENGL_PLATFORM"] == "osmesa" and pyglet.options["headless"] is False
    monkeypatch.delenv("PYGLET_HEADLESS")
    use_headless_gl()
    assert os.environ["PYOPENGL_PLATFORM"] == "osmesa" and pyglet.options["headless"] is True
