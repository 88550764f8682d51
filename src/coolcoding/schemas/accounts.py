"""Request/response models of accounts."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from coolcoding.schemas.limits import (
    EMAIL_PATTERN,
    NO_CONTROL_CHARS,
    NO_NUL,
    USERNAME_PATTERN,
)


class RegisterIn(BaseModel):
    username: str = Field(
        min_length=3,
        max_length=32,
        pattern=USERNAME_PATTERN,
        description="3-32 characters: letters, digits, '_', '.', '-'",
    )
    email: str = Field(max_length=254, pattern=EMAIL_PATTERN)
    # minLength (settings.password_min_length) is written into the document by api/openapi.py
    # and enforced by the account service (400 weak_password).
    password: str = Field(max_length=1024, pattern=NO_NUL, description="no NUL character")


class LoginIn(BaseModel):
    username: str = Field(max_length=254, pattern=NO_CONTROL_CHARS, description="username or email")
    password: str = Field(max_length=1024)


class DeleteAccountIn(BaseModel):
    password: str = Field(max_length=1024, description="the account's password, to confirm")


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    email: str
    created_at: datetime


class AuthOut(BaseModel):
    user: UserOut
    token: str
