"""``bulwark audit``: verify, prune and export the hash-chained audit log.

The log is the deployment's (:func:`bulwark.persistence.audit.audit_log_for`: Redis when the
checkpointer is Redis, else ``<data_dir>/audit.jsonl``) unless ``--path`` names a file or
``--url`` a Redis. ``verify`` exits 1 naming the first bad record; bad arguments exit 2 with
one line, as every ``bulwark`` command.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bulwark.cli._args import iso_date, tenant_id
from bulwark.persistence.audit import AuditChain, AuditError, AuditLog, RedisAuditLog, audit_log_for
from bulwark.persistence.checkpoints import PersistenceError
from bulwark.settings import Settings

EXIT_BROKEN = 1


def _redis_url(value: str) -> str:
    from bulwark.persistence.redis import parse_redis_url

    try:
        url, ttl = parse_redis_url(value)
    except PersistenceError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if ttl is not None:
        raise argparse.ArgumentTypeError("the audit log never expires: drop ?ttl= from --url")
    return url


def add_parser(commands: Any) -> None:
    """Register ``bulwark audit`` and its actions on the ``bulwark`` subcommands."""
    audit = commands.add_parser("audit", help="verify, prune or export the hash-chained audit log")
    actions = audit.add_subparsers(dest="action", required=True, metavar="ACTION")
    verify = actions.add_parser("verify", help="walk the hash chain: exit 1 naming the first bad record")
    prune = actions.add_parser("prune", help="remove old records their retention policy lets go")
    prune.add_argument("--before", type=iso_date, required=True, metavar="DATE", help="only records older than this (ISO 8601)")
    export = actions.add_parser("export", help="a tenant's records as JSON lines, for compliance")
    export.add_argument("--tenant", type=tenant_id, required=True, help="tenant id")
    export.add_argument("--since", type=iso_date, metavar="DATE", help="only records from this date on (ISO 8601)")
    export.add_argument("--out", type=Path, metavar="FILE", help="write here instead of standard output")
    for action in (verify, prune, export):
        where = action.add_mutually_exclusive_group()
        where.add_argument("--path", type=Path, metavar="FILE", help="a JSON-lines audit file")
        where.add_argument("--url", type=_redis_url, metavar="URL", help="a Redis holding the audit stream (redis[s]://...)")


def _log(settings: Settings, args: argparse.Namespace) -> AuditChain:
    from bulwark.cli.main import UsageError

    retention: dict[str, Any] = {"retention": settings.audit_retention, "retention_days": settings.audit_retention_days}
    if args.url:
        return RedisAuditLog(args.url, **retention)
    if args.path:
        if not args.path.is_file():
            raise UsageError(f"no audit log at {str(args.path)!r}: pass --path to a JSON-lines audit file")
        return AuditLog(args.path, **retention)
    return audit_log_for(settings)


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run ``bulwark audit ACTION``; returns the exit code (1: the chain is broken)."""
    log = _log(settings, args)
    try:
        if args.action == "verify":
            status = log.check()
            pruned = f", {status.pruned} pruned before its anchor" if status.pruned else ""
            print(f"audit log {log.name}: {status.records} records intact{pruned}; head {status.head}")
        elif args.action == "prune":
            report = log.prune(before=args.before)
            kept = f"; {report.kept} older kept by their retention policy" if report.kept else ""
            print(f"pruned {report.removed} record(s) older than {args.before.isoformat()} from {log.name}{kept}")
        else:
            _export(log, args)
    except AuditError as exc:
        print(f"bulwark: error: {exc}", file=sys.stderr)
        return EXIT_BROKEN
    return 0


def _export(log: AuditChain, args: argparse.Namespace) -> None:
    out = args.out.open("w", encoding="utf-8") if args.out else sys.stdout
    count = 0
    try:
        for record in log.export(tenant=args.tenant, since=args.since):
            out.write(json.dumps(record, sort_keys=True) + "\n")
            count += 1
    finally:
        if args.out:
            out.close()
    print(f"exported {count} record(s) of tenant {args.tenant!r}", file=sys.stderr)
