"""Shard validation: parse errors, types, the GE contract, row planning and the text pre-filter."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from sora_assets.core.intake.batch_files import PARSE_ERROR_COLUMN, ROW_COLUMN
from sora_assets.core.intake.expectations import run_expectations
from sora_assets.core.intake.prompt_rules import (
    KNOWN_COLUMNS,
    ModelProfile,
    PromptLimits,
    TierPolicy,
    coerce_row,
    plan_row,
)
from sora_assets.core.render.failures import ModelLoadError
from sora_assets.core.render.model_families import resolve_family
from sora_assets.core.render.sequences import SHOT_STAGE, apply_shot_rules
from sora_assets.core.render.spec import GenerationSpec
from sora_assets.core.safety.prefilter import PrefilterDecision, TextPrefilter, default_prefilter, prompt_fingerprint
from sora_assets.core.safety.prefilter_pool import parallel_check, shareable, worker_count

PROMPT_EXCERPT_CHARS = 120
HELD_PREFIX = "held for review"
PREFILTER_CHUNK = 2048  # prompts per batched pre-filter pass (one embedding call each; progress between them)


def clip_id_for(batch_id: str, row: int) -> str:
    return f"{batch_id}-r{row:05d}"


@dataclass
class AcceptedRow:
    row: int
    clip_id: str
    source_id: str | None
    tier: str
    complexity: str
    spec: dict[str, Any]
    seed_derived: bool
    warnings: list[str]
    metadata: dict[str, Any]
    shot: dict[str, Any] | None = None  # ShotRef.to_dict() for rows of a shot group


@dataclass
class RejectedRow:
    row: int
    source_id: str | None
    stage: str  # parse | schema | expectations | shot_group | prefilter | input_scan
    reason: str
    category: str | None
    prompt_sha256: str | None
    prompt_excerpt: str | None  # never set for prompts the safety policy blocked
    rule: str | None = None  # pre-filter evidence: rule id or "semantic:<exemplar>"
    score: float | None = None

    @property
    def held(self) -> bool:
        """Held for review by the pre-filter (an unsupported language, an unknown real name): never rendered,
        recorded as a hold rather than a block."""
        return self.stage == "prefilter" and self.reason.startswith(HELD_PREFIX)


@dataclass
class ValidationOutcome:
    accepted: list[AcceptedRow] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)
    expectations_evaluated: int = 0
    expectations_successful: int = 0
    policy_version: str = ""
    flagged: list[tuple[int, PrefilterDecision]] = field(default_factory=list)  # (row, decision) passed on

    @property
    def blocked(self) -> list[RejectedRow]:
        return [r for r in self.rejected if r.stage == "prefilter"]


FamilyProfiles = Callable[[str], ModelProfile]  # family name -> its profile (raises KeyError / ModelLoadError)


class RowProfiles:
    """The profile each row plans with: the default one, or that of the family its `model` column names.

    Other families' profiles are asked for lazily (resolving one may build its tiny model) and once each."""

    def __init__(self, default: ModelProfile, family_profile: FamilyProfiles | None):
        self.default, self.family_profile = default, family_profile
        self._known: dict[str, ModelProfile | str] = {default.family: default}

    def for_row(self, model: str | None) -> tuple[ModelProfile, str | None]:
        """(profile, error): an unknown or unconfigured family is the row's error, planned with the default."""
        if model is None or model == self.default.model_id:
            return self.default, None
        try:
            family = resolve_family(model).name
        except KeyError as exc:
            return self.default, f"model: {exc.args[0]}"
        if family not in self._known:
            try:
                if self.family_profile is None:
                    raise KeyError(family)
                self._known[family] = self.family_profile(family)
            except (KeyError, ModelLoadError) as exc:
                self._known[family] = f"model {family!r} is not available in this deployment ({exc})"
        found = self._known[family]
        return (self.default, found) if isinstance(found, str) else (found, None)

    def contract(self) -> ModelProfile:
        """The profile the shard's GE contract checks against: the default one, with the frame limit of the
        most generous family the rows use (LTX-Video allows 257 frames, Wan 161); each row's own family limit
        is then checked by `_check_family_frames`."""
        resolved = [p for p in self._known.values() if not isinstance(p, str)]
        return replace(self.default, max_num_frames=max(p.max_num_frames for p in resolved))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else (None if value is None else str(value))


