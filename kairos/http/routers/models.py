"""The model in service: its version, training and the figures of its card."""

from __future__ import annotations

from kairos.http.api import KairosRouter
from kairos.http.deps import Deps  # noqa: TC001 - Powertools reads route annotations at run time
from kairos.models.cards import ModelCardView, model_card

router = KairosRouter()


@router.endpoint(
    "GET",
    "/v1/models/current",
    scope="read",
    errors=(404,),
    summary="The send-time model in service: its version, training window and the figures of its card",
    description="The model the score function uses: the newest version published to the models bucket, else the "
    "one bundled with the functions. Its evaluations (`main`, `holdout`: retrained before a cut-off and tested "
    "on the days after) give the hit rate within one hour and the log-likelihood by history bucket for Kairos "
    "and the baselines, the calibration and decision blend per bucket, off-policy estimates on logged sends, "
    "and the lifecycle figures against BG/NBD and RFM. Read from the model's `metadata.json` only; 404 when "
    "there is no model.",
    tags=["models"],
)
def get_current_model(deps: Deps) -> ModelCardView:
    return model_card(deps.model_cards().current() if deps.model_cards is not None else None)
