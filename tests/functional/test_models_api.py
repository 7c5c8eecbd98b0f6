"""GET /v1/models/current: the model the score function serves and the figures of its card, read from its
metadata only (the bundled model's, then the newest version published to the models bucket)."""

from __future__ import annotations

import json

from kairos.http.adapters.api_keys import DynamoApiKeyStore
from kairos_local.template import ROOT

BUNDLED = json.loads((ROOT / "models" / "default" / "metadata.json").read_text())


def test_models_current_answers_the_bundled_models_card(client):
    # WHEN nothing is published and the model in service is asked for
    resp = client.request("GET", "/v1/models/current")
    # THEN it is the bundled model, with its training and the figures of its card
    assert resp.status == 200, resp.body
    card = resp.json()
    assert card["source"] == "bundled" and card["published_version"] is None
    assert card["version"] == BUNDLED["model_version"]
    assert card["trained_at"] == BUNDLED["trained_at"]
    assert card["training_window"] == BUNDLED["training_window"]
    assert card["customers"] == BUNDLED["customers"]
    main = card["evaluations"]["main"]
    kairos = BUNDLED["metrics"]["main"]["time"]["methods"]["Kairos"]
    assert main["send_time"]["Kairos"]["hit_within_1h"] == kairos["hit_within_1h"]
    assert main["send_time"]["Kairos"]["log_likelihood"] == kairos["log_likelihood"]
    assert main["strongest_baseline"] == BUNDLED["metrics"]["main"]["strongest_time_baseline"]
    assert set(main["calibration"]) == {"0", "1-2", "3-9", "10+"}
    assert main["lifecycle"]["methods"]["BG/NBD + Gamma-Gamma"]["auc"] > 0
    assert set(card["calibration_fit"]) == set(BUNDLED["calibration_fit"])
    assert card["lifecycle"]["brier_calibrated"] == BUNDLED["lifecycle"]["calibration_fit"]["brier_calibrated"]


def test_models_current_follows_the_newest_published_version(runtime, client):
    # GIVEN two versions published to the models bucket (only their metadata matters here)
    s3 = runtime.session.client("s3")
    bucket = runtime.dep.physical["ModelsBucket"]
    for version, trained in (("20261101T000000Z-a", "2026-11-01T00:00:00+00:00"), ("20261122T000000Z-b", None)):
        meta = {**BUNDLED, "model_version": f"kairos-{version}", "trained_at": trained or BUNDLED["trained_at"]}
        meta["metrics"] = {"main": {**BUNDLED["metrics"]["main"], "off_policy": None}}
        if version.endswith("b"):
            estimate = {"policy": "kairos", "ips": 0.12, "snips": 0.11, "matched": 40, "rows": 300}
            meta["metrics"]["main"]["off_policy"] = {"sends": 300, "estimates": [estimate]}
        s3.put_object(Bucket=bucket, Key=f"models/{version}/metadata.json", Body=json.dumps(meta).encode())
    # WHEN the model in service is asked for
    resp = client.request("GET", "/v1/models/current")
    # THEN it is the newest published version, with its off-policy estimates
    assert resp.status == 200, resp.body
    card = resp.json()
    assert card["source"] == "published" and card["published_version"] == "20261122T000000Z-b"
    assert card["version"] == "kairos-20261122T000000Z-b"
    assert card["evaluations"]["main"]["off_policy"]["sends"] == 300
    assert card["evaluations"]["main"]["off_policy"]["estimates"][0]["ips"] == 0.12
    assert "holdout" not in card["evaluations"]


def test_models_current_needs_the_read_scope(runtime, client):
    # GIVEN a key with the ingest scope only
    keys = DynamoApiKeyStore(runtime.dep.physical["ApiKeysTable"], runtime.session.client("dynamodb"))
    _, key = keys.create("tracker", scopes=["ingest"])
    # WHEN it asks for the model  THEN it is refused, naming the scope
    resp = client.request("GET", "/v1/models/current", headers={"Authorization": f"Bearer {key}"})
    assert resp.status == 403 and resp.json()["message"].startswith("missing scope 'read'")