def _typed_rows(records: list[dict[str, Any]],
                profiles: RowProfiles) -> tuple[list[dict[str, Any]], list[list[tuple[str, str]]]]:
    """Each record coerced to the known columns, with its (stage, reason) problems: a parse error, type
    errors, an unknown or unavailable model family."""
    typed_rows: list[dict[str, Any]] = []
    errors: list[list[tuple[str, str]]] = []
    for record in records:
        problems: list[tuple[str, str]] = []
        if record.get(PARSE_ERROR_COLUMN):
            problems.append(("parse", str(record[PARSE_ERROR_COLUMN])))
            typed = dict.fromkeys(KNOWN_COLUMNS)
        else:
            typed, type_errors = coerce_row(record)
            problems.extend(("schema", e) for e in type_errors)
            model_error = profiles.for_row(typed.get("model"))[1]
            if model_error:
                problems.append(("schema", model_error))
        typed_rows.append(typed)
        errors.append(problems)
    return typed_rows, errors


def _check_family_frames(typed_rows: list[dict[str, Any]], errors: list[list[tuple[str, str]]],
                         profiles: RowProfiles, contract: ModelProfile) -> None:
    """A row whose family allows fewer frames than the shard's contract: the contract cannot say so."""
    for typed, problems in zip(typed_rows, errors, strict=True):
        frames = typed.get("num_frames")
        if problems or not isinstance(frames, int):
            continue
        row_profile = profiles.for_row(typed.get("model"))[0]
        if row_profile.max_num_frames < contract.max_num_frames and frames > row_profile.max_num_frames:
            problems.append(("expectations", f"num_frames must be 1-{row_profile.max_num_frames} "
                                             f"for {row_profile.family}"))


def _check_expectations(typed_rows: list[dict[str, Any]], errors: list[list[tuple[str, str]]],
                        profile: ModelProfile, limits: PromptLimits, outcome: ValidationOutcome) -> None:
    """The GE suite over the typed shard: its counts go on the outcome, its reasons on rows that parsed."""
    typed_frame = pd.DataFrame.from_records(typed_rows, columns=sorted(KNOWN_COLUMNS)).astype(object)
    expectations = run_expectations(typed_frame, profile, limits)
    outcome.expectations_evaluated = expectations.evaluated
    outcome.expectations_successful = expectations.successful
    for index, reasons in expectations.row_reasons.items():
        if not any(stage == "parse" for stage, _ in errors[index]):
            errors[index].extend(("expectations", r) for r in reasons)


def _prefilter_decisions(typed_rows: list[dict[str, Any]], prefilter: TextPrefilter,
                         progress: Callable[[int, int], None] | None,
                         max_chars: int) -> dict[int, PrefilterDecision]:
    """One batched pass per chunk (the semantic layer embeds a chunk's prompts at once), reporting progress
    between chunks because this is the long part of validation. A prompt over the length limit is rejected
    by that rule and not screened: a 1 MB prompt took the pre-filter 92 s (USE embedding, name search), one
    such row would stall a night's validation (measured 2026-12-02)."""
    texts = [(i, t["prompt"]) for i, t in enumerate(typed_rows)
             if isinstance(t.get("prompt"), str) and len(t["prompt"]) <= max_chars]
    chunks = [texts[start:start + PREFILTER_CHUNK] for start in range(0, len(texts), PREFILTER_CHUNK)]
    decisions: dict[int, PrefilterDecision] = {}
    workers = worker_count(len(texts))
    if workers > 1 and len(chunks) > 1 and shareable(prefilter):  # a 50,000-row file: one process per core
        finished = [0]

        def done(count: int) -> None:
            finished[0] += count
            if progress is not None:
                progress(finished[0], len(texts))

        results = parallel_check([[p for _, p in chunk] for chunk in chunks], prefilter.policy.source,
                                 min(workers, len(chunks)), done)
        for chunk, result in zip(chunks, results, strict=True):
            decisions.update(zip([i for i, _ in chunk], result, strict=True))
        return decisions
    for number, chunk in enumerate(chunks):
        decisions.update(zip([i for i, _ in chunk], prefilter.check_many([p for _, p in chunk]), strict=True))
        if progress is not None:
            progress(min((number + 1) * PREFILTER_CHUNK, len(texts)), len(texts))
    return decisions


def _rejected_for_errors(row: int, source_id: str | None, problems: list[tuple[str, str]], prompt: Any,
                         decision: PrefilterDecision | None) -> RejectedRow:
    """A row rejected at its first failing stage, all reasons joined; unsafe text never reaches the warehouse,
    even on rows rejected for other reasons, nor does the text of a row that was not screened (over-long)."""
    unsafe = decision is not None and (decision.blocked or decision.held)
    shown = isinstance(prompt, str) and decision is not None and not unsafe
    return RejectedRow(
        row=row, source_id=source_id, stage=problems[0][0],
        reason="; ".join(reason for _, reason in problems),
        category=decision.category if unsafe else None,
        prompt_sha256=prompt_fingerprint(prompt) if isinstance(prompt, str) else None,
        prompt_excerpt=prompt[:PROMPT_EXCERPT_CHARS] if shown else None)


