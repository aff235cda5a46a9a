"""Turn one Windows event, in any of the export shapes people collect, into one flat store row.

Shapes: the JSON that the `evtx` parser renders (`{"Event": {"System": …, "EventData": …}}`),
Winlogbeat / Elastic Agent ECS (`winlog.event_data`, nested or dotted keys), Velociraptor's EVTX
artifact (`System.EventID.Value`, epoch `TimeCreated.SystemTime`), and the flat Mordor/NXLog shape of
the OTRF Security-Datasets (event data at the top level beside `EventID`, `Channel`, `Hostname`).
All of them end as the same row: the fixed columns of `schema.WIN_EVENT_FIXED` plus every EventData
and UserData field under its Windows name, values as strings.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from turncoat.store.schema import KNOWN_BY_FOLD, RESERVED, UNNAMED_DATA

Row = dict[str, Any]
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

# Keys of the flat Mordor/NXLog shape that describe the record, not the event's data.
_FLAT_META = frozenset(
    k.casefold()
    for k in (
        "Message", "SourceName", "TimeCreated", "Hostname", "Task", "Level", "Keywords",
        "Channel", "ProviderGuid", "@timestamp", "@version", "EventID", "EventReceivedTime",
        "SourceModuleName", "SourceModuleType", "RecordNumber", "Severity", "SeverityValue",
        "Opcode", "OpcodeValue", "ThreadID", "EventRecordID", "Computer", "ExecutionProcessID",
        "ExecutionThreadID", "Provider", "tags", "port", "host", "EventTime", "Category",
        "AccountType", "UserID", "Version", "Hashes_", "EventData", "UserData", "System",
    )
) - {"hashes_"}

_canonical_cache: dict[str, str] = {}


def canonical_field(name: str) -> str:
    """The stored spelling of a field: the schema's for known names, else the name as written."""
    got = _canonical_cache.get(name)
    if got is None:
        got = KNOWN_BY_FOLD.get(name.casefold(), name)
        if got.casefold() in RESERVED:
            got = f"{got}_"  # never shadow a provenance column such as `line` or `host`
        got = got.replace(".", "_")
        _canonical_cache[name] = got
    return got


def host_key(computer: str | None) -> str | None:
    """Canonical host key: lower-case short name; an IP address stays whole."""
    if not computer:
        return None
    name = computer.strip().rstrip(".")
    if not name:
        return None
    head = name.split(".", 1)[0]
    if head.isdigit() or ":" in name:  # 10.0.0.5 or an IPv6 literal: not a DNS name
        return name.lower()
    return head.lower()


def _text(value: Any) -> str | None:
    """A field value as the string the store keeps (lists as JSON, dicts by their text)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, dict):
        if "#text" in value:
            return _text(value["#text"])
        if "Value" in value and len(value) <= 2:
            return _text(value["Value"])
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    if isinstance(value, list):
        return orjson.dumps([_text(v) for v in value]).decode()
    return str(value)


def _put(fields: Row, name: str, value: Any) -> None:
    """Store one field; a second spelling of the same name with another value is kept apart."""
    col = _canonical_cache.get(name) or canonical_field(name)
    text = value if value.__class__ is str else _text(value)
    if col not in fields or fields[col] is None:
        fields[col] = text
    elif fields[col] != text and text is not None:
        fields[f"{col}__{name}"] = text


def _event_data(data: Any, fields: Row) -> None:
    """Flatten an EventData element as the evtx parser renders it."""
    if not isinstance(data, dict):
        if data not in (None, ""):
            fields[UNNAMED_DATA] = _text(data if isinstance(data, list) else [data])
        return
    for name, value in data.items():
        if name == "#attributes":
            continue
        if name == "Data" or name == "#text":
            unnamed = value.get("#text") if isinstance(value, dict) else value
            if unnamed is None:
                continue
            fields[UNNAMED_DATA] = _text(unnamed if isinstance(unnamed, list) else [unnamed])
        else:
            _put(fields, name, value)


def _user_data(data: Any, fields: Row) -> None:
    """UserData wraps its fields in one provider-specific element; keep the leaves."""
    if not isinstance(data, dict):
        return
    for name, value in data.items():
        if name == "#attributes":
            continue
        if isinstance(value, dict) and "#text" not in value:
            _user_data(value, fields)
        else:
            _put(fields, name, value)


def _attr(node: Any, key: str) -> Any:
    if isinstance(node, dict):
        attrs = node.get("#attributes")
        if isinstance(attrs, dict):
            return attrs.get(key)
        return node.get(key)
    return None


_INT32 = 2**31
_INT64 = 2**63


def _bounded(value: Any, limit: int) -> int | None:
    """An integer that fits its column, or None (hostile evidence may hold anything)."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if -limit <= number < limit else None


