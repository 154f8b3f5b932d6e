"""Run a script with every ``os.replace`` onto a file named ``TARGET`` paused before it happens.

    python tests/pause_before_rename.py TARGET SCRIPT [ARGS...]

The checkpoint writer renames a complete temporary file over the target (atomic save); pausing
just before that rename lets tests/test_kill_resume.py SIGKILL a process in the middle of a save
deterministically. It prints one line, "paused before renaming <tmp> to <path>", then sleeps.
Test code only: the library has no such hook.
"""
import os
import runpy
import sys
import time

target, script = sys.argv[1], sys.argv[2]
_replace = os.replace


def replace_pausing(src, dst, *args, **kwargs):
    if os.path.basename(str(dst)) == target:
        print(f"paused before renaming {src} to {dst}", flush=True)
        time.sleep(3600)
    return _replace(src, dst, *args, **kwargs)


os.replace = replace_pausing
sys.argv = sys.argv[2:]
sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
runpy.run_path(script, run_name="__main__")
