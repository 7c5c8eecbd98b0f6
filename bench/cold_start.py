"""What a cold start imports: the CPU time of importing each function's ``app.py`` next to ``import boto3``.

Usage::

    python bench/cold_start.py [--runs 15] [--functions api,authorizer,advance]

Each measurement is a fresh Python process, started in ``functions/<name>`` (the task root, as Lambda's is) with
the environment a deployed function has: the template's Globals and the function's own variables, resolved with
fake resource names (``kairos_local.template.Deployment``), plus what the Lambda runtime sets (region, function
name, fake credentials, the X-Ray daemon's address: ``Tracing: Active``). The process times ``import app`` with
``time.process_time`` (CPU time of the import alone, not of starting the interpreter); the reference is a fresh
process timing ``import boto3``. One run starts every function and the reference once, in a shuffled order, so
the machine's other work falls on all of them alike; the table shows medians over the runs, each function's
ratio being the median of its per-run ratios to that run's ``import boto3``. Byte code is compiled before the
first run (the layers ship ``.pyc``). The last line is the worst ratio of the API, authorizer and advance
functions.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kairos_local.template import Deployment, load_template  # noqa: E402

FUNCTIONS = ("api", "authorizer", "advance", "trigger", "timer", "feedback", "preferences", "score")
GATED = ("api", "authorizer", "advance")
REFERENCE = "boto3"

# Run in the child: time one import, print CPU and wall seconds.
CHILD = """
import sys, time
cpu, wall = time.process_time(), time.perf_counter()
if sys.argv[1] == "boto3":
    import boto3
else:
    import app
print(time.process_time() - cpu, time.perf_counter() - wall)
"""


def function_ids(template: dict) -> dict[str, str]:
    """Function directory name -> logical id of the function in the template."""
    out = {}
    for lid, res in template["Resources"].items():
        if res["Type"] == "AWS::Serverless::Function":
            out[Path(res["Properties"]["CodeUri"]).name] = lid
    return out


def deployed_env(name: str, template: dict, ids: dict[str, str]) -> dict[str, str]:
    """The environment of function ``name`` as deployed (fake names and credentials); the API's for the
    ``import boto3`` reference."""
    params = {k: str(v.get("Default", "")) for k, v in template.get("Parameters", {}).items()}
    dep = Deployment(prefix="kairos-bench", template=template, region="eu-west-1", parameters=params)
    lid = ids.get(name, ids["api"])
    props = template["Resources"][lid]["Properties"]
    glob = template.get("Globals", {}).get("Function", {})
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_LAMBDA_FUNCTION_NAME": f"kairos-bench-{lid}",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(props.get("MemorySize", glob.get("MemorySize", 128))),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/kairos-bench-{lid}",
        "LAMBDA_TASK_ROOT": str(ROOT / "functions" / name),
        "_HANDLER": props.get("Handler", "app.lambda_handler"),
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_SESSION_TOKEN": "bench",
        "PYTHONDONTWRITEBYTECODE": "1",
        # The kairos package of this checkout, as the layer puts it on the path (/opt/python).
        "PYTHONPATH": str(ROOT),
    }
    if props.get("Tracing", glob.get("Tracing")) == "Active":
        env |= {
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
            "AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000",
            "_AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129",
            "_AWS_XRAY_DAEMON_PORT": "2000",
        }
    return env | dep.function_environment(lid)


def measure(name: str, env: dict[str, str]) -> tuple[float, float]:
    cwd = ROOT / "functions" / (name if name != REFERENCE else "api")
    done = subprocess.run(
        [sys.executable, "-c", CHILD, name], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"importing {name} failed:\n{done.stderr}")
    cpu, wall = done.stdout.split()[-2:]
    return float(cpu), float(wall)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--functions", default=",".join(FUNCTIONS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    names = [n.strip() for n in args.functions.split(",") if n.strip()]

    template = load_template()
    ids = function_ids(template)
    envs = {n: deployed_env(n, template, ids) for n in [REFERENCE, *names]}
    for name in [REFERENCE, *names]:  # write the byte code once, as the layers ship it
        measure(name, {k: v for k, v in envs[name].items() if k != "PYTHONDONTWRITEBYTECODE"})

    rng = random.Random(args.seed)
    samples: dict[str, list[tuple[float, float]]] = {n: [] for n in [REFERENCE, *names]}
    for _ in range(args.runs):
        order = [REFERENCE, *names]
        rng.shuffle(order)
        for name in order:
            samples[name].append(measure(name, envs[name]))

    base = samples[REFERENCE]
    print(f"{'import':12s} {'CPU ms':>8s} {'wall ms':>8s} {'/ boto3':>8s} {'range':>13s}   ({args.runs} runs)")
    ratios: dict[str, float] = {}
    for name in [REFERENCE, *names]:
        per_run = [s[0] / b[0] for s, b in zip(samples[name], base, strict=True)]
        ratios[name] = statistics.median(per_run)
        cpu = statistics.median(s[0] for s in samples[name]) * 1e3
        wall = statistics.median(s[1] for s in samples[name]) * 1e3
        spread = f"{min(per_run):.2f}-{max(per_run):.2f}"
        label = "import boto3" if name == REFERENCE else name
        print(f"{label:12s} {cpu:8.0f} {wall:8.0f} {ratios[name]:8.2f} {spread:>13s}")
    gated = [n for n in GATED if n in ratios]
    if gated:
        worst = max(ratios[n] for n in gated)
        print(f"cold-start import / import boto3 ({', '.join(gated)}): {worst:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
