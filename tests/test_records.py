"""Typed stage records: one schema per file, a format version, refusal of unknown formats."""

from __future__ import annotations

import json

import pytest

from copyscope.errors import CopyscopeError
from copyscope.records import (
    AuditSummary,
    CriterionRate,
    SampleIdentity,
    SampleRecord,
    TrainIdentity,
    TrainRecord,
)
from copyscope.rundir import RunDir


def test_records_round_trip_through_run_json(tmp_path):
    run = RunDir(tmp_path / "r")
    identity = TrainIdentity("gan", {"width": 8, "sizes": (1, 2)}, "a" * 64, "b" * 64, 64, 0)
    run.claim(TrainRecord, identity, force=False)
    started = run.read(TrainRecord)
    assert started.identity == TrainIdentity("gan", {"width": 8, "sizes": [1, 2]}, "a" * 64,
                                             "b" * 64, 64, 0)
    assert started.status == "started" and run.done(TrainRecord, identity) is None
    run.write(TrainRecord(identity=identity, status="complete", epochs_done=3))
    assert run.done(TrainRecord, identity).epochs_done == 3
    assert run.done(TrainRecord, TrainIdentity("gan", {}, "a", "b", 64, 0)) is None
    manifest = json.loads((tmp_path / "r" / "run.json").read_text())
    assert manifest["format"] == 1 and "copied_from" not in manifest["stages"]["train"]


def test_nested_records_are_typed_when_read(tmp_path):
    run = RunDir(tmp_path)
    rate = CriterionRate("r", "c", 1, 0.5, [0.1, 0.9], 0, 0.0, [0.0, 0.1])
    run.write(AuditSummary(n_samples=2, criteria={"heldout": rate}))
    back = run.read(AuditSummary)
    assert back.criteria["heldout"] == rate and back.n_samples == 2
    sample = SampleRecord(identity=SampleIdentity("h", 5, None, "latent", 0, 5, 1000),
                          status="complete", steps=None)
    run.write(sample)
    assert run.read(SampleRecord) == sample


def test_a_run_json_of_another_format_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"format": 2, "stages": {}}))
    before = path.read_bytes()
    run = RunDir(tmp_path)
    with pytest.raises(CopyscopeError, match=r"run.json has format 2.*reads format 1"):
        run.read(TrainRecord)
    with pytest.raises(CopyscopeError, match="format 2"):
        run.write(TrainRecord(status="complete"))
    assert path.read_bytes() == before


def test_the_cli_refuses_an_unknown_format_in_one_sentence(tmp_path, run_cli):
    (tmp_path / "run.json").write_text(json.dumps({"format": "9", "stages": {}}))
    code, out = run_cli("sample", tmp_path, "-n", "2")
    assert code == 2 and "format '9'" in out and "Traceback" not in out


def test_a_run_json_without_a_format_is_read_as_format_1(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps(
        {"copyscope": "0.1.0", "stages": {"train": {"status": "complete", "epochs_done": 4}}}))
    assert RunDir(tmp_path).read(TrainRecord).epochs_done == 4
