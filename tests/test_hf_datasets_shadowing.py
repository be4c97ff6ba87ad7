"""The project's ``datasets`` package never stands in for Hugging Face's ``datasets`` inside diffusers / transformers.

Run from the repository root, the root is first on ``sys.path``, so ``import datasets`` finds this project's package
(and transformers' ``is_datasets_available()`` answers True although Hugging Face's package is not installed). That
is harmless only as long as the diffusers / transformers code the de-occluder uses never imports ``datasets``
(docs/architecture.md); these tests pin that down in a fresh interpreter started in the repository root.
"""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Import what the de-occluder and its test fixture use, then report which ``datasets`` (if any) got imported.
PROBE = """
import json, sys
import diffusers, transformers
from diffusers import (AutoencoderKL, ControlNetModel, DDIMScheduler, StableDiffusionControlNetInpaintPipeline,
                       StableDiffusionInpaintPipeline, UNet2DConditionModel)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
import data_creation.deocclusion.pipeline, data_creation.fixtures.tiny_deoccluder
module = sys.modules.get("datasets")
print(json.dumps({"path0": sys.path[0], "datasets": getattr(module, "__file__", None) if module else None}))
"""


def _probe(code: str) -> dict:
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_diffusers_and_transformers_do_not_import_datasets_from_the_repository_root():
    report = _probe(PROBE)
    assert report["path0"] == ""  # the repository root (cwd) comes first, so shadowing would be possible
    assert report["datasets"] is None


def test_the_probe_would_see_the_project_package_if_it_were_imported():
    report = _probe(PROBE.replace("module = ", "import datasets\nmodule = "))
    assert Path(report["datasets"]).resolve() == REPO / "datasets" / "__init__.py"
