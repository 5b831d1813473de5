"""Measurement engine: network steps (dns, tcp, tls, http), the control client and pure analysis."""

__version__ = "0.1.0"
