"""What a message says, per channel, and the limits a journey or campaign sets on its own messages."""

from __future__ import annotations

from datetime import time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kairos.core.constants import CHANNELS

Channel = Literal[CHANNELS]  # type: ignore[valid-type]


class EmailMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subject: Annotated[str, Field(min_length=1, max_length=998)]
    html: Annotated[str | None, Field(max_length=200_000)] = None
    text: Annotated[str | None, Field(max_length=100_000)] = None

    @model_validator(mode="after")
    def _body(self) -> EmailMessage:
        if not (self.html or self.text):
            raise ValueError("an email needs html or text")
        return self


class PushMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: Annotated[str, Field(min_length=1, max_length=200)]
    body: Annotated[str, Field(min_length=1, max_length=2000)]


class TextMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: Annotated[str, Field(min_length=1, max_length=1600)]


class Messages(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: EmailMessage | None = None
    push: PushMessage | None = None
    sms: TextMessage | None = None
    messenger: TextMessage | None = None


class QuietHoursIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: time
    end: time


class FrequencyCap(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_messages: Annotated[int, Field(ge=1, le=100)]
    per_days: Annotated[int, Field(ge=1, le=90)]
