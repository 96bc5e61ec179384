"""Escalation channels (F3): a Slack-compatible webhook and SMTP e-mail.

Each `send` raises on failure; the notifier logs it and carries on.
"""

from __future__ import annotations

import json
import smtplib
import urllib.request
from email.message import EmailMessage
from typing import Protocol

from app.config import EscalationConfig

#: Seconds a webhook or SMTP server may take before a delivery counts as failed.
SEND_TIMEOUT_S = 10


class Channel(Protocol):
    name: str

    def send(self, subject: str, text: str) -> None: ...


class WebhookChannel:
    """POSTs `{"text": ...}`, what Slack, Mattermost and Teams-style incoming webhooks accept."""

    name = "webhook"

    def __init__(self, url: str) -> None:
        self.url = url

    def send(self, subject: str, text: str) -> None:
        body = json.dumps({"text": f"*{subject}*\n{text}"}).encode()
        request = urllib.request.Request(
            self.url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=SEND_TIMEOUT_S) as response:
            response.read()


class SmtpChannel:
    """One plain-text e-mail to every configured recipient."""

    name = "smtp"

    def __init__(self, config: EscalationConfig) -> None:
        self.config = config

    def send(self, subject: str, text: str) -> None:
        cfg = self.config
        assert cfg.smtp_host is not None
        message = EmailMessage()
        message["Subject"] = subject
        message["From"] = cfg.email_from
        message["To"] = ", ".join(cfg.email_to)
        message.set_content(text)
        with smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=SEND_TIMEOUT_S) as smtp:
            if cfg.smtp_starttls:
                smtp.starttls()
            if cfg.smtp_user:
                smtp.login(cfg.smtp_user, cfg.smtp_password or "")
            smtp.send_message(message)


def channels_for(config: EscalationConfig) -> list[Channel]:
    found: list[Channel] = [WebhookChannel(url) for url in config.webhook_urls]
    if config.smtp_host and config.email_to:
        found.append(SmtpChannel(config))
    return found
