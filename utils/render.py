"""Small offscreen mesh renderer (pyrender): vertices + faces + pinhole intrinsics -> RGB, depth, labels.

Frames and units: vertices are in the OpenCV camera frame (x right, y down, z forwards), in metres;
``K`` is the 3x3 pixel intrinsics matrix. Depth is the camera-frame z in metres (0 where nothing is hit).

Rendering is headless everywhere (servers without X libraries or a display included): the first
:class:`MeshRenderer` of a process calls :func:`use_headless_gl`, which picks EGL (the GPU's driver, or Mesa
llvmpipe on a CPU) and pyglet's headless mode before pyrender is imported, so no entry point needs a variable
set by hand. Importing this module changes no environment and creates no GL state: the GL context is created by
:class:`MeshRenderer` and released by ``close()`` (or a ``with`` block).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

import numpy as np

# pyrender's camera looks down -z with y up (OpenGL); this camera pose maps it onto OpenCV's axes.
_OPENCV_CAMERA_POSE = np.diag([1.0, -1.0, -1.0, 1.0])


@dataclass
class MeshSpec:
    """One mesh to draw: verts (V, 3) metres, OpenCV camera frame; faces (F, 3); RGB colour in [0, 1]."""
    verts: np.ndarray
    faces: np.ndarray
    color: tuple = (0.80, 0.62, 0.52)
    smooth: bool = True
    metadata: dict = field(default_factory=dict)


class MeshRenderer:
    """Offscreen renderer of a fixed image size.

    Args:
        width, height: image size in pixels.
        background: RGB in [0, 1].
        znear, zfar: clipping range in metres.
    """

    def __init__(self, width: int, height: int, background=(1.0, 1.0, 1.0), znear: float = 0.01,
                 zfar: float = 10.0):
        use_headless_gl()
        import pyrender  # imported here, after use_headless_gl(): OpenGL reads its platform once, at import

        _load_triton_before_gl()
        self._pyrender = pyrender
        self.width, self.height = int(width), int(height)
        self.background = tuple(float(c) for c in background)
        self.znear, self.zfar = znear, zfar
        self._renderer = pyrender.OffscreenRenderer(self.width, self.height)

    def render(self, meshes, K: np.ndarray, with_labels: bool = False):
        """Render meshes seen by a pinhole camera at the origin (OpenCV frame).

        Args:
            meshes: sequence of :class:`MeshSpec`.
            K: (3, 3) intrinsics in pixels of this renderer's image size.
            with_labels: also return a (H, W) uint8 image with 0 = background, i + 1 = ``meshes[i]``; the
                depth then comes from the same label pass, so ``depth > 0`` equals ``labels > 0``.
        Returns:
            rgb (H, W, 3) uint8, depth (H, W) float32 metres, and labels if requested.
        """
        pyrender = self._pyrender
        K = np.array(K, dtype=np.float64, copy=True)
        if K.shape != (3, 3):
            raise ValueError(f"K must be a 3x3 intrinsics matrix, got shape {K.shape}")
        scene = pyrender.Scene(bg_color=(*self.background, 1.0), ambient_light=(0.35, 0.35, 0.35))
        nodes = [scene.add(self._to_pyrender(spec)) for spec in meshes]
        camera = pyrender.IntrinsicsCamera(fx=K[0, 0], fy=K[1, 1], cx=K[0, 2], cy=K[1, 2],
                                           znear=self.znear, zfar=self.zfar)
        scene.add(camera, pose=_OPENCV_CAMERA_POSE.copy())
        scene.add(pyrender.DirectionalLight(color=np.ones(3), intensity=3.0), pose=_OPENCV_CAMERA_POSE.copy())
        rgb, depth = self._renderer.render(scene)
        rgb, depth = np.array(rgb[..., :3], dtype=np.uint8), np.array(depth, dtype=np.float32)
        if not with_labels:
            return rgb, depth
        # pyrender's SEG pass culls back faces whatever the material says, so an open mesh seen through its cut
        # (MANO's wrist) or a mirrored one (MANO's left hand: inward winding) would lose or misplace pixels; the
        # label scene draws every face in both windings instead.
        label_scene = pyrender.Scene()
        label_nodes = [label_scene.add(self._to_pyrender(spec, both_windings=True)) for spec in meshes]
        label_scene.add(camera, pose=_OPENCV_CAMERA_POSE.copy())
        colors = {node: np.full(3, i + 1, dtype=np.uint8) for i, node in enumerate(label_nodes)}
        labels, depth = self._renderer.render(label_scene, flags=pyrender.RenderFlags.SEG, seg_node_map=colors)
        return rgb, np.array(depth, dtype=np.float32), np.array(labels[..., 0], dtype=np.uint8)

    def _to_pyrender(self, spec: MeshSpec, both_windings: bool = False):
        import trimesh  # heavy: loaded with the renderer, not by modules that merely import utils.render

        verts = np.array(spec.verts, dtype=np.float64, copy=True)
        faces = np.array(spec.faces, dtype=np.int64, copy=True)
        if verts.ndim != 2 or verts.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
            raise ValueError(f"mesh needs verts (V, 3) and faces (F, 3), got {verts.shape} and {faces.shape}")
        if both_windings:
            faces = np.concatenate([faces, faces[:, ::-1]])
        mesh = trimesh.Trimesh(verts, faces, process=False)
        material = self._pyrender.MetallicRoughnessMaterial(
            baseColorFactor=(*spec.color, 1.0), metallicFactor=0.0, roughnessFactor=0.8, doubleSided=True)
        return self._pyrender.Mesh.from_trimesh(mesh, material=material, smooth=spec.smooth and not both_windings)

    def close(self) -> None:
        """Release this renderer's GL resources and context.

        pyrender's own ``OffscreenRenderer.delete`` also calls ``eglTerminate`` on the EGL display, which every
        renderer of the process shares, and so breaks any other renderer still open; here only this renderer's
        context is destroyed and the display stays initialised.
        """
        renderer, self._renderer = self._renderer, None
        if renderer is None:
            return
        platform = renderer._platform
        platform.make_current()
        renderer._renderer.delete()
        renderer._renderer = renderer._platform = None  # its __del__ would call delete() -> eglTerminate
        context = getattr(platform, "_egl_context", None)
        if context is None:  # not EGL (e.g. OSMesa): pyrender's release is safe there
            platform.delete_context()
            return
        # OpenGL after the entry point chose PYOPENGL_PLATFORM (see __init__)
        from OpenGL.EGL import EGL_NO_CONTEXT, EGL_NO_SURFACE, eglDestroyContext, eglMakeCurrent

        eglMakeCurrent(platform._egl_display, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT)
        eglDestroyContext(platform._egl_display, context)
        platform._egl_context = platform._egl_display = None  # its __del__ would terminate the shared display

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: GL may already be gone
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def use_headless_gl() -> None:
    """Choose headless OpenGL for this process before pyrender (and with it OpenGL and pyglet) is imported.

    ``PYOPENGL_PLATFORM`` defaults to ``egl`` (a value the user set, e.g. ``osmesa``, is kept), and pyglet, which
    pyrender imports for its viewer, runs headless unless ``PYGLET_HEADLESS`` says otherwise: its X11 window
    module would otherwise load libXrender / libX11 and fail on servers that have none. Once pyrender has been
    imported both choices are fixed, so this does nothing then. Called by :class:`MeshRenderer`; render worker
    processes construct their own renderer and so make the same choice.
    """
    if "pyrender" in sys.modules:
        return
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    if "PYGLET_HEADLESS" not in os.environ:
        import pyglet

        pyglet.options["headless"] = True


def _load_triton_before_gl() -> None:
    """Load triton (shipped with torch, imported later by torchvision) before the first GL context.

    triton and Mesa's llvmpipe each bring their own LLVM; loading triton's library after llvmpipe has created a
    context crashes the process (segmentation fault on ``import torchvision``). Loaded first, both coexist.
    """
    try:
        import triton  # noqa: F401
    except ImportError:
        pass


def look_at_intrinsics(width: int, height: int, focal: float) -> np.ndarray:
    """(3, 3) intrinsics with focal length ``focal`` px and the principal point at the image centre."""
    return np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])
