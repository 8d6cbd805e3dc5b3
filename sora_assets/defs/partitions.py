import warnings

from dagster import DynamicPartitionsDefinition, PreviewWarning

SHARDS = "shards"
GPU_POOL = "gpu"  # render steps hold a slot; the limit is the GPU count
shards_partitions = DynamicPartitionsDefinition(name=SHARDS)
BATCHES = "batches"  # one per registered batch: the batch_progress figures in the UI
batches_partitions = DynamicPartitionsDefinition(name=BATCHES)

# Partitioned asset checks (one evaluation per shard, shown per partition in the UI) are a preview feature in
# Dagster 1.13; this project uses them on purpose, so the warning is not repeated at every import.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=PreviewWarning)
