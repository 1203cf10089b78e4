"""Registry tables, on the daemon's own Base so `open_database` creates them with the rest.

Every way of recognising a sender (email, corporate domain, phone) is its own indexed table,
so a match is a few index lookups however large the registry grows.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mailrouter.store import Base

from mailrouter.registry.verdict import ACTIVE, BLOCKED, DO_NOT_CONTACT, REJECTED, STATUSES  # noqa: F401


class CustomerRow(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    company: Mapped[str] = mapped_column(String(300), default="")
    company_key: Mapped[str] = mapped_column(String(300), default="", index=True)
    contact_name: Mapped[str] = mapped_column(String(200), default="")
    country: Mapped[str | None] = mapped_column(String(2))
    owner: Mapped[str | None] = mapped_column(String(100), index=True)  # rep id; None = unowned
    status: Mapped[str] = mapped_column(String(20), default=ACTIVE)
    status_reason: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(200), default="")
    first_seen: Mapped[datetime]
    last_inquiry: Mapped[datetime | None]
    # Ownership lapses `quiet_days` after this: the later of import, inquiry and handover.
    last_contact: Mapped[datetime]
    owner_since: Mapped[datetime]

    emails: Mapped[list[CustomerEmailRow]] = relationship(
        back_populates="customer", cascade="all, delete-orphan")
    domains: Mapped[list[CustomerDomainRow]] = relationship(
        back_populates="customer", cascade="all, delete-orphan")
    phones: Mapped[list[CustomerPhoneRow]] = relationship(
        back_populates="customer", cascade="all, delete-orphan")
    aliases: Mapped[list[CustomerAliasRow]] = relationship(
        back_populates="customer", cascade="all, delete-orphan")


class CustomerEmailRow(Base):
    __tablename__ = "customer_emails"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # lower-case
    customer: Mapped[CustomerRow] = relationship(back_populates="emails")


class CustomerDomainRow(Base):
    """A registered corporate domain; free-mail domains are never stored here."""

    __tablename__ = "customer_domains"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    domain: Mapped[str] = mapped_column(String(253), unique=True)
    customer: Mapped[CustomerRow] = relationship(back_populates="domains")


class CustomerPhoneRow(Base):
    """E.164 numbers; not unique, since a switchboard can serve several companies."""

    __tablename__ = "customer_phones"
    __table_args__ = (UniqueConstraint("customer_id", "e164", name="uq_customer_phone"),
                      Index("ix_customer_phones_e164", "e164"))

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))  # leads uq index
    e164: Mapped[str] = mapped_column(String(20))
    customer: Mapped[CustomerRow] = relationship(back_populates="phones")


class CustomerAliasRow(Base):
    """Another name of the company: in a second script, a trading name, an English name.

    Matched like `customers.company_key` (with a phone that agrees); not unique, since two
    customers may share a trading name and the phone tells them apart.
    """

    __tablename__ = "customer_aliases"
    __table_args__ = (UniqueConstraint("customer_id", "alias_key", name="uq_customer_alias"),
                      Index("ix_customer_aliases_alias_key", "alias_key"))

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))  # leads uq index
    alias: Mapped[str] = mapped_column(String(300))  # as written, for people and evidence
    alias_key: Mapped[str] = mapped_column(String(300))  # normalise.company_key(alias)
    customer: Mapped[CustomerRow] = relationship(back_populates="aliases")


class OwnerHistoryRow(Base):
    __tablename__ = "customer_owner_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    from_rep: Mapped[str | None] = mapped_column(String(100))
    to_rep: Mapped[str | None] = mapped_column(String(100))
    at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(Text, default="")
    customer: Mapped[CustomerRow] = relationship()


class InquiryHistoryRow(Base):
    __tablename__ = "customer_inquiries"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    message_row: Mapped[int | None]  # messages.id when the pipeline has one (no FK: kept apart)
    message_id: Mapped[str] = mapped_column(String(500), default="")
    sender: Mapped[str] = mapped_column(String(320), default="")
    subject: Mapped[str] = mapped_column(String(500), default="")
    at: Mapped[datetime]
    rep: Mapped[str | None] = mapped_column(String(100))
    customer: Mapped[CustomerRow] = relationship()
