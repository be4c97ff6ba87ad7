"""Experiment configuration: ``experiment/<name>/cfg.json`` -> a validated, frozen, attribute-access object.

The file has the official sections ``base, data, model, loss, metric, train, test, summary, optimizer,
scheduler``. Every official ``cfg.json`` loads unchanged. Defaults are the official code defaults
(reference: docs/official-data.md §7) and live only here. An unknown key is an error naming the file, the
section and the key, with the nearest known key suggested. Free-form sub-dictionaries (``loss.weight``,
``model.cls_model`` / ``h_model`` / ``ho_model``, the SimpleHand ``BACKBONE`` / ``*_HEAD`` blocks) are kept as
plain dicts.

Project extensions (keys the official code does not have or ignored):
    base.mano_root      folder with MANO_RIGHT.pkl / MANO_LEFT.pkl (None -> env ``MANO_ROOT``)
    base.seed           global seed for python / numpy / torch (official: none)
    data.root_dir       honoured (the official loaders ignored it and used ./data/<Dataset>)
    model.backbone_weights  local weight file of the backbone (torchvision ImageNet ResNet, MobRecon's
                        densestack.pth, a timm file for SimpleHand), or None for random init
    model.backbone      FPN trunk of UniHOPE / HFL-Net / HandOccNet / Semi-Hand: resnet50 (official), resnet34
                        or resnet18 (CPU-sized runs)
    model.roi_res       side of the ROI feature maps of HFL-Net / UniHOPE (official 32; smaller is cheaper)
    test.channels_last, test.fuse_batchnorm, test.compile
                        evaluation speed options (default off = official fp32 NCHW eager; outputs equal to 1e-5):
                        see utils.runtime.inference_model (test.compile: torch.compile, minutes for the first batch)
    train.mixed_precision  autocast in training: no (official), bf16, fp16, or auto (bf16 where the GPU / CPU
                        has native bf16 instructions, else no)
    train.channels_last train the convolutions with channels-last (NHWC) weights and images (faster on GPUs)
    train.tf32          fp32 matrix products in TF32 on CUDA (faster, ~1e-3 relative rounding; official: off)
    train.compile       torch.compile the model's forward for training

Official keys accepted without an effect here are listed, with what the official code did with them, in
``utils/config_effects.py``; the entry points warn about every one a config sets.

Usage::

    cfg = load_config("experiment/unihope.dexycb_s0/cfg.json", overrides=["train.batch_size=8"])
    cfg.train.batch_size  # 8
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Optional

from utils.atomic import atomic_write_json, atomic_write_text
from utils.errors import InputError


class ConfigError(InputError, ValueError):
    """A configuration file or override is invalid; the message names the file and the key."""


@dataclass(frozen=True)
class BaseSection:
    exp_name: str = ""
    model_dir: str = ""
    mano_root: Optional[str] = None
    seed: int = 0


@dataclass(frozen=True)
class DataSection:
    name: str = "DEX_YCB_HOPE"
    root_dir: Optional[str] = None
    data_split: str = "s0"
    input_img_shape: list = field(default_factory=lambda: [128, 128])
    input_img_shape_1: Optional[list] = None
    input_img_shape_cls: Optional[list] = None
    input_img_shape_h: Optional[list] = None
    input_img_shape_ho: Optional[list] = None
    transforms_type: Optional[str] = None  # official key, never read (kept so official files load)
    eval_type: list = field(default_factory=lambda: ["test"])
    use_data_aug_h: bool = True
    use_data_aug_ho: bool = True
    use_data_aug_h_gen: bool = False
    pair_same_data_aug: bool = False
    contrastive: bool = False
    filter_rule: str = "score"
    score_threshold: float = 0.0
    occ_threshold: float = 0.8
    load_nori: bool = False
    bbox_hand_normalize_2d_joint: bool = True
    gen_version: int = 1
    gen_part: int = 1
    input_mode: Optional[str] = None
    occ_intervals: list = field(default_factory=lambda: [0, 0.25, 0.5, 0.75, 1])
    prefetch_factor: int = 2


@dataclass(frozen=True)
class ModelSection:
    name: str = ""
    pretrain: bool = False
    obj_conf_layer_legacy: bool = True
    backbone_weights: Optional[str] = None
    backbone: str = "resnet50"
    roi_res: int = 32
    cls_model: Optional[dict] = None
    h_model: Optional[dict] = None
    ho_model: Optional[dict] = None
    BACKBONE: Optional[dict] = None
    UV_HEAD: Optional[dict] = None
    DEPTH_HEAD: Optional[dict] = None
    MESH_HEAD: Optional[dict] = None
    LOSSES: Optional[dict] = None


@dataclass(frozen=True)
class LossSection:
    name: str = ""
    weight: dict = field(default_factory=dict)
    loss_func: str = "l1_loss"
    # Official HandOccNet keys: they only weighted that model's validation-metric entries (utils/config_effects.py)
    lambda_mano_verts: Optional[float] = None
    lambda_mano_joints: Optional[float] = None
    lambda_mano_pose: Optional[float] = None
    lambda_mano_shape: Optional[float] = None
    lambda_joints_img: Optional[float] = None


@dataclass(frozen=True)
class MetricSection:
    major_metric: str = "score"
    obj_eval_mode: str = "gt"
    rep_threshold: float = 5.0
    add_threshold: float = 0.1


@dataclass(frozen=True)
class TrainSection:
    num_epochs: int = 1
    batch_size: int = 1
    num_workers: int = 0
    train_part: list = field(default_factory=lambda: [0, 1])
    init_layer_weight: bool = False
    w_gr: bool = True
    grad_norm_clip: Optional[float] = None
    not_load_rot_reg: bool = False
    freeze_model: bool = False
    mixed_precision: str = "no"
    channels_last: bool = False
    tf32: bool = False
    compile: bool = False


@dataclass(frozen=True)
class TestSection:
    batch_size: int = 1
    num_workers: int = 0
    shuffle: bool = False
    test_part: int = 0
    channels_last: bool = False  # project: evaluate with NHWC weights/activations (utils.runtime.inference_model)
    fuse_batchnorm: bool = False  # project: fold eval BatchNorms into the preceding convolutions
    compile: bool = False  # project: evaluate through torch.compile (utils.runtime.CompiledInference)


@dataclass(frozen=True)
class SummarySection:
    save_summary_steps: int = 50
    save_mid_freq: int = 10
    save_latest_freq: int = 1
    save_best_after: int = 0


@dataclass(frozen=True)
class OptimizerSection:
    name: str = "adam"
    lr: float = 1e-4
    weight_decay_l2: float = 0.0
    base_lr: Optional[float] = None
    warmup_epoch: Optional[int] = None
    minibatch_per_epoch: Optional[int] = None


@dataclass(frozen=True)
class SchedulerSection:
    name: str = "step"
    milestones: list = field(default_factory=list)
    gamma: float = 0.1


@dataclass(frozen=True)
class Config:
    base: BaseSection = field(default_factory=BaseSection)
    data: DataSection = field(default_factory=DataSection)
    model: ModelSection = field(default_factory=ModelSection)
    loss: LossSection = field(default_factory=LossSection)
    metric: MetricSection = field(default_factory=MetricSection)
    train: TrainSection = field(default_factory=TrainSection)
    test: TestSection = field(default_factory=TestSection)
    summary: SummarySection = field(default_factory=SummarySection)
    optimizer: OptimizerSection = field(default_factory=OptimizerSection)
    scheduler: SchedulerSection = field(default_factory=SchedulerSection)
    source: str = field(default="<defaults>", compare=False)

    def to_dict(self) -> dict:
        """Plain nested dict of the resolved configuration (the ``source`` path excluded)."""
        out = dataclasses.asdict(self)
        out.pop("source")
        return out


SECTIONS = {f.name: f.default_factory for f in fields(Config) if f.name != "source"}
# Keys whose value must be one of a few names.
CHOICES = {("train", "mixed_precision"): ("no", "bf16", "fp16", "auto")}

# Official keys the SimpleHand configs put in `train` or `data` rather than `optimizer` (all places are accepted).
_ALIASES_TO_OPTIMIZER = {"train": ("warmup_epoch", "minibatch_per_epoch", "base_lr"), "data": ("minibatch_per_epoch",)}


def _suggest(key: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


def _check_type(value: Any, default: Any, where: str) -> Any:
    """Coerce ``value`` to the type of the section default where that is unambiguous."""
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        if isinstance(default, float):
            return float(value)
        if value != int(value):
            raise ConfigError(f"{where}: expected a whole number, got {value!r}")
        return int(value)
    if isinstance(default, (list, dict, str)) and not isinstance(value, type(default)):
        raise ConfigError(f"{where}: expected a {type(default).__name__}, got {value!r}")
    return value


# Smallest accepted value of numeric keys whose range the type does not say ("section.key": minimum).
MINIMUM = {"train.num_epochs": 0, "train.batch_size": 1, "train.num_workers": 0, "test.batch_size": 1,
           "test.num_workers": 0, "data.prefetch_factor": 1, "model.roi_res": 16, "summary.save_summary_steps": 1,
           "summary.save_mid_freq": 0, "summary.save_latest_freq": 1, "summary.save_best_after": 0,
           "optimizer.lr": 0.0, "optimizer.weight_decay_l2": 0.0}


def _check_range(dotted: str, value: Any, where: str) -> None:
    low = MINIMUM.get(dotted)
    if low is not None and value is not None and value < low:
        raise ConfigError(f"{where}: must be >= {low}, got {value!r}")


def _build_section(name: str, values: dict, source: str):
    section_cls = SECTIONS[name]().__class__
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: section '{name}' must be an object, got {type(values).__name__}")
    defaults = section_cls()
    known = [f.name for f in fields(section_cls)]
    clean = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{source}: unknown key '{name}.{key}'{_suggest(key, known)}")
        clean[key] = _check_type(value, getattr(defaults, key), f"{source}: key '{name}.{key}'")
        choices = CHOICES.get((name, key))
        if choices is not None and value not in choices:
            raise ConfigError(f"{source}: key '{name}.{key}' must be one of {list(choices)}, got {value!r}")
        _check_range(f"{name}.{key}", clean[key], f"{source}: key '{name}.{key}'")
    return section_cls(**clean)


def config_from_dict(raw: dict, source: str = "<dict>") -> Config:
    """Validate a nested dict (the content of a cfg.json) and return a :class:`Config`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a JSON object with sections {sorted(SECTIONS)}")
    raw = json.loads(json.dumps(raw))  # deep copy; never mutate the caller's dict
    for section, keys in _ALIASES_TO_OPTIMIZER.items():
        values = raw.get(section, {})
        for key in keys:
            if isinstance(values, dict) and key in values:
                raw.setdefault("optimizer", {}).setdefault(key, values.pop(key))
    sections = {}
    for name, values in raw.items():
        if name not in SECTIONS:
            raise ConfigError(f"{source}: unknown section '{name}'{_suggest(name, SECTIONS)}")
        sections[name] = _build_section(name, values, source)
    return Config(**sections, source=source)


