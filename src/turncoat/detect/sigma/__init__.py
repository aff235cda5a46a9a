"""Sigma over the case store: rules (loading, conversion, cache) → engine (many rules per pass) →
correlations → records. `hunt` runs the whole chain; `turncoat sigma` and `turncoat detect` use it."""

from __future__ import annotations

from collections.abc import Callable

import duckdb

from turncoat.detect.sigma.correlate import (
    CorrelationHit,
    evaluate,
    missing_references,
    value_fields,
)
from turncoat.detect.sigma.engine import Filters, SigmaRun, run_rules
from turncoat.detect.sigma.rules import RuleSet, Unconverted


def hunt(con: duckdb.DuckDBPyConnection, ruleset: RuleSet, filters: Filters | None = None,
         progress: Callable[[int, int], None] | None = None) -> tuple[SigmaRun, list[CorrelationHit]]:
    """Run every rule, then every correlation whose rules are all loaded (the others are moved to
    `ruleset.unconverted` with the missing reference named)."""
    usable = []
    for correlation in ruleset.correlations:
        missing = missing_references(correlation, ruleset.rules)
        if missing:
            ruleset.unconverted.append(Unconverted(
                correlation.path, correlation.rule_id, correlation.title,
                f"correlation refers to rule(s) not loaded or not converted: {', '.join(missing)}"))
        else:
            usable.append(correlation)
    ruleset.correlations = usable
    run = run_rules(con, ruleset, filters, value_fields(usable, ruleset.rules), progress)
    return run, evaluate(run, usable)
