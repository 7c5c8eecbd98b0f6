"""Does retraining on the message log keep or improve the policy? The closed loop (``make demo``) over five seeds.

Each seed runs ``python -m kairos_local.closed_loop`` in its own process (the documented settings: 150 simulated
customers, 150 boosting rounds, two rounds a week apart; ``--customers`` and ``--time-rounds`` make it faster)
and reads its ``report.json``. Per seed it prints round 1 against round 2 (the model retrained on round 1's
message log and its opens) for the optimized arm: the expected first-message open probability of the hours it
chose (the simulated customers' true response, no sampling noise) and the realized opens; and the off-policy
estimate (SNIPS, 95% interval) of the retrained model's decision on round 1's logged first sends against the
logged policy's interval on the same sends (``training/ope.py``). The last line is the key figure.

    .venv/bin/python bench/loop_seeds.py                       # seeds 1-5, about 4 minutes a seed on 2 cores
    .venv/bin/python bench/loop_seeds.py --seeds 7 --customers 70 --time-rounds 60
    .venv/bin/python bench/loop_seeds.py --reuse               # print again from the reports already written
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RETRAINED = "retrained model"


def run_seed(seed: int, args: argparse.Namespace) -> dict[str, Any]:
    out = args.out / f"seed{seed}"
    report = out / "report.json"
    if not (args.reuse and report.exists()):
        cmd = [sys.executable, "-m", "kairos_local.closed_loop", "--seed", str(seed), "--out", str(out)]
        cmd += ["--customers", str(args.customers), "--time-rounds", str(args.time_rounds)]
        t0 = time.perf_counter()
        with (args.out / f"seed{seed}.log").open("w") as log:
            subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)
        print(f"seed {seed}: ran in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return json.loads(report.read_text())


def figures(report: dict[str, Any]) -> dict[str, Any]:
    """Round 1 and 2 of the optimized arm, and the off-policy estimates the round-2 model was trained with."""
    first, second = (r["arms"]["optimized"] for r in report["summary"][:2])
    ope = {e["policy"]: e for e in (report["rounds"][1]["model"].get("off_policy") or {}).get("estimates", [])}
    logged, retrained = ope.get("logged") or {}, ope.get(RETRAINED) or {}
    snips, low, high = retrained.get("snips"), logged.get("snips_low"), logged.get("snips_high")
    where = None
    if None not in (snips, low, high):
        where = "below" if snips < low else ("above" if snips > high else "within")
    return {
        "e1": first["expected_first_open"],
        "e2": second["expected_first_open"],
        "open1": first["opened_rate"],
        "open2": second["opened_rate"],
        "logged": logged,
        "retrained": retrained,
        "where": where,
    }


def _pct(v: float | None) -> str:
    return "  n/a" if v is None else f"{100 * v:5.1f}%"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--customers", type=int, default=150)
    parser.add_argument("--time-rounds", type=int, default=150)
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "loop_seeds")
    parser.add_argument("--reuse", action="store_true", help="read a seed's report.json when it exists")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"closed loop, {args.customers} customers, {args.time_rounds} boosting rounds, seeds {args.seeds}")
    print(
        f"{'seed':>4} {'E[1st open] r1':>15} {'r2':>7} {'opens r1':>9} {'r2':>7}"
        f" {'retrained SNIPS':>16} {'(sends)':>9} {'logged interval':>17}  OPE"
    )
    rows = []
    for seed in args.seeds:
        f = figures(run_seed(seed, args))
        rows.append(f)
        ret, log = f["retrained"], f["logged"]
        matched = f"{ret.get('matched', 0)}/{ret.get('rows', 0)}"
        print(
            f"{seed:>4} {_pct(f['e1']):>15} {_pct(f['e2']):>7} {_pct(f['open1']):>9} {_pct(f['open2']):>7}"
            f" {_pct(ret.get('snips')):>16} {matched:>9}"
            f" {_pct(log.get('snips_low')).strip() + '-' + _pct(log.get('snips_high')).strip():>17}  {f['where']}",
            flush=True,
        )
    gain = sum(f["e2"] - f["e1"] for f in rows) / len(rows)
    kept = sum(1 for f in rows if f["where"] in ("within", "above"))
    realized = sum(f["open2"] - f["open1"] for f in rows) / len(rows)
    print(
        f"mean round 2 - round 1 optimized E[1st open]: {100 * gain:+.1f} points"
        f" (realized opens {100 * realized:+.1f}); retrained decision's OPE within or above the logged interval"
        f" on {kept} of {len(rows)} seeds"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
