"""Authentication beyond ZooKeeper's built-in digest and ip schemes: SASL
(DIGEST-MD5) with JAAS credentials, x509 identities, auth enforcement and
the audit log's record format. Pure cores; the runtime reads files and
injects randomness."""

from .digest_md5 import DigestMD5Server, SaslError
from .jaas import JaasError, parse_jaas
from .sasl import AuthSettings, SaslExchange, SaslOutcome, canonical_principal

__all__ = ["AuthSettings", "DigestMD5Server", "JaasError", "SaslError", "SaslExchange",
           "SaslOutcome", "canonical_principal", "parse_jaas"]
