#!/usr/bin/env bash
# Run once on a machine with network, in the repository root's checkout, before benchmarks/gpu_check.sh is sent to
# a lent GPU machine (which reaches no package registry). Writes, both git-ignored:
#   .whl/  Python 3.12 x86-64 wheels of the packages the machine's image lacks, at the versions of this .venv
#          (PyOpenGL 3.1.0, pinned by pyrender, exists only as a source archive: a wheel is built from it);
#   .gl/   the GL loader packages (libEGL, libOpenGL, ...; amd64) that EGL rendering on the NVIDIA driver needs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
mkdir -p .whl .gl
version() { $PY -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1"; }
platforms=""
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014 manylinux1; do
    platforms="$platforms --platform ${tag}_x86_64"
done
for package in diffusers trimesh pyrender pyglet freetype-py importlib_metadata; do
    $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $platforms \
        -d .whl "$package==$(version "$package")"
done
$PY -m pip wheel -q --no-deps -w .whl "PyOpenGL==$(version PyOpenGL)"
lists=/tmp/gpu_check_apt_lists
mkdir -p "$lists/partial"
apt_options="-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=$lists"
apt-get $apt_options update -qq
(cd .gl && apt-get $apt_options download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
du -sh .whl .gl
