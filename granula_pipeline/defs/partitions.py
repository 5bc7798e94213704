"""One dynamic partition per file that reaches Granula."""

from dagster import DynamicPartitionsDefinition

INBOX_PARTITIONS_NAME = "inbox_files"

inbox_partitions = DynamicPartitionsDefinition(name=INBOX_PARTITIONS_NAME)
