"""Helpers shared by more than one test module (and by bench/): a real server process, a
scripted HTTP server, OTLP generators, the health fixture and the in-process ingest that stores
it, span files for compaction. A helper used by one test module lives beside that module."""
