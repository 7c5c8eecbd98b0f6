"""Send one message of a journey: claim it, check consent, caps and suppression, call the provider, log it.

A message id (``<campaign>.<customer>.<step>``) is claimed with a conditional write before any provider
call, so a retried task (Step Functions retry, Lambda retry, a duplicate invocation) never sends twice:

- no record yet: claim it (``sending``), check, send, record the outcome;
- ``sent``, ``unconfirmed``, ``failed`` or ``skipped``: final, the earlier outcome is returned as it is;
- ``sending``: another attempt holds the claim. While its lease runs, ``SendInProgress`` is raised and the
  state machine retries later; once the lease is over the attempt is taken for dead after it may have
  reached the provider, and the message becomes ``unconfirmed``: never sent again, counted by frequency
  caps, archived for training, and the journey waits for engagement as after a send;
- ``throttled`` or ``unavailable`` (a transient provider error recorded by an earlier attempt): claim it
  again and retry.

A provider call whose answer is lost (read timeout, dropped connection) also ends ``unconfirmed``: the
message may have been accepted, and at-most-once is the promise we keep.

Throttling and provider outages are raised (``ProviderThrottled``, ``ProviderUnavailable``) after the
claim is released, so the state machine retries them with backoff and jitter; a permanent rejection is
recorded as ``failed`` and returned, so the journey moves on to its next channel.

Every outcome is written to the message log with what the model saw when it chose the send time (hour,
probability, model version, features), which is what retraining reads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from kairos.core.errors import (
    ConflictError,
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderThrottled,
    ProviderUnavailable,
    SendInProgress,
    StoreError,
)
from kairos.core.timeutil import parse_ts, utc_iso
from kairos.messaging.consent import CONTACT_FIELD, may_send
from kairos.messaging.domain import IN_FLIGHT, Rendered, SendRequest
from kairos.messaging.policy import cap_reason
from kairos.messaging.templates import TemplateRenderError, locale_of, render_content, template_context
from kairos.messaging.unsubscribe import ONE_CLICK

if TYPE_CHECKING:
    from collections.abc import Callable

    from kairos.customers.domain import CustomerRecord
    from kairos.customers.ports import CustomerStore
    from kairos.messaging.content import FrequencyCap, Messages
    from kairos.messaging.policy import SendPolicy
    from kairos.messaging.ports import MessageClaims, MessageLog, Provider

logger = logging.getLogger(__name__)
LOG_RETENTION = timedelta(days=400)
# How long a claim protects an attempt: well above the send function's timeout (30 s) and its SDK calls.
SENDING_LEASE = timedelta(minutes=5)


def render(
    content: Content,
    channel: str,
    record: CustomerRecord,
    now: datetime,
    population: dict[str, Any] | None = None,
    products: Callable[[list[str]], dict[str, dict[str, Any]]] | None = None,
) -> Rendered | str:
    """The message for ``channel``, rendered for the customer (or the reason it cannot go).

    The template sees the profile, the entering and the latest event (cart lines named from the catalogue),
    the recommendation, the path's promo code and the signed unsubscribe and preference URLs; a marketing email
    carries the ``List-Unsubscribe`` headers (RFC 8058). The preview of a message renders it with this too.
    """
    contact = (record.profile or {}).get("contact") or {}
    to = str(contact.get(CONTACT_FIELD[channel]) or "")
    promo = None
    if content.promo is not None:
        promo = content.promo()
        if promo is None:
            return "no promo code left in the pool"
    links = content.links(record.customer_id, content.topic) if content.links is not None else {}
    context = template_context(
        record,
        trigger=content.trigger,
        latest=content.latest,
        recommendation=record.recommendation or population,
        products=products,
        promo=promo,
        links={k: v for k, v in links.items() if k in ("unsubscribe_url", "preferences_url")},
        now=now,
    )
    out = render_content(content.messages, channel, context, locale_of(record))
    headers: tuple[tuple[str, str], ...] = ()
    if channel == "email" and not content.transactional and links.get("list_unsubscribe"):
        headers = (("List-Unsubscribe", links["list_unsubscribe"]), ("List-Unsubscribe-Post", ONE_CLICK))
    return Rendered(
        channel,
        to,
        subject=out.subject,
        title=out.title,
        body=out.text,
        html=out.html,
        headers=headers,
        transactional=content.transactional,
    )


def _abandoned(existing: dict[str, Any], log: MessageLog, now: datetime, lease: timedelta) -> dict[str, Any]:
    """A claim still ``sending``: wait for its attempt while the lease runs, else settle it as ``unconfirmed``."""
    claimed_at = parse_ts(existing.get("claimed_at"))
    if claimed_at is not None and now - claimed_at < lease:
        raise SendInProgress(f"message {existing['message_id']} is being sent by another attempt")
    settled = settle_unconfirmed(
        existing, "an attempt died after calling the provider and before recording the outcome", log, now
    )
    if settled is not None:
        return _result(settled, duplicate=True)
    raise SendInProgress(f"message {existing['message_id']} changed while being settled; look again")


def settle_unconfirmed(claim: dict[str, Any], reason: str, log: MessageClaims, now: datetime) -> dict[str, Any] | None:
    """Settle a claim left ``sending`` as ``unconfirmed``: it may have reached the provider, so it is never sent
    again, counts for caps and results, and is archived. Returns the settled record, or ``None`` when another
    attempt recorded an outcome meanwhile."""
    settled = {
        **claim,
        "status": "unconfirmed",
        "reason": reason,
        "finished_at": utc_iso(now),
        "sent_at": claim.get("sent_at") or claim.get("claimed_at"),
    }
    return settled if log.settle(settled, int(claim.get("attempt") or 1)) else None


def _result(rec: dict[str, Any], duplicate: bool = False) -> dict[str, Any]:
    return {
        "message_id": rec["message_id"],
        "status": rec["status"],
        "reason": rec.get("reason") or "",
        "duplicate": duplicate,
    }


@dataclass(frozen=True)
class Content:
    """What a message says and the limits it is sent under (from a campaign or a journey node)."""

    messages: Messages
    frequency_cap: FrequencyCap | None = None
    expires_at: datetime | None = None
    # The deployment's send policy (its caps); None for a transactional message, which it does not hold back.
    policy: SendPolicy | None = None
    # What the message is about: a customer unsubscribed from the topic gets no marketing message on it.
    topic: str | None = None
    transactional: bool = False
    trigger: dict[str, Any] | None = None  # the event that let the customer in
    latest: dict[str, Any] | None = None  # the customer's latest event
    # The path's promo code ({"code", "pool"}), taken on first use; None when the pool has none left.
    promo: Callable[[], dict[str, str] | None] | None = None
    # (customer_id, topic) -> unsubscribe_url, preferences_url, list_unsubscribe
    links: Callable[[str, str], dict[str, str]] | None = None


def deliver(
    req: SendRequest,
    customers: CustomerStore,
    prepare: Callable[[], Content | str],
    providers: dict[str, Provider],
    log: MessageLog,
    now: datetime,
    population: Callable[[], dict[str, Any] | None] | None = None,
    lease: timedelta = SENDING_LEASE,
    extra: dict[str, Any] | None = None,
    products: Callable[[list[str]], dict[str, dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Claim the message id, check consent, expiry and the frequency cap, send once, and log the outcome.

    ``prepare`` is asked after the claim for the content (or the reason to skip), so a skip is logged under
    the message id as any other outcome. ``extra`` adds fields to the log record (a journey's node).
    Returns
    -------
    dict
        ``status`` is ``sent``, ``unconfirmed`` (may have been delivered: treat as sent), ``failed`` or
        ``skipped``, with the ``reason``; ``duplicate`` when an earlier attempt decided it.

    Raises
    ------
    ProviderThrottled, ProviderUnavailable
        Transient failures, after recording them and releasing the claim: retry the step.
    SendInProgress
        Another attempt holds the claim: retry the step later.
    """
    customer = customers.get_customer(req.customer_id)
    if customer is None or customer.erased:
        # Nothing is written about a customer who was erased (the store keeps no item of them, or only the
        # tombstone): not even a skipped record.
        reason = "customer erased" if customer is not None else "no such customer (never stored, or erased)"
        return {"message_id": req.message_id, "status": "skipped", "reason": reason, "duplicate": False}
    decision = req.decision or {}
    record: dict[str, Any] = {
        "message_id": req.message_id,
        # The journey that sent it, under the attribute the log's by_campaign index reads (results, history).
        "campaign_id": req.journey_id,
        "customer_id": req.customer_id,
        "channel": req.channel,
        "step": req.step,
        "status": "sending",
        "reason": "",
        "claimed_at": utc_iso(now),
        "expires_at": int((now + LOG_RETENTION).timestamp()),
        # What the model saw when it chose this send time: retraining reads it to correct for the policy.
        "send_at": decision.get("send_at"),
        "hour_of_week": decision.get("hour_of_week"),
        "probability": decision.get("probability"),
        "policy": decision.get("policy"),
        "model_version": decision.get("model_version"),
        "timezone": decision.get("timezone"),
        "features": decision.get("features"),
        **(extra or {}),
    }
    claimed, existing = log.claim(record)
    if not claimed:
        assert existing is not None
        if existing.get("status") == IN_FLIGHT:
            return _abandoned(existing, log, now, lease)
        return _result(existing, duplicate=True)

    def finish(status: str, reason: str = "", **more: Any) -> dict[str, Any]:
        record.update(status=status, reason=reason, finished_at=utc_iso(now), **more)
        log.finish(record)
        return _result(record)

    content = prepare()
    if isinstance(content, str):
        return finish("skipped", content)
    if content.expires_at is not None and now >= content.expires_at:
        return finish("skipped", "offer expired")
    allowed, why = may_send(customer, req.channel, content.topic, content.transactional)
    if not allowed:
        return finish("skipped", why)
    if content.policy is not None and content.policy.frequency_caps:
        since = now - timedelta(days=7)
        reason = cap_reason(content.policy, req.channel, log.recent_sends(req.customer_id, since, req.message_id), now)
        if reason is not None:
            return finish("skipped", reason)
    if content.frequency_cap:
        cap = content.frequency_cap
        sent = log.sent_since(
            req.customer_id, req.channel, now - timedelta(days=cap.per_days), excluding=req.message_id
        )
        if sent >= cap.max_messages:
            return finish("skipped", f"frequency cap: {sent} {req.channel} messages in {cap.per_days} days")
    provider = providers.get(req.channel)
    if provider is None:
        return finish("failed", f"no provider configured for {req.channel}")
    prior = population() if population is not None and customer.recommendation is None else None
    try:
        message = render(content, req.channel, customer, now, prior, products)
    except TemplateRenderError as exc:
        # This customer's data breaks the template (a limit, a bad filter argument): a retry would not help.
        return finish("failed", f"template: {exc}")
    except (ConflictError, StoreError) as exc:
        # A promo code could not be taken now (a busy pool, a store failure): release the claim and retry the step.
        finish("unavailable", f"promo code not taken: {exc}")
        raise
    if isinstance(message, str):
        return finish("skipped", message)
    tags = {"message_id": req.message_id, "campaign_id": req.journey_id, "customer_id": req.customer_id}
    try:
        provider_id = provider.send(message, req.message_id, tags)
    except ProviderThrottled as exc:
        finish("throttled", str(exc) or "throttled")
        raise
    except ProviderUnavailable as exc:
        finish("unavailable", str(exc) or "provider unavailable")
        raise
    except ProviderOutcomeUnknown as exc:
        return finish("unconfirmed", str(exc), sent_at=utc_iso(now))
    except ProviderError as exc:
        return finish("failed", str(exc) or "rejected by the provider")
    result = finish("sent", "ok", provider_message_id=provider_id, sent_at=utc_iso(now))
    try:
        customers.count_send(req.customer_id, req.channel)
    except StoreError:
        # The message is out and logged; a lost count only makes the channel ranking a little less informed.
        logger.warning("send count not stored", extra={"customer_id": req.customer_id, "channel": req.channel})
    return result
