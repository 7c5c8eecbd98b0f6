"""Ports: what the logic needs from the outside world, as small abstract classes.

The logic (``kairos.logic``) is written against these and nothing else; ``kairos.adapters`` implements them
for AWS (DynamoDB, S3, Step Functions, SES, End User Messaging, SNS, Telegram), and ``tests/fakes.py`` keeps an
in-memory implementation of each for fast unit tests. Records crossing a port are the domain records of
``kairos.domain`` or plain JSON-like dicts (the stored documents).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from kairos.aggregates import CustomerAggregates
    from kairos.domain.customers import CustomerRecord, CustomerWrite, IngestState
    from kairos.domain.messages import Rendered


class CustomerStore(ABC):
    """Customers (profile, aggregates, recommendation) and their stored events and engagement moments.

    Writes are conditional on the version read, so concurrent writers never lose an update: a write whose
    condition fails raises :class:`kairos.errors.ConflictError` and changes nothing.
    """

    #: How many items one :meth:`commit_ingest` call may hold (events + moments + one per customer).
    max_transaction_items: int = 100

    @abstractmethod
    def load_ingest_state(
        self,
        customer_ids: Iterable[str],
        event_keys: Iterable[tuple[str, str]],
        moment_keys: Iterable[tuple[str, str]],
    ) -> IngestState:
        """Read consistently the customers, and which of the given events and moments are stored already."""

    @abstractmethod
    def commit_ingest(self, writes: list[CustomerWrite], now: datetime) -> None:
        """Store new events, moments and aggregates of several customers atomically.

        Raises
        ------
        ConflictError
            An event or moment exists already, or a customer changed since it was read. Nothing was written.
        """

    @abstractmethod
    def get_customer(self, customer_id: str) -> CustomerRecord | None:
        """The customer (consistent read), or ``None``."""

    @abstractmethod
    def get_customers(self, customer_ids: Iterable[str]) -> dict[str, CustomerRecord]:
        """The customers that exist among ``customer_ids``, by id."""

    @abstractmethod
    def scan_customers(
        self, segment: int, total_segments: int, start_after: str | None = None, limit: int = 500
    ) -> tuple[list[CustomerRecord], str | None]:
        """One page of a parallel scan segment and the id to resume after (``None`` at the end).

        Reserved ids (``__…``, fallback recommendations) are never returned.
        """

    @abstractmethod
    def engagement_moments(self, customer_id: str) -> list[int]:
        """Every engagement moment (UTC epoch hour) still stored for the customer, ascending."""

    @abstractmethod
    def customer_events(self, customer_id: str) -> list[dict[str, Any]]:
        """The customer's stored events, in the archive form."""

    @abstractmethod
    def message_events(self, customer_id: str, message_prefix: str) -> list[dict[str, Any]]:
        """The customer's events whose ``message_id`` starts with the prefix (``type``, ``ts``, ``message_id``)."""

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

    @abstractmethod
    def put_recommendation(self, customer_id: str, recommendation: dict[str, Any]) -> None:
        """Store a scoring result on an existing customer; a missing (erased) customer is left missing."""

    @abstractmethod
    def count_send(self, customer_id: str, channel: str) -> None:
        """Count one delivered message on ``channel`` for an existing customer (the channel ranking reads it)."""

    @abstractmethod
    def put_fallback(self, key: str, recommendation: dict[str, Any]) -> None:
        """Store a population or segment fallback answer under a reserved id (``__…``)."""

    @abstractmethod
    def get_recommendation(self, key: str) -> dict[str, Any] | None:
        """The recommendation stored under ``key`` (a customer id or a reserved fallback id)."""

    # Erasure, in the order the logic calls it: every step is safe to repeat, data goes last.

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


class SegmentStore(ABC):
    """Saved segments: named audiences (``name``, ``filters``, ``updated_at``)."""

    @abstractmethod
    def put_segment(self, segment: dict[str, Any]) -> None:
        """Create or replace a saved segment (key ``name``)."""

    @abstractmethod
    def get_segment(self, name: str) -> dict[str, Any]:
        """Raises :class:`kairos.errors.NotFoundError` when there is none."""

    @abstractmethod
    def delete_segment(self, name: str) -> None:
        """Delete a saved segment; ``NotFoundError`` when there is none."""

    @abstractmethod
    def list_segments(self) -> list[dict[str, Any]]:
        """Every saved segment, by name."""


class PolicyStore(ABC):
    """The deployment's send policy (one document)."""

    @abstractmethod
    def get_policy(self) -> dict[str, Any] | None:
        """The stored policy, or ``None`` before one was set."""

    @abstractmethod
    def put_policy(self, doc: dict[str, Any]) -> None:
        """Replace the policy."""


class JourneyStarter(ABC):
    """Start one customer's journey, idempotently by name."""

    @abstractmethod
    def start(self, name: str, payload: dict[str, Any]) -> bool:
        """Start it; ``False`` when a journey of that name was started before (nothing new starts)."""


