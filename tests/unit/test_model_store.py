"""Model source: bundled default until a version is published, then the newest published version."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from kairos.models.adapters.model_store import ModelSource, publish_model
from training.__main__ import main as training_main


@pytest.fixture
def s3(monkeypatch):
    for k, v in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket="models")
        yield client


def _model_dir(tmp_path, name: str):
    d = tmp_path / name
    d.mkdir()
    (d / "time_model.txt").write_text(name)
    (d / "metadata.json").write_text(json.dumps({"model_version": name}))
    return d


def test_model_source_bundled_then_newest_published(s3, tmp_path):
    # GIVEN a bundled model and an empty models bucket
    bundled = _model_dir(tmp_path, "bundled")
    source = ModelSource(
        lambda p: (p / "time_model.txt").read_text(),
        bundled,
        "models",
        s3,
        check_seconds=0,
        cache_dir=tmp_path / "cache",
    )
    # WHEN nothing is published THEN the bundled model serves
    assert source.current() == "bundled" and source.version == "bundled"
    # WHEN two versions are published THEN the newest (by name) serves, downloaded once
    publish_model(_model_dir(tmp_path, "a"), "models", "20261101T000000Z-a", s3)
    publish_model(_model_dir(tmp_path, "b"), "models", "20261120T000000Z-b", s3)
    assert source.current() == "b" and source.version == "20261120T000000Z-b"
    assert (tmp_path / "cache" / "20261120T000000Z-b" / "metadata.json").exists()


def test_model_source_incomplete_version_is_ignored(s3, tmp_path):
    # GIVEN a version whose metadata (written last) has not arrived
    s3.put_object(Bucket="models", Key="models/20261130T000000Z-partial/time_model.txt", Body=b"partial")
    source = ModelSource(lambda p: p.name, _model_dir(tmp_path, "bundled"), "models", s3, cache_dir=tmp_path / "c")
    # THEN the bundled model serves
    assert source.current() == "bundled"


def test_training_publish_command_uploads_a_version_the_source_picks(s3, tmp_path, capsys):
    model = _model_dir(tmp_path, "m1")
    assert training_main(["publish", "--model", str(model), "--bucket", "models"]) == 0
    uri = capsys.readouterr().out.strip()
    assert uri.startswith("s3://models/models/") and uri.endswith("-m1/")
    source = ModelSource(lambda p: p.name, _model_dir(tmp_path, "bundled"), "models", s3, cache_dir=tmp_path / "c")
    assert source.current() == uri.rstrip("/").rsplit("/", 1)[1]
