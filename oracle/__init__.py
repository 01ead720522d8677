"""The off-chain oracle node: telemetry, price index, attestation log and publisher.

Empty until the oracle issues land; the package exists so the distribution layout is
the one in ARCHITECTURE.md from the start.
"""
