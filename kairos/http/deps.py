"""What the API's routes read and write, built by the handler once per cold start and handed to every router.

The handler builds an :class:`ApiDeps` at import (its stores are built on first use) and puts it in the
resolver's context for each request; a route asks for it with a :data:`Deps` parameter, which Powertools fills
through ``Depends`` from the context of the resolver that routes the request. Routers never build clients or read
settings: only the handler knows ``kairos.wiring`` and the environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar

from aws_lambda_powertools.event_handler import Depends, Request

from kairos.core.cache import ReadEvery

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import timedelta

    from kairos.audiences.ports import SegmentStore
    from kairos.customers.ports import CustomerStore, DecisionLog, EventArchive, EventTypeCatalogue
    from kairos.insights.ports import AnalyticsEngine, InsightStore
    from kairos.journeys.ports import JourneyStore
    from kairos.messaging.ports import ContactLinks, MessageLog, PolicyStore
    from kairos.models.ports import ModelCards, ProductCatalogue
    from kairos.promotions.ports import PromoPools

T = TypeVar("T")

# The context key the handler puts the ApiDeps under (Powertools clears the context after every request).
DEPS_KEY = "kairos_api_deps"
INTENTS_TTL_S = 60.0


class Lazy(Generic[T]):
    """A client built on its first use and kept for the sandbox's life.

    A request builds only the clients it uses, and a sandbox never builds one twice.

    Parameters
    ----------
    build
        Builds the client (the handler passes a :mod:`kairos.wiring` factory bound to the settings).

    Example
    -------
    >>> customers = Lazy(lambda: wiring.customer_store(SETTINGS))
    >>> customers().get_customer("c1")
    """

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._client: T | None = None

    def __call__(self) -> T:
        if self._client is None:
            self._client = self._build()
        return self._client


@dataclass
class ApiDeps:
    """The stores the API's routes use, each typed by its port, and the deployment settings routes pass on.

    Parameters
    ----------
    customers, archive, messages, decisions, segments, products, policy, insights, journeys, event_types, promo_pools
        The stores, each built on first use (see :class:`Lazy`).
    retention
        How long events are kept (``EventRetentionDays``): older events are refused at ingest.
    clock_skew
        How far in the future an event's timestamp may be.
    global_control_share
        The share of customers in the global control group (``GlobalControlShare``); 0 when there is none.
    analytics
        What runs queries over the event archive (Athena, DuckDB locally); ``None`` when the deployment has
        none (archive questions are then answered from a bounded read of the customers).

    Example
    -------
    >>> @router.endpoint("GET", "/v1/segments", scope="read")
    ... def list_segments(deps: Deps) -> SegmentList:
    ...     return SegmentList(segments=deps.segments().list_segments())
    """

    customers: Lazy[CustomerStore]
    archive: Lazy[EventArchive]
    messages: Lazy[MessageLog]
    decisions: Lazy[DecisionLog]
    segments: Lazy[SegmentStore]
    products: Lazy[ProductCatalogue]
    policy: Lazy[PolicyStore]
    insights: Lazy[InsightStore]
    journeys: Lazy[JourneyStore]
    event_types: Lazy[EventTypeCatalogue]
    promo_pools: Lazy[PromoPools]
    retention: timedelta
    clock_skew: timedelta
    global_control_share: float
    # (customer_id, topic) -> the signed unsubscribe and preference URLs a message carries (previews show them)
    links: Lazy[Callable[[str, str], dict[str, str]]] | None = None
    analytics: Lazy[AnalyticsEngine | None] | None = None
    # Messenger start links and linked chats, and the key the Telegram webhook's secret token is derived from
    contact_links: Lazy[ContactLinks] | None = None
    link_key: Lazy[Callable[[], bytes]] | None = None
    # The metadata of the model the score function serves (the models bucket's newest, else the bundled one)
    model_cards: Lazy[ModelCards] | None = None
    # The intents that tag inbound messages: a query per batch would cost a read per request; a new or changed
    # intent tags messages within a minute (at once in the sandbox that saved it, which forgets the cache).
    intents: ReadEvery[list[dict[str, Any]]] = field(init=False)

    def __post_init__(self) -> None:
        self.intents = ReadEvery(INTENTS_TTL_S, lambda: self.journeys().list_intents())


def api_deps(request: Request) -> ApiDeps:
    """The :class:`ApiDeps` the handler put in the context of the resolver routing this request.

    Read from the request rather than a router's own context: a router's context is that of the last resolver
    that included it, and a process running several deployments (the local runtime) has one resolver each.
    """
    return request.context[DEPS_KEY]


# A route parameter annotated with Deps receives the ApiDeps; it is no part of the request nor of the OpenAPI.
Deps = Annotated[ApiDeps, Depends(api_deps)]
