"""CLI commands that use the database: db upgrade, principals, sync."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from rules_service.config import Settings, SettingsError
from rules_service.domain.errors import DomainError

if TYPE_CHECKING:
    from rules_service.bootstrap import Container

Handler = Callable[[argparse.Namespace], int]


def fail(message: str, details: list[str] | tuple[str, ...] = ()) -> int:
    print(f"error: {message}", file=sys.stderr)
    for line in details:
        print(f"  {line}", file=sys.stderr)
    return 1


def error_details(exc: DomainError) -> list[str]:
    problems = getattr(exc, "problems", ()) or ()
    return [str(p) for p in problems]


def guarded(handler: Handler) -> Handler:
    """Turns expected failures into a plain message and exit status 1, never a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except SettingsError as exc:
            return fail(f"configuration: {exc}")
        except DomainError as exc:
            return fail(exc.message, error_details(exc))
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            return fail(f"database error: {reason}",
                         ["is the database reachable, and has 'rules-service db upgrade' "
                          "been run?"])

    return run


@contextmanager
def open_container() -> Iterator[Container]:
    from rules_service.bootstrap import bootstrap

    container: Container | None = None
    try:
        container = bootstrap(Settings.from_env())
        yield container
    finally:
        if container is not None:
            container.close()


# --------------------------------------------------------------------------- db


def _db_upgrade(args: argparse.Namespace) -> int:
    from rules_service.adapters import migrations_runner
    from rules_service.adapters.database import make_engine

    settings = Settings.from_env()
    migrations_runner.upgrade(settings.database_url, args.revision)
    engine = make_engine(settings.database_url)
    try:
        current = migrations_runner.current_revision(engine)
    finally:
        engine.dispose()
    print(f"database schema is at revision {current} ({_safe_url(settings.database_url)})")
    return 0


def _db_downgrade(args: argparse.Namespace) -> int:
    from rules_service.adapters import migrations_runner
    from rules_service.adapters.database import make_engine

    settings = Settings.from_env()
    if args.revision not in migrations_runner.known_revisions(settings.database_url):
        return fail(f"unknown revision {args.revision!r}",
                     ["give the newest migration of the release to go back to "
                      "(its 'rules-service db current' said it)"])
    migrations_runner.downgrade(settings.database_url, args.revision)
    engine = make_engine(settings.database_url)
    try:
        current = migrations_runner.current_revision(engine)
    finally:
        engine.dispose()
    print(f"database schema is at revision {current} ({_safe_url(settings.database_url)})")
    return 0


def _db_current(args: argparse.Namespace) -> int:
    from rules_service.adapters import migrations_runner
    from rules_service.adapters.database import make_engine

    settings = Settings.from_env()
    engine = make_engine(settings.database_url)
    try:
        current = migrations_runner.current_revision(engine)
    finally:
        engine.dispose()
    head = migrations_runner.head_revision(settings.database_url)
    state = "up to date" if current == head else f"behind (head is {head})"
    print(f"{current or 'not migrated'}: {state}")
    return 0 if current == head else 1


def _db_partitions(args: argparse.Namespace) -> int:
    from rules_service.adapters import partitions
    from rules_service.adapters.database import make_engine
    from rules_service.adapters.orm import utcnow

    if args.ahead < 0:
        return fail("--ahead must be 0 or more months")
    settings = Settings.from_env()
    engine = make_engine(settings.database_url)
    try:
        with engine.begin() as connection:
            if not partitions.is_partitioned(connection):
                print("the decision log is one table here (SQLite, or not migrated to 0007): "
                      "no partitions to make")
                return 0
            report = partitions.ensure_partitions(connection, utcnow(), args.ahead)
    finally:
        engine.dispose()
    for line in report.lines():
        print(line)
    return 0


def _older_than(value: str | None, settings: Settings) -> tuple[timedelta | None, list[str]]:
    from rules_service.domain import lifecycle

    if value is None:
        if settings.retention_days <= 0:
            return None, ["give --older-than (e.g. 400d) or set RULES_SERVICE_RETENTION_DAYS"]
        return timedelta(days=settings.retention_days), []
    try:
        delta = lifecycle.parse_duration(value)
    except ValueError as exc:
        return None, [f"--older-than: {exc}"]
    if delta < timedelta(days=1):
        return None, [f"--older-than: at least one day, got {value}"]
    return delta, []


