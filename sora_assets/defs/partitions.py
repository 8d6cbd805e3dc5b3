from dagster import DynamicPartitionsDefinition

SHARDS = "shards"
GPU_POOL = "gpu"  # render steps hold a slot; the limit is the GPU count
shards_partitions = DynamicPartitionsDefinition(name=SHARDS)
