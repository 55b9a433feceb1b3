"""The architecture holds: dependencies point fs -> policy -> backends, and within a folder no
two files call each other, directly or round a circle (read off the built objects with nm,
so it is what the code does, not what its comments say)."""

import collections
import glob
import os
import re
import subprocess

import util

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOLDERS = {"backends": "backends/libtierfs_backends.a.p", "policy": "policy/libtierfs_policy.a.p",
           "fs": "fs/tierfs.p"}


def symbols(obj):
    out = subprocess.run(["nm", obj], capture_output=True, text=True, check=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        f = line.split()
        if len(f) == 3 and f[1] in "TDRB":
            defined.add(f[2])
        elif len(f) == 2 and f[0] == "U":
            undefined.add(f[1])
    return defined, undefined


def test_no_call_circles_within_a_folder():
    build = os.path.dirname(os.path.dirname(util.tierfs_bin()))
    for folder, objdir in FOLDERS.items():
        objs = glob.glob(os.path.join(build, objdir, "*.o"))
        assert objs, f"no objects for {folder} under {build}"
        syms = {os.path.basename(o)[:-len(".c.o")]: symbols(o) for o in objs}
        calls = collections.defaultdict(set)
        for a, (_, und) in syms.items():
            for b, (dfn, _) in syms.items():
                if a != b and und & dfn:
                    calls[a].add(b)

        def reach(start):
            seen, todo = set(), [start]
            while todo:
                for y in calls[todo.pop()]:
                    if y not in seen:
                        seen.add(y)
                        todo.append(y)
            return seen

        circles = [(a, b) for a in syms for b in calls[a] if a in reach(b)]
        assert not circles, f"{folder}: files calling each other round a circle: {circles}"


def test_includes_point_down():
    allowed = {"backends": {"backends"}, "policy": {"policy", "backends"},
               "fs": {"fs", "policy", "backends"}}
    where = {os.path.basename(h): d for d in allowed for h in glob.glob(os.path.join(ROOT, d, "*.h"))}
    for folder in allowed:
        for src in glob.glob(os.path.join(ROOT, folder, "*.[ch]")):
            with open(src) as f:
                for inc in re.findall(r'^#include "([^"]+)"', f.read(), re.M):
                    if inc in where:
                        assert where[inc] in allowed[folder], f"{src} includes {inc} ({where[inc]}/)"
