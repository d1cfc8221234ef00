"""Fault testing of real ensembles (issue 16): servers in Linux network
namespaces with data on file systems of their own, faults scheduled from a
seed, kazoo workloads with recorded histories, and checkers (linearizability
of CAS and sync()+reads, the sequential-create set, lock, ephemerals,
watches). Run ``python -m zabpy.chaos --seed N``; needs root.

    net.py           namespaces, veths, bridge; partitions, one-way loss, random loss, slow links
    netq.py          latency, jitter, reordering, duplicates: an NFQUEUE verdict loop (netlink)
    disk.py          per-member data file systems; full disk, fsync EIO / slow (LD_PRELOAD)
    cluster.py       zabpy or Java ZooKeeper servers inside the namespaces
    faults.py        the seeded schedule and how each fault is made and healed
    workload.py      register and set workloads (kazoo), histories
    recipes.py       lock, ephemeral and watch workloads
    linearizable.py  Wing & Gong / Lowe search with memoisation, and a shrinker
    checks.py        the register and set checkers
    recipe_checks.py the lock, ephemeral and watch checkers
    report.py        the text report
    timeline.py      the PNG timeline
    compare.py       side by side from runs' JSON results (python -m zabpy.chaos.compare)
    run.py           one run, start to cleanup
"""
