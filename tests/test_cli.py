"""The command line: the visible job and one-line errors with non-zero exits."""

import subprocess
import sys

import pytest

from femlm.cli import main


def test_mask_prints_every_strategy_with_counts(capsys):
    assert main(["mask", "the model predicts every token once", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    for name in ("random", "whole-word", "span", "fully-explored", "fully-explored-span"):
        assert f"\n{name}  (" in "\n" + out
    assert "fully-explored  (7 views)" in out
    assert "tokens predicted at least once: 6/6" in out
    assert "[" in out and "masked |" in out


def test_mask_respects_views(capsys):
    assert main(["mask", "a b c d e f g h", "--strategy", "fully-explored", "--views", "4"]) == 0
    out = capsys.readouterr().out
    assert out.count("masked |") == 4 and "view  4   2 masked" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["mask", "text", "--rate", "1.5"], "rate"),
        (["mask", "text", "--strategy", "fully-explored", "--views", "4"], None),
        (["mask", "   "], "empty"),
        (["mask", "--file", "/nonexistent/file.txt"], "no such file"),
        (["mask", "text", "--tokenizer", "/nonexistent/tok"], "cannot load a tokenizer"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    code = main(argv)
    err = capsys.readouterr().err
    if message is None:  # --views alone sets the fully-explored family's rate
        assert code == 0
        return
    assert code == 2
    assert err.startswith("femlm: error:") and err.count("\n") == 1 and message in err


def test_mask_rejects_a_views_rate_pair_as_pretrain_does(capsys):
    from femlm.config import TrainConfig, check_config
    from femlm.errors import FemlmError

    with pytest.raises(FemlmError) as pretrain_error:
        check_config(TrainConfig(data=["x"], strategy="fully-explored", views=4, rate=0.3))
    assert main(["mask", "text", "--views", "4", "--rate", "0.3"]) == 2
    err = capsys.readouterr().err
    assert err == f"femlm: error: {pretrain_error.value}\n"
    # Independent-view strategies take any pair, so the rule alone decides.
    assert main(["mask", "text", "--strategy", "random", "--views", "4", "--rate", "0.3"]) == 0


def test_non_utf8_file(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"caf\xe9 au lait")
    assert main(["mask", "--file", str(bad)]) == 2
    assert "not UTF-8" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command",
    [
        ["mask"],
        ["data"],
        ["data", "fetch"],
        ["tokenizer", "train"],
        ["pretrain"],
        ["variance"],
        ["finetune"],
        ["experiment"],
        ["report"],
        ["evaluate"],
        ["demo"],
    ],
)
def test_every_help_page_prints(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: femlm" in capsys.readouterr().out


def test_console_script_runs_as_a_module():
    proc = subprocess.run(
        [sys.executable, "-m", "femlm", "mask", "--rate", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("femlm: error:") and "Traceback" not in proc.stderr
