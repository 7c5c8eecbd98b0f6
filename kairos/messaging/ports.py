"""What sending needs from outside: the message log (one port per use), providers, the send policy."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

    from kairos.messaging.domain import Rendered


class MessageClaims(ABC):
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


class RecentSends(ABC):
    """What may have reached a customer lately: what frequency caps count."""

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


class MessageListing(ABC):
    """Messages of a journey or of a customer, whatever their outcome (results, history filters)."""

    @abstractmethod
    def for_campaign(self, campaign_id: str) -> list[dict[str, Any]]:
        """Every message of a campaign (or journey), whatever its outcome (results)."""

    @abstractmethod
    def for_customer(self, customer_id: str) -> list[dict[str, Any]]:
        """Every message of a customer, whatever its outcome."""


class MessageErasure(ABC):
    """Forget a customer's messages."""

    @abstractmethod
    def erase_customer(self, customer_id: str) -> tuple[int, int]:
        """Delete the customer's messages and their archived attempts; return (records, archived objects)."""


class MessageLog(MessageClaims, RecentSends, MessageListing, MessageErasure):
    """The message log as one adapter implements it."""


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


class PolicyStore(ABC):
    """The deployment's send policy (one document)."""

    @abstractmethod
    def get_policy(self) -> dict[str, Any] | None:
        """The stored policy, or ``None`` before one was set."""

    @abstractmethod
    def put_policy(self, doc: dict[str, Any]) -> None:
        """Replace the policy."""


class ContactLinks(ABC):
    """Which customer an inbound message is from: messenger start-link tokens, the chats they linked, and the
    phone numbers of profiles (reserved items beside the customers; an erasure removes the customer's)."""

    @abstractmethod
    def create_token(self, customer_id: str, expires_at: int) -> str:
        """A new start-link token for the customer, valid until ``expires_at`` (Unix seconds)."""

    @abstractmethod
    def customer_of_token(self, token: str, now_s: int) -> str | None:
        """The customer a token links, or ``None`` (unknown or expired)."""

    @abstractmethod
    def link_chat(self, chat_id: str, customer_id: str) -> None:
        """Remember that the chat is the customer's (a chat linked again moves to the new customer)."""

    @abstractmethod
    def customer_of_chat(self, chat_id: str) -> str | None:
        """The customer a chat was linked to, or ``None``."""

    @abstractmethod
    def link_phone(self, phone: str, customer_id: str) -> None:
        """Remember that replies from ``phone`` (E.164) are the customer's (a number given again moves)."""

    @abstractmethod
    def customer_of_phone(self, phone: str) -> str | None:
        """The customer whose profile gave the number, or ``None``."""

    @abstractmethod
    def forget_phone(self, phone: str, customer_id: str) -> None:
        """Forget the number, if it is still the customer's."""

    @abstractmethod
    def forget_customer(self, customer_id: str, chat_id: str | None, phone: str | None = None) -> None:
        """Forget the customer's start links, their chat's link and their number (an erasure; safe to repeat)."""