def _event_id(value: Any) -> int | None:
    if isinstance(value, dict):
        value = value.get("#text", value.get("Value"))
    return _bounded(value, _INT32)


def _int(value: Any) -> int | None:
    return _bounded(value, _INT64)


def iso_time(value: Any) -> str | None:
    """An event time as an ISO-8601 UTC string Arrow can cast; epoch seconds accepted."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:  # truncate to the microsecond as the EVTX path does, so both land in the same second
            micros = math.floor(value * 1_000_000)
            return (_EPOCH + timedelta(microseconds=micros)).isoformat()
        except (OverflowError, ValueError):
            return None
    text = str(value).strip()
    if text.endswith(" UTC"):
        text = text[:-4]
    return text


def _finish(row: Row, computer: str | None, channel: str | None) -> Row:
    row["host"] = host_key(computer)
    row["Computer"] = computer
    row["Channel"] = channel
    return row


_host_cache: dict[str, str | None] = {}
_plans: dict[tuple[str, ...], tuple[str, ...]] = {}
_FIXED_NAMES = frozenset(("ts", "EventID", "record_id", "Provider_Name", "Level", "Task", "Keywords",
                          "Execution_ProcessID", "Security_UserID", "host", "Computer", "Channel"))


def _plan(keys: tuple[str, ...]) -> tuple[str, ...]:
    """Stored names for one EventData layout, computed once per layout; unusual layouts (unnamed
    data, two spellings of one name) raise so the general reader handles them."""
    names = tuple(canonical_field(k) for k in keys)
    if any(k in ("Data", "#text", "#attributes") for k in keys) or len(set(names)) != len(names) \
            or _FIXED_NAMES.intersection(names):
        raise ValueError("unusual EventData layout: general reader")
    _plans[keys] = names
    return names


def _scalar_text(value: Any) -> str:
    if value.__class__ is dict or value.__class__ is list:
        raise ValueError("nested value: general reader")
    return _text(value)


_FAST_FIXED = ("ts", "EventID", "record_id", "Provider_Name", "Level", "Task", "Keywords",
               "Execution_ProcessID", "Security_UserID", "host", "Computer", "Channel")
_PROVENANCE = ("evidence_id", "seq")  # values appended by the store's writer
_shapes: dict[tuple[str, ...], tuple[str, ...]] = {}


def shaped_evtx(doc: dict) -> tuple[tuple[str, ...], list[Any]] | None:
    """The evtx parser's usual layout as (column names, values), with as few Python operations as
    possible: this is ingest's hot path. The names end with `evidence_id`, `seq`, whose values the
    writer appends; the same names object is returned for every event of one layout. None when anything is unusual (UserData, unnamed data,
    nested values, odd System types, two spellings of a name): the general reader handles those."""
    try:
        event = doc["Event"]
        system = event["System"]
        if "UserData" in event:
            return None
        attrs = system["TimeCreated"]["#attributes"]
        event_id = system["EventID"]
        record_id = system.get("EventRecordID")
        system_time, computer, channel = attrs["SystemTime"], system["Computer"], system["Channel"]
        if not (system_time.__class__ is str and computer.__class__ is str and channel.__class__ is str
                and event_id.__class__ is int and 0 <= event_id < _INT32
                and (record_id is None or (record_id.__class__ is int and 0 <= record_id < _INT64))):
            return None
        level, task = system.get("Level"), system.get("Task")
        execution, security = system.get("Execution"), system.get("Security")
        host = _host_cache.get(computer)
        if host is None:
            host = _host_cache[computer] = host_key(computer)
        values = [
            system_time, event_id, record_id, system["Provider"]["#attributes"].get("Name"),
            None if level is None else str(level), None if task is None else str(task), system.get("Keywords"),
            None if execution is None else str(execution["#attributes"].get("ProcessID")),
            None if security is None else security["#attributes"].get("UserID"),
            host, computer, channel,
        ]
        data = event.get("EventData")
        if data is None:
            keys: tuple[str, ...] = ()
        elif data.__class__ is dict:
            keys = tuple(data)
            values.extend(v if v.__class__ is str or v is None else _scalar_text(v) for v in data.values())
        else:
            return None
        names = _shapes.get(keys)
        if names is None:
            names = _shapes[keys] = _FAST_FIXED + _plan(keys) + _PROVENANCE
        return names, values
    except (KeyError, TypeError, AttributeError, ValueError):
        return None


def from_evtx_json(doc: dict) -> Row | None:
    """The `{"Event": {...}}` document of the evtx parser (also Velociraptor's nested shape)."""
    shaped = shaped_evtx(doc)
    if shaped is not None:
        return dict(zip(*shaped))  # the provenance names have no values yet: zip drops them
    event = doc.get("Event", doc)
    system = event.get("System")
    if not isinstance(system, dict):
        return None
    row: Row = {}
    time_node = system.get("TimeCreated")
    ts = _attr(time_node, "SystemTime")
    row["ts"] = iso_time(ts if ts is not None else event.get("EventTime"))
    row["EventID"] = _event_id(system.get("EventID"))
    row["record_id"] = _int(system.get("EventRecordID"))
    provider = system.get("Provider")
    row["Provider_Name"] = _text(_attr(provider, "Name")) if isinstance(provider, dict) else _text(provider)
    row["Level"] = _text(system.get("Level"))
    row["Task"] = _text(system.get("Task"))
    row["Keywords"] = _text(system.get("Keywords"))
    row["Execution_ProcessID"] = _text(_attr(system.get("Execution"), "ProcessID"))
    row["Security_UserID"] = _text(_attr(system.get("Security"), "UserID"))
    _event_data(event.get("EventData"), row)
    _user_data(event.get("UserData"), row)
    return _finish(row, _text(system.get("Computer")), _text(system.get("Channel")))


def _undot(doc: dict) -> dict:
    """ECS exports sometimes flatten nesting into dotted keys (`winlog.event_data.Image`)."""
    out: dict = {}
    for key, value in doc.items():
        if "." in key and not key.startswith("@"):
            node = out
            parts = key.split(".")
            for part in parts[:-1]:
                nxt = node.get(part)
                if not isinstance(nxt, dict):
                    nxt = node[part] = {}
                node = nxt
            node[parts[-1]] = value
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key].update(value)
        else:
            out[key] = value
    return out


