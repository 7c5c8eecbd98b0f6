"""What customers-and-ingest logic needs from outside: the customers table (one port per use), the event
archive, and the decision objects earlier versions archived."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from kairos.core.errors import ConflictError, InvalidInputError, StoreError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from datetime import datetime

    from kairos.core.errors import KairosError
    from kairos.customers.aggregates import CustomerAggregates
    from kairos.customers.domain import CustomerRecord, CustomerWrite, IngestState


class IngestStore(ABC):
    """Events, engagement moments and aggregates written together by an ingestion.

    Writes are conditional on the version read, so concurrent writers never lose an update: a write whose
    condition fails raises :class:`kairos.core.errors.ConflictError` and changes nothing.
    """

    #: How many items one :meth:`commit_ingest` call may hold.
    max_transaction_items: int = 100
    #: Items a customer's write may take beyond one per event and moment (its own, and the store's layout).
    extra_items_per_customer: int = 1

    def write_items(self, write: CustomerWrite) -> int:
        """How many of :attr:`max_transaction_items` one customer's write takes."""
        return write.size

    @abstractmethod
    def load_ingest_state(
        self,
        customer_ids: Iterable[str],
        event_keys: Iterable[tuple[str, str]],
        moment_keys: Iterable[tuple[str, str]],
        event_types: Mapping[str, set[str]] | None = None,
    ) -> IngestState:
        """Read consistently the customers, and which of the given events and moments are stored already.

        ``event_types`` (by customer: the types of its new events) lets a store read only what folding those
        events changes; the aggregates it returns then hold at least that (the parts not read stay empty and
        must not be written). ``None``: everything.
        """

    @abstractmethod
    def commit_ingest(self, writes: list[CustomerWrite], now: datetime) -> None:
        """Store new events, moments and aggregates of several customers atomically.

        Raises
        ------
        ConflictError
            An event or moment exists already, or a customer changed since it was read. Nothing was written.
        """

    def commit_writes(self, writes: list[CustomerWrite], now: datetime) -> list[KairosError | None]:
        """Commit several customers' writes; for each, ``None`` or the error that stopped it (in order).

        By default one :meth:`commit_ingest` for all: all committed or none. When the store refuses the data
        itself, a write of several customers is retried one customer at a time, so the one at fault is found and
        the others are stored. A store may commit each customer on its own instead.
        """
        try:
            self.commit_ingest(writes, now)
        except InvalidInputError as exc:
            if len(writes) == 1:
                return [exc]
            return [err for w in writes for err in self.commit_writes([w], now)]
        except (ConflictError, StoreError) as exc:
            return [exc] * len(writes)
        return [None] * len(writes)


class CustomerReader(ABC):
    """Read customers: one, several, or a page of a parallel scan."""

    @abstractmethod
    def get_customer(self, customer_id: str) -> CustomerRecord | None:
        """The customer (consistent read), or ``None`` (never stored, or erased and not back since)."""

    @abstractmethod
    def absent_customer(self, customer_id: str) -> CustomerRecord:
        """A customer :meth:`get_customer` did not find, about to be created: ``erased_at`` says when the id was
        erased, if it was (earlier events are refused); writing it holds only if no erasure came in between."""

    @abstractmethod
    def get_customers(self, customer_ids: Iterable[str]) -> dict[str, CustomerRecord]:
        """The customers that exist among ``customer_ids``, by id."""

    @abstractmethod
    def scan_customers(
        self, shard: int, total_shards: int, start_after: str | None = None, limit: int = 500
    ) -> tuple[list[CustomerRecord], str | None]:
        """One page of a shard of a parallel scan and the id to resume after (``None`` at the end).

        Reserved ids (``__…``, fallback recommendations) are never returned.
        """

    def list_customers(self, cursor: str | None = None, limit: int = 50) -> tuple[list[CustomerRecord], str | None]:
        """One page of customers in the store's order, reading at most ``limit`` items, and the cursor of the next
        page (``None`` at the end). A store may leave out the profile and the aggregates' parts (a list shows
        neither)."""
        return self.scan_customers(0, 1, cursor, limit)

    def approximate_count(self) -> int | None:
        """About how many customers are stored (the store's own estimate, hours old), or ``None`` if unknown."""
        return None


class EventHistory(ABC):
    """A customer's stored events and engagement moments."""

    @abstractmethod
    def engagement_moments(self, customer_id: str) -> list[int]:
        """Every engagement moment (UTC epoch hour) still stored for the customer, ascending."""

    @abstractmethod
    def customer_events(self, customer_id: str) -> list[dict[str, Any]]:
        """The customer's stored events, in the archive form."""

    @abstractmethod
    def message_events(self, customer_id: str, message_prefix: str) -> list[dict[str, Any]]:
        """The customer's events whose ``message_id`` starts with the prefix (``type``, ``ts``, ``message_id``)."""


