"""``python -m training``: adapt datasets, train, evaluate, predict, write the model card, and report insights.

Run ``python -m training <command> --help`` for each command's options; ``training/README.md``
has worked examples. Every command reports its progress on stderr (``--quiet``: not); results go to stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from kairos.models.serving import CustomerInput, KairosModel
from training import progress
from training.adapters import find_online_retail_files, online_retail_records
from training.fit import TrainConfig, peak_mb
from training.io import load_table, write_jsonl

log = logging.getLogger("training")


def parse_time(value: str) -> datetime:
    """ISO date or timestamp; without an offset it is read as UTC."""
    ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def _config(args: argparse.Namespace) -> TrainConfig:
    if not 0 < args.customer_sample <= 1:
        raise SystemExit("--customer-sample: a share in (0, 1]")
    return TrainConfig(
        threads=args.threads or 0,
        time_rounds=args.time_rounds,
        product_rounds=args.product_rounds,
        customer_sample=args.customer_sample,
        memory_mb=1024 * args.memory_gb if args.memory_gb else 0.0,
    )


def _history(args: argparse.Namespace):
    from training.history import History

    t0 = time.monotonic()
    progress.step("reading events from %s", " ".join(args.events))
    data = load_table(args.events, getattr(args, "profiles", None))
    if not len(data.table):
        raise SystemExit("no valid events found in " + " ".join(args.events))
    progress.step("indexing %s events", f"{len(data.table):,}")
    history = History(data.table, data.profiles)
    progress.step(
        "history: %s events of %s customers (%s rejected), %.0f MB of columns",
        f"{len(data.table):,}",
        f"{len(history.customers):,}",
        f"{data.rejected:,}",
        data.table.nbytes / 2**20,
    )
    args.history = history  # the message log's engagement labels come from the same events
    log.info(
        "loaded %d events of %d customers (%d rejected) in %.1f s, %.0f MB of columns (peak %.0f MB)",
        len(data.table),
        len(history.customers),
        data.rejected,
        time.monotonic() - t0,
        data.table.nbytes / 2**20,
        peak_mb(),
    )
    return history


def cmd_adapt(args: argparse.Namespace) -> int:
    if args.dataset != "online-retail":
        raise SystemExit(f"unknown dataset {args.dataset}")
    files = find_online_retail_files([Path(p) for p in args.input])
    if not files:
        raise SystemExit("no Online Retail II CSV found in " + " ".join(args.input))
    progress.step("reading %s", ", ".join(p.name for p in files))
    events, profiles = online_retail_records(files)
    progress.step("read %s events of %s customers", f"{len(events):,}", f"{len(profiles):,}")
    n = write_jsonl(args.out, events)
    profiles_out = args.profiles_out or str(Path(args.out).with_name("profiles.jsonl"))
    m = write_jsonl(profiles_out, profiles)
    print(f"wrote {n} events to {args.out} and {m} profiles to {profiles_out}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from training.fit import fit

    cfg = _config(args)
    if args.cluster:
        from training.distributed import connect, fit_distributed

        cfg = _cluster_config(cfg)
        with connect(args.cluster, args.workers) as client:
            end = parse_time(args.end) if args.end else None
            model = fit_distributed(args.events, args.profiles, end, cfg, client, args.shards)
        if args.messages:
            _history(args)  # the events naming messages label the log; read here, on the client
    else:
        history = _history(args)
        end = parse_time(args.end) if args.end else history.end + timedelta(seconds=1)
        model = fit(history, end, cfg)
    rows = _message_rows(args)
    if rows:
        from training.ope import render_table
        from training.response import learn_from_messages

        estimates = learn_from_messages(model, rows, getattr(args, "history", None))
        print(f"response model from {len(rows)} logged sends; off-policy estimates:\n\n{render_table(estimates)}\n")
    model.save(args.out)
    print(f"model {model.version} written to {args.out} ({model.metadata['training_seconds']} s)")
    if args.cluster:
        print(client_memory_line(model.metadata["cluster"]))
    return 0


def _cluster_config(cfg: TrainConfig) -> TrainConfig:
    if cfg.memory_mb:
        log.warning("--memory-gb is for one machine: on a cluster the rows stay on the workers (add workers instead)")
    return replace(cfg, memory_mb=0.0)


def client_memory_line(cluster: dict) -> str:
    """The client's peak resident memory (this process: with ``--cluster local`` also the scheduler's) against
    the rows of the largest shard and of all shards, which stay on the workers."""
    return (
        f"client peak RSS: {peak_mb():,.0f} MB; largest shard rows: {cluster['largest_shard_rows']:,} "
        f"({cluster['largest_shard_mb']:,.0f} MB); all shards: {cluster['rows']:,} rows ({cluster['rows_mb']:,.0f} MB) "
        f"on {cluster['workers']} workers (largest worker peak RSS: {cluster['worker_peak_mb']:,} MB)"
    )


def _message_rows(args: argparse.Namespace) -> list[dict]:
    """Labelled, propensity-weighted rows of the message log given with ``--messages`` (none without it)."""
    if not getattr(args, "messages", None):
        return []
    from training.io import message_training_rows, read_messages

    events = args.history.message_events()
    return message_training_rows(read_messages(args.messages), events, timedelta(hours=args.window_hours))


def cmd_evaluate(args: argparse.Namespace) -> int:
    from training.evaluate import evaluate, render_markdown

    history = _history(args)
    cfg = _config(args)
    if args.cluster:
        from training.distributed import connect, fit_distributed

        cfg = _cluster_config(cfg)
        with connect(args.cluster, args.workers) as client:
            result = evaluate(
                history,
                parse_time(args.cutoff),
                args.test_days,
                cfg,
                _message_rows(args),
                trainer=lambda end: fit_distributed(args.events, args.profiles, end, cfg, client, args.shards),
            )
    else:
        result = evaluate(history, parse_time(args.cutoff), args.test_days, cfg, _message_rows(args))
    markdown = render_markdown(result)
    print(markdown)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from training.history import Folder

    model = KairosModel.load(args.model)
    history = _history(args)
    as_of = parse_time(args.as_of)
    aggs = Folder(history).advance(as_of)
    cids = sorted(set(history.customers) | set(history.profiles))
    inputs = [CustomerInput(c, aggs.get(c) or history.empty_aggregates(c), history.attributes(c)) for c in cids]
    out = []
    meter = progress.Meter("scoring", len(inputs), "customers")
    for start in range(0, len(inputs), args.batch_size):
        batch = inputs[start : start + args.batch_size]
        for c, r in zip(batch, model.recommend(batch, as_of, args.top_k), strict=True):
            # The zone the hours of week are in: the profile's, or the one the events' offsets imply.
            out.append({**r.to_dict(), "timezone": c.aggregates.effective_timezone})
        meter.update(len(out))
    n = write_jsonl(args.out, out)
    print(f"wrote {n} recommendations to {args.out}")
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    from training.card import write_card
    from training.evaluate import evaluate, render_markdown

    history = _history(args)
    cfg = _config(args)
    results = {}
    rows = _message_rows(args)
    for k, (name, cutoff) in enumerate((("main", args.cutoff), ("holdout", args.holdout_cutoff)), 1):
        progress.step("model card: %s split (%d of 2), cutoff %s", name, k, cutoff)
        results[name] = evaluate(history, parse_time(cutoff), args.test_days, cfg, rows if name == "main" else None)
        print(f"## {name} split\n\n{render_markdown(results[name])}")
    write_card(Path(args.model), results)
    print(f"model card written to {Path(args.model) / 'MODEL_CARD.md'}")
    return 0


def cmd_insights(args: argparse.Namespace) -> int:
    from training.insights import compute_insights, render_markdown, write_html

    history = _history(args)
    as_of = parse_time(args.as_of) if args.as_of else history.end + timedelta(seconds=1)
    result = compute_insights(history, as_of, args.by, args.forecast_start, args.forecast_days)
    print(render_markdown(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if args.html:
        write_html(result, args.html)
        print(f"\nreport written to {args.html}")
    return 0


def _cohort_by(value: str) -> str:
    if value == "first_purchase_month" or (value.startswith("attributes.") and len(value) > len("attributes.")):
        return value
    raise argparse.ArgumentTypeError("use first_purchase_month or attributes.<name>")


def _positive_int(value: str) -> int:
    n = int(value)
    if n <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of days")
    return n


def cmd_publish(args: argparse.Namespace) -> int:
    from kairos.models.adapters.model_store import publish_model

    meta = json.loads((Path(args.model) / "metadata.json").read_text())
    # Versions sort by name and the score function takes the newest: lead with the UTC publication time.
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    version = args.version or f"{stamp}-{meta.get('model_version', Path(args.model).name)}"
    print(publish_model(args.model, args.bucket, version))
    return 0


def cmd_messages(args: argparse.Namespace) -> int:
    from training.io import load_events, message_training_rows, read_messages, write_jsonl

    messages = read_messages(args.messages)
    events = load_events(args.events).events if args.events else []
    rows = message_training_rows(messages, events, timedelta(hours=args.window_hours))
    n = write_jsonl(args.out, rows)
    sent = sum(1 for m in messages if m.status == "sent")
    engaged = sum(1 for r in rows if r["engaged"])
    print(f"{len(messages)} messages ({sent} sent), {n} training rows, {engaged} engaged -> {args.out}")
    from training.ope import evaluate_policies, render_table

    print("\nOff-policy estimates of the engagement rate per send (logged sends with a propensity):\n")
    print(render_table(evaluate_policies(rows)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log details (timings, memory, settings)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    def events_args(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--events",
            nargs="+",
            required=True,
            help="event files or directories (.jsonl, .jsonl.gz, .parquet, Online Retail II .csv[.gz]) or s3://bucket/prefix",
        )
        p.add_argument("--profiles", help="profile JSON Lines: customer_id, timezone, attributes")
        p.add_argument(
            "--threads",
            type=int,
            default=None,
            help="LightGBM threads (default: the cores other work leaves free; with --cluster, per worker process, "
            "default: the worker's threads)",
        )

    def train_args(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--messages",
            nargs="+",
            help="the message log archive (s3://<archive>/messages/ or local copies): fits the response model "
            "(channel rates, decision windows) and prints off-policy estimates of send-time policies",
        )
        p.add_argument("--window-hours", type=float, default=24.0, help="an engagement this long after a send counts")
        p.add_argument(
            "--cluster",
            help="train on a Dask cluster: 'local' (a LocalCluster, one worker per free core) or a scheduler "
            "address (tcp://host:8786); customers are sharded over the workers, which build the rows and train the "
            "boosters (LightGBM data-parallel, one machine per worker process): the client holds no training row",
        )
        p.add_argument("--shards", type=int, help="customer shards on the cluster (default: two per worker)")
        p.add_argument("--workers", type=int, help="--cluster local: worker processes (default: one per free core)")
        defaults = TrainConfig()
        p.add_argument("--time-rounds", type=int, default=defaults.time_rounds, help="boosting rounds, send time")
        p.add_argument(
            "--customer-sample",
            type=float,
            default=defaults.customer_sample,
            help="share of customers whose snapshots become training rows (recorded in the model card)",
        )
        p.add_argument(
            "--memory-gb",
            type=float,
            help="a memory budget: the customer sample is lowered so that the training rows fit (one machine; "
            "not used with --cluster, where the rows stay on the workers)",
        )
        p.add_argument("--product-rounds", type=int, default=defaults.product_rounds, help="boosting rounds, products")

    p = sub.add_parser("adapt", help="turn a public dataset into event and profile JSON Lines")
    p.add_argument("dataset", choices=["online-retail"])
    p.add_argument("--input", nargs="+", default=["../shared/data/online_retail_ii"], help="dataset files or directory")
    p.add_argument("--out", required=True, help="events output (.jsonl or .jsonl.gz)")
    p.add_argument("--profiles-out", help="profiles output (default: profiles.jsonl beside --out)")
    p.set_defaults(func=cmd_adapt)

    p = sub.add_parser("train", help="train a model directory")
    events_args(p)
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--end", help="use only events before this time (default: all)")
    train_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="time-split evaluation against baselines")
    events_args(p)
    p.add_argument("--cutoff", default="2011-09-01", help="end of training history (UTC unless an offset is given)")
    p.add_argument("--test-days", type=int, default=92)
    p.add_argument("--json", help="also write the full result as JSON here")
    train_args(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="score every customer with a model")
    events_args(p)
    p.add_argument("--model", required=True, help="model directory")
    p.add_argument("--as-of", required=True, help="scoring time; events before it are the history")
    p.add_argument("--out", required=True, help="output JSON Lines")
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=1000)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("card", help="evaluate on the main and holdout splits and write MODEL_CARD.md")
    events_args(p)
    p.add_argument("--model", required=True, help="model directory (metadata.json gets the metrics)")
    p.add_argument("--cutoff", default="2011-09-01")
    p.add_argument("--holdout-cutoff", default="2010-09-01")
    p.add_argument("--test-days", type=int, default=92)
    train_args(p)
    p.set_defaults(func=cmd_card)

    p = sub.add_parser("insights", help="RFM groups, cohorts and a forecast; Markdown, JSON and an HTML report")
    events_args(p)
    p.add_argument("--as-of", help="events before this time count (default: just after the last event)")
    p.add_argument(
        "--by",
        type=_cohort_by,
        default="first_purchase_month",
        help="cohorts: first_purchase_month or attributes.<name>",
    )
    p.add_argument(
        "--forecast-start",
        type=date.fromisoformat,
        help="first UTC day of the forecast period, YYYY-MM-DD (default: the as-of day)",
    )
    p.add_argument("--forecast-days", type=_positive_int, default=30, help="length of the forecast period")
    p.add_argument("--json", help="also write the full result as JSON here")
    p.add_argument("--html", help="also write a self-contained HTML report with plots here")
    p.set_defaults(func=cmd_insights)

    p = sub.add_parser(
        "messages",
        help="turn the message log archive into labelled, propensity-weighted rows; print off-policy estimates",
    )
    p.add_argument("--messages", nargs="+", required=True, help="s3://<archive>/messages/ or local copies")
    p.add_argument("--events", nargs="*", help="events (for engagement labels): files, directories or s3:// prefixes")
    p.add_argument("--window-hours", type=float, default=24.0, help="engagement within this long after the send")
    p.add_argument("--out", required=True, help="output JSON Lines")
    p.set_defaults(func=cmd_messages)

    p = sub.add_parser("publish", help="upload a model directory to the models bucket; the score function picks it up")
    p.add_argument("--model", required=True, help="model directory")
    p.add_argument("--bucket", required=True, help="the stack's ModelsBucketName output")
    p.add_argument("--version", help="version name (default: <UTC time>-<model_version>)")
    p.set_defaults(func=cmd_publish)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(name)s %(message)s"
    )
    handler = None if args.quiet else progress.enable()
    try:
        code = args.func(args)
        progress.step("done")
        return code
    finally:
        if handler is not None:
            progress.log.removeHandler(handler)


if __name__ == "__main__":
    sys.exit(main())
