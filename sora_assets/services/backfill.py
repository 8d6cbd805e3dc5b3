"""Backfill failed shards through Dagster's GraphQL API, against a running `dagster dev` or webserver.

The webserver's GraphQL endpoint is the one interface that both reads partition status and launches
asset backfills (there is no `dagster asset backfill` CLI, and `DagsterGraphQLClient` has no backfill
method), so this module posts GraphQL documents with the standard library: one JSON POST each.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

SHARD_ASSET_KEYS = ["prompt_shards", "validated_prompts", "rendered_clips", "screened_clips", "signed_clips",
                    "published_clips", "sequences"]

STATUS_QUERY = """
query ShardStatuses($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    __typename
    ... on AssetNode {
      assetPartitionStatuses {
        __typename
        ... on DefaultPartitionStatuses { failedPartitions materializingPartitions materializedPartitions }
      }
    }
  }
}
"""

LAUNCH_MUTATION = """
mutation Backfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { stepKey invalidOutputName }
    ... on PartitionSetNotFoundError { message }
    ... on PartitionKeysNotFoundError { message }
    ... on RunConflict { message }
  }
}
"""


class BackfillError(RuntimeError):
    """The webserver could not be reached or refused the request; the message says which."""


@dataclass
class ShardStatus:
    failed: set[str] = field(default_factory=set)
    in_progress: set[str] = field(default_factory=set)
    published: set[str] = field(default_factory=set)


def graphql(url: str, query: str, variables: dict[str, Any] | None = None, timeout: float = 30) -> dict[str, Any]:
    endpoint = url.rstrip("/") + "/graphql"
    request = urllib.request.Request(endpoint, data=json.dumps({"query": query, "variables": variables or {}}).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        raise BackfillError(f"cannot reach the Dagster webserver at {endpoint}: {exc}") from None
    if payload.get("errors"):
        raise BackfillError(f"GraphQL error: {payload['errors'][0].get('message')}")
    return payload["data"]


def shard_statuses(url: str) -> ShardStatus:
    """Failed, in-progress and published shards, from every shard asset's partition status."""
    status = ShardStatus()
    for key in SHARD_ASSET_KEYS:
        node = graphql(url, STATUS_QUERY, {"key": {"path": [key]}})["assetNodeOrError"]
        if node["__typename"] != "AssetNode":
            raise BackfillError(f"asset {key} is not served by {url} ({node['__typename']})")
        partitions = node["assetPartitionStatuses"]
        status.failed |= set(partitions.get("failedPartitions") or [])
        status.in_progress |= set(partitions.get("materializingPartitions") or [])
        if key == "published_clips":
            status.published = set(partitions.get("materializedPartitions") or [])
    return status


def failed_shards(status: ShardStatus, batch: str | None = None) -> list[str]:
    """Shards to backfill: failed at any stage, not running now; optionally of one batch only."""
    keys = status.failed - status.in_progress
    if batch:
        keys = {k for k in keys if k.startswith(f"{batch}-s")}
    return sorted(keys)


def launch_backfill(url: str, partitions: list[str], title: str) -> str:
    params = {"partitionNames": partitions, "assetSelection": [{"path": [k]} for k in SHARD_ASSET_KEYS],
              "title": title, "description": f"sora-assets backfill --failed: {len(partitions)} shard(s)"}
    result = graphql(url, LAUNCH_MUTATION, {"params": params})["launchPartitionBackfill"]
    if result["__typename"] != "LaunchBackfillSuccess":
        detail = result.get("message") or json.dumps(result)
        raise BackfillError(f"backfill refused ({result['__typename']}): {detail}")
    return result["backfillId"]
