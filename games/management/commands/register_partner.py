"""Register a checkpoint as a version of a partner, with its lineage and evaluation (docs/evolution.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from games.models import Experiment, PartnerModel, PartnerModelVersion
from games.services import partners


class Command(BaseCommand):
    help = "Register a checkpoint as a candidate version of a partner; optionally gate it or promote it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--partner", required=True, help="The partner model's name (the model server's).")
        parser.add_argument("--checkpoint", required=True, help="Its path as the model server sees it.")
        parser.add_argument("--version-name", help="Version name (default: the checkpoint's own).")
        parser.add_argument("--classes", nargs="+", help="Class names in output order (default: the checkpoint's).")
        parser.add_argument("--architecture", help="Default: the checkpoint's preset name.")
        parser.add_argument("--parent", help="The version it was fine-tuned from.")
        parser.add_argument("--export-id", type=int, help="The maps export it was trained on.")
        parser.add_argument("--dataset-version", default="", help="That export's dataset version.")
        parser.add_argument("--evaluation", type=Path, help="A model_server.evaluate JSON (default: the checkpoint's).")
        parser.add_argument("--gate", metavar="EXPERIMENT", help="Then put it through this experiment's gate.")
        parser.add_argument("--promote", metavar="EXPERIMENT", help="Then send it live by hand (needs --reason).")
        parser.add_argument("--reason", default="", help="Why, for --promote (goes into the audit log).")
        parser.add_argument("--user", help="Who registers or promotes it (a username).")

    def handle(self, *args: Any, **options: Any) -> None:
        partner = PartnerModel.objects.filter(name=options["partner"]).first()
        if partner is None:
            raise CommandError(f"no partner model {options['partner']!r}")
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"no user {options['user']!r}")
        if options["promote"] and (user is None or not options["reason"].strip()):
            raise CommandError("--promote needs --user and --reason (the audit log says who and why)")
        if options["gate"] and options["promote"]:
            raise CommandError("give --gate or --promote, not both")
        try:
            version = self._register(partner, user, options)
            self.stdout.write(f"registered {version} ({version.status}), generation {version.generation}")
            experiment_slug = options["gate"] or options["promote"]
            if experiment_slug:
                experiment = Experiment.objects.filter(slug=experiment_slug).first()
                if experiment is None:
                    raise CommandError(f"no experiment {experiment_slug!r}")
                if options["gate"]:
                    decision = partners.decide(experiment=experiment, candidate=version)
                else:
                    decision = partners.promote(version=version, experiment=experiment, actor=user,
                                                reason=options["reason"])  # fmt: skip
                verdict = "live" if decision.passed else "refused"
                self.stdout.write(f"{verdict}: {decision.reason}")
        except (partners.PartnerVersionInvalid, partners.ActivationFailed) as error:
            raise CommandError(str(error)) from error

    def _register(self, partner: PartnerModel, user: object, options: dict[str, Any]) -> PartnerModelVersion:
        needs_file = not (options["version_name"] and options["classes"] and options["evaluation"])
        info = partners.describe_checkpoint(options["checkpoint"]) if needs_file else {}
        evaluation = info.get("evaluation")
        if options["evaluation"]:
            try:
                evaluation = json.loads(options["evaluation"].read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                raise CommandError(f"cannot read the evaluation {options['evaluation']}: {error}") from error
        parent = None
        if options["parent"]:
            parent = PartnerModelVersion.objects.filter(partner=partner, version=options["parent"]).first()
            if parent is None:
                raise CommandError(f"{partner.name} has no version {options['parent']!r}")
        return partners.register_version(
            partner=partner, version=options["version_name"] or info.get("version", ""),
            checkpoint=options["checkpoint"], classes=options["classes"] or info.get("classes", []), parent=parent,
            architecture=options["architecture"] or info.get("architecture", ""), export_id=options["export_id"],
            dataset_version=options["dataset_version"], evaluation=evaluation, user=user,
        )  # fmt: skip
