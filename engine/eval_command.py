"""The command-line flow of the three evaluation scripts; they differ only in how samples are grouped.

    accelerate launch --config_file yaml/2_gpu.yaml eval.py --model_dir experiment/unihope.dexycb_s0 \\
        --resume experiment/unihope.dexycb_s0/test_model_best.pth
    python eval.py --model_dir experiment/classifier_h2onet_hflnet.dexycb_s3 --resume_cls C.pth --resume_h H.pth \\
        --resume_ho HO.pth                                   # A+B: one checkpoint per sub-model
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from datasets import build_dataset, build_loader, official_dataset_name
from engine.cli import AB_CHECKPOINTS, load_run_config
from engine.eval_pass import collect, group_reports, save_predictions
from engine.ho3d_submission import HO3DSubmission, load_ho3d_ground_truth
from engine.prediction_sheet import sheet_for_run
from engine.reports import write_group_reports
from models import build_model
from utils.checkpoint import load_model_checkpoint
from utils.errors import InputError
from utils.evaluation import HandEvaluator
from utils.hand_conventions import MM_PER_M
from utils.mano_io import load_mano_assets, resolve_mano_root
from utils.metrics.hand import point_errors, root_align, scale_translation_align
from utils.metrics.pck import auc, pck_curve
from utils.runtime import inference_model, make_accelerator, progress, setup_logger


def load_eval_weights(model, args) -> None:
    """``--resume`` into the whole model, or ``--resume_cls/_h/_ho`` into the A+B sub-models (strict)."""
    parts = {part: getattr(args, flag) for flag, part in AB_CHECKPOINTS.items() if getattr(args, flag)}
    if args.resume and parts:
        raise InputError("give either --resume or --resume_cls/--resume_h/--resume_ho, not both")
    if args.resume:
        load_model_checkpoint(model, args.resume)
    elif parts:
        missing = sorted(set(AB_CHECKPOINTS.values()) - set(parts))
        if missing:
            raise InputError(f"A+B evaluation needs a checkpoint for every sub-model; missing: {missing}")
        for part, path in parts.items():
            load_model_checkpoint(getattr(model, part), path)
    else:
        raise InputError("no weights given: pass --resume PATH (or --resume_cls/--resume_h/--resume_ho for A+B)")


def run_evaluation(args, make_groups, table_name: str, check_config=None) -> dict | None:
    """Evaluate the test split and write one report folder per group under ``<model_dir>``.

    Args:
        args: the parsed command line of :func:`engine.cli.eval_parser`.
        make_groups: ``(predictions, cfg) -> {group name: sample indices or None}``.
        table_name: file name of the combined table in ``<model_dir>``.
        check_config: optional ``cfg -> None`` raising on settings the grouping cannot use, called before any
            model or data is loaded.
    Returns the reports on the main process, None elsewhere.
    """
    cfg = load_run_config(args, extra_overrides=['data.eval_type=["test"]'])
    if check_config is not None:
        check_config(cfg)

    accelerator = make_accelerator()
    main = accelerator.is_main_process
    model_dir = Path(cfg.base.model_dir)
    logger = setup_logger("eval", model_dir / "test.log", main)
    model = build_model(cfg)
    load_eval_weights(model, args)
    if cfg.test.channels_last or cfg.test.fuse_batchnorm or cfg.test.compile:
        logger.info("evaluation speed options: channels_last=%s fuse_batchnorm=%s compile=%s%s",
                    cfg.test.channels_last, cfg.test.fuse_batchnorm, cfg.test.compile,
                    " (the first batch compiles: minutes on a CPU)" if cfg.test.compile else "")
    model = inference_model(model, cfg.test.channels_last, cfg.test.fuse_batchnorm, cfg.test.compile)
    dataset = build_dataset(cfg, "test")
    loader = build_loader(cfg, "test", dataset)
    model, loader = accelerator.prepare(model, loader)
    logger.info("evaluating %d test samples on %d process(es), device %s", len(dataset), accelerator.num_processes,
                accelerator.device)
    is_ho3d = official_dataset_name(cfg.data.name) == "HO3D_HOPE"
    keep = ("pred_joints3d_cam", "pred_verts3d_cam", "root_joint_flip") if args.save_predictions or is_ho3d else ()
    predictions = collect(model, loader, accelerator, getattr(dataset, "object_points", None),
                          cfg.metric.obj_eval_mode, keep=keep,
                          progress=lambda it: progress(it, "test", main))
    accelerator.wait_for_everyone()
    accelerator.end_training()
    if not main:
        return None
    if args.save_predictions:
        save_predictions(model_dir / "predictions_test.npz", predictions)
    if is_ho3d:
        reports = ho3d_outputs(model_dir, predictions, dataset, plots=not args.no_plots)
    elif predictions.hand is None:
        raise InputError("the test split has no GT hand meshes: nothing to score")
    else:
        reports = group_reports(predictions, make_groups(predictions, cfg), cfg.metric)
        print(write_group_reports(model_dir, reports, table_name, plots=not args.no_plots))
    if args.sheet > 0:
        sheet = prediction_sheet(model_dir, accelerator.unwrap_model(model), dataset, args.sheet, cfg,
                                 accelerator.device, predictions)
        logger.info("prediction sheet: %s", sheet)
    logger.info("results written under %s", model_dir)
    return reports


def prediction_sheet(model_dir: Path, model, dataset, count: int, cfg, device, predictions) -> Path:
    """``<model_dir>/prediction_sheet.png``: the predicted mesh over ``count`` test images, with J-PE when known."""
    faces = load_mano_assets(resolve_mano_root(cfg.base.mano_root), "right").faces
    errors = predictions.hand.joint_errors_mm if predictions.hand is not None else None
    return sheet_for_run(model_dir / "prediction_sheet.png", model, dataset, count, faces, device, errors)


def ho3d_outputs(model_dir: Path, predictions, dataset, plots: bool = True) -> dict:
    """HO3D v2 evaluation split: ``<model_dir>/pred.zip`` for the official server (evaluation.txt order,
    validated), and, when the public GT files sit in the dataset root, local scores in ``<model_dir>/ho3d_local/``
    with the same metric definitions."""
    joints, verts, root = (np.concatenate(predictions.saved[k]) for k in
                           ("pred_joints3d_cam", "pred_verts3d_cam", "root_joint_flip"))
    submission = HO3DSubmission()
    submission.add(joints, verts, root)
    submission.write(model_dir / "pred.zip", expected_count=len(dataset))
    print(f"HO3D submission written: {model_dir / 'pred.zip'} ({len(joints)} samples)")
    truth = load_ho3d_ground_truth(dataset.root)
    if truth is None:
        print("no evaluation_xyz.json / evaluation_verts.json in the dataset root: submit pred.zip to the server")
        return {}
    gt_joints, gt_verts = truth
    if len(gt_joints) != len(joints):
        raise InputError(f"HO3D ground truth has {len(gt_joints)} samples, the evaluation split {len(joints)}")
    evaluator = HandEvaluator()
    evaluator.add(joints, verts, gt_joints, gt_verts, gt_joints[:, 0])
    report = evaluator.results()
    report.scores.update(ho3d_scale_translation_scores(joints, root, gt_joints))
    reports = {"ho3d_local": report}
    print(write_group_reports(model_dir, reports, "scores_ho3d_local_table.txt", plots=plots))
    return reports


def ho3d_scale_translation_scores(pred_joints, pred_root, gt_joints) -> dict:
    """The HO3D script's third joint alignment (scale by the wrist -> middle-MCP bone, wrist translation):
    ``sc_tr_mpjpe`` (mm) and ``auc_sc_tr_j`` (0-50 mm, percent)."""
    joints, _ = root_align(pred_joints, None, pred_root)
    errors = point_errors(scale_translation_align(joints, gt_joints), gt_joints)
    return {"sc_tr_mpjpe": float(errors.mean() * MM_PER_M), "auc_sc_tr_j": auc(pck_curve(errors)) * 100.0}