def _rejected_by_prefilter(row: int, source_id: str | None, prompt: str,
                           decision: PrefilterDecision) -> RejectedRow:
    """A row the pre-filter blocked or held for review, with its evidence and no prompt excerpt."""
    verb = "blocked by" if decision.blocked else f"{HELD_PREFIX} by"
    return RejectedRow(
        row=row, source_id=source_id, stage="prefilter",
        reason=f"{verb} text pre-filter: {decision.category} ({decision.method} {decision.rule}, "
               f"score {decision.score:.2f}, policy {decision.policy_version})",
        category=decision.category, prompt_sha256=prompt_fingerprint(prompt), prompt_excerpt=None,
        rule=decision.rule, score=decision.score)


def _row_metadata(record: dict[str, Any], typed: dict[str, Any]) -> dict[str, Any]:
    """Columns the contract does not know, passed through, plus the shot and scheduling fields (typed when
    they coerced, else as given)."""
    metadata = {k: v for k, v in record.items() if v is not None
                and k not in KNOWN_COLUMNS and k not in (ROW_COLUMN, PARSE_ERROR_COLUMN)}
    for key in ("shot_group", "anchor", "deadline", "shot", "camera", "continue_from", "image"):
        if typed.get(key) is not None or record.get(key) is not None:
            metadata[key] = typed.get(key) if typed.get(key) is not None else record.get(key)
    return metadata


def _note_duplicate_id(source_id: str | None, row: int, seen_ids: dict[str, int],
                       problems: list[tuple[str, str]]) -> None:
    """A source id seen on an earlier row is a schema error naming that row."""
    if source_id is None:
        return
    if source_id in seen_ids:
        problems.append(("schema", f"duplicate id {source_id[:40]!r} (first on row {seen_ids[source_id]})"))
    else:
        seen_ids[source_id] = row


def validate_rows(raw: pd.DataFrame, batch_id: str, profile: ModelProfile,
                  tiers: TierPolicy | None = None, limits: PromptLimits | None = None,
                  prefilter: TextPrefilter | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  family_profile: FamilyProfiles | None = None) -> ValidationOutcome:
    """Every row's contract, expectations, shot rules and pre-filter decision. `progress(done, total)` is
    called as the pre-filter (the long part) works through the prompts. A row's `model` column picks its
    family (its grid, defaults and model) through `family_profile`; without one only `profile`'s family."""
    tiers = tiers or TierPolicy()
    profiles = RowProfiles(profile, family_profile)
    prefilter = prefilter or default_prefilter()
    limits = limits or PromptLimits()
    outcome = ValidationOutcome()
    records = raw.to_dict(orient="records")
    typed_rows, errors = _typed_rows(records, profiles)
    contract = profiles.contract()
    _check_expectations(typed_rows, errors, contract, limits, outcome)
    _check_family_frames(typed_rows, errors, profiles, contract)
    shot_refs = apply_shot_rules(typed_rows, [int(r[ROW_COLUMN]) for r in records], errors, {
        "width": profile.default_width, "height": profile.default_height, "fps": profile.default_fps,
        "tier": "free"})
    decisions = _prefilter_decisions(typed_rows, prefilter, progress, limits.max_prompt_chars)
    outcome.policy_version = prefilter.policy.version
    seen_ids: dict[str, int] = {}
    for index, (record, typed) in enumerate(zip(records, typed_rows, strict=True)):
        row = int(record[ROW_COLUMN])
        source_id = _text(typed.get("id"))
        _note_duplicate_id(source_id, row, seen_ids, errors[index])
        prompt = typed.get("prompt")
        decision = decisions.get(index)
        if decision is None and not errors[index]:  # not screened (over-long): never accepted unscreened
            errors[index].append(("expectations", limits.length_reason))
        if errors[index]:
            outcome.rejected.append(_rejected_for_errors(row, source_id, errors[index], prompt, decision))
            continue
        if decision.blocked or decision.held:  # a held row is not rendered until reviewed
            outcome.rejected.append(_rejected_by_prefilter(row, source_id, prompt, decision))
            continue
        if decision.flagged:
            outcome.flagged.append((row, decision))
        plan = plan_row(typed, profiles.for_row(typed.get("model"))[0], tiers)
        ref = shot_refs.get(index)
        outcome.accepted.append(AcceptedRow(
            row=row, clip_id=clip_id_for(batch_id, row), source_id=source_id, tier=plan.tier,
            complexity=plan.complexity, spec=plan.spec.to_dict(), seed_derived=plan.seed_derived,
            warnings=plan.warnings, metadata=_row_metadata(record, typed), shot=ref.to_dict() if ref else None))
    reject_orphaned_shots(outcome)
    return outcome


