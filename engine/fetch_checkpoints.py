"""Fetch the released checkpoints of one experiment from the Hugging Face Hub and check that they load strictly.

    python -m engine.fetch_checkpoints --list
    python -m engine.fetch_checkpoints --name unihope.dexycb_s0 [--dest .] [--set base.mano_root=/data/mano]

The authors publish their experiment folders in the model repository :data:`REPO_ID`, laid out as
``experiment/<name>/...`` (``cfg.json``, ``test_model_best.pth``, ...). ``--name`` downloads every file of that
folder with ``huggingface_hub`` into ``<dest>/experiment/<name>/`` (``dest`` defaults to the repository root, so
the files land beside this project's own ``experiment/<name>/cfg.json`` and replace files of the same name).
``huggingface_hub`` keeps partial downloads under ``<dest>/.cache/huggingface/`` and resumes them, and skips
files that are already complete, so an interrupted fetch is continued by running the same command again.

After the download every ``*.pth`` of the folder is loaded strictly (:func:`utils.checkpoint.load_model_checkpoint`)
into the model named by the folder's ``cfg.json`` (:func:`models.build_model`; the MANO files come from
``base.mano_root`` or ``$MANO_ROOT``). In an A+B folder (``twoinone_baseline_classifier``) a checkpoint may instead
load into one of the sub-models ``cls_model`` / ``h_model`` / ``ho_model``, as ``eval.py --resume_cls/_h/_ho`` loads
them. Being offline, an unknown experiment name (the close names are listed), a repository error or a checkpoint
that does not load end the command with one message and exit status 2.
"""
from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path
from typing import Any, Sequence

from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from engine.cli import AB_CHECKPOINTS
from models import build_model
from utils.checkpoint import CheckpointMismatchError, load_model_checkpoint
from utils.config import load_config
from utils.errors import command_main

REPO_ID = "yqwang255/UniHOPE-CVPR2025-checkpoints"
EXPERIMENT_DIR = "experiment"
REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
CLOSE_NAMES = 5


class FetchError(RuntimeError):
    """An expected failure of the fetch (offline, unknown name, repository error, checkpoint mismatch)."""


def hub_call(action: str, call, *args, **kwargs):
    """``call(*args, **kwargs)`` on the Hub; a failure becomes a FetchError saying ``action`` and why.

    An HTTP answer (404, 401, ...) is ``HfHubHTTPError``. When the Hub cannot be reached, huggingface_hub raises
    ``OfflineModeIsEnabled`` / ``LocalEntryNotFoundError`` or its HTTP client's own transport errors (``httpx2``
    in huggingface_hub 2.x), so every other exception of the call is reported as "cannot reach", with its type.
    """
    try:
        return call(*args, **kwargs)
    except HfHubHTTPError as err:
        raise FetchError(f"the Hugging Face Hub refused to {action}: {err}") from None
    except Exception as err:  # noqa: BLE001  (network failures come as the HTTP client's own types)
        raise FetchError(f"cannot reach the Hugging Face Hub to {action} (offline?): "
                         f"{type(err).__name__}: {err}") from None


def experiments_in(repo_files: Sequence[str]) -> dict[str, list[str]]:
    """``{experiment name: [repository paths under experiment/<name>/]}`` from a repository's file list."""
    experiments: dict[str, list[str]] = {}
    for path in repo_files:
        parts = path.split("/")
        if len(parts) >= 3 and parts[0] == EXPERIMENT_DIR:
            experiments.setdefault(parts[1], []).append(path)
    return {name: sorted(files) for name, files in sorted(experiments.items())}


def list_experiments(api: Any, repo_id: str = REPO_ID, revision: str | None = None) -> dict[str, list[str]]:
    """The experiments of the repository (``api``: a :class:`huggingface_hub.HfApi` or an object with its
    ``list_repo_files``)."""
    files = hub_call(f"list {repo_id}", api.list_repo_files, repo_id, revision=revision)
    experiments = experiments_in(files)
    if not experiments:
        raise FetchError(f"{repo_id} holds no '{EXPERIMENT_DIR}/<name>/...' folders ({len(files)} files)")
    return experiments


