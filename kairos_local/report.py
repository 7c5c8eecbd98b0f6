"""The closed-loop demo's results: a table for the terminal, an HTML report with plots, and report.json.

Rates are shares of each arm's customers (the control group's are what they would have done anyway);
intervals are 95% Wilson score intervals; uplift is the difference of rates against control, in points.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

from kairos.insights.stats import uplift_interval, wilson

ARMS = ("optimized", "fixed", "control")
OUTCOMES = ("opened", "clicked", "purchased")


def summary(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per round and arm: rates with intervals and uplift over control (what tests and plots read)."""
    out = []
    for rnd in results.get("rounds", []):
        arms = rnd.get("arms", {})
        ctrl = arms.get("control") or {}
        ctrl_n = int(ctrl.get("customers") or 0)
        row: dict[str, Any] = {"round": rnd.get("name"), "arms": {}}
        for arm in ARMS:
            a = arms.get(arm)
            if not a:
                continue
            n = int(a.get("customers") or 0)
            stats: dict[str, Any] = {"customers": n, "messaged": int(a.get("messaged") or 0)}
            for k in OUTCOMES:
                hits = int(a.get(k) or 0)
                rate = hits / n if n else math.nan
                stats[f"{k}_rate"] = rate
                stats[f"{k}_ci"] = wilson(hits, n)
                base = (int(ctrl.get(k) or 0) / ctrl_n) if ctrl_n else math.nan
                stats[f"{k}_uplift"] = rate - base if arm != "control" else 0.0
                if arm != "control":
                    stats[f"{k}_uplift_ci"] = uplift_interval(hits, n, int(ctrl.get(k) or 0), ctrl_n)
            stats["expected_first_open"] = a.get("expected_first_open")
            stats["oracle_first_open"] = a.get("oracle_first_open")
            row["arms"][arm] = stats
        row["oracle_first_open"] = rnd.get("oracle_first_open")
        row["oracle_any_hour_first_open"] = rnd.get("oracle_any_hour_first_open")
        row["captured_oracle_gain"] = rnd.get("captured_oracle_gain")
        out.append(row)
    return out


def _pct(x: Any) -> str:
    return "   -  " if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:5.1f}%"


def format_table(results: dict[str, Any]) -> str:
    lines = []
    cfg = results.get("config", {})
    lines.append(f"Kairos closed loop: {cfg.get('customers', '?')} simulated customers, seed {cfg.get('seed', '?')}")
    for row, rnd in zip(summary(results), results.get("rounds", []), strict=False):
        lines.append("")
        version = (rnd.get("model") or {}).get("model_version", "?")
        lines.append(f"{row['round']} (model {version}, fixed hour {rnd.get('fixed_hour')}:00 local)")
        lines.append(
            f"{'arm':<10} {'cust':>5} {'msgd':>5} {'opened':>7} {'95% CI':>15} {'clicked':>8} {'bought':>7}"
            f" {'uplift open':>12} {'uplift buy':>11} {'E[1st open]':>12}"
        )
        for arm, s in row["arms"].items():
            lo, hi = s["opened_ci"]
            lines.append(
                f"{arm:<10} {s['customers']:>5} {s['messaged']:>5} {_pct(s['opened_rate']):>7}"
                f" {_pct(lo) + '-' + _pct(hi).strip():>15} {_pct(s['clicked_rate']):>8} {_pct(s['purchased_rate']):>7}"
                f" {_pct(s['opened_uplift']) if arm != 'control' else '':>12}"
                f" {_pct(s['purchased_uplift']) if arm != 'control' else '':>11} {_pct(s['expected_first_open']):>12}"
            )
        lines.append(
            f"{'oracle':<10} (each customer's true best hour in the optimizer's window) E[1st open]"
            f" {_pct(row['oracle_first_open'])}; any hour of the week {_pct(row.get('oracle_any_hour_first_open'))}"
        )
        if row.get("captured_oracle_gain") is not None:
            lines.append(
                f"optimized captures {100 * row['captured_oracle_gain']:.0f}% of the window oracle's gain over fixed"
            )
        ope = (rnd.get("model") or {}).get("off_policy")
        if ope:
            from training.ope import Estimate, render_table

            lines.append(
                f"off-policy estimates of send-time policies on the {ope['sends']} logged sends the model was "
                "retrained with (engagement per send; each journey's first send of the exploring arm):"
            )
            lines.append(render_table([Estimate(**e) for e in ope["estimates"]]))
    rows = summary(results)
    if len(rows) >= 2:
        a = rows[0]["arms"].get("optimized", {})
        b = rows[-1]["arms"].get("optimized", {})
        lines.append("")
        lines.append(
            f"after retraining: optimized open rate {_pct(a.get('opened_rate'))} -> {_pct(b.get('opened_rate'))},"
            f" uplift over control {_pct(a.get('opened_uplift'))} -> {_pct(b.get('opened_uplift'))}"
        )
    if "seconds" in results:
        lines.append(f"ran in {results['seconds']:.0f} s")
    return "\n".join(lines)


