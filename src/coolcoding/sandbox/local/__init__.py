"""The local runtime: bubblewrap + cgroups (v1 or v2) + rlimits on this host."""
