"""Smoke test of an ml layer build: import, train with OpenMP threads, round-trip a model, predict dense and sparse.

Run it with nothing but the layer on the path, e.g. ``PYTHONPATH=<layer>/python python3.12 -S smoke.py`` (``make
smoke`` does that with this machine's own wheels). It prints where the OpenMP runtime was loaded from and which
scipy subpackages the run imported, so a trimmed layer can be compared with what lightgbm really uses.
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np
import scipy.sparse

rng = np.random.default_rng(7)
features = rng.random((2000, 8))
labels = (features[:, 0] + 0.2 * rng.random(2000) > 0.6).astype(float)
params = {"objective": "binary", "num_threads": 2, "verbose": -1, "deterministic": True, "seed": 7}
booster = lgb.train(params, lgb.Dataset(features, labels), num_boost_round=20)
reloaded = lgb.Booster(model_str=booster.model_to_string())

dense = reloaded.predict(features[:200])
sparse = reloaded.predict(scipy.sparse.csr_matrix(features[:200]))
accuracy = float(((dense > 0.5) == (labels[:200] > 0.5)).mean())
assert np.allclose(dense, sparse), "dense and sparse predictions differ"
assert accuracy > 0.9, f"accuracy {accuracy:.3f}: the booster did not learn"

maps = Path("/proc/self/maps")
openmp = sorted({line.split()[-1] for line in maps.read_text().splitlines() if "gomp" in line}) if maps.exists() else []
scipy_parts = sorted({".".join(m.split(".")[:2]) for m in sys.modules if m.startswith("scipy.")})
print(f"python {sys.version.split()[0]}, lightgbm {lgb.__version__}, numpy {np.__version__}, scipy {scipy.__version__}")
print(f"accuracy {accuracy:.3f}; OpenMP runtime: {', '.join(openmp) or 'not mapped'}")
print(f"scipy subpackages imported: {', '.join(scipy_parts)}")
print("smoke OK")
