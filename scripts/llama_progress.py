"""Turn a llama.cpp build log (pip -v) into a few readable progress lines.

scikit-build-core drives CMake with Ninja (`[12/140] Building C object ...`) or Make (`[ 45%] Building ...`);
both become "compiling llama.cpp: NN%", printed each time the figure moves 5 points; errors pass through.
"""

import re
import sys

NINJA = re.compile(r"^\s*\[(\d+)/(\d+)\]")
MAKE = re.compile(r"^\s*\[\s*(\d+)%\]")
KEEP = re.compile(r"Successfully|ERROR|error:")

shown = -5
for line in sys.stdin:
    if m := NINJA.match(line):
        percent = int(m[1]) * 100 // max(1, int(m[2]))
    elif m := MAKE.match(line):
        percent = int(m[1])
    else:
        if KEEP.search(line):
            print(line.rstrip(), flush=True)
        continue
    if percent >= shown + 5:
        shown = percent - percent % 5
        print(f"    compiling llama.cpp: {percent}%", flush=True)
