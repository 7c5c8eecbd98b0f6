"""Wire schemas of what a customer's events and chats build beyond the scoring inputs: the funnel stage, loyalty
points and messenger links."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class StageView(BaseModel):
    """The funnel stage the latest event naming one (``properties.stage``, e.g. an inbound question's intent) put
    the customer in."""

    name: str = Field(description="the current stage")
    since: datetime = Field(description="when the customer reached it")
    previous: str | None = Field(default=None, description="the stage before it")


class PointsView(BaseModel):
    """The loyalty ledger (``points_earned``, ``points_spent`` and ``points_expired`` events) at the time of the
    request: expired points no longer count in the balance."""

    balance: int = Field(ge=0, description="points held now")
    earned: int = Field(ge=0)
    spent: int = Field(ge=0)
    expired: int = Field(ge=0, description="points that expired (their time came, or the shop expired them)")
    next_expiry_at: datetime | None = Field(description="when the next points expire (none dated: null)")
    next_expiry_points: int = Field(ge=0, description="how many points expire then")


class MessengerLinkView(BaseModel):
    """A start link for the Telegram bot: the customer opens ``https://t.me/<your bot>?start=<start_parameter>`` and
    the chat is theirs (their profile gets the chat id and consent for messenger)."""

    customer_id: str
    start_parameter: str = Field(description="the bot's start parameter: give `https://t.me/<your bot>?start=` + it")
    expires_at: datetime = Field(description="when the link stops working")


class TelegramWebhookView(BaseModel):
    """What to give Telegram's ``setWebhook``: the URL (``url``, the API's base + ``webhook_path``) and the secret
    token Telegram then sends with every update."""

    webhook_path: str
    secret_token: str
