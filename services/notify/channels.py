"""The reporters' channels as the delivery workers see them: each provider webhook an
endpoint like a department's (signed with the pack's secret, with its own breaker and
concurrency), and email sent by SMTP (aiosmtplib).

An email's `Message-ID` is its delivery id, the same across retries, as a webhook's
`webhook-id` is: a receiving system can drop a repeat. What an attempt logs of an SMTP
failure is the exception's kind and the server's code, never its text: a server's refusal
names the recipient.
"""

from __future__ import annotations

import json
from email.message import EmailMessage

import aiosmtplib

from gridloop.citypack import CityPack
from gridloop.citypack.messages import EmailChannel
from gridloop.mongo import Document
from services.notify.core import Answer
from services.notify.reporters import recipient
from services.notify.store import Endpoint

SMTP_OK = 250  # "requested mail action okay, completed": a 2xx, so `verdict` says delivered


def channel_endpoints(pack: CityPack) -> dict[str, Endpoint]:
    """The pack's reporter channels as endpoints, keyed by recipient (`reporter:sms`)."""
    if pack.messages is None:
        return {}
    found: dict[str, Endpoint] = {}
    for channel in pack.messages.channels:
        key = recipient(channel.kind)
        if isinstance(channel, EmailChannel):
            found[key] = Endpoint(key, f"smtp://{channel.host}:{channel.port}")
        else:
            found[key] = Endpoint(key, str(channel.url), [channel.secret])
    return found


def email(channel: EmailChannel, doc: Document, address: str) -> EmailMessage:
    """The email of a reporter's delivery `doc`, to `address`."""
    message = EmailMessage()
    message["From"] = channel.sender
    message["To"] = address
    message["Subject"] = channel.subject
    message["Message-ID"] = f"<{doc['_id']}@gridloop>"
    message.set_content(json.loads(doc["body"])["data"]["text"])
    return message


async def mail(channel: EmailChannel, doc: Document, address: str, seconds: float) -> Answer:
    """Send the email; what came of it, never raising."""
    try:
        await aiosmtplib.send(
            email(channel, doc, address),
            hostname=channel.host,
            port=channel.port,
            start_tls=channel.starttls,
            use_tls=False,
            timeout=seconds,
        )
    except aiosmtplib.SMTPResponseException as exc:
        return Answer(status=exc.code, error=f"{type(exc).__name__} {exc.code}")
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = sorted({r.code for r in exc.recipients})
        return Answer(error=f"recipient refused ({', '.join(map(str, codes))})")
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        return Answer(error=type(exc).__name__)
    return Answer(status=SMTP_OK)
