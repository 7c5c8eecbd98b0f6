"""The send-time model on a shop in another zone, with and without profiles that give it.

Online Retail II's invoices are moved to the same wall-clock times in another zone (default America/New_York:
offsets -05:00 and -04:00), then evaluated on one time split twice: with profiles that give the zone (and the
country), and with no profile at all, where every customer's zone must come from their events' offsets. Prints
the hit rate within one hour and the log-likelihood per history bucket for both, and on the last line the
ratios of the run without profiles to the run with them (1.000 is the goal: the zone inferred from the events
serves as well as the zone given).

    .venv/bin/python bench/zone_from_events.py [--data ../shared/data/online_retail_ii] [--zone America/New_York]
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.__main__ import main as _training  # noqa: E402

BUCKETS = ("0", "1-2", "3-9", "10+", "overall")


def training(args: list[str]) -> int:
    """``python -m training`` with its printed results set aside (the bench prints its own)."""
    with contextlib.redirect_stdout(io.StringIO()):
        return _training(args)


def move(data: str, zone: str, out: Path) -> None:
    """Adapt the dataset, then write its events at the same wall-clock times in ``zone`` and profiles naming it."""
    assert training(["--quiet", "adapt", "online-retail", "--input", data, "--out", str(out / "home.jsonl.gz")]) == 0
    tz = ZoneInfo(zone)
    with gzip.open(out / "home.jsonl.gz", "rt") as src, gzip.open(out / "moved.jsonl.gz", "wt") as dst:
        for line in src:
            e = json.loads(line)
            wall = datetime.fromisoformat(e["timestamp"]).replace(tzinfo=None)
            e["timestamp"] = wall.replace(tzinfo=tz).isoformat()
            dst.write(json.dumps(e) + "\n")
    profiles = [json.loads(x) for x in (out / "profiles.jsonl").read_text().splitlines()]
    (out / "moved_profiles.jsonl").write_text("".join(json.dumps({**p, "timezone": zone}) + "\n" for p in profiles))


def evaluate(out: Path, cutoff: str, profiles: bool, threads: int) -> dict:
    name = "given" if profiles else "inferred"
    args = ["--quiet", "evaluate", "--events", str(out / "moved.jsonl.gz"), "--cutoff", cutoff, "--test-days", "92"]
    if profiles:
        args += ["--profiles", str(out / "moved_profiles.jsonl")]
    assert training([*args, "--threads", str(threads), "--json", str(out / f"{name}.json")]) == 0
    return json.loads((out / f"{name}.json").read_text())["time"]


def row(label: str, values: dict) -> str:
    return f"| {label} | " + " | ".join("—" if values[b] is None else f"{values[b]:.3f}" for b in BUCKETS) + " |"


def run(data: str, zone: str, cutoff: str, threads: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        move(data, zone, out)
        given = evaluate(out, cutoff, True, threads)
        inferred = evaluate(out, cutoff, False, threads)
    print(f"Online Retail II moved to {zone}, cut-off {cutoff}, test 92 days")
    print("| run | " + " | ".join(BUCKETS) + " |\n|---|" + "---:|" * len(BUCKETS))
    for label, res in (("zone from profiles", given), ("zone from events", inferred)):
        m = res["methods"]
        print(row(f"{label}: Kairos hit within 1 h", m["Kairos"]["hit_within_1h"]))
        print(row(f"{label}: most frequent hour", m["modal hour (Braze-style)"]["hit_within_1h"]))
        print(row(f"{label}: Kairos log-likelihood", m["Kairos"]["log_likelihood"]))
        print(row(f"{label}: global distribution LL", m["global best hour"]["log_likelihood"]))
    g, i = given["methods"]["Kairos"], inferred["methods"]["Kairos"]
    hit = i["hit_within_1h"]["overall"] / g["hit_within_1h"]["overall"]
    ll = i["log_likelihood"]["overall"] - g["log_likelihood"]["overall"]
    print(
        f"zone from events vs from profiles: hit within 1 h {i['hit_within_1h']['overall']:.3f} vs "
        f"{g['hit_within_1h']['overall']:.3f} ({hit:.3f}×), log-likelihood {i['log_likelihood']['overall']:.3f} vs "
        f"{g['log_likelihood']['overall']:.3f} ({ll:+.3f})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "online_retail_ii"))
    parser.add_argument("--zone", default="America/New_York")
    parser.add_argument("--cutoff", default="2011-09-01")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    run(args.data, args.zone, args.cutoff, args.threads)