def _table(head: list[str], rows: list[list[str]]) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def html_tables(results: dict[str, Any]) -> str:
    """The numbers of :func:`format_table` as HTML tables: each round's arms, the oracle, the off-policy estimates."""
    out = []
    cfg = results.get("config", {})
    out.append(f"<p>{cfg.get('customers', '?')} simulated customers, seed {cfg.get('seed', '?')}.</p>")
    for row, rnd in zip(summary(results), results.get("rounds", []), strict=False):
        version = (rnd.get("model") or {}).get("model_version", "?")
        out.append(
            f"<h2>{html.escape(row['round'])}</h2><p>model {html.escape(str(version))}, fixed hour "
            f"{html.escape(str(rnd.get('fixed_hour')))}:00 local</p>"
        )
        rows = []
        for arm, a in row["arms"].items():
            lo, hi = a["opened_ci"]
            rows.append(
                [
                    arm,
                    str(a["customers"]),
                    str(a["messaged"]),
                    _pct(a["opened_rate"]).strip(),
                    f"{_pct(lo).strip()}–{_pct(hi).strip()}",
                    _pct(a["clicked_rate"]).strip(),
                    _pct(a["purchased_rate"]).strip(),
                    _pct(a["opened_uplift"]).strip() if arm != "control" else "",
                    _pct(a["purchased_uplift"]).strip() if arm != "control" else "",
                    _pct(a["expected_first_open"]).strip(),
                ]
            )
        head = ["arm", "customers", "messaged", "opened", "95% CI", "clicked", "bought", "uplift open"]
        out.append(_table([*head, "uplift buy", "E[1st open]"], rows))
        oracle = (
            f"Oracle (each customer's true best hour in the optimizer's window): E[1st open] "
            f"{_pct(row['oracle_first_open']).strip()}; any hour of the week "
            f"{_pct(row.get('oracle_any_hour_first_open')).strip()}."
        )
        if row.get("captured_oracle_gain") is not None:
            oracle += f" Optimized captures {100 * row['captured_oracle_gain']:.0f}% of its gain over fixed."
        out.append(f"<p>{html.escape(oracle)}</p>")
        ope = (rnd.get("model") or {}).get("off_policy")
        if ope:
            out.append(
                f"<p>Off-policy estimates of send-time policies on the {int(ope['sends'])} logged sends the model was "
                "retrained with (engagement per send; each journey's first send of the exploring arm):</p>"
            )

            def pct(v: Any) -> str:
                return "n/a" if v is None else f"{100 * v:.1f}%"

            out.append(
                _table(
                    ["policy", "IPS", "95% interval", "SNIPS", "95% interval", "sends at its hour"],
                    [
                        [
                            str(e["policy"]),
                            pct(e.get("ips")),
                            f"{pct(e.get('ips_low'))}–{pct(e.get('ips_high'))}",
                            pct(e.get("snips")),
                            f"{pct(e.get('snips_low'))}–{pct(e.get('snips_high'))}",
                            f"{e.get('matched')} of {e.get('rows')}",
                        ]
                        for e in ope["estimates"]
                    ],
                )
            )
    if "seconds" in results:
        out.append(f"<p>Ran in {results['seconds']:.0f} s.</p>")
    return "".join(out)


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}"/>'


