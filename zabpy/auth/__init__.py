"""Authentication beyond ZooKeeper's built-in digest and ip schemes: SASL
(DIGEST-MD5) with JAAS credentials, x509 identities, auth enforcement and
the audit log's record format. Pure cores; the runtime reads files and
injects randomness."""

# Imported on first use (PEP 562): a server imports only what its
# configuration needs (no JAAS file: no JAAS parser).
_LAZY = {"DigestMD5Server": "digest_md5", "SaslError": "digest_md5", "JaasError": "jaas",
         "parse_jaas": "jaas", "AuthSettings": "sasl", "SaslExchange": "sasl",
         "SaslOutcome": "sasl", "canonical_principal": "sasl"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AuthSettings", "DigestMD5Server", "JaasError", "SaslError", "SaslExchange",
           "SaslOutcome", "canonical_principal", "parse_jaas"]