class JourneyStore(ABC):
    """Journey definitions (every version kept) and the customers' paths through them.

    A path (``customer_id``, ``key`` = ``<journey_id>#<entry_id>``) holds where one entry of a customer is: its
    node, status (``waiting``, ``done``, ``control``, ``skipped``, ``failed``), ``seq`` (bumped by every save,
    so two writers cannot both move it), ``wake_at`` while it waits, and what it did (visits, messages).
    """

    @abstractmethod
    def create_journey(self, doc: dict[str, Any]) -> None:
        """Store version 1 of a new journey; raises :class:`kairos.errors.ConflictError` if the id exists."""

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

    @abstractmethod
    def get_scan(self, journey_id: str) -> dict[str, Any] | None:
        """Where the journey's entry scan is (``run``, ``cursor``, ``done``), or ``None``."""

    @abstractmethod
    def put_scan(self, journey_id: str, state: dict[str, Any]) -> None:
        """Save where the journey's entry scan is."""

    @abstractmethod
    def put_intent(self, doc: dict[str, Any]) -> None:
        """Create or replace an intent (key ``name``)."""

    @abstractmethod
    def list_intents(self) -> list[dict[str, Any]]:
        """Every intent, by name."""


class ProductCatalogue(ABC):
    """Product names, pages and pictures by product id."""

    @abstractmethod
    def put_product(self, doc: dict[str, Any]) -> None:
        """Create or replace a product (key ``product_id``)."""

    @abstractmethod
    def get_products(self, product_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The known products among ``product_ids``."""


class InsightStore(ABC):
    """Documents kept between runs by kind and key (RFM thresholds and partial summaries of scoring runs)."""

    @abstractmethod
    def put(self, kind: str, key: str, doc: dict[str, Any], expires_at: int | None = None) -> None:
        """Create or replace a document; ``expires_at`` (Unix seconds) lets the store forget it."""

    @abstractmethod
    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        """One document, or ``None``."""

    @abstractmethod
    def query(self, kind: str, prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
        """``(key, document)`` of a kind whose key starts with ``prefix``, in key order."""


class TaskSink(ABC):
    """Where a journey's task nodes hand a customer to people or other systems."""

    @abstractmethod
    def emit(self, detail_type: str, detail: dict[str, Any]) -> None:
        """Publish one task (at least once: receivers deduplicate on ``detail.task_id``)."""


class DecisionLog(ABC):
    """Launch decisions archived by earlier versions (``decisions/``), kept until they expire."""

    @abstractmethod
    def purge_customer(self, customer_id: str, objects: Iterable[str]) -> tuple[int, int]:
        """Remove the customer from the given decision objects; return (objects rewritten or deleted, records)."""


class MessageLog(ABC):
    """One record per message id, claimed before any provider call, with every outcome archived."""

    @abstractmethod
    def get(self, message_id: str) -> dict[str, Any] | None:
        """The whole record of a message (``None`` when there is none)."""

    @abstractmethod
    def claim(self, record: dict[str, Any]) -> tuple[bool, dict[str, Any] | None]:
        """Create the record as ``sending`` unless it exists in a state other than a transient one.

        Returns ``(True, None)`` when claimed, ``(False, existing)`` otherwise.
        """

    @abstractmethod
    def finish(self, record: dict[str, Any]) -> None:
        """Store the outcome of a claimed message and archive it."""

    @abstractmethod
    def settle(self, record: dict[str, Any], attempt: int) -> bool:
        """Store ``record``'s outcome only if the message is still ``sending`` in ``attempt`` (an abandoned claim).

        Returns ``False`` when another attempt recorded something meanwhile; archives the outcome otherwise.
        """

    @abstractmethod
    def sent_since(self, customer_id: str, channel: str, since: datetime, excluding: str | None = None) -> int:
        """How many messages were claimed for the customer on the channel since ``since`` and sent, possibly
        sent (``unconfirmed``) or still being sent: everything that may have reached the customer.

        ``excluding`` leaves one message id out (the one being sent, whose own claim must not count).
        """

    @abstractmethod
    def recent_sends(
        self, customer_id: str, since: datetime, excluding: str | None = None
    ) -> list[tuple[str, datetime]]:
        """(channel, claim time) of the customer's messages since ``since`` that may have reached them (sent,
        unconfirmed, being sent), other than ``excluding``: what the send policy's caps count."""

    @abstractmethod
    def for_campaign(self, campaign_id: str) -> list[dict[str, Any]]:
        """Every message of a campaign (or journey), whatever its outcome (results)."""

    @abstractmethod
    def for_customer(self, customer_id: str) -> list[dict[str, Any]]:
        """Every message of a customer, whatever its outcome."""

    @abstractmethod
    def erase_customer(self, customer_id: str) -> tuple[int, int]:
        """Delete the customer's messages and their archived attempts; return (records, archived objects)."""


class Provider(ABC):
    """Deliver one rendered message on one channel."""

    channel: str

    @abstractmethod
    def send(self, message: Rendered, message_id: str, tags: dict[str, str]) -> str:
        """Deliver and return the provider's message id.

        Raises
        ------
        ProviderThrottled, ProviderUnavailable
            Transient: the caller retries later.
        ProviderError
            Refused for good on this channel.
        """
