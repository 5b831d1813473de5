"""Blockpage and interception-CA fingerprints, one import: loading (_load) and matching (_match)."""

from __future__ import annotations

from probes.fingerprints_load import (
    BLOCKPAGES_FILE,
    DATA_DIR,
    INTERCEPTION_CAS_FILE,
    FingerprintFileError,
    default_fingerprints,
    load_fingerprints,
)
from probes.fingerprints_match import (
    BlockpageFingerprint,
    FalsePositive,
    FingerprintDB,
    InterceptionCA,
    Match,
    PatternKind,
    detect_false_positive,
    match_dns_blockpage,
    match_http_blockpage,
    match_interception_ca,
    parse_distinguished_name,
)
from probes.measurement_types import Confidence, FingerprintKind

__all__ = [
    "BLOCKPAGES_FILE",
    "DATA_DIR",
    "INTERCEPTION_CAS_FILE",
    "BlockpageFingerprint",
    "Confidence",
    "FalsePositive",
    "FingerprintDB",
    "FingerprintFileError",
    "FingerprintKind",
    "InterceptionCA",
    "Match",
    "PatternKind",
    "default_fingerprints",
    "detect_false_positive",
    "load_fingerprints",
    "match_dns_blockpage",
    "match_http_blockpage",
    "match_interception_ca",
    "parse_distinguished_name",
]
