"""Triage collections: the artifacts an MSP collects in minutes (registry hives, Amcache, Prefetch,
SRUM, browser profiles, Defender history, the app's install folder, a PBX update folder), parsed
into the triage tables of the case store (store/schema.py, docs/triage.md)."""
