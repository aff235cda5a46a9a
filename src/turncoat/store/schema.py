"""The one place where the case store's tables and columns are named (see docs/schema.md).

Readers produce rows keyed by these names; views, detectors and reports read them. A column that
is not named here (an EventData field) keeps the Windows name the source gave it.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1

# Verdict ladder, best first. A host's verdict is the highest stage with evidence.
VERDICTS: tuple[str, ...] = (
    "not-affected",
    "no-evidence",
    "vulnerable-installed",
    "armed-dormant",
    "c2-contact",
    "payload",
    "data-stolen",
)
# The stages evidence can prove (the ladder above `no-evidence`).
STAGES: tuple[str, ...] = VERDICTS[2:]
CONFIDENCES: tuple[str, ...] = ("low", "medium", "high")


def verdict_rank(verdict: str) -> int:
    """Position on the ladder; larger is worse."""
    return VERDICTS.index(verdict)


# --- win_events: every Windows event, whatever the export format -------------------------------

WIN_EVENTS = "win_events"

# Fixed columns, in order, with their Arrow types. Everything else is an EventData/UserData field.
WIN_EVENT_FIXED: dict[str, pa.DataType] = {
    "evidence_id": pa.string(),
    "seq": pa.int64(),
    "record_id": pa.int64(),
    "line": pa.int64(),
    "offset": pa.int64(),
    "ts": pa.timestamp("us", tz="UTC"),
    "host": pa.string(),
    "Computer": pa.string(),
    "Channel": pa.string(),
    "EventID": pa.int32(),
    "Provider_Name": pa.string(),
    "Level": pa.string(),
    "Task": pa.string(),
    "Keywords": pa.string(),
    "Execution_ProcessID": pa.string(),
    "Security_UserID": pa.string(),
    "dedup_key": pa.string(),
}

# Unnamed <Data> items of an event (MsiInstaller, many Application events) as a JSON array.
UNNAMED_DATA = "Data"

# Canonical spellings of EventData fields that sources spell with varying case. A name found here
# case-insensitively takes this spelling; see FieldNames for the rule on all other names.
KNOWN_FIELDS: tuple[str, ...] = (
    # Sysmon
    "RuleName", "UtcTime", "ProcessGuid", "ProcessId", "Image", "FileVersion", "Description",
    "Product", "Company", "OriginalFileName", "CommandLine", "CurrentDirectory", "User",
    "LogonGuid", "LogonId", "TerminalSessionId", "IntegrityLevel", "Hashes", "ParentProcessGuid",
    "ParentProcessId", "ParentImage", "ParentCommandLine", "ParentUser", "ImageLoaded", "Signed",
    "Signature", "SignatureStatus", "Protocol", "Initiated", "SourceIsIpv6", "SourceIp",
    "SourceHostname", "SourcePort", "SourcePortName", "DestinationIsIpv6", "DestinationIp",
    "DestinationHostname", "DestinationPort", "DestinationPortName", "TargetFilename",
    "CreationUtcTime", "PreviousCreationUtcTime", "QueryName", "QueryStatus", "QueryResults",
    "TargetObject", "Details", "EventType", "SourceImage", "TargetImage", "GrantedAccess",
    "CallTrace", "SourceProcessGuid", "SourceProcessId", "SourceThreadId", "TargetProcessGuid",
    "TargetProcessId", "StartAddress", "StartModule", "StartFunction", "PipeName", "Contents",
    "Archived", "IsExecutable", "Hash", "Device", "State", "Version", "SchemaVersion",
    # Security
    "SubjectUserSid", "SubjectUserName", "SubjectDomainName", "SubjectLogonId", "NewProcessId",
    "NewProcessName", "TokenElevationType", "MandatoryLabel", "TargetUserSid", "TargetUserName",
    "TargetDomainName", "TargetLogonId", "ParentProcessName", "LogonType", "LogonProcessName",
    "AuthenticationPackageName", "WorkstationName", "IpAddress", "IpPort", "ProcessName",
    "ServiceName", "ImagePath", "ServiceType", "StartType", "AccountName", "ObjectName",
    "ObjectType", "ObjectServer", "AccessMask", "HandleId", "Application", "SourceAddress",
    "DestAddress", "DestPort", "Direction", "LayerName", "ScriptBlockText", "ScriptBlockId",
    "MessageNumber", "MessageTotal", "Path",
)
KNOWN_BY_FOLD: dict[str, str] = {name.casefold(): name for name in KNOWN_FIELDS}

# Columns readers may never overwrite from EventData (they would shadow provenance).
RESERVED = frozenset(k.casefold() for k in WIN_EVENT_FIXED)

# --- other tables --------------------------------------------------------------------------------

FINDINGS_COLUMNS: dict[str, str] = {  # name → DuckDB type; docs/schema.md describes each
    "campaign": "VARCHAR", "host": "VARCHAR", "ts": "TIMESTAMPTZ", "stage": "VARCHAR", "confidence": "VARCHAR",
    "rule_id": "VARCHAR", "title": "VARCHAR", "view": "VARCHAR", "field": "VARCHAR", "value": "VARCHAR",
    "evidence_id": "VARCHAR", "record_id": "BIGINT", "line": "BIGINT",
}

# Channels grouped by what they can prove, for coverage: clearing a host needs a "process" source.
PROCESS_CHANNELS: dict[str, tuple[int, ...]] = {
    "Microsoft-Windows-Sysmon/Operational": (1, 7),
    "Security": (4688,),
}
