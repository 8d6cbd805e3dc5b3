"""Evaluation of what the pipeline produced: step budgets held, every published clip signed and Trusted,
renders deterministic, quality not drifting between eval runs. Results land in `eval_results`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sora_assets.core.quality.frames import frames_sha256
from sora_assets.core.render.spec import GenerationSpec
from sora_assets.resources.signer import C2paSignerResource
from sora_assets.resources.store import ClipStore
from sora_assets.resources.video_model import VideoModelResource
from sora_assets.resources.warehouse import ParquetWarehouse

DRIFT_METRICS = ("flicker", "motion", "sharpness", "exposure")
DRIFT_TOLERANCE = 0.10  # relative change of a metric's mean between eval runs that counts as drift


@dataclass
class EvalCheck:
    check_name: str
    passed: bool
    value: float
    expected: float
    detail: str

    def row(self, eval_id: str, now: datetime) -> dict[str, Any]:
        return {"eval_id": eval_id, "check_name": self.check_name, "passed": self.passed, "value": self.value,
                "expected": self.expected, "detail": self.detail, "recorded_at": now}


def step_budget_check(warehouse: ParquetWarehouse, model: VideoModelResource, store: ClipStore) -> EvalCheck:
    """Every rendered clip ran exactly its spec's steps, within its tier's budget, per its own step timings."""
    budgets = model.tier_policy().steps
    clips = warehouse.query("SELECT clip_id, tier, steps, sha256 FROM clips WHERE sha256 IS NOT NULL")
    bad = []
    for clip in clips.itertuples():
        sidecar = store.get(clip.sha256).sidecar
        timed = len(sidecar.get("step_seconds") or [])
        if clip.steps > budgets.get(clip.tier, 0) or sidecar.get("steps_run") != clip.steps or timed != clip.steps:
            bad.append(f"{clip.clip_id} ({clip.tier}: {clip.steps} steps, {timed} timed)")
    return EvalCheck("step_budget", not bad, float(len(bad)), 0.0,
                     f"{len(clips)} clips checked; over budget or miscounted: {', '.join(bad) or 'none'}")


def c2pa_check(warehouse: ParquetWarehouse, signer: C2paSignerResource, store: ClipStore) -> EvalCheck:
    shas = sorted(set(warehouse.query("SELECT sha256 FROM clips WHERE sha256 IS NOT NULL").sha256))
    states = {sha: signer.verify(store.object_path(sha)).state for sha in shas}
    untrusted = [f"{sha[:12]}: {state}" for sha, state in states.items() if state != "Trusted"]
    return EvalCheck("c2pa_trusted", not untrusted, float(len(shas) - len(untrusted)), float(len(shas)),
                     f"untrusted: {', '.join(untrusted) or 'none'}")


def determinism_check(warehouse: ParquetWarehouse, model: VideoModelResource, store: ClipStore,
                      sample: int) -> EvalCheck:
    """Re-render a sample of published specs; the frames must hash the same as when first rendered."""
    clips = warehouse.query("SELECT clip_id, sha256, frames_sha256 FROM clips WHERE sha256 IS NOT NULL "
                            "AND frames_sha256 IS NOT NULL ORDER BY clip_id LIMIT ?", [sample])
    differing = []
    for clip in clips.itertuples():
        spec = GenerationSpec.from_dict(store.get(clip.sha256).sidecar["spec"])
        if frames_sha256(model.render(spec).frames) != clip.frames_sha256:
            differing.append(clip.clip_id)
    return EvalCheck("determinism", not differing and len(clips) > 0, float(len(clips) - len(differing)),
                     float(len(clips)), f"re-rendered {len(clips)}; differing: {', '.join(differing) or 'none'}")


def drift_checks(warehouse: ParquetWarehouse, previous: dict[str, float]) -> tuple[list[EvalCheck], dict[str, float]]:
    means = warehouse.query(f"SELECT {', '.join(f'avg({m}) AS {m}' for m in DRIFT_METRICS)} FROM quality_metrics")
    current = {m: float(means[m].iloc[0]) for m in DRIFT_METRICS if means[m].notna().iloc[0]}
    checks = []
    for metric, value in current.items():
        before = previous.get(metric)
        change = 0.0 if before is None else abs(value - before) / max(abs(before), 1e-9)
        checks.append(EvalCheck(f"drift_{metric}", change <= DRIFT_TOLERANCE, value,
                                before if before is not None else value,
                                "first eval run: baseline" if before is None else f"relative change {change:.3f}"))
    return checks, current


def previous_means(warehouse: ParquetWarehouse) -> dict[str, float]:
    rows = warehouse.read("eval_results")
    rows = rows[rows.check_name.str.startswith("drift_")] if not rows.empty else rows  # pipeline evals only
    if rows.empty:
        return {}
    latest = rows[rows.eval_id == rows.eval_id.max()]
    return {r.check_name.removeprefix("drift_"): float(r.value) for r in latest.itertuples()
            if r.check_name.startswith("drift_")}


def run_eval(warehouse: ParquetWarehouse, model: VideoModelResource, signer: C2paSignerResource,
             store: ClipStore, sample: int = 2) -> tuple[str, list[EvalCheck]]:
    previous = previous_means(warehouse)
    checks = [step_budget_check(warehouse, model, store), c2pa_check(warehouse, signer, store),
              determinism_check(warehouse, model, store, sample)]
    drift, _ = drift_checks(warehouse, previous)
    checks += drift
    now = datetime.now(UTC)
    eval_id = now.strftime("eval-%Y%m%dt%H%M%S%f")
    warehouse.write("eval_results", eval_id, "eval", [c.row(eval_id, now) for c in checks])
    return eval_id, checks


def as_rows(checks: list[EvalCheck]) -> list[dict[str, Any]]:
    return [asdict(c) for c in checks]
