"""Writers of the evaluation results of a ``HandReport`` into a results folder.

Files (each written atomically, see ``utils.atomic``):

- ``scores.json``: the report's scores (errors in mm, AUC / F-scores in percent), non-finite -> null;
- ``scores_table.txt``: the same as a readable table (also returned, for printing);
- ``scores.txt``: the official layout (``key: value`` lines; means in centimetres, AUC / F as fractions,
  docs/official-data.md §4.3);
- ``pck_data.json``: ``{xyz|xyz_al|mesh|mesh_al: [thresholds_cm (100), pck (100)]}`` as the official code;
- ``pck_<family>.png``: PCK curve plots (the official code names them ``img_path.{0..3}.png``).

An empty group (``num_samples == 0``) gets only ``scores.json`` and ``scores_table.txt``.
"""
import io
import math
from pathlib import Path

import numpy as np

from utils.atomic import atomic_write, atomic_write_json, atomic_write_text
from utils.evaluation import FAMILIES, FAMILY_SUFFIX
from utils.hand_conventions import MM_PER_M

__all__ = ["official_scores", "format_scores_table", "format_group_table", "write_report", "write_group_reports"]

_LABELS = {
    "num_samples": "samples",
    "mpjpe": "MPJPE (mm)", "pa_mpjpe": "PA-MPJPE (mm)", "mpvpe": "MPVPE (mm)", "pa_mpvpe": "PA-MPVPE (mm)",
    "auc_j": "AUC J 0-50mm (%)", "auc_pa_j": "AUC PA-J 0-50mm (%)",
    "auc_v": "AUC V 0-50mm (%)", "auc_pa_v": "AUC PA-V 0-50mm (%)",
    "auc20_50_j": "AUC J 20-50mm (%)", "auc20_50_pa_j": "AUC PA-J 20-50mm (%)",
    "auc20_50_v": "AUC V 20-50mm (%)", "auc20_50_pa_v": "AUC PA-V 20-50mm (%)",
    "f5": "F@5mm (%)", "f5_aligned": "F@5mm PA (%)", "f15": "F@15mm (%)", "f15_aligned": "F@15mm PA (%)",
    "grasp_accuracy": "grasp accuracy", "grasp_precision": "grasp precision", "grasp_recall": "grasp recall",
    "grasp_num_samples": "grasp samples",
    "obj_rep_success": "object REP success (%)", "obj_add_success": "object ADD success (%)",
    "obj_median_rep_px": "object median REP (px)", "obj_median_add_mm": "object median ADD (mm)",
    "obj_num_samples": "object samples",
    "sc_tr_mpjpe": "MPJPE scale-trans. aligned (mm)", "auc_sc_tr_j": "AUC J scale-trans. 0-50mm (%)",
}
_FAMILY_TITLES = {"xyz": "joints", "xyz_al": "joints, Procrustes-aligned",
                  "mesh": "vertices", "mesh_al": "vertices, Procrustes-aligned"}
_UNITS_NOTE = "mpjpe/pa_mpjpe/mpvpe/pa_mpvpe in mm; auc_*, auc20_50_*, f* in percent; other entries as named"


def _json_safe(value):
    """Nested dicts/lists of numbers with NaN/inf replaced by None (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def official_scores(report):
    """The official ``scores.txt`` entries (dict, in its key order): means in cm, AUC and F as fractions."""
    s = report.scores
    return {
        "xyz_mean3d": s["mpjpe"] / 10.0, "xyz_auc3d": s["auc_j"] / 100.0,
        "xyz_al_mean3d": s["pa_mpjpe"] / 10.0, "xyz_al_auc3d": s["auc_pa_j"] / 100.0,
        "mesh_mean3d": s["mpvpe"] / 10.0, "mesh_auc3d": s["auc_v"] / 100.0,
        "mesh_al_mean3d": s["pa_mpvpe"] / 10.0, "mesh_al_auc3d": s["auc_pa_v"] / 100.0,
        "f_score_5": s["f5"] / 100.0, "f_al_score_5": s["f5_aligned"] / 100.0,
        "f_score_15": s["f15"] / 100.0, "f_al_score_15": s["f15_aligned"] / 100.0,
    }


def _flatten(scores, prefix=""):
    rows = []
    for key, value in scores.items():
        if isinstance(value, dict):
            rows.extend(_flatten(value, f"{prefix}{key}."))
        else:
            rows.append((prefix + key if prefix else _LABELS.get(key, key), value))
    return rows


def _format_value(value):
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.2f}"
    return str(value)


def _table(header, rows):
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in [header, *rows]]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines) + "\n"


def format_scores_table(report, title="results"):
    """Readable two-column table of ``report.scores`` (nested dicts as ``key.sub`` rows)."""
    rows = [(label, _format_value(value)) for label, value in _flatten(report.scores)]
    note = "" if report.scores["num_samples"] else "(empty group: no samples)\n"
    return _table((title, "value"), rows) + note


def format_group_table(reports):
    """One table with a column per group (e.g. all / h / ho) over the flat hand scores."""
    names = list(reports)
    keys = list(dict.fromkeys(k for n in names for k, v in reports[n].scores.items() if not isinstance(v, dict)))
    rows = [(_LABELS.get(k, k), *(_format_value(reports[n].scores.get(k, float("nan"))) for n in names))
            for k in keys]
    return _table(("metric", *names), rows)


def _plot_pck_png(report, family):
    """PNG bytes of one PCK curve; the Agg canvas is created here, without touching pyplot's global backend."""
    # matplotlib (heavy) only when a plot is drawn: evaluation with --no_plots never loads it
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    auc_key = f"auc_{FAMILY_SUFFIX[family]}"
    axes.plot(report.thresholds_m * MM_PER_M, report.pck[family], label=f"AUC {report.scores[auc_key]:.2f} %")
    axes.set(xlabel="error threshold (mm)", ylabel="3D PCK", ylim=(0.0, 1.0), xlim=(0.0, 50.0),
             title=f"PCK, {_FAMILY_TITLES[family]}")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower right")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_report(folder, report, title=None, plots=True):
    """Write the result files of ``report`` into ``folder`` (created if missing). Returns the table text."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "scores.json", _json_safe({**report.scores, "units": _UNITS_NOTE}))
    table = format_scores_table(report, title or folder.name)
    atomic_write_text(folder / "scores_table.txt", table)
    if not report.scores["num_samples"]:
        return table
    atomic_write_text(folder / "scores.txt",
                      "".join(f"{key}: {value:f}\n" for key, value in official_scores(report).items()))
    thresholds_cm = (report.thresholds_m * 100.0).tolist()
    atomic_write_json(folder / "pck_data.json",
                      {family: [thresholds_cm, report.pck[family].tolist()] for family in FAMILIES})
    if plots:
        for family in FAMILIES:
            with atomic_write(folder / f"pck_{family}.png", mode="wb") as f:
                f.write(_plot_pck_png(report, family))
    return table


def write_group_reports(root, reports, table_name, plots=True):
    """Write each group's report to ``root/<group>/`` and the combined table to ``root/table_name``.

    Args:
        reports: {group name: HandReport}, e.g. from ``grasp_groups`` / ``occlusion_groups``.
    Returns the combined table text.
    """
    root = Path(root)
    for name, report in reports.items():
        write_report(root / name, report, title=name, plots=plots)
    table = format_group_table(reports)
    atomic_write_text(root / table_name, table)
    return table
