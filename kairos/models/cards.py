"""The model in service as people read it: what ``python -m training card`` wrote in its ``metadata.json``.

``GET /v1/models/current`` answers :class:`ModelCardView`: the version, when and on what it was trained, and per
evaluation split (``main``, ``holdout``) the send-time hit rates by history bucket of Kairos and the baselines,
their log-likelihood, the calibration and decision blend per bucket, the off-policy estimates and the lifecycle
figures against BG/NBD and RFM. A field the model's card does not hold is ``null`` (a model trained without
``training card`` has no ``evaluations``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from kairos.core.errors import NotFoundError

BucketFigures = dict[str, float | None]


class CalibrationRow(BaseModel):
    """One history bucket's calibration (temperature, blend weight) and decision blend, with its fit figures."""

    moments: int | None = None
    temperature: float | None = None
    weight: float | None = Field(default=None, description="The model's weight against the segment prior")
    smoothed_share: float | None = Field(default=None, description="The smoothed own counts' share of the decision")
    pseudo_moments: float | None = Field(default=None, description="The prior's weight in the smoothed counts")
    hit_rate_model: float | None = None
    hit_rate_smoothed_count: float | None = None
    hit_rate_blend: float | None = None
    log_likelihood: float | None = None
    prior_log_likelihood: float | None = None


class SendTimeMethod(BaseModel):
    """A send-time method's figures by history bucket (``0``, ``1-2``, ``3-9``, ``10+``, ``overall``)."""

    hit_within_1h: BucketFigures = Field(default_factory=dict)
    log_likelihood: BucketFigures = Field(default_factory=dict)


class OffPolicyEstimate(BaseModel):
    """A send-time policy's engagement per send estimated on logged sends (IPS and self-normalised IPS)."""

    policy: str
    ips: float | None = None
    ips_low: float | None = None
    ips_high: float | None = None
    snips: float | None = None
    snips_low: float | None = None
    snips_high: float | None = None
    matched: int | None = Field(default=None, description="Logged sends at the policy's hour")
    rows: int | None = Field(default=None, description="Logged sends with a propensity")


class OffPolicy(BaseModel):
    sends: int
    estimates: list[OffPolicyEstimate]


class LifecycleMethod(BaseModel):
    """Purchase in the next 90 days (AUC, Brier) and spend (mean absolute error, Spearman) of one method."""

    auc: float | None = None
    brier: float | None = None
    spend_mae: float | None = None
    spend_spearman: float | None = None


class NextPurchaseMethod(BaseModel):
    mae_days: float | None = None
    products: int | None = None


class LifecycleEvaluation(BaseModel):
    customers: int | None = None
    horizon_days: int | None = None
    purchase_rate: float | None = None
    methods: dict[str, LifecycleMethod] = Field(
        default_factory=dict, description="`Kairos`, `BG/NBD + Gamma-Gamma`, `RFM score`"
    )
    next_purchase: dict[str, NextPurchaseMethod] = Field(default_factory=dict)


class Evaluation(BaseModel):
    """One time split: the model retrained before ``split.cutoff`` and tested on the days after it."""

    split: dict[str, str | float | int | None] = Field(
        default_factory=dict, description="`train_start`, `cutoff`, `test_end`, `test_days`, `training_seconds`"
    )
    buckets: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="Customers and moments tested per history bucket"
    )
    send_time: dict[str, SendTimeMethod] = Field(
        default_factory=dict, description="Kairos and the baselines by name (`global best hour`, `modal hour ...`)"
    )
    strongest_baseline: str | None = None
    relative_gain_overall: float | None = Field(
        default=None, description="Kairos' overall hit rate over the strongest baseline's, minus one"
    )
    calibration: dict[str, CalibrationRow] = Field(default_factory=dict)
    off_policy: OffPolicy | None = None
    lifecycle: LifecycleEvaluation | None = None


class LifecycleTraining(BaseModel):
    rows: int | None = None
    purchase_rate: float | None = None
    products_with_interval: int | None = None
    brier_raw: float | None = None
    brier_calibrated: float | None = None
    held_out_rows: int | None = None


