"""Prints an Autobahn report's results by case group; exits 1 on any FAILED case or any
case that expected a clean close and ended UNCLEAN.

Usage: summary.py REPORTS/index.json AGENT
"""
import collections
import json
import sys

idx = json.load(open(sys.argv[1]))[sys.argv[2]]
groups = collections.OrderedDict()
bad = []


def key(case):
    return [int(x) for x in case.split(".")]


for case in sorted(idx, key=key):
    r = idx[case]
    group = case.split(".")[0]
    groups.setdefault(group, collections.Counter())[r["behavior"]] += 1
    unclean = r.get("behaviorClose") == "UNCLEAN"
    if r["behavior"] == "FAILED" or unclean:
        bad.append((case, r["behavior"], r.get("behaviorClose")))
print("%-6s %s" % ("group", "results"))
for group, counts in groups.items():
    print("%-6s %s" % (group, ", ".join("%s %d" % kv for kv in sorted(counts.items()))))
total = collections.Counter()
for counts in groups.values():
    total.update(counts)
print("all    " + ", ".join("%s %d" % kv for kv in sorted(total.items())))
for case, behavior, close in bad:
    print("FAILED %s: %s, close %s" % (case, behavior, close))
sys.exit(1 if bad else 0)