class ProfileStore(ABC):
    """Replace a customer's profile."""

    @abstractmethod
    def put_profile(
        self, record: CustomerRecord, profile: dict[str, Any], aggregates: CustomerAggregates | None, now: datetime
    ) -> None:
        """Replace the profile (and the aggregates, after a time-zone change) if unchanged since ``record`` was read.

        Raises
        ------
        ConflictError
            The customer changed (or appeared) since it was read.
        """


class RecommendationStore(ABC):
    """Scoring results on customers, and the population's and segments' fallbacks."""

    @abstractmethod
    def put_recommendation(self, customer_id: str, recommendation: dict[str, Any]) -> None:
        """Store a scoring result on an existing customer; a missing (erased) customer is left missing."""

    @abstractmethod
    def put_fallback(self, key: str, recommendation: dict[str, Any]) -> None:
        """Store a population or segment fallback answer under a reserved id (``__…``)."""

    @abstractmethod
    def get_recommendation(self, key: str) -> dict[str, Any] | None:
        """The recommendation stored under ``key`` (a customer id or a reserved fallback id)."""


class SendCounter(ABC):
    """Delivered messages per customer and channel (the channel ranking reads them)."""

    @abstractmethod
    def count_send(self, customer_id: str, channel: str) -> None:
        """Count one delivered message on ``channel`` for an existing customer (the channel ranking reads it)."""


class ErasureStore(ABC):
    """Erasure, in the order the logic calls it: every step is safe to repeat, data goes last."""

    @abstractmethod
    def tombstone(self, customer_id: str, now: datetime) -> dict[str, Any]:
        """Replace the customer by a tombstone (``erased_at``) that outlives its data; say what was there.

        Returns
        -------
        dict
            ``existed``, ``profile``, ``aggregates`` (bool) and ``erased_before`` (an earlier erasure or ``None``).
        """

    @abstractmethod
    def forget_tombstone(self, customer_id: str, erased_at: datetime) -> None:
        """Remove the tombstone written at ``erased_at`` unless something was stored for the id since."""

    @abstractmethod
    def erasure_inventory(self, customer_id: str) -> dict[str, Any]:
        """Where the customer's data lives.

        Returns
        -------
        dict
            ``events`` and ``engagement_moments`` (counts), ``event_dates`` (UTC dates of the archived copies),
            ``decision_objects`` (decision-log objects that name the customer).
        """

    @abstractmethod
    def delete_customer_items(self, customer_id: str) -> None:
        """Delete the customer's events, moments and decision markers (the tombstone stays)."""

    @abstractmethod
    def erased_at(self, customer_ids: Iterable[str]) -> dict[str, str]:
        """The tombstones among ``customer_ids``: id -> ISO time of the erasure."""


class EventTypeCatalogue(ABC):
    """The event types seen: how many of each were stored, and the property names they carried."""

    @abstractmethod
    def note(self, seen: dict[str, tuple[int, set[str]]], now: datetime) -> None:
        """Add ``count`` stored events of each type and the property names they carried (``type -> (count,
        names)``); counts add up across calls."""

    @abstractmethod
    def event_types(self) -> list[dict[str, Any]]:
        """Every type seen: ``type``, ``count``, ``properties`` (sorted), ``first_seen``, ``last_seen``."""


class CustomerStore(
    IngestStore, CustomerReader, EventHistory, ProfileStore, RecommendationStore, SendCounter, ErasureStore
):
    """The customers table as one adapter implements it: every port above. Logic that needs several takes this."""


class EventArchive(ABC):
    """Accepted events kept for training, partitioned by UTC date."""

    @abstractmethod
    def write_batch(self, records: Iterable[dict[str, Any]], batch_id: str) -> list[str]:
        """Archive records under a batch id (a retried batch overwrites its own copies); return what was written."""

    @abstractmethod
    def purge_customer(self, customer_id: str, dates: Iterable[str], until: str | None = None) -> tuple[int, int]:
        """Remove the customer's records from the given dates; return (objects rewritten or deleted, records).

        ``until`` (ISO time) keeps records whose event happened after it (a customer who came back).
        Concurrent purges of one object must not undo each other.
        """


class DecisionLog(ABC):
    """Launch decisions archived by earlier versions (``decisions/``), kept until they expire."""

    @abstractmethod
    def purge_customer(self, customer_id: str, objects: Iterable[str]) -> tuple[int, int]:
        """Remove the customer from the given decision objects; return (objects rewritten or deleted, records)."""
