"""How assets present themselves in the Dagster UI: the six groups a batch moves through, and who owns each.

One place for these names, so the asset graph tells the same story as the design: intake → planning →
generation → safety → provenance → warehouse.
"""

INTAKE = "intake"  # a batch file becomes shards, and each shard's rows are validated
PLANNING = "planning"  # when and on which GPU each shard renders
GENERATION = "generation"  # the diffusers renders
SAFETY = "safety"  # the frame scan, and the golden eval of the whole safety stack
PROVENANCE = "provenance"  # C2PA signatures, verified Trusted
WAREHOUSE = "warehouse"  # the content-addressed store and the per-shard warehouse rows

GROUPS = [INTAKE, PLANNING, GENERATION, SAFETY, PROVENANCE, WAREHOUSE]

# Dagster owners are e-mail addresses or `team:<name>`; teams here, so a person leaving changes nothing.
OWNERS: dict[str, list[str]] = {
    INTAKE: ["team:data-platform"],
    PLANNING: ["team:render-infra"],
    GENERATION: ["team:render-infra"],
    SAFETY: ["team:trust-and-safety"],
    PROVENANCE: ["team:trust-and-safety"],
    WAREHOUSE: ["team:data-platform"],
}


def owners_of(group: str) -> list[str]:
    """The owners of every asset in `group` (a KeyError for a group the design does not have)."""
    return list(OWNERS[group])
