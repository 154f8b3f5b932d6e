"""tools/prepare_data.py: builds and verifies a dataset cache, and fails with one clear line."""
import os
import re
import subprocess
import sys

import pytest
from fake_raw import write_viper_tree

from direid_plugin.cli.prepare_data import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(argv, capsys):
    """``(exit code, stdout, stderr)`` of ``main(argv)``."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def viper_raw(tmp_path, monkeypatch):
    monkeypatch.setenv("DIREID_CACHE", str(tmp_path / "cache"))
    return write_viper_tree(str(tmp_path / "raw"), num_ids=10)


def test_builds_then_verifies_with_a_summary(viper_raw, tmp_path, capsys):
    code, out, err = run_cli(["mlr_viper", "--root", viper_raw, "--verify-only"], capsys)
    assert code == 1 and "no cache at" in err and len(err.strip().splitlines()) == 1

    code, out, _ = run_cli(["mlr_viper", "--root", viper_raw, "--seed", "3"], capsys)
    assert code == 0
    cache_dir = re.search(r"cache (\S+) \(verified\)", out).group(1)
    assert os.path.dirname(cache_dir) == str(tmp_path / "cache")
    assert "10 split(s): 5 train ids / 5 test ids" in out
    assert "images: train 10 (5 ids), query 5, gallery 5" in out
    histogram = dict(re.findall(r"x(\d): (\d+)", out))
    assert set(histogram) <= {"2", "3", "4"} and sum(map(int, histogram.values())) == 10

    code, verified, _ = run_cli(["mlr_viper", "--root", viper_raw, "--seed", "3", "--verify-only"], capsys)
    assert code == 0 and verified == out


def test_damaged_cache_exits_nonzero_naming_the_file(viper_raw, capsys):
    code, out, _ = run_cli(["mlr_viper", "--root", viper_raw], capsys)
    cache_dir = re.search(r"cache (\S+) \(verified\)", out).group(1)
    damaged = os.path.join(cache_dir, "lr", "cam_b", "004_90.png")
    with open(damaged, "ab") as f:
        f.write(b"\0")
    code, out, err = run_cli(["mlr_viper", "--root", viper_raw, "--verify-only"], capsys)
    assert code == 1 and out == ""
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert f"{damaged} does not match its manifest hash" in err


def test_missing_raw_data_shows_the_expected_layout(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DIREID_CACHE", str(tmp_path / "cache"))
    code, _, err = run_cli(["mlr_viper", "--root", str(tmp_path)], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert f"{tmp_path}/viper/VIPeR/cam_a not found; expected layout: <root>/viper/VIPeR/{{cam_a,cam_b}}" in err
    code, _, err = run_cli(["no_such_set", "--root", str(tmp_path)], capsys)
    assert code == 2 and "unknown dataset 'no_such_set'" in err and "mlr_viper" in err
    assert not os.path.exists(tmp_path / "cache")


@pytest.mark.slow
def test_tools_shim_runs_the_cli(viper_raw, tmp_path):
    env = dict(os.environ, DIREID_CACHE=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, os.path.join(REPO, "tools", "prepare_data.py"), "mlr_viper", "--root", viper_raw],
                          capture_output=True, text=True, env=env, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "images: train 10 (5 ids), query 5, gallery 5" in done.stdout
