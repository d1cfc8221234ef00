"""The console's server page: mntr and srvr figures, the ensemble's members and roles.

Read from the running server between two loop turns, with the same code as
the AdminServer's ``monitor`` and ``server_stats`` commands (admin/commands.py).
"""

from __future__ import annotations

from ..admin.commands import AdminContext, run_command

__all__ = ["server_figures"]


def server_figures(rt) -> dict:
    out: dict = {"server_id": rt.server_id, "mode": "standalone", "members": []}
    if rt.server is None:
        out["mode"] = getattr(rt, "mode", "looking")
        out["serving"] = False
        return out
    ctx = AdminContext(rt)
    out["serving"] = True
    out["mntr"] = run_command("monitor", ctx)
    out["srvr"] = run_command("server_stats", ctx)
    view = rt.quorum_view() if hasattr(rt, "quorum_view") else None
    if view is not None:
        out["mode"] = view.server_state
        leader = view.leader_id
        for sid, spec in sorted(rt.config.servers.items()):
            if sid == rt.server_id:
                role = view.server_state
            elif spec.role == "observer":
                role = "observer"
            elif leader is not None:
                role = "leader" if sid == leader else "follower"
            else:
                role = "unknown"
            out["members"].append({"id": sid, "host": spec.host, "role": role,
                                   "client_port": spec.client_port, "me": sid == rt.server_id})
    else:
        out["members"].append({"id": rt.server_id, "host": rt.config.client_port_address,
                               "role": "standalone", "client_port": rt.port, "me": True})
    return out