def _db_retention(args: argparse.Namespace) -> int:
    from rules_service.adapters.database import make_engine
    from rules_service.adapters.orm import utcnow
    from rules_service.services import retention

    settings = Settings.from_env()
    older_than, problems = _older_than(args.older_than, settings)
    archive = Path(args.archive) if args.archive else None
    if archive is None and not args.dry_run:
        problems.append("give --archive DIR: nothing is removed without its archive")
    elif archive is not None and archive.exists() and not archive.is_dir():
        problems.append(f"--archive: {archive} is not a directory")
    if problems or older_than is None:
        return fail("cannot apply retention", problems)
    engine = make_engine(settings.database_url)
    try:
        report = retention.apply_retention(engine, older_than=older_than,
                                           archive_dir=archive or Path("."), now=utcnow(),
                                           dry_run=args.dry_run)
    except (retention.RetentionError, OSError) as exc:
        return fail(f"retention stopped: {exc}", ["the month named was not removed"])
    finally:
        engine.dispose()
    for line in report.lines():
        print(line)
    return 0


def _db_backup(args: argparse.Namespace) -> int:
    from rules_service.adapters import backup

    settings = Settings.from_env()
    try:
        report = backup.backup_sqlite(settings.database_url, Path(args.path))
    except (backup.BackupError, OSError) as exc:
        return fail(f"no backup made: {exc}")
    print(f"backed up {report.source} to {report.target} ({report.size_bytes} bytes, "
          f"readable by you only)")
    return 0


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# --------------------------------------------------------------------------- principals


def _principals_add(args: argparse.Namespace) -> int:
    from rules_service.services import principals

    with open_container() as c:
        issued = principals.add_principal(c.uow(), args.name, is_admin=args.admin,
                                          is_automation=args.automation)
    kind = "admin" if issued.principal.is_admin else (
        "automation" if issued.principal.is_automation else "member")
    print(f"created principal {issued.principal.name} ({kind}); its token follows. "
          f"It is shown only once.")
    print(issued.token)
    return 0


def _principals_token(args: argparse.Namespace) -> int:
    from rules_service.services import principals

    with open_container() as c:
        issued = principals.issue_token(c.uow(), args.name)
    print(f"new token for {issued.principal.name}; it is shown only once.")
    print(issued.token)
    return 0


def _principals_revoke(args: argparse.Namespace) -> int:
    from rules_service.services import principals

    with open_container() as c:
        principals.revoke_principal(c.uow(), args.name)
    print(f"revoked every token of {args.name}")
    return 0


def _principals_list(args: argparse.Namespace) -> int:
    from rules_service.services import principals

    with open_container() as c:
        rows = principals.list_principals(c.uow())
    for p in rows:
        flags = [f for f, on in (("admin", p.is_admin), ("automation", p.is_automation),
                                 ("revoked", p.revoked_at is not None)) if on]
        print(f"{p.name}\t{','.join(flags) or 'member'}\ttokens={p.active_tokens}")
    return 0


def _principals_contact(args: argparse.Namespace) -> int:
    from rules_service.services import notifications

    if (args.email is None) == (not args.clear):
        return fail("give --email ADDRESS, or --clear")
    with open_container() as c:
        notifications.set_contact(c.uow(), args.name, email=None if args.clear else args.email)
    print(f"notifications for {args.name} go to {args.email}" if not args.clear
          else f"{args.name} gets no notifications by email now")
    return 0


def _read_password(name: str) -> str | None:
    """The new password: asked twice on a terminal, else the first line of stdin."""
    if sys.stdin.isatty():
        import getpass

        first = getpass.getpass(f"new password for {name}: ")
        if getpass.getpass("again: ") != first:
            return None
        return first
    return sys.stdin.readline().rstrip("\r\n")


def _principals_password(args: argparse.Namespace) -> int:
    from rules_service.services import accounts

    password = _read_password(args.name)
    if password is None:
        return fail("the two passwords differ; nothing was changed")
    with open_container() as c:
        accounts.set_password(c.uow(), args.name, password)
    print(f"password set for {args.name}; they can sign in at /sign-in")
    return 0


# --------------------------------------------------------------------------- sync


def _sync(args: argparse.Namespace) -> int:
    from rules_service.services.sync import sync_directory

    directory = Path(args.directory)
    if not directory.is_dir():
        return fail(f"not a directory: {directory}")
    with open_container() as c:
        results = sync_directory(c.uow(), c.evaluator, directory, actor=args.actor,
                                 revert=args.revert)
    if args.json:
        print(json.dumps({"files": [r.to_dict() for r in results]}, indent=2))
    else:
        for r in results:
            label = f"{r.path}: {r.status}"
            if r.ruleset:
                label += f" ({r.ruleset}" + (f" version {r.version})" if r.version else ")")
            if r.message:
                label += f" - {r.message}"
            print(label)
            for problem in r.problems:
                print(f"  {problem}")
        if not results:
            print(f"no ruleset files (*.yaml, *.yml, *.json) in {directory}")
    failed = [r for r in results if r.status in ("invalid", "refused")]
    return 1 if failed else 0


