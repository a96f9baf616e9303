"""`tracker taxonomy ...` (the case categories and departments, versioned) and
`tracker departments ...` (who may act for a department). Every change is audited as
``cli:<os user>``."""

from __future__ import annotations

import argparse

import trio

from alerts.cases.taxonomy import TaxonomyError, load_taxonomy
from tracker import config as config_mod
from tracker.app.cli import CommandError, _operator, _store
from tracker.cases.roles import membership_refusal
from tracker.storage.audit import AuditEntry
from tracker.storage.store import Store


def cmd_taxonomy(args, settings: config_mod.Settings) -> int:
    async def main() -> int:
        async with _store(settings) as store:
            if args.taxonomy_command == "load":
                text = await trio.Path(args.file).read_text(encoding="utf-8")
                try:
                    taxonomy = load_taxonomy(text)
                except TaxonomyError as exc:
                    raise CommandError(f"taxonomy refused: {exc}") from None
                version, created = await store.save_taxonomy(taxonomy.version, taxonomy.city, taxonomy.example,
                                                             taxonomy.digest, text, _operator())
                if created:
                    await store.append_audit(AuditEntry(actor=_operator(), source="cli", action="taxonomy.load",
                                                        target=f"taxonomy:{version}",
                                                        after={"version": version, "label": taxonomy.version,
                                                               "digest": taxonomy.digest}))
                print(f"taxonomy version {version}{'' if created else ' (unchanged: the newest has this text)'}: "
                      f"{taxonomy.version} of {taxonomy.city}, {len(taxonomy.categories)} categories, "
                      f"{len(taxonomy.departments)} departments, digest {taxonomy.digest}"
                      f"{' — an example, not a city standard' if taxonomy.example else ''}")
                return 0
            return await _show(store)

    return trio.run(main)


async def _show(store: Store) -> int:
    row = await store.taxonomy()
    if row is None:
        raise CommandError("no taxonomy loaded (tracker taxonomy load FILE)")
    taxonomy = load_taxonomy(row["source"])
    print(f"taxonomy version {row['version']}: {row['label']} of {row['city']}, digest {row['digest']}, "
          f"loaded {row['loaded_at']:%Y-%m-%d %H:%M} by {row['loaded_by']}"
          f"{' (an example)' if row['example'] else ''}")
    for d in taxonomy.departments.values():
        print(f"  department {d.code:<12} {d.name} ({d.district or 'city'})")
    for c in taxonomy.categories.values():
        limits = ", ".join(f"{stage}={limit}" for stage, limit in c.limits.items())
        print(f"  {c.code} {c.major_name}/{c.name} → {c.department}{' urgent' if c.urgent else ''}"
              f"{' natural clock' if c.natural_clock else ''}: {limits}")
    return 0


def cmd_departments(args, settings: config_mod.Settings) -> int:
    async def main() -> int:
        async with _store(settings) as store:
            if args.departments_command == "members":
                for row in await store.department_members():
                    print(f"{row['department']:<12} {row['account']}")
                return 0
            row = await store.taxonomy()
            departments = load_taxonomy(row["source"]).departments if row is not None else {}
            if args.department not in departments:
                raise CommandError(f"no department {args.department!r} in the current taxonomy")
            member = args.departments_command == "add-member"
            if member:
                account = await store.account(args.account)
                why = membership_refusal(args.account, account["district"] if account else None, args.department,
                                         departments[args.department].district)
                if why is not None:
                    raise CommandError(why)
            try:
                changed = (await store.add_department_member(args.department, args.account) if member
                           else await store.remove_department_member(args.department, args.account))
            except LookupError as exc:
                raise CommandError(str(exc)) from None
            if changed:
                await store.append_audit(AuditEntry(
                    actor=_operator(), source="cli", action="department.member_add" if member else "department.member_remove",
                    target=args.department, after={"account": args.account, "member": member}))
            print(f"{args.account} {'is' if member else 'is not'} a member of {args.department}"
                  f"{'' if changed else ' (already so)'}")
            return 0

    return trio.run(main)


def add_case_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("taxonomy", help="case categories and departments (a TOML file; each load a new version)")
    tsub = p.add_subparsers(dest="taxonomy_command", required=True)
    g = tsub.add_parser("load", help="check a taxonomy file and store it as the current version")
    g.add_argument("file")
    tsub.add_parser("show", help="the current taxonomy: departments, categories and their limits")
    p.set_defaults(func=cmd_taxonomy)
    p = sub.add_parser("departments", help="who may act for a department (handle, return, ask for an extension)")
    dsub = p.add_subparsers(dest="departments_command", required=True)
    for verb, text in (("add-member", "let an account act for a department"),
                       ("remove-member", "no longer let an account act for a department")):
        g = dsub.add_parser(verb, help=text)
        g.add_argument("department", help="its code in the taxonomy, e.g. 620105-HW")
        g.add_argument("account")
    dsub.add_parser("members", help="every department's members")
    p.set_defaults(func=cmd_departments)
