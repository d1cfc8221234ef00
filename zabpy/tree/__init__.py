"""The data tree, paths, ACLs and watches (pure core)."""

from .acl import OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, authenticate, check_perm, digest_id, fix_acl
from .datatree import ApplyResult, DataNode, DataTree, is_ttl_owner, ttl_of, ttl_owner
from .paths import basename, parent_of, validate_path

__all__ = ["OPEN_ACL_UNSAFE", "READ_ACL_UNSAFE", "authenticate", "check_perm", "digest_id",
           "fix_acl", "ApplyResult", "DataNode", "DataTree", "is_ttl_owner", "ttl_of", "ttl_owner",
           "basename", "parent_of", "validate_path"]
