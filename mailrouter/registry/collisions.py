"""撞单: a rep writes to a customer the registry gives to another rep.

Recorded every time; the owner's supervisor is told once per customer per day.
"""
from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from mailrouter.config.schema import Config
from mailrouter.decide.assign import team_of
from mailrouter.act.outgoing import notice_sender, queue_notice
from mailrouter.sla.chat import hand_over, queue_chat
from mailrouter.registry.keys import SenderKeys, corporate_domain
from mailrouter.registry.match import find_hit
from mailrouter.registry.models import CustomerRow
from mailrouter.sla.replies import Outgoing
from mailrouter.sla.notify import Notice, NoticeKind, render_notice
from mailrouter.store import CollisionRow
from mailrouter.act.templating import make_environment

log = logging.getLogger("mailrouter.collisions")


class CollisionCheck:
    def __init__(self, config: Config, clock, webhooks=None):
        self.config = config
        self.clock = clock
        self.webhooks = webhooks
        self.templates = make_environment(config.template_dirs)
        self._notices: list[Notice] = []

    def __call__(self, session: Session, out: Outgoing, rep: str) -> None:
        """Called inside the reply recorder's transaction for every message a rep sent."""
        for address in sorted(out.recipients):
            owner = self._owner_of(session, address)
            if owner and owner != rep and owner in self.config.reps:
                self._record(session, address, owner, rep, out)

    def _owner_of(self, session: Session, address: str) -> str | None:
        domain = corporate_domain(address, self.config.parse.free_mail_domains)
        hit = find_hit(session, SenderKeys(emails=(address,), domains=(domain,) if domain else ()))
        customer = session.get(CustomerRow, hit.customer_id) if hit else None
        return customer.owner if customer is not None else None  # (deleted meanwhile: nobody's)

    def _record(self, session: Session, customer: str, owner: str, rep: str, out: Outgoing) -> None:
        now = self.clock()
        recent = session.scalar(select(CollisionRow.id).where(
            CollisionRow.customer == customer, CollisionRow.notified.is_(True),
            CollisionRow.at > now - timedelta(days=1)))
        row = CollisionRow(customer=customer, owner=owner, rep=rep, at=now,
                           message_id=out.message_id[:500], notified=recent is None)
        session.add(row)
        log.warning("collision: %s wrote to %s, a customer of %s%s", rep, customer, owner,
                    "" if recent is None else " (supervisor already told today)")
        if recent is None:
            self._notify(session, customer, owner, rep, out, now)

    def _notify(self, session: Session, customer: str, owner: str, rep: str, out: Outgoing,
                now: datetime) -> None:
        team = team_of(self.config, owner)
        to = self.config.reps[team.supervisor if team and team.supervisor else owner]
        notice = Notice(kind=NoticeKind.COLLISION, rep=self.config.reps[owner].name, customer=customer,
                        subject="", message_id=out.message_id, age=timedelta(0), language=to.language,
                        supervisor=to.name, other_rep=self.config.reps[rep].name)
        rendered = render_notice(self.templates, notice)
        domain = notice_sender(self.config).address.rpartition("@")[2]
        key = hashlib.sha256(customer.encode()).hexdigest()[:16]
        notice_id = f"<mr.collision.{now:%Y%m%d}.{key}.{rep}@{domain}>"
        queue_notice(session, self.config, to.email, rendered.subject, rendered.body, notice_id, now)
        if self.webhooks and self.config.sla.webhooks:  # in the group's language, batched like the ladder's
            webhooks, queued = self.webhooks, queue_chat(session, self.config, [notice], now)
            after_commit(session, lambda: hand_over(webhooks, self.config, queued))


_AFTER_COMMIT = "mailrouter.after_commit"


def after_commit(session: Session, action: Callable[[], None]) -> None:
    """Run `action` once this session's transaction commits; drop it if it rolls back.
    Why: a webhook told about a collision the database never recorded cannot be taken back."""
    pending = session.info.get(_AFTER_COMMIT)
    if pending is None:
        pending = session.info[_AFTER_COMMIT] = []
        event.listen(session, "after_commit", _run_pending)
        event.listen(session, "after_rollback", _drop_pending)
    pending.append(action)


def _run_pending(session: Session) -> None:
    actions, session.info[_AFTER_COMMIT] = session.info.get(_AFTER_COMMIT, []), []
    for action in actions:
        try:
            action()
        except Exception:  # the commit has happened: a failing webhook must not look like a failed commit
            log.exception("after-commit action failed")


def _drop_pending(session: Session) -> None:
    session.info[_AFTER_COMMIT] = []
