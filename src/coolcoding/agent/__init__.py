"""The sandbox agent: a small stdlib-only program that runs as a sandbox's first process and owns
its PTYs, its workspace watcher, file access and exec; spoken to over ``protocol.py``."""
