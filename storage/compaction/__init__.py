"""Compaction and retention of span partitions, in bounded memory, in a worker process."""
