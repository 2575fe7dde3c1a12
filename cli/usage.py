"""``bulwark usage``: what model calls cost, grouped by tenant, model, user, thread or day, and
each tenant's spend today and this month against its budget.

The ledger is the deployment's (:func:`bulwark.persistence.usage.usage_ledger_for`: Redis when
the checkpointer is Redis, else ``<data_dir>/usage.db``), the budgets ``BULWARK_BUDGETS``. The
tenants whose budgets are shown are ``--tenant``, else those with calls in the period. Bad
arguments exit 2 with one line, as every ``bulwark`` command.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from bulwark.cli._args import iso_date, tenant_id
from bulwark.persistence.usage import GROUPS, UsageLedger, budget_for, check_groups, usage_ledger_for
from bulwark.settings import Settings


def _groups(value: str) -> tuple[str, ...]:
    try:
        return check_groups([part.strip() for part in value.split(",")])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(commands: Any) -> None:
    """Register ``bulwark usage`` on the ``bulwark`` subcommands."""
    usage = commands.add_parser("usage", help="model tokens and cost by tenant, model, user, thread or day; budgets")
    usage.add_argument("--tenant", type=tenant_id, help="only this tenant's calls")
    usage.add_argument("--since", type=iso_date, metavar="DATE", help="only calls from this date on (ISO 8601, UTC)")
    usage.add_argument("--until", type=iso_date, metavar="DATE", help="only calls before this date (ISO 8601, UTC)")
    usage.add_argument(
        "--by", type=_groups, default=("tenant", "model"), metavar="GROUP[,GROUP...]",
        help=f"group by any of {','.join(GROUPS)} (default tenant,model; user is the user id's SHA-256)",
    )
    usage.add_argument("--json", action="store_true", help="print one JSON object instead of tables")


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run ``bulwark usage``; returns the exit code."""
    from bulwark.cli.main import UsageError

    if args.since and args.until and args.since >= args.until:
        raise UsageError("--since must be before --until")
    ledger = usage_ledger_for(settings)
    rows = ledger.report(tenant=args.tenant, since=args.since, until=args.until, by=args.by)
    budgets = [_budget(ledger, settings.budgets, tenant) for tenant in _tenants(ledger, args, rows)]
    if args.json:
        print(json.dumps({"usage": rows, "budgets": budgets}, indent=2))
        return 0
    if rows:
        _table(rows)
    else:
        print(f"no model calls in {ledger.name} for this selection", file=sys.stderr)
    if budgets:
        print()
        _table(budgets)
    return 0


def _tenants(ledger: UsageLedger, args: argparse.Namespace, rows: list[dict[str, Any]]) -> list[str]:
    if args.tenant:
        return [args.tenant]
    if "tenant" not in args.by:
        rows = ledger.report(since=args.since, until=args.until, by=("tenant",))
    return sorted({row["tenant"] for row in rows})


def _budget(ledger: UsageLedger, budgets: Mapping[str, Mapping[str, float | None]], tenant: str) -> dict[str, Any]:
    budget = budget_for(budgets, tenant)
    spent = ledger.spent(tenant)
    return {
        "tenant": tenant,
        "today_usd": spent["day"],
        "daily_usd": budget.daily_usd,
        "month_usd": spent["month"],
        "monthly_usd": budget.monthly_usd,
        "remaining_usd": ledger.remaining(tenant, budget),
    }


def _table(rows: Sequence[Mapping[str, Any]]) -> None:
    """Aligned columns under the rows' keys: text left, numbers right, no value ``-``."""
    headers = list(rows[0])
    cells = [[_cell(row[key]) for key in headers] for row in rows]
    widths = [max(len(header), *(len(line[i]) for line in cells)) for i, header in enumerate(headers)]
    numeric = [all(isinstance(row[key], int | float) or row[key] is None for row in rows) for key in headers]
    for line in [headers, *cells]:
        print("  ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(line, widths, numeric, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.6f}" if isinstance(value, float) else str(value)