def _plots(results: dict[str, Any]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = summary(results)
    rounds = results.get("rounds", [])
    out = []
    if rows:
        fig, axes = plt.subplots(1, len(rows), figsize=(5 * len(rows), 3.4), squeeze=False)
        for ax, row in zip(axes[0], rows, strict=True):
            arms = list(row["arms"])
            x = np.arange(len(OUTCOMES))
            for j, arm in enumerate(arms):
                s = row["arms"][arm]
                rates = [s[f"{k}_rate"] for k in OUTCOMES]
                err = np.nan_to_num(
                    np.clip(
                        [
                            [r - s[f"{k}_ci"][0] for r, k in zip(rates, OUTCOMES, strict=True)],
                            [s[f"{k}_ci"][1] - r for r, k in zip(rates, OUTCOMES, strict=True)],
                        ],
                        0.0,
                        None,
                    )
                )
                ax.bar(x + (j - 1) * 0.27, rates, 0.27, yerr=err, capsize=3, label=arm)
            if row.get("oracle_first_open") is not None:
                ax.axhline(row["oracle_first_open"], color="k", ls="--", lw=1, label="oracle E[first open]")
            ax.set_xticks(x, OUTCOMES)
            ax.set_title(f"{row['round']}: share of customers (95% CI)")
            ax.legend(fontsize=7)
        out.append(("Engagement by arm", _png(fig)))

        fig, ax = plt.subplots(figsize=(6, 3.2))
        for j, arm in enumerate(("optimized", "fixed")):
            vals = [r["arms"].get(arm, {}).get("opened_uplift", np.nan) * 100 for r in rows]
            ax.bar(np.arange(len(rows)) + (j - 0.5) * 0.35, vals, 0.35, label=arm)
        ax.set_xticks(np.arange(len(rows)), [r["round"] for r in rows])
        ax.set_ylabel("open-rate uplift over control (points)")
        ax.set_title("Uplift over control, before and after retraining")
        ax.axhline(0, color="k", lw=0.5)
        ax.legend(fontsize=7)
        out.append(("Uplift over control and after retraining", _png(fig)))

        fig, axes = plt.subplots(1, len(rounds), figsize=(5 * len(rounds), 3.2), squeeze=False)
        for ax, rnd in zip(axes[0], rounds, strict=True):
            for j, arm in enumerate(("optimized", "fixed")):
                steps = (rnd.get("arms", {}).get(arm) or {}).get("by_step") or {}
                names = list(steps)
                sent = [steps[s]["sent"] for s in names]
                opened = [steps[s]["opened"] for s in names]
                x = np.arange(len(names))
                ax.bar(x + (j - 0.5) * 0.35, sent, 0.35, alpha=0.35, label=f"{arm} sent")
                ax.bar(x + (j - 0.5) * 0.35, opened, 0.35, label=f"{arm} opened")
                ax.set_xticks(x, names)
            ax.set_title(f"{rnd.get('name')}: by channel step")
            ax.legend(fontsize=6)
        out.append(("Engagement by channel step", _png(fig)))

    custs = results.get("customers") or []
    if custs:
        fig, axes = plt.subplots(len(custs), 1, figsize=(9, 1.7 * len(custs)), squeeze=False)
        for ax, c in zip(axes[:, 0], custs, strict=True):
            true = np.asarray(c["true_rhythm"], dtype=float)
            learned = np.asarray(c["learned"], dtype=float)
            ax.plot(true / max(true.sum(), 1e-12), label="true rhythm", lw=1)
            ax.plot(learned / max(learned.sum(), 1e-12), label="learned hour scores", lw=1)
            ax.set_title(f"{c['customer_id']} ({c['timezone']}), local hour of week", fontsize=8)
            ax.set_xticks(range(0, 169, 24), ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", ""], fontsize=7)
        axes[0, 0].legend(fontsize=7)
        fig.tight_layout()
        out.append(("Learned hour distribution against the true rhythm", _png(fig)))
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def write_report(results: dict[str, Any], path: Path) -> Path:
    """Write ``path`` (HTML, plots embedded) and ``report.json`` beside it; return ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = _jsonable({**results, "summary": summary(results)})
    (path.parent / "report.json").write_text(json.dumps(data, indent=2, sort_keys=True))
    sections = "".join(f"<h2>{html.escape(title)}</h2>{img}" for title, img in _plots(results))
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Kairos closed loop</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto}}
table{{border-collapse:collapse;margin:.5em 0 1.5em}}
th,td{{border:1px solid #ccc;padding:.25em .6em;text-align:right}}th:first-child,td:first-child{{text-align:left}}
th{{background:#f5f5f5}}</style>
</head><body><h1>Kairos closed loop on embedded AWS</h1>
<p>Simulated customers drawn from UCI Online Retail II (CC BY 4.0). Arms: <b>optimized</b> (Kairos picks each
customer's hour), <b>fixed</b> (everyone at the population's best local hour), <b>control</b> (held out, never
messaged). The oracle messages every customer at their true best hour among the hours the optimizer could choose
(the same window and quiet hours): the gap to it is the timing model's headroom.</p>
{html_tables(results)}{sections}</body></html>"""
    path.write_text(page)
    return path
