"""The product catalogue: what a product id means to a customer (its name, page and picture)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, HttpUrl, PlainSerializer, WithJsonSchema

from kairos.core.schema_rules import JsonBool
from kairos.customers.schemas import _json_number

# What HttpUrl takes: an http or https scheme (any case) and a host.
HTTP_URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#\s]"


class ProductIn(BaseModel):
    """``PUT /v1/products/{id}``: messages render ``{{next_product}}`` as ``name``, with ``{{next_product_url}}``
    and ``{{next_product_image}}``. ``consumable`` marks products bought again when they run out."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=300)]
    url: Annotated[HttpUrl | None, Field(json_schema_extra={"pattern": HTTP_URL_PATTERN})] = None
    image: Annotated[HttpUrl | None, Field(json_schema_extra={"pattern": HTTP_URL_PATTERN})] = None
    category: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    consumable: JsonBool = False
    price: (
        Annotated[
            Decimal,
            BeforeValidator(_json_number),
            Field(ge=0, le=1_000_000_000, decimal_places=4, description="the list price, for messages"),
            WithJsonSchema(
                {
                    "type": "number",
                    "minimum": 0,
                    "maximum": 1_000_000_000,
                    "multipleOf": 0.0001,
                    "description": "the list price",
                }
            ),
            PlainSerializer(float, return_type=float, when_used="json"),
        ]
        | None
    ) = None
    currency: Annotated[str | None, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code of the price")] = None


class ProductView(ProductIn):
    product_id: str
    updated_at: str
