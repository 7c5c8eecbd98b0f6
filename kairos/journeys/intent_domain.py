"""Intents: named keyword clusters that tag what a customer wrote (``message_inbound`` text)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from kairos.customers.schemas import _ID_PATTERN

Word = Annotated[str, Field(min_length=1, max_length=100)]


class IntentIn(BaseModel):
    """``PUT /v1/intents/{name}``: the words and phrases that mean it, in English and Russian.

    A keyword matches any form of the word ("оплата" matches "оплату", "оплатой"; "pay" matches "paying");
    a phrase matches its words in that order, each in any form. ``stage`` groups intents into the stages of
    a conversation (``question``, ``ready_to_pay``...); a tagged event carries the stage too.
    """

    model_config = ConfigDict(extra="forbid")

    keywords: Annotated[list[Word], Field(max_length=200)] = Field(default_factory=list)
    phrases: Annotated[list[Annotated[str, Field(min_length=1, max_length=300)]], Field(max_length=100)] = Field(
        default_factory=list
    )
    stage: Annotated[str | None, Field(pattern=_ID_PATTERN)] = None


class IntentView(IntentIn):
    name: str
    updated_at: str


class IntentList(BaseModel):
    intents: list[IntentView]
