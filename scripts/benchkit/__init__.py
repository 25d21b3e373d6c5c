"""Benchmark backupkit against the naive pipeline and the compression floor, in the same run,
on cached fixtures.

Timings on the project's machines drift by up to 40 % between runs and the page cache is
evicted after about 30 s idle, so absolute seconds mean little: every contender runs as its own
subprocess, all contenders of a tree alternate within each round (ABBA order, which also cancels
a linear drift), back to back without sleeping, and only medians and ratios against baselines
measured in the same rounds are reported, with how busy the rest of the machine was meanwhile.
The full-backup targets are printed as PASS/MISS: this is a measurement, never a test, and the exit
code does not depend on it.

Fixture trees are built once with `fixtures.build_state` and cached under `.bench/trees/`, keyed
by their parameters and by a hash of the generator's source, so a changed generator rebuilds.

Run it through `scripts/bench` (which sets up the venv); see docs/performance.md. The parts:

- `settings`: where files go, units, the defaults of a run;
- `_backupkit`: the only place that imports backupkit's internals;
- `files`, `procs`: removing and sizing scratch files; starting the measured programs;
- `trees`: building, caching and describing the state trees;
- `shell`: the naive pipelines, as the shell scripts an operator would type;
- `contenders`: what is timed on each tree, and the inputs it needs;
- `rounds`: ABBA rounds, medians, peak RSS, and how busy the machine was;
- `timing`: one tree (or the per-database pair) prepared, timed in rounds, cleaned up;
- `targets`: the full-backup targets with PASS/MISS;
- `breakdown`: what each stage of a backup costs alone, through backupkit's own functions;
- `writer_probe`: the gateway's commit latency during a backup;
- `machine`: what the run ran on;
- `report`: the printed tables and the JSON;
- `cli`: the command line, and the order in which a run does things.
"""
