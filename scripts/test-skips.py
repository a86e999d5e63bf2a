#!/usr/bin/env python3
"""Reads nextest's JUnit report and prints which tests skipped their work
(a line starting with "SKIPPED:" or "skipped:" in their output), then one
closing line of counts. Run by scripts/test after nextest."""
import sys
import xml.etree.ElementTree as ET

def main(path: str) -> int:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        print(f"(no test report at {path}: {e})")
        return 0
    passed = failed = 0
    skips = []
    for case in root.iter("testcase"):
        bad = case.find("failure") is not None or case.find("error") is not None
        failed += bad
        passed += not bad
        for stream in ("system-out", "system-err"):
            node = case.find(stream)
            for line in (node.text or "").splitlines() if node is not None else []:
                if line.strip().lower().startswith("skipped:"):
                    skips.append(f"{case.get('classname')} {case.get('name')}: {line.strip()}")
                    break
    if skips:
        print(f"\n{len(skips)} test(s) skipped their work (they pass, but checked nothing):")
        for s in skips:
            print(f"  {s}")
        print("Katib's example YAMLs are read from ../shared/katib-examples (a checkout of"
              " kubeflow/katib's examples/v1beta1 beside this repository);"
              " scripts/browser-deps installs Chromium for the dashboard test.")
    print(f"\ntests: {passed} passed, {failed} failed, {len(skips)} skipped")
    return 0

if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