def _params(data: dict) -> list[str]:
    """Unnamed <Data> items as exporters name them (`param1`, `param2`, …), in numeric order."""
    return sorted((k for k in data if k.startswith("param") and k[5:].isdigit()), key=lambda k: int(k[5:]))


def from_ecs(doc: dict) -> Row | None:
    """Winlogbeat / Elastic Agent documents: `winlog.*` carries the Windows event."""
    winlog = doc.get("winlog")
    if not isinstance(winlog, dict):
        return None
    row: Row = {}
    event = doc.get("event") if isinstance(doc.get("event"), dict) else {}
    row["ts"] = iso_time(doc.get("@timestamp") or winlog.get("time_created"))
    row["EventID"] = _event_id(winlog.get("event_id", event.get("code")))
    row["record_id"] = _int(winlog.get("record_id"))
    row["Provider_Name"] = _text(winlog.get("provider_name", event.get("provider")))
    row["Level"] = _text(winlog.get("level") or (doc.get("log") or {}).get("level"))
    row["Task"] = _text(winlog.get("task"))
    keywords = winlog.get("keywords")
    row["Keywords"] = _text(keywords if not isinstance(keywords, list) else ",".join(map(str, keywords)))
    process = winlog.get("process") if isinstance(winlog.get("process"), dict) else {}
    row["Execution_ProcessID"] = _text(process.get("pid"))
    user = winlog.get("user") if isinstance(winlog.get("user"), dict) else {}
    row["Security_UserID"] = _text(user.get("identifier"))
    data = winlog.get("event_data")
    if isinstance(data, dict):
        # Winlogbeat names unnamed <Data> items param1, param2, …: they become the `Data` array
        params = _params(data)
        if params:
            row[UNNAMED_DATA] = _text([data[k] for k in params])
        for name, value in data.items():
            if name not in params:
                _put(row, name, value)
    _user_data(winlog.get("user_data"), row)
    host = doc.get("host") if isinstance(doc.get("host"), dict) else {}
    computer = winlog.get("computer_name") or host.get("name") or host.get("hostname")
    return _finish(row, _text(computer), _text(winlog.get("channel")))


