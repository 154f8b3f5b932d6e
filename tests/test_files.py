"""Crash-safe writes: a write that fails part-way leaves the previous file whole and no temporary behind."""
import json
import os

import pytest

from direid_plugin.files import write_atomic, write_json, write_text


def test_write_json_and_text_replace_the_target(tmp_path):
    path = tmp_path / "sub" / "results.json"
    write_json(str(path), {"rank1": 0.5})
    write_json(str(path), {"rank1": 0.75})
    assert json.loads(path.read_text()) == {"rank1": 0.75}
    write_text(str(tmp_path / "config.yaml"), "a: 1\n")
    assert (tmp_path / "config.yaml").read_text() == "a: 1\n"
    assert sorted(os.listdir(tmp_path / "sub")) == ["results.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "results.json"
    write_json(str(path), {"rank1": 0.5})

    def write_half_then_fail(f):
        f.write('{"rank1": 0.')
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed mid-write"):
        write_atomic(str(path), write_half_then_fail, binary=False)
    assert json.loads(path.read_text()) == {"rank1": 0.5}
    assert os.listdir(tmp_path) == ["results.json"]
