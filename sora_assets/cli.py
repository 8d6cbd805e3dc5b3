"""`sora-assets`: the command line, on the same core, resources and assets as the Dagster code."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sys
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from rich.console import Console
from rich.table import Table

from sora_assets.core.storage.home import Home

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Prompt batches in; signed, safety-scanned, cached text-to-video clips out.")
out = Console()
err = Console(stderr=True)
_documents: TextIO | None = None  # the real stdout while --format json|csv guards it (see main)


def document(text: str) -> None:
    """Write the machine-readable document. Under --format json|csv it is the only thing on stdout."""
    stream = _documents or sys.stdout
    stream.write(text if text.endswith("\n") else text + "\n")
    stream.flush()


def _machine_format(argv: list[str]) -> bool:
    for i, arg in enumerate(argv):
        value = arg.split("=", 1)[1] if arg.startswith("--format=") else (
            argv[i + 1] if arg in ("--format", "-f") and i + 1 < len(argv) else None)
        if value in ("json", "csv"):
            return True
    return False


def _guard_stdout() -> None:
    """Point fd 1 at stderr for the whole command and keep the real stdout for `document` alone.

    Libraries print to stdout at the C level (HiGHS' banner), from Python (progress bars, warnings) or from
    child processes; none of that can be silenced one library at a time, so the document gets a private
    duplicate of the original stdout and everything else written to fd 1 lands on stderr."""
    global _documents
    sys.stdout.flush()
    _documents = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


FormatOption = Annotated[OutputFormat, typer.Option("--format", "-f", help="table | json | csv")]
HomeOption = Annotated[Path | None, typer.Option("--home", help="Pipeline home (default: $SORA_ASSETS_HOME or ./data)")]


def emit(rows: list[dict[str, Any]], fmt: OutputFormat, title: str, extra: dict[str, Any] | None = None) -> None:
    if fmt is OutputFormat.json:
        document(json.dumps({**(extra or {}), "rows": rows}, indent=2, default=str))
    elif fmt is OutputFormat.csv:
        buffer = io.StringIO()
        if rows:
            writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows([{k: (json.dumps(v) if isinstance(v, list | dict) else v) for k, v in r.items()}
                              for r in rows])
        document(buffer.getvalue())
    else:
        table = Table(title=title)
        for column in (rows[0] if rows else {}):
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*["; ".join(map(str, v)) if isinstance(v, list) else ("" if v is None else str(v))
                            for v in row.values()])
        out.print(table)
        for key, value in (extra or {}).items():
            out.print(f"{key}: {value}")


def fail(message: str, code: int = 2) -> typer.Exit:
    """One plain line on stderr (scripts grep it), then a non-zero exit."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
    return typer.Exit(code)


@app.command()
def validate(file: Path, fmt: FormatOption = OutputFormat.table) -> None:
    """Dry run: each row's validation and pre-filter decision; nothing is rendered or written."""
    from sora_assets.core.intake.batch_files import BatchFileError, batch_id_for, read_batch_file
    from sora_assets.core.intake.validation import validate_rows
    from sora_assets.resources.video_model import VideoModelResource

    try:
        frame = read_batch_file(file)
    except (BatchFileError, OSError) as exc:
        raise fail(f"cannot read {file}: {exc}") from None
    batch_id = batch_id_for(file.name, file.read_bytes())
    # the tier presets a deployment sets apply to the dry run too (SORA_ASSETS_TIER_PRESETS)
    try:
        model = VideoModelResource(model_path="", tier_presets=os.environ.get("SORA_ASSETS_TIER_PRESETS", ""))
        tiers = model.tier_policy()
    except ValueError as exc:
        raise fail(f"SORA_ASSETS_TIER_PRESETS: {exc}") from None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    # on stderr, so stdout stays the document
    with Progress(TextColumn("validating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err) as bar:
        task = bar.add_task("validate", total=len(frame))
        outcome = validate_rows(frame, batch_id, model.profile(resolve_revision=False), tiers=tiers,
                                progress=lambda done, total: bar.update(task, completed=done, total=total))
    rows: list[dict[str, Any]] = []
    for accepted in outcome.accepted:
        spec = accepted.spec
        rows.append({"row": accepted.row, "clip_id": accepted.clip_id, "status": "accepted", "stage": None,
                     "tier": accepted.tier, "reason": None, "category": None, "warnings": accepted.warnings,
                     "seed": spec["seed"], "steps": spec["steps"],
                     "size": f"{spec['width']}x{spec['height']}x{spec['num_frames']}", "preset": spec["preset"]})
    for rejected in outcome.rejected:
        rows.append({"row": rejected.row, "clip_id": None,
                     "status": ("held" if rejected.held else "blocked") if rejected.stage == "prefilter"
                     else "rejected",
                     "stage": rejected.stage, "tier": None, "reason": rejected.reason,
                     "category": rejected.category, "warnings": [], "seed": None, "steps": None, "size": None,
                     "preset": None})
    rows.sort(key=lambda r: r["row"])
    summary = {"file": str(file), "batch_id": batch_id, "accepted": len(outcome.accepted),
               "rejected": len(outcome.rejected) - len(outcome.blocked), "blocked": len(outcome.blocked)}
    emit(rows, fmt, f"validation of {file.name}", summary)


@app.command()
def submit(file: Path, home: HomeOption = None) -> None:
    """Drop a batch file into the inbox (atomically); the inbox sensor registers it."""
    from sora_assets.core.intake.batch_files import BatchFileError, batch_format
    from sora_assets.services.runner import submit_file

    if not file.is_file():
        raise fail(f"no such file: {file}")
    try:
        batch_format(file)
    except BatchFileError as exc:
        raise fail(str(exc)) from None
    target = submit_file(Home.from_env(home), file)
    out.print(f"submitted {file.name} -> {target}")


@app.command()
def verify(clip: Path, trust_anchor: Annotated[Path | None, typer.Option(
        help="Root certificate PEM (default: the home's dev root)")] = None,
           home: HomeOption = None, fmt: FormatOption = OutputFormat.table) -> None:
    """Validate a clip's C2PA manifest; exit 0 only when it is Trusted."""
    from sora_assets.resources.signer import ROOT_CERT, read_verification

    if not clip.is_file():
        raise fail(f"no such file: {clip}")
    anchor_path = trust_anchor or Home.from_env(home).keys / ROOT_CERT
    anchor = anchor_path.read_text() if anchor_path.exists() else None
    result = read_verification(clip.read_bytes(), anchor)
    if fmt is OutputFormat.json:
        document(json.dumps({"clip": str(clip), **asdict(result)}, indent=2, default=str))
    else:
        out.print(f"{clip}: {result.state}")
        for failure in result.failures:
            out.print(f"  failure: {failure}")
        if result.generation:
            family = result.generation.get("model_family")  # only in manifests of families other than Wan
            out.print(f"  model={result.generation.get('model')} seed={result.generation.get('seed')} "
                      f"steps={result.generation.get('steps')}" + (f" family={family}" if family else ""))
    raise typer.Exit(0 if result.trusted else 1)


def _summary_rows(home: Home, keys: list[str]) -> list[dict[str, Any]]:
    from sora_assets.resources.home import storage_resources

    warehouse = storage_resources(home)["warehouse"]  # local, or S3 when SORA_ASSETS_STORAGE=s3
    placeholders = ", ".join("?" for _ in keys)
    frame = warehouse.query(f"""
        WITH c AS (SELECT partition_key, count(*) FILTER (status = 'published') AS published,
                          count(*) FILTER (status = 'cache_hit') AS cache_hits,
                          count(*) FILTER (status = 'blocked') AS blocked
                   FROM clips WHERE partition_key IN ({placeholders}) GROUP BY ALL),
             l AS (SELECT partition_key, sum(gpu_seconds) AS gpu_seconds, sum(cost_usd) AS cost_usd,
                          sum(api_equivalent_usd) AS api_equivalent_usd
                   FROM cost_ledger WHERE partition_key IN ({placeholders}) GROUP BY ALL),
             r AS (SELECT partition_key, count(*) AS rejected FROM rejections
                   WHERE partition_key IN ({placeholders}) GROUP BY ALL),
             s AS (SELECT partition_key, count(*) FILTER (status IN ('stitched', 'cached')) AS sequences
                   FROM sequences WHERE partition_key IN ({placeholders}) GROUP BY ALL)
        SELECT k.partition_key, coalesce(published, 0) AS published, coalesce(cache_hits, 0) AS cache_hits,
               coalesce(blocked, 0) AS blocked, coalesce(rejected, 0) AS rejected,
               round(coalesce(gpu_seconds, 0), 3) AS gpu_seconds, round(coalesce(cost_usd, 0), 6) AS cost_usd,
               round(coalesce(api_equivalent_usd, 0), 2) AS api_equivalent_usd, coalesce(sequences, 0) AS sequences
        FROM (SELECT unnest(?::VARCHAR[]) AS partition_key) k
        LEFT JOIN c USING (partition_key) LEFT JOIN l USING (partition_key) LEFT JOIN r USING (partition_key)
        LEFT JOIN s USING (partition_key)
        ORDER BY k.partition_key""", keys * 4 + [keys])
    return frame.to_dict(orient="records")


@app.command()
def demo(home: HomeOption = None, sample: Annotated[Path | None, typer.Option(help="Batch file to render")] = None,
         mixed: Annotated[bool, typer.Option("--mixed", help="Render the bundled mixed Wan + LTX-Video sample "
                                                             "(rows pick a model family with `model`)")] = False,
         fmt: FormatOption = OutputFormat.table) -> None:
    """Render the bundled sample batch end to end, in process (no daemon), and print a summary."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from sora_assets.core.intake.batch_files import batch_id_for
    from sora_assets.resources.video_model import StepProgress, progress_listener
    from sora_assets.services.runner import (
        MIXED_DEMO_BATCH,
        batch_shard_keys,
        demo_batch_path,
        open_instance,
        run_shards,
        submit_file,
        tick_inbox,
    )

    if mixed and sample is not None:
        raise fail("--mixed renders the bundled mixed sample: leave out --sample")
    layout = Home.from_env(home).ensure()
    try:
        source = demo_batch_path(MIXED_DEMO_BATCH if mixed else sample)
    except FileNotFoundError as exc:
        raise fail(str(exc)) from None
    batch_id = batch_id_for(source.name, source.read_bytes())
    instance = open_instance(layout)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=err, transient=False) as progress:
        intake = progress.add_task("intake: inbox sensor tick", total=1)
        submit_file(layout, source)
        tick_inbox(layout, instance)
        keys = batch_shard_keys(layout, batch_id)
        progress.update(intake, completed=1, description=f"intake: {batch_id} → {len(keys)} shards")
        task = progress.add_task("rendering shards", total=len(keys))
        steps = progress.add_task("denoising: waiting for the first clip", total=None)

        def done(outcome: Any) -> None:
            state = "ok" if outcome.success else f"FAILED: {outcome.error}"
            progress.console.print(f"shard {outcome.partition_key}: {state}", highlight=False)
            progress.advance(task)

        def step(event: StepProgress) -> None:
            progress.update(steps, total=event.total, completed=event.step,
                            description=f"denoising {', '.join(event.clip_ids)}")

        with progress_listener(step):
            outcomes = run_shards(layout, instance, keys, on_done=done)
    rows = _summary_rows(layout, keys)
    emit(rows, fmt, f"demo batch {batch_id}",
         {"home": str(layout.root), "warehouse": str(layout.warehouse_db)})
    if not all(o.success for o in outcomes):
        raise typer.Exit(1)


class ReportKind(StrEnum):
    cost = "cost"
    quality = "quality"
    safety = "safety"


@app.command()
def report(kind: ReportKind, home: HomeOption = None,
           batch: Annotated[str | None, typer.Option("--batch", help="Only this batch id")] = None,
           since: Annotated[str | None, typer.Option("--since", help="Only rows recorded since (ISO date/time, UTC)")]
           = None,
           only: Annotated[str | None, typer.Option("--only", help="One report of the kind, e.g. cost_by_tier")] = None,
           parquet: Annotated[Path | None, typer.Option("--parquet", help="Also write the report to this file")]
           = None,
           fmt: FormatOption = OutputFormat.table) -> None:
    """Cost, quality or safety reports from the warehouse (the same SQL as its v_* views)."""
    from datetime import datetime

    from sora_assets.core.warehouse.reports import KINDS, report_sql
    from sora_assets.resources.home import storage_resources

    names = KINDS[kind.value]
    if only is not None:
        if only not in names:
            raise fail(f"--only must be one of {', '.join(names)}")
        names = [only]
    if (fmt is OutputFormat.csv or parquet) and len(names) > 1:
        raise fail(f"--format csv and --parquet need one report: add --only ({', '.join(names)})")
    if since is not None:
        try:
            datetime.fromisoformat(since)
        except ValueError:
            raise fail(f"--since {since!r} is not an ISO date or time (e.g. 2026-11-21 or 2026-11-21T08:00)") from None
    layout = Home.from_env(home)
    warehouse = storage_resources(layout)["warehouse"]  # an S3 warehouse syncs its Parquet first
    results = {}
    for name in names:
        sql, params = report_sql(name, batch, since)
        results[name] = warehouse.query(sql, params)
    if parquet:
        results[names[0]].to_parquet(parquet, index=False)
    filters = {"batch": batch, "since": since}
    if fmt is OutputFormat.json and len(names) > 1:
        document(json.dumps({**filters, "reports": {n: f.to_dict(orient="records") for n, f in results.items()}},
                            indent=2, default=str))
        return
    for name, frame in results.items():
        emit(frame.to_dict(orient="records"), fmt, name, filters if fmt is not OutputFormat.table else None)


@app.command()
def plan(home: HomeOption = None,
         gpus: Annotated[int | None, typer.Option("--gpus", help="GPUs per window (default: $SORA_ASSETS_GPUS or 1)")]
         = None,
         now: Annotated[str | None, typer.Option("--now", help="Plan as if it were this time (ISO 8601)")] = None,
         fmt: FormatOption = OutputFormat.table) -> None:
    """The render plan for every pending shard: when, on which GPU, its cost and the savings against FCFS."""
    from datetime import UTC, datetime

    from sora_assets.core.planning.prices import PriceFileError
    from sora_assets.resources.home import default_resources
    from sora_assets.services.planning import build_plan, plan_document

    layout = Home.from_env(home).ensure()
    resources = default_resources(layout)
    planner = resources["planner"]
    if gpus is not None:
        if gpus < 1:
            raise fail("--gpus must be at least 1")
        planner = planner.model_copy(update={"gpus": gpus})
    try:
        clock = datetime.fromisoformat(now) if now else datetime.now(UTC)
    except ValueError:
        raise fail(f"--now {now!r} is not an ISO date-time (e.g. 2026-11-21T14:00+00:00)") from None
    clock = clock if clock.tzinfo else clock.replace(tzinfo=planner.zone)
    try:
        result = build_plan(layout, planner, resources["video_model"], resources["warehouse"], resources["store"],
                            clock)
    except (PriceFileError, ValueError) as exc:
        raise fail(str(exc)) from None
    planned = plan_document(result)
    summary = {k: planned[k] for k in ("plan_id", "solver", "status", "shards", "gpus", "total_cost_usd",
                                        "fcfs_cost_usd", "savings_usd", "savings_pct")}
    summary["late"] = ", ".join(f"{x['shard']} by {x['late_by_s'] / 3600:.2f} h" for x in planned["late"]) or "none"
    if fmt is OutputFormat.json:
        document(json.dumps(planned, indent=2, default=str))
        return
    rows = [{"shard": a["shard"], "tier": a["tier"], "account": a["account"], "start": a["start"][:16],
             "end": a["end"][:16], "gpu": a["gpu_slot"], "est_gpu_s": a["est_gpu_seconds"],
             "est_usd": a["est_cost_usd"], "slack_h": round(a["slack_s"] / 3600, 2),
             "held_by_cap": "yes" if a["held_by_cap"] else ""} for a in planned["assignments"]]
    summary["free_share_cap"] = planned["free_share_cap"]
    summary["held_by_cap"] = sum(1 for a in planned["assignments"] if a["held_by_cap"])
    emit(rows, fmt, f"render plan ({planned['solver']}, {planned['status']})", summary)


@app.command()
def calibrate(preset: Annotated[list[str], typer.Option("--preset", "-p", help="Preset to measure (repeatable)")],
              home: HomeOption = None,
              prompts: Annotated[int, typer.Option("--prompts", help="Bundled calibration prompts to render")] = 4,
              steps: Annotated[int | None, typer.Option("--steps", help="Denoising steps (default: free tier's)")]
              = None,
              width: Annotated[int | None, typer.Option("--width", help="Default: the model's default")] = None,
              height: Annotated[int | None, typer.Option("--height")] = None,
              frames: Annotated[int | None, typer.Option("--frames")] = None,
              rounds: Annotated[int, typer.Option("--rounds", help="Timed rounds; the best per clip counts")] = 1,
              dry_run: Annotated[bool, typer.Option("--dry-run", help="Measure and print, store nothing")] = False,
              fmt: FormatOption = OutputFormat.table) -> None:
    """Measure presets against exact on the configured model (same prompts and seeds): speed-up, PSNR and SSIM,
    stored per model revision under <home>/calibration/, where the planner and cost estimates read them."""
    from rich.progress import Progress

    from sora_assets.core.render.acceleration import EXACT, get_preset, save_calibration
    from sora_assets.resources.home import default_resources
    from sora_assets.services.calibration import (
        calibration_prompts,
        calibration_record,
        calibration_specs,
        measure_presets,
    )

    layout = Home.from_env(home).ensure()
    try:
        names = [get_preset(p).name for p in preset]
        texts = calibration_prompts(prompts)
    except ValueError as exc:
        raise fail(str(exc)) from None
    if rounds < 1:
        raise fail("--rounds must be at least 1")
    model = default_resources(layout)["video_model"]
    profile = model.profile()
    specs = calibration_specs(model, texts, steps or model.free_tier_steps, width or profile.default_width,
                              height or profile.default_height, frames or profile.default_num_frames)
    total = len(specs) * rounds * len({EXACT, *names})
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task(f"calibrating {', '.join(names)} on {profile.model_id}@{profile.revision}", total=total)
        results = measure_presets(model, specs, names, rounds, on_render=lambda *_: bar.advance(task))
    rows = []
    for name in names:
        if name == EXACT:
            continue
        record = calibration_record(model, specs[0], results[EXACT], results[name])
        stored = "" if dry_run else str(save_calibration(layout.calibration, record))
        rows.append({"preset": name, "model": record.model_id, "revision": record.model_revision,
                     "clips": record.clips, "exact_s_per_clip": round(record.exact_seconds_per_clip, 4),
                     "preset_s_per_clip": round(record.preset_seconds_per_clip, 4),
                     "speedup": round(record.speedup, 3), "psnr_db": round(record.psnr_db, 2),
                     "ssim": round(record.ssim, 4), "device": record.device, "stored": stored})
    emit(rows, fmt, "preset calibration", {"shape": f"{specs[0].width}x{specs[0].height}x{specs[0].num_frames}, "
                                                    f"{specs[0].steps} steps", "rounds": rounds})


class StatusFormat(StrEnum):
    table = "table"
    json = "json"


def _status_instance(layout: Home) -> Any:
    """The instance the deployment uses: $DAGSTER_HOME when set, else the home's own (as `demo` and `ui` use)."""
    from dagster import DagsterInstance

    from sora_assets.services.runner import open_instance

    return DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else open_instance(layout)


@app.command()
def status(home: HomeOption = None,
           fmt: Annotated[StatusFormat, typer.Option("--format", "-f", help="table | json")] = StatusFormat.table,
           refresh: Annotated[bool, typer.Option("--refresh", help="Compute a fresh SLO snapshot first")] = False,
           batch: Annotated[str | None, typer.Option("--batch", help="One batch's night: clips done, cost vs "
                                                                      "plan, ETA, shards at risk")] = None,
           ) -> None:
    """Dashboard: the latest SLO figures per tier, open alerts and tonight's plan progress (or one batch's)."""
    from datetime import UTC, datetime

    from sora_assets.resources.home import storage_resources
    from sora_assets.services.observability import compute_snapshot, latest_snapshot, open_alerts, plan_progress

    layout = Home.from_env(home).ensure()
    warehouse = storage_resources(layout)["warehouse"]  # local, or S3 (synced first) when SORA_ASSETS_STORAGE=s3
    instance = _status_instance(layout)
    now = datetime.now(UTC)
    if batch is not None:
        _batch_status(layout, instance, warehouse, batch, now, fmt)
        return
    try:
        figures = latest_snapshot(warehouse)
        if refresh or figures.empty:  # none yet: compute one (and store it, like the scheduled asset)
            compute_snapshot(layout, instance, warehouse, now)
            figures = latest_snapshot(warehouse)
        alerts = open_alerts(warehouse)
        progress = plan_progress(layout, instance, warehouse, now)
    finally:
        instance.dispose()
    slo = [{k: (None if v != v else v) for k, v in row.items() if k != "computed_at"}  # NaN -> null
           for row in figures.to_dict(orient="records")]
    snapshot = {"snapshot_id": figures.snapshot_id.iloc[0] if len(figures) else None,
                "computed_at": figures.computed_at.iloc[0].isoformat() if len(figures) else None}
    open_rows = [{k: alert[k] for k in ("alert_id", "severity", "signal", "value", "threshold", "fired_at",
                                        "message", "runbook")} for alert in alerts]
    if fmt is StatusFormat.json:
        document(json.dumps({**snapshot, "slo": slo, "open_alerts": open_rows, "plan": progress}, indent=2,
                            default=str))
        return
    table = Table(title=f"SLO figures ({snapshot['snapshot_id']}, {snapshot['computed_at']})")
    for column in ("tier", "metric", "dimension", "value", "samples"):
        table.add_column(column, overflow="fold")
    for row in slo:
        value = "" if row["value"] is None else f"{row['value']:.4g}"
        table.add_row(row["tier"], row["metric"], row["dimension"] or "", value, str(row["samples"]))
    out.print(table)
    alerts_table = Table(title=f"open alerts ({len(open_rows)})")
    for column in ("severity", "signal", "value", "threshold", "fired_at", "runbook"):
        alerts_table.add_column(column, overflow="fold")
    for alert in open_rows:
        alerts_table.add_row(alert["severity"], alert["signal"], f"{alert['value']:.4g}", f"{alert['threshold']:.4g}",
                             str(alert["fired_at"])[:19], f"docs/RUNBOOK.md#{alert['runbook']}",
                             style="red" if alert["severity"] == "critical" else "yellow")
    out.print(alerts_table)
    out.print("plan: " + ", ".join(f"{k} {v}" for k, v in progress.items()))


def _batch_status(layout: Home, instance: Any, warehouse: Any, batch: str, now: Any, fmt: StatusFormat) -> None:
    from sora_assets.services.observability import batch_status

    try:
        figures = batch_status(layout, instance, warehouse, batch, now)
    except ValueError as exc:
        raise fail(str(exc)) from None
    finally:
        instance.dispose()
    if fmt is StatusFormat.json:
        document(json.dumps(figures, indent=2, default=str))
        return
    table = Table(title=f"batch {batch} ({'finished' if figures['finished'] else 'in progress'})")
    table.add_column("figure")
    table.add_column("value", overflow="fold")
    for name in ("rows", "clips_done", "clips_total", "rendered", "cache_hits", "blocked", "dead_letters",
                 "rejected_rows", "shards", "shards_published", "shards_failed", "shards_pending", "gpu_hours",
                 "planned_gpu_hours", "cost_usd", "planned_cost_usd", "api_equivalent_usd", "savings_usd",
                 "plan_id", "eta"):
        table.add_row(name, str(figures[name]))
    table.add_row("at_risk", ", ".join(figures["at_risk"]) or "none")
    table.add_row("failures", "; ".join(f"{f.get('shard') or f.get('clip_id')}: {f['reason']}"
                                        for f in figures["failures"]) or "none")
    out.print(table)


class EvalSuite(StrEnum):
    all = "all"
    pipeline = "pipeline"
    safety = "safety"


@app.command(name="eval")
def evaluate(home: HomeOption = None,
             sample: Annotated[int, typer.Option("--sample", help="Published clips to re-render for determinism")] = 2,
             suite: Annotated[EvalSuite, typer.Option("--suite", help="all | pipeline | safety")] = EvalSuite.all,
             fmt: FormatOption = OutputFormat.table) -> None:
    """Golden safety sets and frame fixtures (safety); step budgets, C2PA, determinism and quality drift
    (pipeline). --suite safety also runs the safety corpus's validation and test splits (per category,
    language and obfuscation style; refuses a policy over 2% validation false blocks). Rows go to
    eval_results; --format json prints the figures. Exit 1 if a check fails."""
    from sora_assets.resources.home import default_resources
    from sora_assets.services.evaluation import as_rows, run_eval

    layout = Home.from_env(home)
    rendered = layout.warehouse.exists() and any((layout.warehouse / "clips").glob("partition=*/*.parquet"))
    if suite is EvalSuite.pipeline and not rendered:
        raise fail(f"no rendered clips under {layout.warehouse}: render something first (sora-assets demo)")
    resources = default_resources(layout)
    rows: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    if suite in (EvalSuite.all, EvalSuite.safety):
        from sora_assets.core.safety.prefilter import default_prefilter
        from sora_assets.services.safety_eval import run_safety_eval

        safety_id, figures, checks = run_safety_eval(resources["warehouse"], default_prefilter(),
                                                     resources["frame_safety"], corpus=suite is EvalSuite.safety)
        rows += as_rows(checks)
        extra.update(safety_eval_id=safety_id, safety=figures.as_dict())
    if suite in (EvalSuite.all, EvalSuite.pipeline):
        if rendered:
            eval_id, checks = run_eval(resources["warehouse"], resources["video_model"], resources["signer"],
                                       resources["store"], sample=sample)
            rows += as_rows(checks)
            extra["eval_id"] = eval_id
        else:
            extra["pipeline"] = "skipped: nothing rendered yet"
    passed = all(r["passed"] for r in rows)
    extra["passed"] = passed
    if fmt is OutputFormat.table and "safety" in extra:  # the figures are a nested dict: print a summary
        figures = extra.pop("safety")
        extra["safety"] = (f"must-block {figures['must_block_rate']:.1%} of {figures['must_block']}, "
                           f"false blocks {figures['false_block_rate']:.1%} of {figures['must_pass']}, "
                           f"policy {figures['policy_version']}")
        if figures.get("corpus"):
            from sora_assets.services.safety_eval import corpus_table

            extra["corpus"] = corpus_table(figures["corpus"])
    emit(rows, fmt, "eval", extra)
    if not passed:
        raise typer.Exit(1)


@app.command()
def backfill(failed: Annotated[bool, typer.Option("--failed", help="Shards whose last run failed")] = False,
             batch: Annotated[str | None, typer.Option("--batch", help="Only shards of this batch id")] = None,
             url: Annotated[str, typer.Option("--url", help="Dagster webserver (dagster dev)")] = "http://127.0.0.1:3000",
             dry_run: Annotated[bool, typer.Option("--dry-run", help="List the shards, launch nothing")] = False,
             fmt: FormatOption = OutputFormat.table) -> None:
    """Launch one Dagster backfill of exactly the failed shards (finished clips are reused, the rest resume)."""
    from sora_assets.services.backfill import BackfillError, failed_shards, launch_backfill, shard_statuses

    if not failed:
        raise fail("say which partitions to backfill: --failed")
    try:
        status = shard_statuses(url)
        keys = failed_shards(status, batch)
        backfill_id = launch_backfill(url, keys, f"failed shards{f' of {batch}' if batch else ''}") \
            if keys and not dry_run else None
    except BackfillError as exc:
        raise fail(str(exc)) from None
    rows = [{"partition_key": key, "action": "dry run" if dry_run else "launched", "backfill_id": backfill_id}
            for key in keys]
    emit(rows, fmt, "backfill of failed shards",
         {"backfill_id": backfill_id, "failed": len(keys), "running_now": len(status.in_progress), "url": url})


@app.command()
def recover(home: HomeOption = None,
            url: Annotated[str, typer.Option("--url", help="Dagster webserver, for the backfill")] =
            "http://127.0.0.1:3000",
            backfill_failed: Annotated[bool, typer.Option("--backfill/--no-backfill",
                                                          help="Backfill the failed shards afterwards")] = True,
            fmt: FormatOption = OutputFormat.table) -> None:
    """After a crash or power loss: mark runs with no process failed, free their gpu slots, backfill their shards."""
    from sora_assets.services.backfill import BackfillError, failed_shards, launch_backfill, shard_statuses
    from sora_assets.services.recover import recover as recover_runs

    layout = Home.from_env(home)
    with _status_instance(layout) as instance:
        result = recover_runs(instance)
    rows: list[dict[str, Any]] = [{"run_id": r.run_id, "partition_key": r.partition_key, "was": r.status,
                                   "action": "marked failed", "slots_freed": result.freed.get(r.run_id, 0)}
                                  for r in result.failed]
    rows += [{"run_id": run_id, "partition_key": None, "was": "finished", "action": "slots freed",
              "slots_freed": freed} for run_id, freed in result.freed.items()
             if run_id not in {r.run_id for r in result.failed}]
    backfill_id, keys = None, []
    if backfill_failed:
        try:
            keys = failed_shards(shard_statuses(url))
            backfill_id = launch_backfill(url, keys, "recover: shards of dead runs") if keys else None
        except BackfillError as exc:
            emit(rows, fmt, "recovered runs", {"backfill": "not launched"})
            raise fail(f"{exc}; start `sora-assets ui` (or dagster dev) and run `sora-assets backfill --failed`") \
                from None
    emit(rows, fmt, "recovered runs", {"marked_failed": len(result.failed),
                                       "slots_freed": sum(result.freed.values()), "backfill_id": backfill_id,
                                       "backfilled": keys})


@app.command()
def ui(home: HomeOption = None, port: int = 3000) -> None:
    """Start `dagster dev` on 127.0.0.1 with DAGSTER_HOME inside the pipeline home."""
    layout = Home.from_env(home).ensure()
    layout.dagster_home.mkdir(parents=True, exist_ok=True)
    repo_yaml = Path(__file__).resolve().parent.parent / "dagster.yaml"
    if repo_yaml.exists() and not (layout.dagster_home / "dagster.yaml").exists():
        shutil.copyfile(repo_yaml, layout.dagster_home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(layout.dagster_home), "SORA_ASSETS_HOME": str(layout.root)}
    workspace = Path(__file__).resolve().parent.parent / "workspace.yaml"
    command = ["dagster", "dev", "-h", "127.0.0.1", "-p", str(port)]
    command += ["-w", str(workspace)] if workspace.exists() else ["-m", "sora_assets.definitions"]
    from sora_assets.services.supervise import run_group

    raise typer.Exit(run_group(command, env))  # SIGTERM to us stops the webserver, daemon and code server too


@app.command()
def worker(queue: Annotated[str | None, typer.Option("--queue", help="Redis list to serve (default: the "
                                                     "launcher's)")] = None,
           redis_url: Annotated[str | None, typer.Option("--redis", help="Default: the instance's run_launcher "
                                                         "redis_url")] = None,
           max_runs: Annotated[int | None, typer.Option("--max-runs", help="Exit after this many runs")] = None,
           idle_exit: Annotated[float | None, typer.Option("--idle-exit", help="Exit after this many idle "
                                                           "seconds")] = None,
           heartbeat_ttl: Annotated[int, typer.Option("--heartbeat-ttl", help="Seconds a dead worker's runs "
                                                      "look alive to run monitoring")] = 20,
           gpu_lock: Annotated[str | None, typer.Option("--gpu-lock", help="A lock file per GPU: two workers "
                                                        "started with the same one share that GPU, one "
                                                        "rendering while the other finishes its shard")] = None,
           ) -> None:
    """A warm GPU worker: execute the runs WarmWorkerRunLauncher queues, keeping models loaded between them."""
    from dagster import DagsterInstance

    from sora_assets.core.render.gpu_lock import GPU_LOCK_ENV
    from sora_assets.run_launcher import WarmWorkerRunLauncher
    from sora_assets.services.warm_worker import serve

    if gpu_lock:
        os.environ[GPU_LOCK_ENV] = str(Path(gpu_lock).resolve())  # read by the render step of every run here

    with DagsterInstance.get() as instance:
        launcher = instance.run_launcher
        warm = launcher if isinstance(launcher, WarmWorkerRunLauncher) else None
        url = redis_url or (warm.redis_url if warm else None)
        if url is None:
            raise fail("no Redis URL: pass --redis or configure WarmWorkerRunLauncher in dagster.yaml")
        try:
            report = serve(instance, url, queue or (warm.queue if warm else "gpu"), max_runs=max_runs,
                           idle_exit_seconds=idle_exit, heartbeat_ttl=heartbeat_ttl)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
    err.print(f"worker {report.worker_id}: executed {len(report.executed)} run(s), skipped {len(report.skipped)}")


def main() -> None:
    if _machine_format(sys.argv[1:]):
        _guard_stdout()
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
