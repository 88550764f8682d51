"""Request/response models of accounts."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class RegisterIn(BaseModel):
    username: str = Field(max_length=64)
    email: str = Field(max_length=254)
    password: str = Field(max_length=1024)


class LoginIn(BaseModel):
    username: str = Field(max_length=254, description="username or email")
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
