"""pySigma backend that turns a Sigma detection into one DuckDB boolean expression.

Why not a text template backend: Sigma's semantics need control that templates do not give —
string matching is case-insensitive unless `|cased`, a field an event lacks is *absent* (so
`not field: x` matches there), and many rules must be evaluated in one pass over the data.

The expression reads two columns per Sigma field, prepared once per batch by the engine: the value
as text (`"r|field"`) and its lower-cased twin (`"l|field"`), so no rule lower-cases a column again.
`"r|*"`/`"l|*"` hold the whole event as text for keyword (field-less) searches.

Null handling: every leaf compares against NULL when the field is absent, so a leaf is NULL there.
AND/OR are monotone, so NULL behaves as "no match" under them; under NOT the operand is first
collapsed with `coalesce(…, false)`, which makes negation NULL-safe. The outermost expression may
still be NULL; the engine reads NULL as no match.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import duckdb
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.conversion.base import Backend
from sigma.conversion.state import ConversionState
from sigma.exceptions import SigmaFeatureNotSupportedByBackendError, SigmaValueError
from sigma.modifiers import SigmaWideModifier, modifier_mapping
from sigma.rule import SigmaRule
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaFieldReference,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
    TimestampPart,
)

from turncoat.detect.sigma.logsources import ALL_FIELDS, TIME_FIELD, TIME_FIELDS

# The Sigma specification names `utf16le` as an alias of `wide`; pySigma 2.0 knows only `wide`.
modifier_mapping.setdefault("utf16le", SigmaWideModifier)



def raw(name: str) -> str:
    """Column of the batch holding field `name` as text."""
    return '"r|' + name.casefold().replace('"', '""') + '"'


def low(name: str) -> str:
    """Column of the batch holding field `name` lower-cased."""
    return '"l|' + name.casefold().replace('"', '""') + '"'


def sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_LIKE_ESCAPE = str.maketrans({"\\": "\\\\", "%": "\\%", "_": "\\_"})


class Leaf(str):
    """A single-column string test, kept as SQL text plus what it tests, so that an OR of many
    tests of one column (SigmaHQ's driver and hash lists hold thousands) can be merged into one
    IN list or one RE2 alternation: thousands of separate calls cost more to parse and plan than
    to run."""

    kind: str     # "eq", "contains", "prefix", "suffix"
    column: str
    literal: str

    @classmethod
    def make(cls, sql: str, kind: str, column: str, literal: str) -> Leaf:
        leaf = cls(sql)
        leaf.kind, leaf.column, leaf.literal = kind, column, literal
        return leaf


#: An OR of at least this many tests of one column becomes one IN list or one regular expression.
MERGE_AT = 6
_RE2_SPECIAL = set("\\.+*?()|[]{}^$-#&~")


def _re2_literal(text: str) -> str:
    return "".join("\\" + c if c in _RE2_SPECIAL else c for c in text)


def _merged(kind: str, column: str, literals: list[str]) -> str:
    if kind == "eq":
        return f"{column} IN ({', '.join(sql_str(v) for v in sorted(set(literals)))})"
    body = "|".join(_re2_literal(v) for v in sorted(set(literals)))
    pattern = {"contains": f"(?:{body})", "prefix": f"^(?:{body})", "suffix": f"(?:{body})$"}[kind]
    return f"regexp_matches({column}, {sql_str('(?s)' + pattern)})"


@dataclass
class Converted:
    """One converted detection condition: a boolean SQL expression over the batch's columns (the
    engine reads which fields it needs from the column names in it)."""

    expr: str


class _Checker:
    """RE2 (DuckDB's regex engine) validation of a rule's regexes, at conversion time."""

    _con: duckdb.DuckDBPyConnection | None = None

    @classmethod
    def check(cls, pattern: str) -> None:
        if cls._con is None:
            cls._con = duckdb.connect()
        try:
            cls._con.execute(f"SELECT regexp_matches('', {sql_str(pattern)})").fetchall()
        except duckdb.Error as error:
            reason = str(error).split("\n")[0]
            raise SigmaFeatureNotSupportedByBackendError(
                f"regular expression {pattern!r} is not supported by the RE2 engine (no look-around or "
                f"back-references; RE2 runs in linear time): {reason}") from None


class DuckDBBackend(Backend):
    """Sigma detection → DuckDB expression over a batch prepared by the engine (see module doc)."""

    name: ClassVar[str] = "turncoat DuckDB"
    formats: ClassVar[dict[str, str]] = {"default": "boolean expression over a prepared batch"}
    requires_pipeline: ClassVar[bool] = False

    # --- whole rules -------------------------------------------------------------------------------

    def finish_query(self, rule: SigmaRule, query: Any, state: ConversionState) -> Any:
        return Converted(query)

    def finalize_query(self, rule: SigmaRule, query: Any, index: int, state: ConversionState,
                       output_format: str) -> Any:
        return query

    def finalize_output_default(self, queries: list[Any]) -> Any:
        return queries

    # --- field references --------------------------------------------------------------------------

    def _col(self, name: str, lower: bool) -> str:
        if name.casefold() in TIME_FIELDS:
            name = TIME_FIELD
        return low(name) if lower else raw(name)

    # --- boolean structure -------------------------------------------------------------------------

    def convert_condition_or(self, cond: ConditionOR, state: ConversionState) -> str:
        parts = [self.convert_condition(arg, state) for arg in cond.args]
        groups: dict[tuple[str, str], list[Leaf]] = {}
        for part in parts:
            if isinstance(part, Leaf):
                groups.setdefault((part.kind, part.column), []).append(part)
        merged: list[str] = []
        done: set[int] = set()
        for (kind, column), leaves in groups.items():
            if len(leaves) >= MERGE_AT:
                merged.append(_merged(kind, column, [leaf.literal for leaf in leaves]))
                done.update(id(leaf) for leaf in leaves)
        parts = merged + [p for p in parts if id(p) not in done]
        return "(" + " OR ".join(parts) + ")" if len(parts) > 1 else parts[0]

    def convert_condition_and(self, cond: ConditionAND, state: ConversionState) -> str:
        parts = [self.convert_condition(arg, state) for arg in cond.args]
        return "(" + " AND ".join(parts) + ")" if len(parts) > 1 else parts[0]

    def convert_condition_not(self, cond: ConditionNOT, state: ConversionState) -> str:
        return f"(NOT coalesce({self.convert_condition(cond.args[0], state)}, false))"

    def convert_condition_as_in_expression(self, cond: Any, state: ConversionState) -> str:
        raise SigmaFeatureNotSupportedByBackendError("IN expressions are never chosen: convert_or_as_in is off")

    # --- strings -----------------------------------------------------------------------------------

    @staticmethod
    def _plain(parts: list[Any]) -> str | None:
        if all(isinstance(p, str) for p in parts):
            return "".join(parts)
        return None

    def _string_match(self, column: str, value: SigmaString, lower: bool) -> str:
        parts = list(value.iter_parts())
        for part in parts:
            if isinstance(part, Placeholder):
                raise SigmaValueError(
                    f"placeholder %{part.name}% has no values: give them with --placeholders FILE")
        fold = (lambda s: s.lower()) if lower else (lambda s: s)
        lead = bool(parts) and parts[0] == SpecialChars.WILDCARD_MULTI
        trail = len(parts) > 1 and parts[-1] == SpecialChars.WILDCARD_MULTI
        core = parts[int(lead): len(parts) - int(trail)]
        text = self._plain(core)
        if text is not None:
            value = fold(text)
            lit = sql_str(value)
            if lead and trail:
                return Leaf.make(f"contains({column}, {lit})", "contains", column, value)
            if lead:
                return Leaf.make(f"suffix({column}, {lit})", "suffix", column, value)
            if trail:
                return Leaf.make(f"starts_with({column}, {lit})", "prefix", column, value)
            return Leaf.make(f"{column} = {lit}", "eq", column, value)
        pattern = "".join(
            "%" if p == SpecialChars.WILDCARD_MULTI else "_" if p == SpecialChars.WILDCARD_SINGLE
            else fold(p).translate(_LIKE_ESCAPE) for p in parts)
        return f"{column} LIKE {sql_str(pattern)} ESCAPE '\\'"

    def convert_condition_field_eq_val_str(self, cond: ConditionFieldEqualsValueExpression,
                                           state: ConversionState) -> str:
        return self._string_match(self._col(cond.field, lower=True), cond.value, lower=True)

    def convert_condition_field_eq_val_str_case_sensitive(self, cond: ConditionFieldEqualsValueExpression,
                                                          state: ConversionState) -> str:
        value: SigmaCasedString = cond.value
        return self._string_match(self._col(cond.field, lower=False), value, lower=False)

    def convert_condition_val_str(self, cond: ConditionValueExpression, state: ConversionState) -> str:
        value: SigmaString = cond.value
        cased = isinstance(value, SigmaCasedString)
        parts = list(value.iter_parts())
        # A keyword matches anywhere in the event, so it always has wildcards on both sides.
        if not parts or parts[0] != SpecialChars.WILDCARD_MULTI:
            parts.insert(0, SpecialChars.WILDCARD_MULTI)
        if parts[-1] != SpecialChars.WILDCARD_MULTI:
            parts.append(SpecialChars.WILDCARD_MULTI)
        keyword = SigmaString()
        keyword.s = tuple(parts) if isinstance(value.s, tuple) else parts
        return self._string_match(self._col(ALL_FIELDS, lower=not cased), keyword, lower=not cased)

    # --- numbers, booleans, null, existence ---------------------------------------------------------

    def convert_condition_field_eq_val_num(self, cond: ConditionFieldEqualsValueExpression,
                                           state: ConversionState) -> str:
        return f"{self._col(cond.field, lower=True)} = {sql_str(str(cond.value))}"

    def convert_condition_val_num(self, cond: ConditionValueExpression, state: ConversionState) -> str:
        return f"contains({self._col(ALL_FIELDS, lower=True)}, {sql_str(str(cond.value))})"

    def convert_condition_field_eq_val_bool(self, cond: ConditionFieldEqualsValueExpression,
                                            state: ConversionState) -> str:
        return f"{self._col(cond.field, lower=True)} = {sql_str('true' if cond.value.boolean else 'false')}"

    def convert_condition_field_eq_val_null(self, cond: ConditionFieldEqualsValueExpression,
                                            state: ConversionState) -> str:
        # An empty <Data/> element is null in EVTX's own JSON; some exports write it as "".
        column = self._col(cond.field, lower=False)
        return f"({column} IS NULL OR {column} = '')"

    def convert_condition_field_exists(self, cond: ConditionFieldEqualsValueExpression,
                                       state: ConversionState) -> str:
        return f"({self._col(cond.field, lower=False)} IS NOT NULL)"

    def convert_condition_field_not_exists(self, cond: ConditionFieldEqualsValueExpression,
                                           state: ConversionState) -> str:
        return f"({self._col(cond.field, lower=False)} IS NULL)"

    def convert_condition_field_compare_op_val(self, cond: ConditionFieldEqualsValueExpression,
                                               state: ConversionState) -> str:
        value: SigmaCompareExpression = cond.value
        op = {CompareOperators.LT: "<", CompareOperators.LTE: "<=", CompareOperators.GT: ">",
              CompareOperators.GTE: ">=", CompareOperators.NEQ: "<>"}[value.op]
        return f"(TRY_CAST({self._col(cond.field, lower=False)} AS DOUBLE) {op} {value.number.number})"

    def convert_condition_field_eq_val_timestamp_part(self, cond: ConditionFieldEqualsValueExpression,
                                                      state: ConversionState) -> str:
        value: SigmaTimestampPart = cond.value
        part = {TimestampPart.MINUTE: "minute", TimestampPart.HOUR: "hour", TimestampPart.DAY: "day",
                TimestampPart.WEEK: "week", TimestampPart.MONTH: "month", TimestampPart.YEAR: "year"}[
            value.timestamp_part]
        column = self._col(cond.field, lower=False)
        return f"(date_part('{part}', TRY_CAST({column} AS TIMESTAMPTZ)) = {int(value.number)})"

    # --- regular expressions, CIDR, field references ------------------------------------------------

    @staticmethod
    def _regex(value: SigmaRegularExpression) -> str:
        pattern = str(value.regexp)
        flags = "".join(sorted(
            {SigmaRegularExpressionFlag.IGNORECASE: "i", SigmaRegularExpressionFlag.MULTILINE: "m",
             SigmaRegularExpressionFlag.DOTALL: "s"}[f] for f in value.flags))
        if flags:
            pattern = f"(?{flags}){pattern}"
        _Checker.check(pattern)
        return sql_str(pattern)

    def convert_condition_field_eq_val_re(self, cond: ConditionFieldEqualsValueExpression,
                                          state: ConversionState) -> str:
        return f"regexp_matches({self._col(cond.field, lower=False)}, {self._regex(cond.value)})"

    def convert_condition_val_re(self, cond: ConditionValueExpression, state: ConversionState) -> str:
        return f"regexp_matches({self._col(ALL_FIELDS, lower=False)}, {self._regex(cond.value)})"

    def convert_condition_field_eq_val_cidr(self, cond: ConditionFieldEqualsValueExpression,
                                            state: ConversionState) -> str:
        value: SigmaCIDRExpression = cond.value
        column = self._col(cond.field, lower=True)
        tests = [self._string_match(column, SigmaString(p), lower=True) for p in value.expand("*")]
        return "(" + " OR ".join(tests) + ")"

    def convert_condition_field_eq_field(self, cond: ConditionFieldEqualsValueExpression,
                                         state: ConversionState) -> str:
        value: SigmaFieldReference = cond.value
        left, right = self._col(cond.field, lower=True), self._col(value.field, lower=True)
        if value.starts_with and value.ends_with:
            return f"contains({left}, {right})"
        if value.starts_with:
            return f"starts_with({left}, {right})"
        if value.ends_with:
            return f"suffix({left}, {right})"
        return f"({left} = {right})"

    # --- what this backend does not do --------------------------------------------------------------

    def convert_condition_field_eq_query_expr(self, cond: Any, state: ConversionState) -> str:
        raise SigmaFeatureNotSupportedByBackendError("query expressions from pipelines are not supported")

    def convert_condition_query_expr(self, cond: Any, state: ConversionState) -> str:
        raise SigmaFeatureNotSupportedByBackendError("query expressions from pipelines are not supported")


def _correlations_are_data(self: DuckDBBackend, *args: Any, **kwargs: Any) -> Any:
    raise SigmaFeatureNotSupportedByBackendError("correlation rules are evaluated by the engine over their rules' hits "
                              "(detect/sigma/correlate.py), not converted to SQL")


for _kind in ("event_count", "value_count", "temporal", "temporal_ordered", "extended_temporal",
              "extended_temporal_ordered", "value_sum", "value_avg", "value_percentile", "value_median"):
    setattr(DuckDBBackend, f"convert_correlation_{_kind}_rule", _correlations_are_data)
DuckDBBackend.__abstractmethods__ = frozenset()