class ModelCardView(BaseModel):
    """The model in service and the figures of its card."""

    version: str = Field(description="The model's version (`model_version` of its metadata)")
    source: str = Field(description="`bundled` (shipped with the functions) or `published` (the models bucket)")
    published_version: str | None = Field(default=None, description="The models bucket's version name")
    trained_at: str | None = None
    training_window: dict[str, str | None] | None = Field(default=None, description="`start` and `end`")
    customers: int | None = Field(default=None, description="Customers trained on")
    training_seconds: float | None = None
    kairos_version: str | None = None
    calibration_fit: dict[str, CalibrationRow] = Field(
        default_factory=dict, description="Per history bucket, fitted on a label window the first booster never saw"
    )
    lifecycle: LifecycleTraining | None = None
    evaluations: dict[str, Evaluation] = Field(default_factory=dict, description="`main`, `holdout`")


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _figures(values: Any) -> BucketFigures:
    return {str(k): _num(v) for k, v in (values or {}).items()} if isinstance(values, dict) else {}


def _calibration(rows: Any) -> dict[str, CalibrationRow]:
    return {str(b): CalibrationRow.model_validate(r) for b, r in (rows or {}).items() if isinstance(r, dict)}


def _lifecycle(doc: Any) -> LifecycleEvaluation | None:
    if not isinstance(doc, dict):
        return None
    return LifecycleEvaluation(
        customers=doc.get("customers"),
        horizon_days=doc.get("horizon_days"),
        purchase_rate=_num(doc.get("purchase_rate")),
        methods={k: LifecycleMethod.model_validate(v) for k, v in (doc.get("methods") or {}).items()},
        next_purchase={k: NextPurchaseMethod.model_validate(v) for k, v in (doc.get("next_purchase") or {}).items()},
    )


def _evaluation(doc: dict[str, Any]) -> Evaluation:
    time = doc.get("time") or {}
    return Evaluation(
        split={k: v for k, v in (doc.get("split") or {}).items() if isinstance(v, str | int | float) or v is None},
        buckets={
            str(b): {k: int(n) for k, n in c.items() if isinstance(n, int)}
            for b, c in (time.get("counts") or {}).items()
            if isinstance(c, dict)
        },
        send_time={
            name: SendTimeMethod(
                hit_within_1h=_figures(m.get("hit_within_1h")), log_likelihood=_figures(m.get("log_likelihood"))
            )
            for name, m in (time.get("methods") or {}).items()
            if isinstance(m, dict)
        },
        strongest_baseline=doc.get("strongest_time_baseline"),
        relative_gain_overall=_num(doc.get("relative_gain_overall")),
        calibration=_calibration(doc.get("calibration")),
        off_policy=OffPolicy.model_validate(doc["off_policy"]) if doc.get("off_policy") else None,
        lifecycle=_lifecycle(doc.get("lifecycle")),
    )


def model_card(card: tuple[str, dict[str, Any]] | None) -> ModelCardView:
    """The view of the model in service from its version in the store and its ``metadata.json``.

    Parameters
    ----------
    card
        What :meth:`kairos.models.ports.ModelCards.current` answered: ``("bundled" | <published version>,
        metadata)``, or ``None``.

    Returns
    -------
    ModelCardView
        The version, training and the card's figures.

    Raises
    ------
    NotFoundError
        There is no model (no published version and no bundled model).

    Example
    -------
    >>> model_card(("bundled", {"model_version": "kairos-1"})).source
    'bundled'
    """
    if card is None:
        raise NotFoundError("no model in service: none bundled and none published")
    published_as, meta = card
    life = meta.get("lifecycle") if isinstance(meta.get("lifecycle"), dict) else None
    fit = (life or {}).get("calibration_fit") or {}
    return ModelCardView(
        version=str(meta.get("model_version") or published_as),
        source="bundled" if published_as == "bundled" else "published",
        published_version=None if published_as == "bundled" else published_as,
        trained_at=meta.get("trained_at"),
        training_window=meta.get("training_window"),
        customers=meta.get("customers"),
        training_seconds=_num(meta.get("training_seconds")),
        kairos_version=meta.get("kairos_version"),
        calibration_fit=_calibration(meta.get("calibration_fit")),
        lifecycle=LifecycleTraining(
            rows=life.get("rows"),
            purchase_rate=_num(life.get("purchase_rate")),
            products_with_interval=life.get("products_with_interval"),
            brier_raw=_num(fit.get("brier_raw")),
            brier_calibrated=_num(fit.get("brier_calibrated")),
            held_out_rows=fit.get("held_out_rows"),
        )
        if life
        else None,
        evaluations={
            str(name): _evaluation(doc) for name, doc in (meta.get("metrics") or {}).items() if isinstance(doc, dict)
        },
    )
