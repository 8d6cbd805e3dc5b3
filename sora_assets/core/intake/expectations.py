"""The shard data contract as a Great Expectations suite; failures become per-row reasons."""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from sora_assets.core.intake.prompt_rules import COMPLEXITIES, MAX_SEED, MAX_SHOT, TIERS, ModelProfile, PromptLimits
from sora_assets.core.render.acceleration import preset_names

_lock = threading.Lock()
_context: Any = None
_validations: dict[str, Any] = {}


def _ephemeral_context() -> Any:
    """One ephemeral context per process (adding the same data source twice raises)."""
    global _context
    with _lock:
        if _context is None:
            import great_expectations as gx

            logging.getLogger("great_expectations").setLevel(logging.ERROR)
            context = gx.get_context(mode="ephemeral")
            context.variables.progress_bars = {"globally": False}
            asset = context.data_sources.add_pandas("prompt_shards").add_dataframe_asset("shard")
            asset.add_batch_definition_whole_dataframe("whole_shard")
            _context = context
        return _context


@dataclass
class ExpectationOutcome:
    success: bool
    evaluated: int
    successful: int
    row_reasons: dict[int, list[str]] = field(default_factory=dict)  # frame index -> reasons


def _suite_definition(profile: ModelProfile, limits: PromptLimits) -> list[tuple[str, dict[str, Any], str]]:
    return [
        ("ExpectColumnValuesToNotBeNull", {"column": "prompt"}, "prompt is required"),
        ("ExpectColumnValueLengthsToBeBetween",
         {"column": "prompt", "min_value": limits.min_prompt_chars, "max_value": limits.max_prompt_chars},
         limits.length_reason),
        ("ExpectColumnValuesToBeInSet", {"column": "tier", "value_set": list(TIERS)},
         f"tier must be one of {', '.join(TIERS)}"),
        ("ExpectColumnValuesToBeInSet", {"column": "complexity", "value_set": list(COMPLEXITIES)},
         f"complexity must be one of {', '.join(COMPLEXITIES)}"),
        ("ExpectColumnValuesToBeInSet", {"column": "preset", "value_set": preset_names()},
         f"preset must be one of {', '.join(preset_names())}"),
        ("ExpectColumnValuesToBeBetween",
         {"column": "width", "min_value": profile.min_size, "max_value": profile.max_size},
         f"width must be {profile.min_size}-{profile.max_size}"),
        ("ExpectColumnValuesToBeBetween",
         {"column": "height", "min_value": profile.min_size, "max_value": profile.max_size},
         f"height must be {profile.min_size}-{profile.max_size}"),
        ("ExpectColumnValuesToBeBetween",
         {"column": "num_frames", "min_value": 1, "max_value": profile.max_num_frames},
         f"num_frames must be 1-{profile.max_num_frames}"),
        ("ExpectColumnValuesToBeBetween", {"column": "fps", "min_value": 1, "max_value": limits.max_fps},
         f"fps must be 1-{limits.max_fps}"),
        ("ExpectColumnValuesToBeBetween", {"column": "steps", "min_value": 1, "max_value": limits.max_steps},
         f"steps must be 1-{limits.max_steps}"),
        ("ExpectColumnValuesToBeBetween",
         {"column": "guidance_scale", "min_value": 0.0, "max_value": limits.max_guidance_scale},
         f"guidance_scale must be 0-{limits.max_guidance_scale}"),
        ("ExpectColumnValuesToBeBetween", {"column": "seed", "min_value": 0, "max_value": MAX_SEED},
         f"seed must be 0-{MAX_SEED}"),
        ("ExpectColumnValuesToBeBetween", {"column": "shot", "min_value": 1, "max_value": MAX_SHOT},
         f"shot must be 1-{MAX_SHOT}"),
    ]


_NUMERIC = {"width": "Int64", "height": "Int64", "num_frames": "Int64", "fps": "Int64", "steps": "Int64",
            "seed": "Int64", "guidance_scale": "Float64", "shot": "Int64"}



def _validation_for(profile: ModelProfile, limits: PromptLimits) -> tuple[Any, list[str]]:
    """Suites are registered once per (profile, limits) in the process-wide ephemeral context."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    definition = _suite_definition(profile, limits)
    name = "prompt_rows_" + hashlib.sha256(repr(definition).encode()).hexdigest()[:12]
    context = _ephemeral_context()
    with _lock:
        if name not in _validations:
            suite = context.suites.add(gx.ExpectationSuite(name=name))
            for class_name, kwargs, _ in definition:
                suite.add_expectation(getattr(gxe, class_name)(**kwargs))
            batch = context.data_sources.get("prompt_shards").get_asset("shard") \
                .get_batch_definition("whole_shard")
            _validations[name] = context.validation_definitions.add(
                gx.ValidationDefinition(name=name, data=batch, suite=suite))
        return _validations[name], [reason for _, _, reason in definition]




def run_expectations(typed: pd.DataFrame, profile: ModelProfile, limits: PromptLimits) -> ExpectationOutcome:
    """Validate typed rows (columns as in prompt_rules.KNOWN_COLUMNS); nulls in optional columns pass."""
    frame = typed.reset_index(drop=True).copy()
    for column, dtype in _NUMERIC.items():
        frame[column] = pd.array(frame[column].tolist(), dtype=dtype)
    validation, reasons_by_expectation = _validation_for(profile, limits)
    with _lock:
        result = validation.run(batch_parameters={"dataframe": frame},
                                result_format={"result_format": "COMPLETE"})
    outcome = ExpectationOutcome(success=bool(result.success),
                                 evaluated=int(result.statistics["evaluated_expectations"]),
                                 successful=int(result.statistics["successful_expectations"]))
    for expectation_result, reason in zip(result.results, reasons_by_expectation, strict=True):
        if expectation_result.exception_info and expectation_result.exception_info.get("raised_exception"):
            message = expectation_result.exception_info.get("exception_message")
            raise RuntimeError(f"expectation {reason!r} could not run: {message}")
        for index in expectation_result.result.get("unexpected_index_list") or []:
            outcome.row_reasons.setdefault(int(index), []).append(reason)
    return outcome