def parse_override(text: str) -> tuple[str, str, Any]:
    """``"train.batch_size=8"`` -> ``("train", "batch_size", 8)``; values are JSON, else plain strings."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ConfigError(f"override {text!r}: expected section.key=value, e.g. train.batch_size=8")
    dotted, value_text = text.split("=", 1)
    section, key = dotted.split(".", 1)
    try:
        value = json.loads(value_text)
    except json.JSONDecodeError:
        value = value_text
    return section, key, value


def apply_overrides(cfg: Config, overrides: Iterable[str] | dict) -> Config:
    """Return a new config with ``section.key=value`` overrides applied and validated.

    ``overrides`` is a list of ``"section.key=value"`` strings (the ``--set`` CLI form) or a dict
    ``{"section.key": value}``.
    """
    items = overrides.items() if isinstance(overrides, dict) else (
        ((s + "." + k), v) for s, k, v in map(parse_override, overrides))
    raw = cfg.to_dict()
    for dotted, value in items:
        section, key = dotted.split(".", 1)
        if section not in SECTIONS:
            raise ConfigError(f"override '{dotted}': unknown section '{section}'{_suggest(section, SECTIONS)}")
        config_from_dict({section: {key: value}}, source=f"--set {dotted}={json.dumps(value)}")  # blame the override
        raw[section][key] = value
    return config_from_dict(raw, source=cfg.source)


def load_config(path: str | Path, overrides: Iterable[str] = (), model_dir: str | None = None) -> Config:
    """Load ``cfg.json`` (or a folder containing it), apply CLI overrides and ``--model_dir``.

    Args:
        path: the cfg.json file or the experiment folder holding it.
        overrides: ``"section.key=value"`` strings (``--set``); applied after the file.
        model_dir: overrides ``base.model_dir`` as the official ``--model_dir`` does.
    Raises:
        FileNotFoundError: the file does not exist (the message names it).
        ConfigError: invalid JSON, unknown section/key, or a value of the wrong type.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "cfg.json"
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: invalid JSON ({err})") from None
    cfg = config_from_dict(raw, source=str(path))
    extra = list(overrides)
    if model_dir is not None:
        extra.append(f"base.model_dir={json.dumps(str(model_dir))}")
    return apply_overrides(cfg, extra) if extra else cfg


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved configuration as JSON (atomically) beside the outputs of a run."""
    atomic_write_json(path, cfg.to_dict())


def write_experiment(folder: str | Path, raw: dict) -> Path:
    """Create ``folder`` with ``raw`` (a plain config dict) as its ``cfg.json`` (atomically); returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "cfg.json", json.dumps(raw, indent=2) + "\n")
    return folder
