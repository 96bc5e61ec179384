"""The Redis list entries of task messages, as kombu's Redis channel writes them, quickly.

kombu turns a message into its list entry with `prepare_message` and `basic_publish`: the
body base64-encoded, a delivery tag, the delivery info, the whole envelope serialized to
JSON (about 25 µs, most of it that JSON). Messages of one kind differ only in a few values,
so the first message of each kind goes through kombu's own code with a marker in each of
those places; the entry kombu writes is kept as a template, cut at the markers, and later
messages fill in their own values, encoded by kombu's own JSON encoder. Anything that does
not fit that shape (compression, a queue with an expiry, an exchange routing to several
queues) goes through kombu's own code every time. tests/unit/test_celery_messages.py
compares the entries with `apply_async`'s.
"""

from __future__ import annotations

import base64
import math
import uuid
from collections.abc import Callable
from json.encoder import encode_basestring_ascii
from typing import Any

from kombu.entity import maybe_delivery_mode
from kombu.utils.json import JSONEncoder

from app.backends.celery_messages import Outgoing

#: kombu's encoder, made once (its `dumps` builds a new one for every call).
_encode = JSONEncoder().encode
#: Writes one varying value of a message into its template (with the call's encoded dicts).
Filler = Callable[[Outgoing, dict[int, tuple[Any, str]]], str]
#: Header and property values that differ between messages of one kind.
HEADER_HOLES = ("id", "root_id", "parent_id", "argsrepr", "kwargsrepr", "eta", "expires", "celeriac", "celeriac_ts")
PROPERTY_HOLES = ("correlation_id", "reply_to", "expiration")


def kombu_message(producer: Any, channel: Any, message: Outgoing) -> dict[str, Any]:
    """kombu's `Producer.publish` up to the channel: delivery mode, expiration, compression."""
    from kombu.compression import compress

    properties = dict(message.properties)
    priority = properties.pop("priority", 0)
    expiration = properties.pop("expiration", None)
    properties["delivery_mode"] = maybe_delivery_mode(message.route.delivery_mode or producer.exchange.delivery_mode)
    if expiration is not None:
        properties["expiration"] = str(int(expiration * 1000))
    body, headers = message.payload, message.headers
    if message.route.compression:
        body, headers["compression"] = compress(body, message.route.compression)
    entry: dict[str, Any] = channel.prepare_message(
        body, priority, message.content_type, message.content_encoding, headers, properties
    )
    return entry


class Commands:
    """Collects the Redis commands kombu's Redis channel issues for each message."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, tuple[Any, ...]]] = []
        #: Dicts encoded for this call's messages, by identity: a batch's jobs share their
        #: `celeriac` header object (app.kernel.dispatching.ResolvedJob.celeriac_header).
        self.encoded: dict[int, tuple[Any, str]] = {}

    def add(self, name: str, *args: Any) -> None:
        self.commands.append((name, args))


class EntryMaker:
    """Adds each message's Redis commands to `commands`; keeps a template per kind of message."""

    def __init__(self, producer: Any, channel: Any) -> None:
        self.producer, self.channel = producer, channel
        self._templates: dict[tuple[Any, ...], tuple[Any, _Template | None]] = {}

    def add(self, message: Outgoing, commands: Commands) -> None:
        route = message.route
        key = (
            id(route),
            tuple(message.headers),
            tuple(message.properties),
            message.content_type,
            message.content_encoding,
        )
        known = self._templates.get(key)
        if known is None or known[0] is not route:  # (an id reused by another route)
            known = (route, _Template.make(self.producer, self.channel, message))
            self._templates[key] = known
        template = known[1]
        if template is None:
            self._through_kombu(message, commands)
        else:
            commands.add("lpush", template.list_key, template.fill(message, commands.encoded))

    def _through_kombu(self, message: Outgoing, commands: Commands) -> None:
        route = message.route
        entry = kombu_message(self.producer, self.channel, message)
        self.channel.basic_publish(
            entry, exchange=route.exchange, routing_key=route.routing_key, _publish_batch=commands
        )


def _marker(name: str) -> str:
    return f"\x01celeriac-hole:{name}\x01"


