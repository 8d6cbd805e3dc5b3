from dagster import DynamicPartitionsDefinition

SHARDS = "shards"
shards_partitions = DynamicPartitionsDefinition(name=SHARDS)
