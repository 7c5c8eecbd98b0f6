"""The product catalogue: the name, page and picture messages show for a product."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body, Path

from kairos.core import timeutil
from kairos.core.errors import NotFoundError
from kairos.customers.schemas import _ID_PATTERN
from kairos.http.api import KairosRouter
from kairos.http.deps import Deps  # noqa: TC001 - Powertools reads route annotations at run time
from kairos.models.catalogue import ProductIn, ProductView

router = KairosRouter()

ProductId = Annotated[str, Path(pattern=_ID_PATTERN, description="The product's id, as events carry it")]


@router.endpoint(
    "PUT",
    "/v1/products/<product_id>",
    scope="manage",
    summary="Save a product: the name, page and picture messages show for it",
    links={"/v1/products/{product_id}": {"product_id": "$request.path.product_id"}},
    tags=["products"],
)
def put_product(product_id: ProductId, product: Annotated[ProductIn, Body()], deps: Deps) -> ProductView:
    doc = {**product.model_dump(mode="json"), "product_id": product_id, "updated_at": timeutil.now().isoformat()}
    deps.products().put_product(doc)
    return ProductView.model_validate(doc)


@router.endpoint(
    "GET", "/v1/products/<product_id>", scope="read", errors=(400, 404), summary="A product", tags=["products"]
)
def get_product(product_id: ProductId, deps: Deps) -> ProductView:
    found = deps.products().get_products([product_id])
    if product_id not in found:
        raise NotFoundError(f"product '{product_id}' not found")
    return ProductView.model_validate(found[product_id])