def files_of(name: str, experiments: dict[str, list[str]], repo_id: str = REPO_ID) -> list[str]:
    """The repository paths of experiment ``name``; an unknown name raises FetchError listing close names."""
    if name in experiments:
        return experiments[name]
    close = difflib.get_close_matches(name, list(experiments), n=CLOSE_NAMES, cutoff=0.5)
    hint = f"close names: {', '.join(close)}" if close else "no close name"
    raise FetchError(f"unknown experiment '{name}' in {repo_id} ({hint}; --list shows all {len(experiments)})")


def download(api: Any, files: Sequence[str], dest: Path, repo_id: str = REPO_ID,
             revision: str | None = None) -> list[Path]:
    """Download ``files`` (repository paths) to ``dest/<path>`` with ``api.hf_hub_download`` (resumable)."""
    return [Path(hub_call(f"fetch {path} ({done} of {len(files)} files done; run the command again to resume)",
                          api.hf_hub_download, repo_id=repo_id, filename=path, revision=revision, local_dir=dest))
            for done, path in enumerate(files)]


def verify_checkpoints(folder: Path, overrides: Sequence[str] = ()) -> list[str]:
    """Load every ``*.pth`` in ``folder`` strictly into the model of ``folder/cfg.json``; one line per file.

    Raises:
        FetchError: no cfg.json, a config or MANO problem, or a checkpoint that loads into neither the model nor
            (A+B) one of its sub-models; the message names the file.
    """
    try:
        model = build_model(load_config(folder, overrides=overrides))
    except (FileNotFoundError, KeyError, ValueError) as err:  # ConfigError, ManoFileError are ValueErrors
        raise FetchError(f"cannot build the model of {folder / 'cfg.json'} to check the checkpoints: {err}") from None
    targets = {"model": model, **{part: getattr(model, part) for part in AB_CHECKPOINTS.values()
                                  if hasattr(model, part)}}
    lines = []
    for checkpoint in sorted(folder.glob("*.pth")):
        errors = []
        for target_name, target in targets.items():
            try:
                load_model_checkpoint(target, checkpoint)
            except CheckpointMismatchError as err:
                errors.append(str(err))
                continue
            except (RuntimeError, FileNotFoundError) as err:  # not a weights-only loadable file
                raise FetchError(str(err)) from None
            lines.append(f"{checkpoint}: loads strictly into {type(target).__name__} ({target_name})")
            break
        else:
            raise FetchError(f"{checkpoint} does not load strictly into the model of {folder / 'cfg.json'}: "
                             f"{errors[0]}")
    if not lines:
        lines.append(f"{folder}: no *.pth checkpoint to check")
    return lines


def fetch(name: str, dest: Path, api: Any, overrides: Sequence[str] = (), repo_id: str = REPO_ID,
          revision: str | None = None) -> list[str]:
    """List, download and verify experiment ``name`` into ``dest/experiment/<name>/``; returns report lines."""
    files = files_of(name, list_experiments(api, repo_id, revision), repo_id)
    local = download(api, files, dest, repo_id, revision)
    return [f"fetched {len(local)} file(s) into {dest / EXPERIMENT_DIR / name}",
            *verify_checkpoints(dest / EXPERIMENT_DIR / name, overrides)]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--list", action="store_true", help=f"list the experiments in {REPO_ID}")
    action.add_argument("--name", help="experiment folder to fetch, e.g. unihope.dexycb_s0")
    parser.add_argument("--dest", type=Path, default=REPOSITORY_ROOT,
                        help="folder receiving experiment/<name>/ (default: this repository)")
    parser.add_argument("--revision", default=None, help="branch, tag or commit of the repository (default main)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="config override for the strict-load check, e.g. --set base.mano_root=/data/mano")
    return parser.parse_args(argv)


def main(argv=None, api: Any = None) -> int:
    """The command; ``api`` replaces :class:`huggingface_hub.HfApi` (tests pass a local stand-in)."""
    args = parse_args(argv)
    api = api if api is not None else HfApi()
    try:
        if args.list:
            for name, files in list_experiments(api, revision=args.revision).items():
                print(f"{name}  ({len(files)} files)")
        else:
            for line in fetch(args.name, args.dest, api, args.overrides, revision=args.revision):
                print(line)
    except FetchError as err:
        print(f"fetch_checkpoints: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    return 0


if __name__ == "__main__":
    command_main(main)
