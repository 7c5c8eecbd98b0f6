"""The product catalogue: what a product id means to a customer (its name, page and picture)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, HttpUrl


class ProductIn(BaseModel):
    """``PUT /v1/products/{id}``: messages render ``{{next_product}}`` as ``name``, with ``{{next_product_url}}``
    and ``{{next_product_image}}``. ``consumable`` marks products bought again when they run out."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=300)]
    url: HttpUrl | None = None
    image: HttpUrl | None = None
    category: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    consumable: bool = False
    price: Annotated[float | None, Field(ge=0, le=1_000_000_000, description="the list price, for messages")] = None
    currency: Annotated[str | None, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code of the price")] = None


class ProductView(ProductIn):
    product_id: str
    updated_at: str
