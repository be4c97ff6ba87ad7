"""command_main: expected errors end a command with one message and exit status 2; bugs keep their traceback."""
import pytest

from utils.config import ConfigError
from utils.errors import DataError, command_main


def _failing(error):
    def main(argv):
        raise error
    return main


@pytest.mark.parametrize("error", [DataError("labels.npy: the label of sample 'id_1' is 'yes'"),
                                   ConfigError("cfg.json: unknown key 'train.batchsize'"),
                                   FileNotFoundError("checkpoint not found: x.pth")])
def test_expected_errors_print_one_line_and_exit_2(error, capsys):
    with pytest.raises(SystemExit) as exit_info:
        command_main(_failing(error), ["--model_dir", "x"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err == f"error: {error}\n"


def test_debug_flag_or_environment_shows_the_traceback(monkeypatch):
    with pytest.raises(DataError):
        command_main(_failing(DataError("bad")), ["--debug"])
    monkeypatch.setenv("UNIHOPE_DEBUG", "1")
    with pytest.raises(DataError):
        command_main(_failing(DataError("bad")), [])


def test_unexpected_errors_propagate():
    with pytest.raises(ZeroDivisionError):
        command_main(_failing(ZeroDivisionError("bug")), [])


def test_main_receives_the_arguments():
    assert command_main(lambda argv: argv, ["--a", "1"]) == ["--a", "1"]