# --------------------------------------------------------------------------- registration


def register(sub: argparse._SubParsersAction) -> None:
    """Registers this module's subcommands."""
    _register_db(sub)
    _register_principals(sub)
    _register_sync(sub)


def _register_db(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    up = db_sub.add_parser("upgrade", help="create or migrate the schema (Alembic)")
    up.add_argument("--revision", default="head", help="target revision (default: head)")
    up.set_defaults(handler=guarded(_db_upgrade))
    down = db_sub.add_parser("downgrade", help="take the schema back to REVISION (run with "
                                                "the newer release installed; back up first)")
    down.add_argument("revision", metavar="REVISION")
    down.set_defaults(handler=guarded(_db_downgrade))
    cur = db_sub.add_parser("current", help="show the schema revision; exit 1 if behind")
    cur.set_defaults(handler=guarded(_db_current))
    part = db_sub.add_parser(
        "partitions", help="PostgreSQL: create the decision log's monthly partitions ahead "
                           "and move rows out of the default partitions (idempotent; daily "
                           "from cron)")
    part.add_argument("--ahead", type=int, default=3, metavar="MONTHS",
                      help="months after this one to have partitions for (default 3)")
    part.set_defaults(handler=guarded(_db_partitions))
    ret = db_sub.add_parser(
        "retention", help="archive whole months of decisions older than the retention "
                          "period to gzip JSON Lines, verify, then drop (PostgreSQL) or "
                          "delete (SQLite) them")
    ret.add_argument("--older-than", metavar="DURATION",
                     help="e.g. 400d (default: RULES_SERVICE_RETENTION_DAYS days)")
    ret.add_argument("--archive", metavar="DIR", help="where the archives and manifests go")
    ret.add_argument("--dry-run", action="store_true",
                     help="say what would be archived and removed; change nothing")
    ret.set_defaults(handler=guarded(_db_retention))
    bak = db_sub.add_parser(
        "backup", help="SQLite: copy the database to PATH while the service runs (online "
                       "backup; mode 0600); PostgreSQL: use pg_dump")
    bak.add_argument("path", metavar="PATH", help="a new file")
    bak.set_defaults(handler=guarded(_db_backup))


def _register_principals(sub: argparse._SubParsersAction) -> None:
    pr = sub.add_parser("principals", help="people and automations, and their tokens")
    pr_sub = pr.add_subparsers(dest="principals_command", required=True, metavar="ACTION")
    add = pr_sub.add_parser("add", help="create a principal; prints its token last")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="may do anything")
    add.add_argument("--automation", action="store_true", help="may only evaluate and read")
    add.set_defaults(handler=guarded(_principals_add))
    tok = pr_sub.add_parser("token", help="issue a new token to an existing principal")
    tok.add_argument("name")
    tok.set_defaults(handler=guarded(_principals_token))
    rev = pr_sub.add_parser("revoke", help="revoke every token of a principal")
    rev.add_argument("name")
    rev.set_defaults(handler=guarded(_principals_revoke))
    con = pr_sub.add_parser("contact", help="set where a principal's notifications go")
    con.add_argument("name")
    con.add_argument("--email", metavar="ADDRESS", help="the email address to notify")
    con.add_argument("--clear", action="store_true", help="remove the address")
    con.set_defaults(handler=guarded(_principals_contact))
    pw = pr_sub.add_parser("password", help="set a person's password for the pages "
                                            "(prompted, or one line on stdin)")
    pw.add_argument("name")
    pw.set_defaults(handler=guarded(_principals_password))
    lst = pr_sub.add_parser("list", help="list principals (never tokens)")
    lst.set_defaults(handler=guarded(_principals_list))


def _register_sync(sub: argparse._SubParsersAction) -> None:
    sy = sub.add_parser("sync", help="propose a version for each changed ruleset file")
    sy.add_argument("directory", metavar="DIR")
    sy.add_argument("--as", dest="actor", required=True, metavar="NAME",
                    help="the principal proposing the versions")
    sy.add_argument("--revert", action="store_true",
                    help="propose files equal to an older version anyway, undoing the "
                         "versions after it")
    sy.add_argument("--json", action="store_true", help="print the report as JSON")
    sy.set_defaults(handler=guarded(_sync))
