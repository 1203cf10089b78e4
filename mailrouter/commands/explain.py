"""`mailrouter explain FILE.eml`: the decision for one message, with no side effects."""
from __future__ import annotations

from pathlib import Path

from mailrouter.config.schema import Config
from mailrouter.decide.assign import TeamState
from mailrouter.act.forward import tag_labels, tag_subject
from mailrouter.model import Outcome
from mailrouter.act.original import InMemory, Original, Spooled
from mailrouter.decide.examine import Examined, destination, examine
from mailrouter.intake.spool import file_chunks, scan


def explain_file(config: Config, path: Path) -> str:
    if path.stat().st_size > config.large_message_bytes:  # read in chunks, as the daemon would
        return explain_original(config, Spooled(scan(file_chunks(path), path)))
    return explain_bytes(config, path.read_bytes())


def explain_bytes(config: Config, raw: bytes) -> str:
    """Team rotations are shown from their start: `explain` reads no database."""
    return explain_original(config, InMemory(raw))


def explain_original(config: Config, original: Original) -> str:
    """The daemon's decision path with no registry, no history and no side effects."""
    return explain_examined(config, examine(original.parse(config.parse), config, TeamState()))


def explain_examined(config: Config, examined: Examined) -> str:
    q, d = examined.inquiry, examined.decision
    folder, keywords = destination(d, config)
    lines = []
    if q is not None:
        lines += [
            f"Message-ID: {q.message_id or '(none)'}",
            f"Subject:    {q.subject}",
            f"Buyer:      {q.sender_name + ' ' if q.sender_name else ''}<{q.sender}>"
            + (f" via form {q.via_form}" if q.via_form else ""),
            f"Domain:     {q.domain or '-'} (country {q.country or '-'}, "
            f"{'free mail' if q.free_mail else 'corporate'})",
            f"Country:    {q.country or '-'}"
            + (f" ({q.country_confidence:.2f} from {q.country_source}: {q.country_evidence})" if q.country else ""),
            f"Language:   {q.language or 'undetermined'} ({q.language_confidence:.2f})",
            f"Products:   {', '.join(q.products) or '-'}"
            + (f" (main: {q.product_evidence})" if q.product_evidence else ""),
            f"Sent to:    {', '.join(q.recipients) or '-'}",
            f"Attachments: {', '.join(a.filename for a in q.attachments) or '-'}",
        ]
    lines += [
        f"Decision:   {d.outcome.value}" + (f" -> {d.rep}" if d.rep else ""),
        f"Rule:       {d.rule or '-'}",
        f"Reason:     {d.reason}",
        f"Filed in:   {folder} (keywords {' '.join(keywords)})",
    ]
    if d.outcome is Outcome.ROUTED and q is not None:
        lines.append(f"Forward:    {tag_subject(config.subject_format, q, d)}")
        lines.append(f"Labels:     {tag_labels(config.labels, q, d) or '-'} (the rep's view only)")
    return "\n".join(lines)
