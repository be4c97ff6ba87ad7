#!/usr/bin/env bash
# The project on one CUDA GPU, in one call of at most 8 minutes (sized for one H200 with 16 cores): the test suite
# with the GPU visible (failure names captured), both benchmarks at full size, and the demo end to end with no
# variable set by hand. Logs go to $OUT when set (the lent machine's result folder), else outputs/gpu_check.
#
# The machine's image has PyTorch, accelerate, timm, transformers, pytest-xdist, ... but not every package the
# project needs, and no EGL loader: run benchmarks/gpu_check_prepare.sh once on a machine with network first; it
# puts the missing wheels in .whl/ and the GL loader packages in .gl/ (both git-ignored), which travel with the
# call (`carry: [".whl", ".gl"]`) and are installed here into the image's own Python. See README "GPUs".
# On the lent H200: run(command="bash benchmarks/gpu_check.sh", carry=[".whl", ".gl"], timeout_s=540).
set -u
cd "$(dirname "$0")/.."
LOG=${OUT:-outputs/gpu_check}
DEMO=${GPU_CHECK_DEMO:-/tmp/gpu_check_demo}
PY=${PYTHON:-python3}
mkdir -p "$LOG"
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1
deadline=$((SECONDS + 465))  # every step's timeout is cut so that the whole script ends within 8 minutes
budget() { local left=$((deadline - SECONDS)); echo $(( left < $1 ? (left > 5 ? left : 5) : $1 )); }

# 1. GL loaders (EGL on the NVIDIA driver) and the missing wheels, into the image's own Python.
if compgen -G ".gl/*.deb" >/dev/null; then for deb in .gl/*.deb; do dpkg -x "$deb" /; done; ldconfig; fi
nvidia_egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json  # the driver's mount, where glvnd does not look
if [ -z "${__EGL_VENDOR_LIBRARY_FILENAMES:-}" ] && [ -e "$nvidia_egl" ] \
   && [ ! -e /usr/share/glvnd/egl_vendor.d/10_nvidia.json ]; then
    export __EGL_VENDOR_LIBRARY_FILENAMES=$nvidia_egl
fi
if compgen -G ".whl/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir .whl/*.whl || echo "wheel install failed"
fi
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  $PY -c "import pyrender, diffusers; print('pyrender', pyrender.__version__, 'diffusers', diffusers.__version__)"
} >"$LOG/env.txt" 2>&1

# 2. The training step alone on the machine (its timings), at full size: B=64, 128 px, ResNet-50.
timeout "$(budget 90)" $PY -m benchmarks.bench_train_step --full --repeats 3 --json "$LOG/train_step.json" \
    >"$LOG/bench_train_step.log" 2>&1 || echo "exit $?" >>"$LOG/bench_train_step.log"

# 3. The suite (6 workers) beside the demo (10 render / loader workers): both use the GPU, 16 cores shared; both
#    end 45 s before the deadline, leaving that to step 4.
together=$((deadline - 45 - SECONDS))
timeout "$together" $PY -m pytest -o addopts="" -v -rfE -n 6 --timeout 240 -p no:cacheprovider >"$LOG/suite.log" 2>&1 &
suite=$!
timeout "$together" $PY demo.py --out "$DEMO" --workers 10 >"$LOG/demo.log" 2>&1 || echo "exit $?" >>"$LOG/demo.log"
wait "$suite"; status=$?
[ "$status" = 124 ] && echo "suite stopped at the time limit" >>"$LOG/suite.log"
# failure names, one each (the reasons are in suite.log), also when the time limit cut the run before its summary
grep -E "(FAILED|ERROR) tests/" "$LOG/suite.log" | sed -E 's/^\[gw[0-9]+\] \[ *[0-9]+%\] //; s/ - .*$//' \
    | sort -u >"$LOG/failures.txt"

# 4. The loader on the demo's data at 128 px: samples/s per worker against the measured step rate.
rate=$($PY -c "import json, sys; r = json.load(open(sys.argv[1]))['results']; print(round(r[-1]['samples_per_s']))" \
       "$LOG/train_step.json" 2>/dev/null || echo 300)
if [ -f "$DEMO/data/dex_ycb_s0_train_data.json" ]; then
    timeout "$(budget 45)" $PY -m benchmarks.bench_loader --data "$DEMO/data" --mano_root "$DEMO/mano" \
        --workers 1 4 12 --batch_size 64 --samples 512 --step_rate "$rate" >"$LOG/bench_loader.log" 2>&1 \
        || echo "exit $?" >>"$LOG/bench_loader.log"
else
    echo "no demo data: the demo did not get as far as writing it" >"$LOG/bench_loader.log"
fi
echo "gpu_check: $((SECONDS)) s; $(wc -l <"$LOG/failures.txt") failing tests; logs in $LOG"
tail -n 3 "$LOG/suite.log"; tail -n 6 "$LOG/demo.log"; cat "$LOG/bench_train_step.log" "$LOG/bench_loader.log"