class _Template:
    """One kind's list entry, cut where its messages differ."""

    def __init__(self, list_key: str, parts: list[str], holes: list[Filler]) -> None:
        self.list_key, self.parts, self.holes = list_key, parts, holes

    def fill(self, message: Outgoing, encoded: dict[int, tuple[Any, str]]) -> str:
        parts = self.parts
        out = [parts[0]]
        for i, hole in enumerate(self.holes):
            out.append(hole(message, encoded))
            out.append(parts[i + 1])
        return "".join(out)

    @classmethod
    def make(cls, producer: Any, channel: Any, message: Outgoing) -> _Template | None:
        """kombu's entry for `message` with markers in its varying places, cut at them; None
        when kombu does more than one LPUSH for it (see the module docstring)."""
        if message.route.compression:
            return None
        fillers: dict[str, Filler] = {}
        headers = dict(message.headers)
        for name in HEADER_HOLES:
            if name in headers:
                headers[name] = _marker(name)
                fillers[_encode(_marker(name))] = _header(name)
        properties = dict(message.properties)
        for name in ("correlation_id", "reply_to"):
            if name in properties:
                properties[name] = _marker(name)
                fillers[_encode(_marker(name))] = _property(name)
        marked = Outgoing(
            message.job_id, message.name, message.route, message.body, headers, properties,
            message.content_type, message.content_encoding, _marker("body"),
        )  # fmt: skip
        entry = kombu_message(producer, channel, marked)
        if "expiration" in entry["properties"]:
            entry["properties"]["expiration"] = _marker("expiration")
            fillers[_encode(_marker("expiration"))] = _expiration
        commands = Commands()
        route = message.route
        channel.basic_publish(entry, exchange=route.exchange, routing_key=route.routing_key, _publish_batch=commands)
        if len(commands.commands) != 1 or commands.commands[0][0] != "lpush":
            return None
        list_key, text = commands.commands[0][1]
        fillers[_encode(_b64(_marker("body")))] = _body
        fillers[_encode(entry["properties"]["delivery_tag"])] = _delivery_tag
        return cls._cut(list_key, text, fillers)

    @classmethod
    def _cut(cls, list_key: str, text: str, fillers: dict[str, Filler]) -> _Template | None:
        found = []
        for mark, filler in fillers.items():
            at = text.find(mark)
            if at < 0 or text.find(mark, at + 1) >= 0:
                return None  # not exactly once: this shape is not for templates
            found.append((at, mark, filler))
        found.sort(key=lambda item: item[0])
        parts, holes, start = [], [], 0
        for at, mark, filler in found:
            parts.append(text[start:at])
            holes.append(filler)
            start = at + len(mark)
        parts.append(text[start:])
        return cls(list_key, parts, holes)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _value(value: Any, encoded: dict[int, tuple[Any, str]]) -> str:
    """`value` as kombu's JSON encoder writes it, its common types without building an encoder."""
    kind = type(value)
    if kind is str:
        return encode_basestring_ascii(value)
    if value is None:
        return "null"
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    if kind is dict:
        known = encoded.get(id(value))
        if known is not None and known[0] is value:
            return known[1]
        text = _encode(value)
        encoded[id(value)] = (value, text)
        return text
    return _encode(value)


def _header(name: str) -> Filler:
    return lambda message, encoded: _value(message.headers[name], encoded)


def _property(name: str) -> Filler:
    return lambda message, encoded: _value(message.properties[name], encoded)


def _expiration(message: Outgoing, _encoded: dict[int, tuple[Any, str]]) -> str:
    return '"' + str(int(message.properties["expiration"] * 1000)) + '"'


def _body(message: Outgoing, _encoded: dict[int, tuple[Any, str]]) -> str:
    payload = message.payload
    raw = payload if isinstance(payload, bytes) else payload.encode("utf-8")
    return '"' + base64.b64encode(raw).decode("ascii") + '"'


def _delivery_tag(_message: Outgoing, _encoded: dict[int, tuple[Any, str]]) -> str:
    return '"' + str(uuid.uuid4()) + '"'
