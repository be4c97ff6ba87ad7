"""Checkpoints: official layout, prefix stripping, strict mismatch report, atomic saves, safe loading."""

import pytest
import torch
from torch import nn

from utils.checkpoint import CheckpointMismatchError, load_checkpoint, load_model_checkpoint, save_checkpoint
from utils.errors import CheckpointError


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


def test_round_trip_official_layout(tmp_path):
    model = _model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[10, 20], gamma=0.7)
    model(torch.randn(5, 3)).sum().backward()
    optimizer.step()
    path = save_checkpoint(tmp_path / "test_model_best.pth", model.state_dict(), optimizer=optimizer.state_dict(),
                           scheduler=scheduler.state_dict(), step=7, epoch=3,
                           score_status={"test": {"cur": 1.5, "best": 1.2}})
    state = load_checkpoint(path)
    assert set(state) == {"state_dict", "optimizer", "scheduler", "step", "epoch", "score_status"}
    assert state["step"] == 7 and state["epoch"] == 3 and state["score_status"]["test"]["best"] == 1.2
    fresh = _model()
    fresh[0].weight.data.zero_()
    load_model_checkpoint(fresh, path)
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value)
    restored = torch.optim.Adam(fresh.parameters(), lr=1e-3)
    restored.load_state_dict(state["optimizer"])
    assert restored.state_dict()["state"][0]["step"] == 1


def test_module_prefix_and_bare_state_dict_are_accepted(tmp_path):
    model = _model()
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, tmp_path / "bare.pth")
    fresh = _model()
    fresh[2].bias.data.fill_(9)
    load_model_checkpoint(fresh, tmp_path / "bare.pth")
    assert torch.equal(fresh[2].bias, model[2].bias)


def test_strict_mismatch_lists_missing_unexpected_and_shapes(tmp_path):
    state = _model().state_dict()
    state.pop("0.weight")
    state["extra.weight"] = torch.zeros(1)
    state["2.bias"] = torch.zeros(5)
    save_checkpoint(tmp_path / "bad.pth", state)
    with pytest.raises(CheckpointMismatchError) as err:
        load_model_checkpoint(_model(), tmp_path / "bad.pth")
    message = str(err.value)
    assert "bad.pth" in message
    assert "missing 1 (0.weight)" in message
    assert "unexpected 1 (extra.weight)" in message
    assert "2.bias (5,) vs model (2,)" in message


def test_non_strict_loads_the_matching_parameters(tmp_path):
    small = _model()
    state = {k: v for k, v in small.state_dict().items() if not k.startswith("2.")}
    save_checkpoint(tmp_path / "partial.pth", state)
    big = _model()
    load_model_checkpoint(big, tmp_path / "partial.pth", strict=False)
    assert torch.equal(big[0].weight, small[0].weight)


def test_interrupted_save_keeps_previous_file(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "model_latest.pth", _model().state_dict(), epoch=1)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        f = args[1]
        f.write(b"partial bytes")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, _model().state_dict(), epoch=2)
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_checkpoint_needing_arbitrary_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "payload": _Evil()}, path)
    with pytest.raises(RuntimeError, match="evil.pth.*weights-only"):
        load_checkpoint(path)
    assert "pwned" not in capsys.readouterr().out


def test_missing_checkpoint_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_checkpoint(tmp_path / "nope.pth")


@pytest.mark.parametrize("content,reason", [(b"", "the checkpoint file is empty"),
                                            (bytes(range(256)) * 4, "not a PyTorch checkpoint, or truncated")])
def test_empty_or_garbage_checkpoint_is_named_without_unsafe_advice(tmp_path, content, reason):
    path = tmp_path / "model.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=rf"model\.pth: .*{reason}") as err:
        load_checkpoint(path)
    assert "weights_only=False" not in str(err.value)


def test_unsafe_checkpoint_names_the_refused_class(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "payload": _Evil()}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pth: .*needs the class print\b") as err:
        load_checkpoint(path)
    assert "weights_only=False" not in str(err.value)


def test_state_dict_of_the_wrong_type_is_named(tmp_path):
    torch.save({"state_dict": [torch.zeros(2)]}, tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match=r"list\.pth: 'state_dict' must map parameter names to tensors, got list"):
        load_checkpoint(tmp_path / "list.pth")
    torch.save({"state_dict": {"w": torch.zeros(2), "note": "text"}}, tmp_path / "mixed.pth")
    with pytest.raises(CheckpointError, match=r"mixed\.pth: .*entries 1 \(note\)"):
        load_checkpoint(tmp_path / "mixed.pth")


def test_non_finite_weights_are_named_at_load(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    state = model.state_dict()
    state["0.weight"][1, 2] = float("nan")
    state["1.running_var"][0] = float("inf")
    save_checkpoint(tmp_path / "nan.pth", state)
    with pytest.raises(CheckpointError, match=r"nan\.pth: non-finite weights .* 2 \(0\.weight \(1 of 6 values\), "
                                              r"1\.running_var \(1 of 2 values\)\)"):
        load_model_checkpoint(model, tmp_path / "nan.pth")


def test_strict_load_refuses_a_checkpoint_with_only_unexpected_keys(tmp_path):
    state = _model().state_dict()
    state["head.extra.weight"] = torch.ones(3)
    save_checkpoint(tmp_path / "extra.pth", state)
    fresh = _model()
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    with pytest.raises(CheckpointMismatchError) as err:
        load_model_checkpoint(fresh, tmp_path / "extra.pth")
    message = str(err.value)
    assert "missing 0 ()" in message and "unexpected 1 (head.extra.weight)" in message
    for key, value in fresh.state_dict().items():  # nothing was loaded before the refusal
        assert torch.equal(value, before[key])
    load_model_checkpoint(fresh, tmp_path / "extra.pth", strict=False)  # non-strict: the extra key is skipped
    assert torch.equal(fresh[0].weight, state["0.weight"])