def reject_orphaned_shots(outcome: ValidationOutcome) -> None:
    """A shot whose anchor or continuation source was rejected (pre-filter, image scan) cannot render
    as part of its sequence: it is rejected too, naming the row it depended on. Cascades along chains."""
    while True:
        accepted_rows = {a.row for a in outcome.accepted}
        orphans = []
        for row in outcome.accepted:
            if not row.shot:
                continue
            for needed, what in ((row.shot["anchor_row"], "anchor"), (row.shot["continue_from_row"], "source shot")):
                if needed is not None and needed not in accepted_rows:
                    orphans.append((row, f"shot group {row.shot['group']!r}: its {what} (row {needed}) was rejected"))
                    break
        if not orphans:
            return
        for row, reason in orphans:
            outcome.accepted.remove(row)
            outcome.rejected.append(RejectedRow(row=row.row, source_id=row.source_id, stage=SHOT_STAGE, reason=reason,
                                                category=None, prompt_sha256=prompt_fingerprint(row.spec["prompt"]),
                                                prompt_excerpt=row.spec["prompt"][:PROMPT_EXCERPT_CHARS]))


def link_conditioning(outcome: ValidationOutcome,
                      conditioned_model: ModelProfile | Callable[[str], ModelProfile] | None) -> None:
    """Rows conditioned on a first frame render with the image-to-video model (of the row's family, when
    `conditioned_model` maps a family name to its profile); a continuation's conditioning names its source
    shot's cache key, so the whole chain is content-addressed before any frame exists. Image rows already
    carry `image:<sha256>` (set by the input scan)."""
    reject_orphaned_shots(outcome)
    by_row = {a.row: a for a in outcome.accepted}
    conditioned = [a for a in outcome.accepted if a.spec.get("conditioning")
                   or (a.shot and a.shot.get("continue_from_row") is not None)]
    if conditioned and conditioned_model is None:
        raise ValueError("rows need an image-to-video model, and none is configured")
    for row in conditioned:
        family = GenerationSpec.from_dict(row.spec).model_family
        model = conditioned_model(family) if callable(conditioned_model) else conditioned_model
        row.spec.update(model_id=model.model_id, model_revision=model.revision, scheduler=model.scheduler)
    # shot order, so a chain's earlier links have final specs (and cache keys) before later ones read them
    for row in sorted((a for a in conditioned if a.shot), key=lambda a: (a.shot["group"], a.shot["shot"])):
        source_row = row.shot.get("continue_from_row")
        if source_row is not None:
            source = GenerationSpec.from_dict(by_row[source_row].spec)
            row.spec["conditioning"] = f"last_frame:{source.cache_key()}"


def needs_conditioned_model(outcome: ValidationOutcome) -> bool:
    return bool(conditioned_families(outcome))


def conditioned_families(outcome: ValidationOutcome) -> set[str]:
    """The families of the accepted rows that render from a first frame."""
    return {GenerationSpec.from_dict(a.spec).model_family for a in outcome.accepted
            if a.metadata.get("image") or (a.shot and a.shot.get("continue_from_row") is not None)}


def estimate_specs(records: list[dict[str, Any]], profile: ModelProfile,
                   tiers: TierPolicy | None = None) -> list[tuple[GenerationSpec, str | None]]:
    """(spec, deadline) per row the planner should count, with the row rules of `validate_rows` (types,
    sizes, tier budgets) but without the Great Expectations suite or the text pre-filter: an estimate,
    never a decision. Rows with a type error are left out; rows the pre-filter would block are counted
    (the plan errs on the side of more GPU time). Rejected range errors are rare and also counted."""
    tiers = tiers or TierPolicy()
    out: list[tuple[GenerationSpec, str | None]] = []
    for record in records:
        if record.get(PARSE_ERROR_COLUMN):
            continue
        typed, errors = coerce_row(record)
        if errors or not isinstance(typed.get("prompt"), str) or not typed["prompt"]:
            continue
        deadline = typed.get("deadline")
        try:  # another family's grid, priced with its prior (its model is not resolved for an estimate)
            row_profile = profile.with_family(typed["model"]) if typed.get("model") else profile
        except KeyError:
            continue
        out.append((plan_row(typed, row_profile, tiers).spec, str(deadline) if deadline is not None else None))
    return out