def from_flat(doc: dict) -> Row | None:
    """Mordor/NXLog flattening (OTRF Security-Datasets) and Velociraptor's flat EVTX rows."""
    if "EventID" not in doc or not ("Channel" in doc or "Hostname" in doc or "Computer" in doc):
        return None
    row: Row = {}
    row["ts"] = iso_time(
        doc.get("TimeCreated") if not isinstance(doc.get("TimeCreated"), dict)
        else _attr(doc["TimeCreated"], "SystemTime")
    ) or iso_time(doc.get("@timestamp") or doc.get("EventTime"))
    row["EventID"] = _event_id(doc.get("EventID"))
    row["record_id"] = _int(doc.get("EventRecordID", doc.get("RecordNumber")))
    row["Provider_Name"] = _text(doc.get("SourceName") or _attr(doc.get("Provider"), "Name"))
    row["Level"] = _text(doc.get("Level"))
    row["Task"] = _text(doc.get("Task"))
    row["Keywords"] = _text(doc.get("Keywords"))
    row["Execution_ProcessID"] = _text(doc.get("ExecutionProcessID"))
    row["Security_UserID"] = _text(doc.get("UserID"))
    params = _params(doc)
    if params:
        row[UNNAMED_DATA] = _text([doc[k] for k in params])
    for name, value in doc.items():
        if name.casefold() in _FLAT_META or name in params:
            continue
        _put(row, name, value)
    if isinstance(doc.get("EventData"), dict):
        _event_data(doc["EventData"], row)
    if isinstance(doc.get("UserData"), dict):
        _user_data(doc["UserData"], row)
    computer = doc.get("Hostname") or doc.get("Computer")
    return _finish(row, _text(computer), _text(doc.get("Channel")))


def from_any_json(doc: dict) -> Row | None:
    """Recognise the shape of one JSON event and normalise it; None when it is no Windows event."""
    if isinstance(doc.get("_source"), dict):  # an Elasticsearch hit (elasticdump, _search exports)
        doc = doc["_source"]
    if "Event" in doc and isinstance(doc["Event"], dict):
        return from_evtx_json(doc)
    if isinstance(doc.get("System"), dict):
        return from_evtx_json(doc)
    if "winlog" in doc:
        return from_ecs(doc)
    if any("." in k for k in doc if k.startswith("winlog.")):
        return from_ecs(_undot(doc))
    return from_flat(doc)


def content_key(row: Row) -> str | None:
    """For events without a record id: a hash of the content, so two exports collapse to one row.

    Events with a record id collapse on (host, channel, record id, second) in the store's view,
    which survives the time-precision differences between exports.
    """
    if row.get("record_id") is not None:
        return None
    content = orjson.dumps(
        {k: v for k, v in row.items() if k not in ("evidence_id", "line", "offset")},
        option=orjson.OPT_SORT_KEYS,
    )
    return "h:" + hashlib.blake2b(content, digest_size=12).hexdigest()
