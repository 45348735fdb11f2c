#!/usr/bin/env python3
"""tools/bench/gpu_kit_ctest.py: the part of ctest that gpu_kit.sh needs, for a machine without
CMake (a bare GPU image): runs the tests of a build's CTestTestfile.cmake files.

    gpu_kit_ctest.py DIR [-L REGEX] [-LE REGEX] [-R REGEX] [-j N] [--timeout S]

Reads DIR/CTestTestfile.cmake and its subdirs(): add_test and set_tests_properties with LABELS,
ENVIRONMENT, TIMEOUT, WILL_FAIL, SKIP_RETURN_CODE, PASS_REGULAR_EXPRESSION, WORKING_DIRECTORY and
DISABLED. Selects as ctest does (-L/-LE match any label, -R the name), runs N at a time, prints
each test's output when it fails and ctest's summary lines ("100% tests passed, 0 tests failed out
of N", "The following tests FAILED:"). Exit status 0 when every selected test passed or skipped."""
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

TOKEN = re.compile(r'\[(=*)\[(.*?)\]\1\]|"((?:\\.|[^"\\])*)"|([^\s()"]+)|(\()|(\))', re.S)
ESCAPES = {"n": "\n", "t": "\t", "r": "\r", ";": "\\;"}


def commands(text):
    """(name, [args]) for each command of a CMake file written by CMake (no nested calls)."""
    text = re.sub(r"(?m)^\s*#.*$", "", text)
    out, name, args, depth = [], None, None, 0
    for m in TOKEN.finditer(text):
        bracket, quoted, word, lp, rp = m.group(2), m.group(3), m.group(4), m.group(5), m.group(6)
        if lp:
            depth += 1
            if depth == 1:
                args = []
            continue
        if rp:
            depth -= 1
            if depth == 0:
                out.append((name.lower(), args))
            continue
        if depth == 0:
            name = word
        elif bracket is not None:
            args.append(bracket)
        elif quoted is not None:
            args.append(re.sub(r"\\(.)", lambda e: ESCAPES.get(e.group(1), e.group(1)), quoted))
        else:
            args.append(word)
    return out


def load(d, tests):
    path = os.path.join(d, "CTestTestfile.cmake")
    if not os.path.exists(path):
        return
    for name, args in commands(open(path).read()):
        if name == "add_test":
            tests[args[0]] = {"name": args[0], "cmd": args[1:], "props": {}, "dir": d}
        elif name == "set_tests_properties":
            i = args.index("PROPERTIES")
            props = dict(zip(args[i + 1::2], args[i + 2::2]))
            for t in args[:i]:
                if t in tests:
                    tests[t]["props"].update(props)
        elif name == "subdirs":
            for s in args:
                load(os.path.join(d, s), tests)


def split(v):
    return [x for x in re.split(r"(?<!\\);", v) if x] if v else []


def run(t, default_timeout):
    p = t["props"]
    env = dict(os.environ)
    for kv in split(p.get("ENVIRONMENT", "")):
        k, _, v = kv.partition("=")
        env[k] = v
    limit = float(p.get("TIMEOUT", default_timeout))
    t0 = time.time()
    try:
        r = subprocess.run(t["cmd"], cwd=p.get("WORKING_DIRECTORY", t["dir"]), env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=limit)
        out, code = r.stdout.decode(errors="replace"), r.returncode
    except subprocess.TimeoutExpired as e:
        return "Timeout", (e.stdout or b"").decode(errors="replace"), time.time() - t0
    except OSError as e:
        return "Not Run", str(e), time.time() - t0
    if "SKIP_RETURN_CODE" in p and code == int(p["SKIP_RETURN_CODE"]):
        return "Skipped", out, time.time() - t0
    regexes = split(p.get("PASS_REGULAR_EXPRESSION", ""))
    ok = any(re.search(x, out) for x in regexes) if regexes else code == 0
    if p.get("WILL_FAIL", "").upper() in ("TRUE", "ON", "1", "YES"):
        ok = not ok
    return ("Passed" if ok else "Failed"), out, time.time() - t0


def main(argv):
    d, opts, i = argv[0], {}, 1
    while i < len(argv):
        if argv[i] == "--output-on-failure":  # what it does anyway
            i += 1
            continue
        opts[argv[i]] = argv[i + 1]
        i += 2
    tests = {}
    load(d, tests)
    sel = []
    for t in tests.values():
        labels = split(t["props"].get("LABELS", ""))
        if t["props"].get("DISABLED", "").upper() in ("TRUE", "ON", "1"):
            continue
        if "-L" in opts and not any(re.search(opts["-L"], l) for l in labels):
            continue
        if "-LE" in opts and any(re.search(opts["-LE"], l) for l in labels):
            continue
        if "-R" in opts and not re.search(opts["-R"], t["name"]):
            continue
        sel.append(t)
    n, failed, t0 = len(sel), [], time.time()
    print("gpu_kit_ctest.py (no ctest on this machine): %d tests in %s" % (n, d), flush=True)
    with ThreadPoolExecutor(int(opts.get("-j", "1"))) as pool:
        futures = [(k, t, pool.submit(run, t, opts.get("--timeout", "1500"))) for k, t in enumerate(sel, 1)]
        for k, t, f in futures:
            status, out, secs = f.result()
            print("%*d/%d Test #%d: %s %s %s %.2f sec" % (len(str(n)), k, n, k, t["name"],
                  "." * max(3, 50 - len(t["name"])), status, secs), flush=True)
            if status not in ("Passed", "Skipped"):
                failed.append((k, t["name"], status))
                print(out, flush=True)
    print("\n%d%% tests passed, %d tests failed out of %d\n" %
          (100 * (n - len(failed)) // max(n, 1), len(failed), n))
    print("Total Test time (real) = %.2f sec" % (time.time() - t0))
    if failed:
        print("\nThe following tests FAILED:")
        for k, name, status in failed:
            print("\t%d - %s (%s)" % (k, name, status))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
