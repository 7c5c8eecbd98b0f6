"""What the journey engine needs from outside: definitions, paths, entry scans, promoted variants, step starts, tasks,
intents."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class JourneyStarter(ABC):
    """Start one customer's journey, idempotently by name."""

    @abstractmethod
    def start(self, name: str, payload: dict[str, Any]) -> bool:
        """Start it; ``False`` when a journey of that name was started before (nothing new starts)."""


class JourneyDefinitions(ABC):
    """Journey definitions (every version kept, so a path finishes on the version it entered)."""

    @abstractmethod
    def create_journey(self, doc: dict[str, Any]) -> None:
        """Store version 1 of a new journey; raises :class:`kairos.core.errors.ConflictError` if the id exists."""

    @abstractmethod
    def get_journey(self, journey_id: str, version: int | None = None) -> dict[str, Any]:
        """The journey with its current (or the given) version's definition; raises NotFoundError."""

    @abstractmethod
    def put_version(self, doc: dict[str, Any], expected_version: int) -> None:
        """Store ``doc`` as version ``expected_version + 1``; ConflictError if another write came first."""

    @abstractmethod
    def set_journey_status(self, journey_id: str, status: str, allowed_from: tuple[str, ...], now_iso: str) -> None:
        """Move to ``status`` only from one of ``allowed_from``, else raise ConflictError."""

    @abstractmethod
    def list_journeys(
        self, limit: int, token: str | None, kind: str = "journey"
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of journeys (current versions) and the next page's token."""

    @abstractmethod
    def active_journeys(self) -> list[dict[str, Any]]:
        """Every journey whose status is ``active``, with its current definition."""


class PathStore(ABC):
    """The customers' paths through journeys.

    A path (``customer_id``, ``key`` = ``<journey_id>#<entry_id>``) holds where one entry of a customer is: its
    node, status (``waiting``, ``done``, ``control``, ``skipped``, ``failed``), ``seq`` (bumped by every save,
    so two writers cannot both move it), ``wake_at`` while it waits, and what it did (visits, messages).
    """

    @abstractmethod
    def create_path(self, path: dict[str, Any]) -> bool:
        """Store a new path; ``False`` when that entry exists already (nothing is written)."""

    @abstractmethod
    def get_path(self, customer_id: str, key: str) -> dict[str, Any] | None:
        """One path, read consistently."""

    @abstractmethod
    def save_path(self, path: dict[str, Any], expected_seq: int) -> None:
        """Replace a path whose ``seq`` is still ``expected_seq``; ConflictError otherwise."""

    @abstractmethod
    def customer_paths(self, customer_id: str, journey_id: str | None = None) -> list[dict[str, Any]]:
        """A customer's paths (of one journey, or all)."""

    @abstractmethod
    def due_paths(self, now_iso: str, limit: int) -> list[dict[str, Any]]:
        """Waiting paths whose ``wake_at`` has come, earliest first."""

    @abstractmethod
    def journey_paths(self, journey_id: str) -> list[dict[str, Any]]:
        """Every path of a journey (results)."""

    @abstractmethod
    def erase_customer(self, customer_id: str) -> int:
        """Delete every path of the customer; return how many."""


class EntryScans(ABC):
    """Where a journey's scheduled or date entry scan is, so the next timer run resumes it."""

    @abstractmethod
    def get_scan(self, journey_id: str) -> dict[str, Any] | None:
        """Where the journey's entry scan is (``run``, ``cursor``, ``done``), or ``None``."""

    @abstractmethod
    def put_scan(self, journey_id: str, state: dict[str, Any]) -> None:
        """Save where the journey's entry scan is."""


class VariantPromotions(ABC):
    """Which content variant of a node takes all its traffic: ``promoted`` (node -> variant) on the journey, and
    when its variants were last looked at for a winner (``variants_checked_at``)."""

    @abstractmethod
    def set_promoted(self, journey_id: str, node_id: str, variant: str | None, only_if_unset: bool = False) -> bool:
        """Promote ``variant`` at the node (``None`` ends the promotion); NotFoundError for an unknown journey.

        With ``only_if_unset`` nothing changes when the node has a promoted variant already (returns ``False``):
        an automatic promotion never overrides one made by hand meanwhile.
        """

    @abstractmethod
    def set_variants_checked(self, journey_id: str, at_iso: str) -> None:
        """Remember when the journey's variants were last looked at for a winner."""


class JourneyStore(JourneyDefinitions, PathStore, EntryScans, VariantPromotions):
    """Journeys, paths, entry scans and promoted variants as one adapter implements them."""


class IntentStore(ABC):
    """Intents: keyword clusters that tag inbound messages."""

    @abstractmethod
    def put_intent(self, doc: dict[str, Any]) -> None:
        """Create or replace an intent (key ``name``)."""

    @abstractmethod
    def list_intents(self) -> list[dict[str, Any]]:
        """Every intent, by name."""


class TaskSink(ABC):
    """Where a journey's task nodes hand a customer to people or other systems."""

    @abstractmethod
    def emit(self, detail_type: str, detail: dict[str, Any]) -> None:
        """Publish one task (at least once: receivers deduplicate on ``detail.task_id``)."""
