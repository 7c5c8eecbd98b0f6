"""What models and scoring need from outside: the product catalogue."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable


class ProductCatalogue(ABC):
    """Product names, pages and pictures by product id."""

    @abstractmethod
    def put_product(self, doc: dict[str, Any]) -> None:
        """Create or replace a product (key ``product_id``)."""

    @abstractmethod
    def get_products(self, product_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The known products among ``product_ids``."""


class ModelCards(ABC):
    """The metadata of the model in service (what training and ``training card`` wrote), to show, not to score."""

    @abstractmethod
    def current(self) -> tuple[str, dict[str, Any]] | None:
        """``("bundled" | <published version>, <its metadata.json>)`` of the model in service, or ``None``."""
